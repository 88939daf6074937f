"""Normalization: batch, layer, group, instance, local response and Lp (normalize) norm.

Those with weights or running statistics (train/eval behaviour) build torch modules;
the feature counts they need are read from the input and must be concrete.
"""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import Field, model_validator

from ..ir.dims import Dim, product
from ..ir.tensor_type import TensorType
from ..ir.traits import Trait
from .base import FLOAT_DTYPES, Bool, Float, Int, Op, OpParams, PositiveInt, Probability, ShapeError, normalize_dim
from .registry import register_op
from .rules import expect_rank, known_dim, require, unless_along_batch

Eps = Annotated[Float, Field(gt=0)]


def more_than_one(op: str, count: Dim, what: str, t: TensorType, training_only: bool = False) -> None:
    """torch's rule for statistics: ``count`` values to normalize over, at least 2 (a variance of
    one value is no statistic); ``training_only`` where running statistics serve in eval mode."""
    require(count, at_least=2, code="E404", training_only=training_only,
            message=f"{op} needs more than one of its {what}: {count} in {t}" + (" when training" if training_only else ""),
            hint="a batch of 2 or more in training" if training_only else "normalize over more positions")


class _BatchNormParams(OpParams):
    eps: Eps = 1e-5
    momentum: Optional[Probability] = 0.1  # None: cumulative moving average
    affine: Bool = True
    track_running_stats: Bool = True


class _BatchNorm(Op):
    """Shared by batchnorm1d/2d/3d: normalizes each channel (dim 1) over the batch."""

    category = "norm"
    Params = _BatchNormParams
    input_dtypes = FLOAT_DTYPES
    traits = frozenset({Trait.OVERWRITABLE_OUTPUT})  # its backward reads the input and statistics
    ranks: tuple[int, ...] = ()
    layout = ""
    module = ""

    def infer(self, p, inputs):
        t = inputs[0]
        expect_rank(self.name, t, self.ranks, self.layout)
        known_dim(self.name, t, 1, "channel count")
        # statistics over the batch (and positions) need two values per channel: in training, or
        # always without running statistics
        more_than_one(self.name, product((t.shape[0], *t.shape[2:])), "values per channel (N times the positions)",
                      t, training_only=p.track_running_stats)
        return [t]

    def build(self, p, inputs):
        import torch
        return getattr(torch.nn, self.module)(
            inputs[0].shape[1], eps=p.eps, momentum=p.momentum, affine=p.affine,
            track_running_stats=p.track_running_stats)

    def num_params(self, p, inputs):
        return 2 * inputs[0].shape[1] if p.affine else 0

    def num_buffers(self, p, inputs):
        return running_stats(p, inputs)


def running_stats(p, inputs) -> int:
    """running_mean and running_var [C] and num_batches_tracked (one int64), when tracked."""
    return 2 * inputs[0].shape[1] + 1 if p.track_running_stats else 0


@register_op
class BatchNorm1d(_BatchNorm):
    """Batch norm over channels. Shape: [N, C] -> [N, C] or [N, C, L] -> [N, C, L]."""

    name = "batchnorm1d"
    ranks = (2, 3)
    layout = "[N, C] or [N, C, L]"
    module = "BatchNorm1d"


@register_op
class BatchNorm2d(_BatchNorm):
    """Batch norm over channels. Shape: [N, C, H, W] -> [N, C, H, W]."""

    name = "batchnorm2d"
    aliases = ('batchnorm', 'batch_norm', 'bn', 'batchnormalization')
    ranks = (4,)
    layout = "a rank-4 input [N, C, H, W]"
    module = "BatchNorm2d"


@register_op
class BatchNorm3d(_BatchNorm):
    """Batch norm over channels (video, volumes). Shape: [N, C, D, H, W] -> [N, C, D, H, W]."""

    name = "batchnorm3d"
    aliases = ('batch_norm3d', 'batchnormalization3d')
    ranks = (5,)
    layout = "a rank-5 input [N, C, D, H, W]"
    module = "BatchNorm3d"


@register_op
class LayerNorm(Op):
    """Normalizes over the last ``dims`` dims (which must be concrete), or with ``channels: true``
    over the channels (dim 1) of [N, C, *] — ConvNeXt's LayerNorm2d. Shape: [*] -> [*]."""

    name = "layernorm"
    aliases = ('layer_norm', 'layernormalization', 'ln')
    category = "norm"
    input_dtypes = FLOAT_DTYPES
    traits = frozenset({Trait.ROW_WISE})

    def node_traits(self, p, inputs):
        # normalising over every dim, the batch included, mixes rows
        return self.traits if p.channels or p.dims < inputs[0].rank else frozenset()

    class Params(OpParams):
        dims: PositiveInt = 1
        channels: Bool = False
        eps: Eps = 1e-5
        elementwise_affine: Bool = True
        bias: Bool = True

        @model_validator(mode="after")
        def _one_choice(self):
            if self.channels and self.dims != 1:
                raise ValueError("`channels: true` normalizes dim 1 alone; leave `dims` out")
            return self

    def _normalized_shape(self, p, t) -> list[int]:
        if p.channels:
            return [known_dim("layernorm", t, 1, "channel count")]
        return [known_dim("layernorm", t, i, "normalized dim")
                for i in range(t.rank - p.dims, t.rank)]

    def infer(self, p, inputs):
        t = inputs[0]
        if p.channels and t.rank < 3:
            raise ShapeError(f"layernorm over channels needs [N, C, *], found {t}", code="E410",
                             hint="for [N, C] normalize the last dim: leave `channels` out")
        if t.rank < p.dims:
            raise ShapeError(f"layernorm normalizes the last {p.dims} dims, but the input {t} "
                             f"has rank {t.rank}", code="E410")
        self._normalized_shape(p, t)
        return [t]

    def build(self, p, inputs):
        import torch

        from .torch_modules import ChannelLayerNorm

        cls = ChannelLayerNorm if p.channels else torch.nn.LayerNorm
        return cls(self._normalized_shape(p, inputs[0]), eps=p.eps, elementwise_affine=p.elementwise_affine,
                   bias=p.bias)

    def num_params(self, p, inputs):
        if not p.elementwise_affine:
            return 0
        n = product(self._normalized_shape(p, inputs[0]))
        return 2 * n if p.bias else n

    def describe(self, p):
        return "channels" if p.channels else "" if p.dims == 1 else f"last {p.dims}"


@register_op
class RMSNorm(Op):
    """x / sqrt(mean(x², last ``dims`` dims) + eps) · weight (torch.nn.RMSNorm; eps None: the
    dtype's machine epsilon). Shape: [*] -> [*]."""

    name = "rmsnorm"
    aliases = ('rms_norm',)
    category = "norm"
    input_dtypes = FLOAT_DTYPES
    traits = frozenset({Trait.ROW_WISE})

    class Params(OpParams):
        dims: PositiveInt = 1
        eps: Optional[Eps] = None
        elementwise_affine: Bool = True

    def node_traits(self, p, inputs):
        return self.traits if p.dims < inputs[0].rank else frozenset()

    def _normalized_shape(self, p, t) -> list[int]:
        if t.rank < p.dims:
            raise ShapeError(f"rmsnorm normalizes the last {p.dims} dims, but the input {t} has rank {t.rank}",
                             code="E410")
        return [known_dim("rmsnorm", t, i, "normalized dim") for i in range(t.rank - p.dims, t.rank)]

    def infer(self, p, inputs):
        self._normalized_shape(p, inputs[0])
        return [inputs[0]]

    def build(self, p, inputs):
        import torch

        return torch.nn.RMSNorm(self._normalized_shape(p, inputs[0]), eps=p.eps,
                                elementwise_affine=p.elementwise_affine)

    def num_params(self, p, inputs):
        return product(self._normalized_shape(p, inputs[0])) if p.elementwise_affine else 0

    def describe(self, p):
        return "" if p.dims == 1 else f"last {p.dims}"


@register_op
class GroupNorm(Op):
    """Normalizes each group of channels. Shape: [N, C, *] -> [N, C, *]; groups divides C."""

    name = "groupnorm"
    category = "norm"
    input_dtypes = FLOAT_DTYPES

    class Params(OpParams):
        groups: PositiveInt
        eps: Eps = 1e-5
        affine: Bool = True

    def infer(self, p, inputs):
        t = inputs[0]
        if t.rank < 2:
            raise ShapeError(f"groupnorm expects [N, C, *], found a rank-{t.rank} tensor {t}",
                             code="E410")
        c = known_dim("groupnorm", t, 1, "channel count")
        if c % p.groups:
            raise ShapeError(f"groupnorm groups={p.groups} does not divide the {c} channels of {t}",
                             code="E407", hint="choose groups among the divisors of the channels")
        more_than_one("groupnorm", product((t.shape[0], c // p.groups, *t.shape[2:])),
                      "values per group (N times the group's channels times the positions)", t)
        return [t]

    def build(self, p, inputs):
        import torch
        return torch.nn.GroupNorm(p.groups, inputs[0].shape[1], eps=p.eps, affine=p.affine)

    def num_params(self, p, inputs):
        return 2 * inputs[0].shape[1] if p.affine else 0

    def describe(self, p):
        return f"{p.groups} groups"


@register_op
class InstanceNorm2d(Op):
    """Normalizes each sample's channel over H, W. Shape: [N, C, H, W] -> [N, C, H, W]."""

    name = "instancenorm2d"
    category = "norm"
    input_dtypes = FLOAT_DTYPES

    class Params(_BatchNormParams):
        affine: Bool = False
        track_running_stats: Bool = False

    def infer(self, p, inputs):
        t = inputs[0]
        expect_rank("instancenorm2d", t, (4,), "a rank-4 input [N, C, H, W]")
        known_dim("instancenorm2d", t, 1, "channel count")
        more_than_one("instancenorm2d", product(t.shape[2:]), "positions (H times W)", t,
                      training_only=p.track_running_stats)  # each sample's own statistics
        return [t]

    def build(self, p, inputs):
        import torch
        return torch.nn.InstanceNorm2d(inputs[0].shape[1], eps=p.eps, momentum=p.momentum,
                                       affine=p.affine, track_running_stats=p.track_running_stats)

    def num_params(self, p, inputs):
        return 2 * inputs[0].shape[1] if p.affine else 0

    def num_buffers(self, p, inputs):
        return running_stats(p, inputs)


@register_op
class LocalResponseNorm(Op):
    """AlexNet/GoogLeNet LRN across ``size`` neighbouring channels. Shape: [N, C, *] -> same.

    No weights and no train/eval behaviour: emitted as a functional call.
    """

    name = "local_response_norm"
    category = "norm"
    input_dtypes = FLOAT_DTYPES

    class Params(OpParams):
        size: PositiveInt
        alpha: Float = 1e-4
        beta: Float = 0.75
        k: Float = 1.0

    def infer(self, p, inputs):
        t = inputs[0]
        if t.rank < 3:
            raise ShapeError(f"local_response_norm expects [N, C, *] of rank 3 or more, found "
                             f"{t}", code="E410")
        return [t]

    def emit(self, p, graph, args):
        import torch.nn.functional as F
        return graph.call_function(F.local_response_norm, (args[0], p.size),
                                   {"alpha": p.alpha, "beta": p.beta, "k": p.k})

    def describe(self, p):
        return f"size {p.size}"


@register_op
class Normalize(Op):
    """x / max(‖x‖_p, eps) along ``dim`` (torch.nn.functional.normalize; p 2: unit vectors, as
    Swin V2's cosine attention takes of its queries and keys). Shape: [*] -> [*]."""

    name = "normalize"
    aliases = ('l2_normalize', 'l2norm', 'unit_norm')
    category = "norm"
    input_dtypes = FLOAT_DTYPES
    traits = frozenset({Trait.ROW_WISE})

    class Params(OpParams):
        dim: Int = 1  # torch's default
        p: Annotated[Float, Field(gt=0)] = 2.0
        eps: Eps = 1e-12

    def node_traits(self, p, inputs):
        return unless_along_batch(self.traits, [p.dim], inputs[0].rank)

    def infer(self, p, inputs):
        normalize_dim(p.dim, inputs[0].rank)
        return [inputs[0]]

    def emit(self, p, graph, args):
        import torch.nn.functional as F

        return graph.call_function(F.normalize, (args[0],), {"p": float(p.p), "dim": p.dim, "eps": float(p.eps)})

    def describe(self, p):
        return f"L{p.p:g} along {p.dim}"
