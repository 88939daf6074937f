"""Elementwise activations and softmax. Shape: [*] -> [*] (unchanged; glu halves its dim).

Only prelu has weights; none has train/eval behaviour, so each other is emitted as one functional call and
``print(model.code)`` reads like hand-written torch (``relu = torch.relu(x)``).  Each op
names its function as text so that checking a spec never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

from pydantic import model_validator

from ..ir.dims import floordiv
from ..ir.traits import Trait
from .base import FLOAT_DTYPES, Bool, Float, Int, Op, OpParams, ShapeError, input_details, normalize_dim
from .rules import known_dim, require, unless_along_batch
from .registry import register_op


class _Activation(Op):
    """Applies ``function`` (a "module.attr" path) with ``kwargs(p)``. Shape unchanged."""

    category = "activation"
    function = ""
    input_dtypes = FLOAT_DTYPES  # torch computes most of them in floating point only
    traits = frozenset({Trait.ROW_WISE})
    # How it overwrites its input when the in-place pass allows it: "inplace" (the function's
    # ``inplace=True``), a "module.attr" path (torch.sigmoid_), or None (no in-place form).
    in_place_form: str | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.in_place_form is not None:
            cls.traits = cls.traits | {Trait.INPLACE_SAFE}

    def make_in_place(self, fx_node):
        if self.in_place_form is None or fx_node.op != "call_function" or fx_node.target is not self._callable(self.function):
            return False
        if self.in_place_form == "inplace":
            fx_node.kwargs = {**fx_node.kwargs, "inplace": True}
        else:
            fx_node.target = self._callable(self.in_place_form)
        return True

    @staticmethod
    def _callable(path: str):
        module, attr = path.rsplit(".", 1)
        return getattr(importlib.import_module(module), attr)

    def kwargs(self, p) -> dict[str, Any]:
        """The function's keyword arguments: by default the params, by name."""
        return p.model_dump()

    def infer(self, p, inputs):
        return [inputs[0]]

    def emit(self, p, graph, args):
        return graph.call_function(self._callable(self.function), (args[0],), self.kwargs(p))

    def describe(self, p):
        return ", ".join(f"{k}={v}" for k, v in self.kwargs(p).items())


@register_op
class ReLU(_Activation):
    """max(x, 0)."""
    name = "relu"
    function = "torch.relu"
    in_place_form = "torch.relu_"
    input_dtypes = None  # integers too


@register_op
class LeakyReLU(_Activation):
    """x for x > 0, negative_slope * x otherwise."""
    name = "leaky_relu"
    aliases = ('leakyrelu', 'lrelu')
    function = "torch.nn.functional.leaky_relu"
    in_place_form = "inplace"

    class Params(OpParams):
        negative_slope: Float = 0.01


@register_op
class GELU(_Activation):
    """x * Phi(x); approximate "tanh" uses the tanh approximation."""
    name = "gelu"
    function = "torch.nn.functional.gelu"

    class Params(OpParams):
        approximate: Literal["none", "tanh"] = "none"

    def kwargs(self, p):
        return {} if p.approximate == "none" else {"approximate": p.approximate}


@register_op
class SiLU(_Activation):
    """x * sigmoid(x) (swish)."""
    name = "silu"
    aliases = ('swish',)
    function = "torch.nn.functional.silu"
    in_place_form = "inplace"


@register_op
class ELU(_Activation):
    """x for x > 0, alpha * (exp(x) - 1) otherwise."""
    name = "elu"
    function = "torch.nn.functional.elu"
    in_place_form = "inplace"

    class Params(OpParams):
        alpha: Float = 1.0


@register_op
class SELU(_Activation):
    """Self-normalizing ELU (pairs with alpha_dropout)."""
    name = "selu"
    function = "torch.selu"
    in_place_form = "torch.selu_"


@register_op
class Sigmoid(_Activation):
    """1 / (1 + exp(-x))."""
    name = "sigmoid"
    function = "torch.sigmoid"
    in_place_form = "torch.sigmoid_"


@register_op
class Tanh(_Activation):
    """tanh(x)."""
    name = "tanh"
    function = "torch.tanh"
    in_place_form = "torch.tanh_"


class _SoftmaxParams(OpParams):
    dim: Int = 1


class _Softmax(_Activation):
    """Normalizes along ``dim`` (default 1, the class/channel dim)."""

    Params = _SoftmaxParams

    def infer(self, p, inputs):
        normalize_dim(p.dim, inputs[0].rank)  # E405 when out of range
        return [inputs[0]]

    def node_traits(self, p, inputs):
        return unless_along_batch(self.traits, [p.dim], inputs[0].rank)  # along the batch, rows mix


@register_op
class Softmax(_Softmax):
    """exp(x) / sum(exp(x)) along dim."""
    name = "softmax"
    function = "torch.softmax"
    traits = frozenset({Trait.ROW_WISE, Trait.PROBABILITIES})


@register_op
class LogSoftmax(_Softmax):
    """log(softmax(x)) along dim, computed stably."""
    name = "log_softmax"
    function = "torch.log_softmax"
    traits = frozenset({Trait.ROW_WISE, Trait.LOG_PROBABILITIES})


@register_op
class ReLU6(_Activation):
    """min(max(x, 0), 6) (MobileNet)."""
    name = "relu6"
    aliases = ('clipped_relu',)
    function = "torch.nn.functional.relu6"
    in_place_form = "inplace"


@register_op
class Hardtanh(_Activation):
    """x clamped to [min_val, max_val]."""
    name = "hardtanh"
    function = "torch.nn.functional.hardtanh"
    in_place_form = "inplace"

    class Params(OpParams):
        min_val: Float = -1.0
        max_val: Float = 1.0

        @model_validator(mode="after")
        def _ordered(self):
            if self.min_val >= self.max_val:
                raise ValueError(f"min_val must be below max_val, found {self.min_val} and {self.max_val}")
            return self


@register_op
class Hardswish(_Activation):
    """x * relu6(x + 3) / 6 (MobileNetV3)."""
    name = "hardswish"
    aliases = ('hard_swish', 'hswish')
    function = "torch.nn.functional.hardswish"
    in_place_form = "inplace"


@register_op
class Hardsigmoid(_Activation):
    """relu6(x + 3) / 6 (MobileNetV3's squeeze-excitation gate)."""
    name = "hardsigmoid"
    aliases = ('hard_sigmoid', 'hsigmoid')
    function = "torch.nn.functional.hardsigmoid"
    in_place_form = "inplace"


@register_op
class Softplus(_Activation):
    """log(1 + exp(beta * x)) / beta; x itself where beta * x > threshold."""
    name = "softplus"
    function = "torch.nn.functional.softplus"

    class Params(OpParams):
        beta: Float = 1.0
        threshold: Float = 20.0


@register_op
class Mish(_Activation):
    """x * tanh(softplus(x))."""
    name = "mish"
    function = "torch.nn.functional.mish"
    in_place_form = "inplace"


@register_op
class GLU(_Activation):
    """Gated linear unit: a * sigmoid(b), a and b the two halves of ``dim``.
    Shape: [..., 2k, ...] -> [..., k, ...] (dim ``dim``, default -1, must be even)."""
    name = "glu"
    function = "torch.nn.functional.glu"

    class Params(OpParams):
        dim: Int = -1

    def infer(self, p, inputs):
        x = inputs[0]
        axis = normalize_dim(p.dim, x.rank)
        size = x.shape[axis]
        require(size, multiple_of=2, code="E402", details=input_details(inputs),
                message=f"glu halves dim {p.dim}, whose size {size} must be even in {x}")
        return [x.with_shape(tuple(floordiv(d, 2) if i == axis else d for i, d in enumerate(x.shape)))]

    def node_traits(self, p, inputs):
        return unless_along_batch(self.traits, [p.dim], inputs[0].rank)


@register_op
class PReLU(Op):
    """x for x > 0, a * x otherwise, ``a`` learnt: one for all channels, or one per channel
    (``channelwise: true``, channels = dim 1).  Module torch.nn.PReLU (key ``weight``)."""
    name = "prelu"
    category = "activation"
    input_dtypes = FLOAT_DTYPES
    traits = frozenset({Trait.ROW_WISE})

    class Params(OpParams):
        channelwise: Bool = False
        init_slope: Float = 0.25  # torch's `init`, which is a node key here (a scan's initial states)

    def _count(self, p, inputs) -> int:
        return known_dim(self.name, inputs[0], 1, "channel count") if p.channelwise else 1

    def infer(self, p, inputs):
        if p.channelwise and inputs[0].rank < 2:
            raise ShapeError(f"prelu with channelwise: true needs the channels at dim 1, found {inputs[0]}",
                             code="E410")
        self._count(p, inputs)
        return [inputs[0]]

    def build(self, p, inputs):
        import torch

        return torch.nn.PReLU(self._count(p, inputs), init=p.init_slope)

    def num_params(self, p, inputs):
        return self._count(p, inputs)

    def describe(self, p):
        return "per channel" if p.channelwise else ""
