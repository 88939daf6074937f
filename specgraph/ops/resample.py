"""Ops that change spatial resolution for dense prediction: transposed convolution (over 1, 2 or
3 spatial dims), interpolation (by scale, to a fixed size, or to another tensor's size), center
crop to another tensor's size (U-Net's crop-and-concat), and padding.

Ops that take "another tensor's size" have a second input: ``from: [x, like]``; only its
spatial dims are read.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal, Optional, Union

from pydantic import model_validator

from ..ir.dims import add, is_concrete, known_nonnegative, mul, sub
from .base import FLOAT_DTYPES, Bool, Float, IntPair, NonNegativeInt, Op, OpParams, PositiveInt, ShapeError, arg_type, pair
from ..ir.traits import Trait
from .base import input_details, size_text
from .conv import spatial_layout
from .param_types import ints_per_dim, per_dim
from .registry import register_op
from .padding import check_mode_amounts, check_mode_rank
from .runtime_sizes import emit_size, non_negative, size_program
from .shape import SymbolicEntry
from .rules import batch1, check_positive, expect_rank, known_dim, require


def conv_transpose_params(rank: int) -> type[OpParams]:
    """The params of a transposed convolution over ``rank`` spatial dims; every size is one int
    for all dims or a list of ``rank``."""
    Size, Padding = ints_per_dim(rank), ints_per_dim(rank, NonNegativeInt)

    class Params(OpParams):
        out: PositiveInt
        kernel: Size
        stride: Size = 1
        padding: Padding = 0
        output_padding: Padding = 0
        dilation: Size = 1
        groups: PositiveInt = 1
        bias: Bool = True

    return Params


class _ConvTranspose(Op):
    """Transposed convolution over the ``rank`` spatial dims of [N, C, *spatial]
    (torch.nn.ConvTranspose{rank}d): each S' = (S - 1)·s - 2p + d·(k - 1) + output_padding + 1."""

    category = "conv"
    input_dtypes = FLOAT_DTYPES
    traits = frozenset({Trait.OVERWRITABLE_OUTPUT})
    rank: ClassVar[int]

    def _sizes(self, p) -> tuple[tuple[int, ...], ...]:
        """kernel, stride, padding, output_padding and dilation, one int per spatial dim each."""
        return tuple(per_dim(v, self.rank) for v in (p.kernel, p.stride, p.padding, p.output_padding, p.dilation))

    def infer(self, p, inputs):
        t = inputs[0]
        expect_rank(self.name, t, (self.rank + 2,), spatial_layout(self.rank))
        c_in = known_dim(self.name, t, 1, "input channel count")
        if c_in % p.groups or p.out % p.groups:
            raise ShapeError(f"{self.name} groups={p.groups} must divide in ({c_in}) and out ({p.out}) channels",
                             code="E407")
        k, s, pad, op_, d = self._sizes(p)
        spatial = []
        for i in range(self.rank):
            if op_[i] >= max(s[i], d[i]):
                raise ShapeError(f"output_padding {op_[i]} must be smaller than stride or dilation", code="E404")
            size = add(mul(sub(t.shape[2 + i], 1), s[i]), d[i] * (k[i] - 1) + op_[i] + 1 - 2 * pad[i])
            check_positive(self.name, size, 2 + i, t, "reduce the padding")
            spatial.append(size)
        return [t.with_shape((t.shape[0], p.out, *spatial))]

    def build(self, p, inputs):
        import torch

        k, s, pad, op_, d = self._sizes(p)
        return getattr(torch.nn, f"ConvTranspose{self.rank}d")(
            inputs[0].shape[1], p.out, k, stride=s, padding=pad, output_padding=op_, groups=p.groups, bias=p.bias,
            dilation=d)

    def num_params(self, p, inputs):
        window = math.prod(per_dim(p.kernel, self.rank))
        return inputs[0].shape[1] * (p.out // p.groups) * window + (p.out if p.bias else 0)

    def macs(self, p, inputs, outputs):
        shape = batch1(inputs[0])
        if shape is None:
            return None
        _, c, *spatial = shape
        return c * math.prod(spatial) * (p.out // p.groups) * math.prod(per_dim(p.kernel, self.rank))

    def describe(self, p):
        k, s, *_ = self._sizes(p)
        return f"{'×'.join(map(str, k))} ×{size_text(s)}, {p.out}"


@register_op
class ConvTranspose1d(_ConvTranspose):
    """Transposed 1-D convolution (learnt upsampling of sequences). Shape: [N, C, L] -> [N, out, L'],
    L' = (L - 1)·s - 2p + d·(k - 1) + output_padding + 1."""

    name = "conv_transpose1d"
    aliases = ('deconv1d', 'convtranspose1d', 'conv1d_transpose')
    rank = 1
    Params = conv_transpose_params(1)


@register_op
class ConvTranspose2d(_ConvTranspose):
    """Transposed 2-D convolution ("up-convolution"). Shape: [N, C, H, W] -> [N, out, H', W'],
    H' = (H - 1)·s - 2p + d·(k - 1) + output_padding + 1."""

    name = "conv_transpose2d"
    aliases = ('deconv', 'convtranspose2d', 'conv2d_transpose')
    rank = 2
    Params = conv_transpose_params(2)


@register_op
class ConvTranspose3d(_ConvTranspose):
    """Transposed 3-D convolution (3-D U-Net's up-convolution). Shape: [N, C, D, H, W] ->
    [N, out, D', H', W'], each S' = (S - 1)·s - 2p + d·(k - 1) + output_padding + 1."""

    name = "conv_transpose3d"
    aliases = ('deconv3d', 'convtranspose3d', 'conv3d_transpose')
    rank = 3
    Params = conv_transpose_params(3)


@register_op
class Interpolate(Op):
    """Resize H and W. Shape: [N, C, H, W] (+ like [.., H2, W2]) -> [N, C, H', W'].

    Exactly one of: ``scale`` (H' = floor(H·scale)), ``size`` (H' = size), or a second input
    whose spatial size is copied (H' = H2: FCN's "back to the input resolution").
    """

    name = "interpolate"
    category = "resample"
    max_inputs = 2
    size_only_inputs = frozenset({1})
    sizes_like = ("size",)
    input_dtypes = FLOAT_DTYPES

    def check_dtypes(self, inputs):
        super().check_dtypes(inputs[:1])  # of a second input, only the size is read

    class Params(OpParams):
        scale: Union[PositiveInt, Float, list[Union[PositiveInt, Float]], None] = None
        size: Optional[IntPair] = None
        mode: Literal["nearest", "bilinear", "bicubic", "nearest-exact"] = "nearest"
        align_corners: Optional[Bool] = None

        @model_validator(mode="after")
        def _one_way(self):
            if self.scale is not None and self.size is not None:
                raise ValueError("give either scale or size, not both")
            if self.align_corners is not None and self.mode not in ("bilinear", "bicubic"):
                raise ValueError("align_corners applies to bilinear and bicubic modes only")
            return self

    def infer(self, p, inputs):
        t = inputs[0]
        expect_rank(self.name, t, (4,), "a rank-4 input [N, C, H, W]")
        given = (p.scale is not None) + (p.size is not None) + (len(inputs) == 2)
        if given != 1:
            raise ShapeError("interpolate needs exactly one of: scale, size, or a second input to match",
                             code="E408", hint="e.g. {op: interpolate, scale: 2} or from: [x, skip]")
        if len(inputs) == 2:
            like = inputs[1]
            if like.rank < 2:
                raise ShapeError(f"interpolate's second input must have spatial dims, found {like}", code="E410")
            return [t.with_shape((*t.shape[:2], *like.shape[-2:]))]
        if p.size is not None:
            return [t.with_shape((*t.shape[:2], *pair(p.size)))]
        scales = p.scale if isinstance(p.scale, list) else [p.scale, p.scale]
        if len(scales) != 2:
            raise ShapeError("scale is one number or [sh, sw]", code="E403")
        hw = []
        for dim, sc in zip(t.shape[2:], scales):
            if isinstance(sc, int) or float(sc).is_integer():
                hw.append(mul(dim, int(sc)))
            elif is_concrete(dim):
                hw.append(math.floor(dim * sc))
            else:
                raise ShapeError(f"a fractional scale {sc} of the symbolic dim {dim} has no exact size", code="E406",
                                 hint="use an integer scale, a fixed size, or a second input to match")
        check_positive(self.name, hw[0], 2, t, "use a larger scale")
        return [t.with_shape((*t.shape[:2], *hw))]

    def emit(self, p, graph, args):
        import operator

        import torch.nn.functional as F

        kwargs = {"mode": p.mode}
        if p.align_corners is not None:
            kwargs["align_corners"] = p.align_corners
        if len(args) == 2:
            shape = graph.call_function(getattr, (args[1], "shape"))
            kwargs["size"] = graph.call_function(operator.getitem, (shape, slice(-2, None)))
        elif p.size is not None:
            kwargs["size"] = pair(p.size)
        else:
            scales = p.scale if isinstance(p.scale, list) else [p.scale, p.scale]
            kwargs["scale_factor"] = tuple(float(s) for s in scales)
        return graph.call_function(F.interpolate, (args[0],), kwargs)

    def describe(self, p):
        if p.size is not None:
            return f"{p.mode} → {size_text(pair(p.size))}"
        if p.scale is not None:
            return f"{p.mode} ×{p.scale}"
        return f"{p.mode} → like"


def center_crop(x, like):
    """Crop the last two dims of ``x`` to those of ``like``, centred (offset rounded down)."""
    h, w = like.shape[-2], like.shape[-1]
    top = (x.shape[-2] - h) // 2
    left = (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


@register_op
class CenterCrop(Op):
    """Crop H and W to a second input's spatial size, centred (U-Net's crop before concat).
    Shape: [N, C, H, W], like [.., H2, W2] -> [N, C, H2, W2], needing H >= H2, W >= W2.

    By default the border removed must be the same on both sides (H - H2 even): an odd
    difference means the two feature maps do not line up pixel for pixel.
    """

    name = "center_crop"
    category = "resample"
    min_inputs = 2
    max_inputs = 2
    traits = frozenset({Trait.VIEW})  # a slice of its first input
    size_only_inputs = frozenset({1})

    def view_strides(self, p, shape, strides, out_shape):
        return strides

    class Params(OpParams):
        allow_uneven: Bool = False

    def infer(self, p, inputs):
        t, like = inputs
        expect_rank(self.name, t, (4,), "a rank-4 input [N, C, H, W]")
        if like.rank < 2:
            raise ShapeError(f"center_crop's second input gives the size: it needs spatial dims, found {like}",
                             code="E410", details=input_details(inputs))
        for axis, (have, want) in enumerate(zip(t.shape[2:], like.shape[-2:]), start=2):
            border = sub(have, want)
            require(border, at_least=0, code="E402", details=input_details(inputs),
                    message=f"center_crop cannot crop dim {axis} of size {have} to the larger {want}")
            if not p.allow_uneven:  # also where H is symbolic: an odd border at H = 33 is no less odd
                require(border, multiple_of=2, code="E402", details=input_details(inputs),
                        message=f"center_crop cannot crop {have} to {want} symmetrically: the border "
                                f"difference {border} must be even",
                        hint="the feature maps would be misaligned by half a pixel; choose an input size for "
                             "which every pooled size is even (or set allow_uneven: true)")
        return [t.with_shape((*t.shape[:2], *like.shape[-2:]))]

    def emit(self, p, graph, args):
        return graph.call_function(center_crop, (args[0], args[1]))

    def describe(self, p):
        return "to like"


@register_op
class Pad(Op):
    """Pad the last dims. ``pads`` is [left, right], [left, right, top, bottom] or one more pair
    (front, back) per dim further in, as in torch.nn.functional.pad ([0, 0, 0, right, 0, bottom]
    pads W and H of a channels-last [N, H, W, C]). Shape: [.., H, W] -> [.., H + top + bottom,
    W + left + right].

    An amount may be an expression over the input's dims (``${7 * ((x.width + 6) // 7) - x.width}``
    pads W to a multiple of 7) or the spec's inputs: computed on every call, which refuses a
    negative amount (torch would crop) naming it, unless the shapes prove it never is (7*⌈W/7⌉ - W).
    Modes reflect, replicate and circular pad 1, 2 or 3 dims of an input of one or two dims more
    ([C, *] or [N, C, *]); reflect pads less than the dim's size, circular at most its size (on
    symbolic sizes: checked when the model is called).
    """

    name = "pad"
    category = "resample"

    class Params(OpParams):
        pads: list[Union[NonNegativeInt, SymbolicEntry]]
        mode: Literal["constant", "reflect", "replicate", "circular"] = "constant"
        value: Float = 0.0

        @model_validator(mode="after")
        def _fill(self):
            if self.mode != "constant" and self.value != 0:
                raise ValueError(f"`value` is the fill of mode constant; mode {self.mode} fills from the input")
            return self

    def _programs(self, p, t) -> list:
        """A size program per amount (see runtime_sizes)."""
        programs = []
        for amount in p.pads:
            program = size_program(amount, t.shape)
            if program is None:
                raise ShapeError(f"pad amount {amount} cannot be computed at run time from the input {t} or the "
                                 f"spec's inputs", code="E406", hint="write the amount from the input's own dims")
            programs.append(program)
        return programs

    def infer(self, p, inputs):
        t = inputs[0]
        pairs = len(p.pads) // 2
        if len(p.pads) % 2 or not pairs or pairs > t.rank:
            raise ShapeError(f"pads has {len(p.pads)} entries for a rank-{t.rank} input {t}; give a pair "
                             f"per padded dim from the last: [left, right] or [left, right, top, bottom]",
                             code="E403")
        if p.mode != "constant":
            check_mode_rank("pad", p.mode, pairs, t)
        self._programs(p, t)
        shape = list(t.shape)
        amounts = []
        for i in range(pairs):
            axis = t.rank - 1 - i
            before, after = p.pads[2 * i], p.pads[2 * i + 1]
            for amount in (before, after):  # a symbolic amount is computed on each call: never negative
                require(amount, at_least=0, code="E404", message=f"pad amount {amount} must not be negative",
                        hint="torch would crop instead of padding")
            shape[axis] = add(shape[axis], add(before, after))
            amounts.append((axis, before, after))
        check_mode_amounts("pad", p.mode, t, amounts)
        return [t.with_shape(shape)]

    def emit(self, p, graph, args):
        import torch.nn.functional as F

        kwargs = {"mode": p.mode}
        if p.mode == "constant":
            kwargs["value"] = float(p.value)
        amounts = []
        for amount, program in zip(p.pads, self._programs(p, arg_type(args[0]))):
            size = emit_size(graph, args[0], program)
            if not isinstance(size, int) and not known_nonnegative(amount):  # what the shapes do not prove
                size = graph.call_function(non_negative, (size, str(amount), "pad"))
            amounts.append(size)
        return graph.call_function(F.pad, (args[0], tuple(amounts)), kwargs)

    def describe(self, p):
        return f"{p.mode} [{', '.join(map(str, p.pads))}]"


__all__ = ["ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "conv_transpose_params", "Interpolate", "CenterCrop", "Pad", "center_crop"]


@register_op
class Upsample(Interpolate):
    """torch.nn.Upsample's name for :class:`Interpolate` (same params and shapes)."""

    name = "upsample"
