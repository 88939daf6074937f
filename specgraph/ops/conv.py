"""Convolution over 1, 2 or 3 spatial dims, and what the ops over spatial dims share: the
sliding-window size arithmetic, and the layout an error shows.

One class per rank (conv1d, conv2d, conv3d), each a few lines over :class:`_Conv`: the shape
rule, the errors and the counts are written once, for ``rank`` spatial dims.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal, Union

from ..ir.dims import Dim, add, floordiv
from ..ir.traits import Trait
from .base import FLOAT_DTYPES, Bool, NonNegativeInt, Op, OpParams, PositiveInt, ShapeError, size_text
from .padding import check_mode_amounts
from .param_types import ints_per_dim, per_dim
from .registry import register_op
from .rules import batch1, check_positive, expect_rank, known_dim

# The names the docs and errors give the spatial dims of [N, C, *spatial], by their number.
SPATIAL_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def spatial_layout(rank: int) -> str:
    """The input an op over ``rank`` spatial dims expects, as its errors say it:
    ``a rank-4 input [N, C, H, W]`` for rank 2."""
    return f"a rank-{rank + 2} input [N, C, {', '.join(SPATIAL_NAMES[rank])}]"


def window_out(size: Dim, kernel: int, stride: int, padding: int, dilation: int = 1,
               ceil_mode: bool = False) -> Dim:
    """Output length of a sliding window over ``size``, exactly as torch computes it.

    floor mode: floor((size + 2p - d(k-1) - 1) / s) + 1.
    ceil mode:  ceil(...) + 1, minus one when that last window would start past the input
    and its left padding.  That rule is ``min(ceil(A/s) + 1, ceil((size + p)/s))`` with
    A = size + 2p - d(k-1) - 1, and since both terms are floor((size + c)/s) for constants c,
    the min is the one with the smaller c — so symbolic sizes need no case split.
    """
    span = dilation * (kernel - 1) + 1
    if not ceil_mode:
        return add(floordiv(add(size, 2 * padding - span), stride), 1)
    c_ceil = 2 * padding - span + 2 * stride - 1  # ceil(A/s) + 1 == floor((size + c_ceil)/s)
    c_start = padding + stride - 1                # ceil((size + p)/s)
    return floordiv(add(size, min(c_ceil, c_start)), stride)


def window_out_text(size: str, kernel: str, stride: str, padding: str, dilation: str = "1") -> str:
    """:func:`window_out` in floor mode as Python text over the texts of its terms (names or
    numbers): ``(size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1``, torch's formula."""
    return f"(({size}) + 2 * ({padding}) - ({dilation}) * (({kernel}) - 1) - 1) // ({stride}) + 1"


def geometry_hint(kernel, stride, padding, dilation=(1, 1)) -> str:
    return (f"the window (kernel {kernel}, stride {stride}, padding {padding}, dilation "
            f"{dilation}) does not fit the input; use a smaller kernel/stride, more padding, "
            f"or a larger input")


def conv_params(rank: int) -> type[OpParams]:
    """The params of a convolution over ``rank`` spatial dims; every size is one int for all
    dims or a list of ``rank`` (torch's int-or-tuple)."""
    Size, Padding = ints_per_dim(rank), ints_per_dim(rank, NonNegativeInt)

    class Params(OpParams):
        out: PositiveInt
        kernel: Size
        stride: Size = 1
        padding: Union[Padding, Literal["same", "valid"]] = 0
        dilation: Size = 1
        groups: PositiveInt = 1
        bias: Bool = True
        padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"
        weight_norm: Bool = False

    return Params


class _Conv(Op):
    """Convolution over the ``rank`` spatial dims of [N, C_in, *spatial] (torch.nn.Conv{rank}d).

    Each spatial size S' = floor((S + 2p - d(k-1) - 1) / s) + 1 (S' = S for padding "same").
    C_in is read from the input and must be concrete; ``groups`` must divide C_in and ``out``.
    """

    category = "conv"
    input_dtypes = FLOAT_DTYPES
    traits = frozenset({Trait.OVERWRITABLE_OUTPUT})
    rank: ClassVar[int]

    def _padding(self, p) -> tuple[int, ...] | str:
        if p.padding == "valid":
            return (0,) * self.rank
        return p.padding if p.padding == "same" else per_dim(p.padding, self.rank)

    def _sizes(self, p) -> tuple[tuple[int, ...], ...]:
        """kernel, stride and dilation, one int per spatial dim each."""
        return tuple(per_dim(v, self.rank) for v in (p.kernel, p.stride, p.dilation))

    def infer(self, p, inputs):
        t = inputs[0]
        expect_rank(self.name, t, (self.rank + 2,), spatial_layout(self.rank))
        c_in = known_dim(self.name, t, 1, "input channel count")
        for what, n in (("input channels", c_in), ("out channels", p.out)):
            if n % p.groups:
                raise ShapeError(f"{self.name} groups={p.groups} does not divide the {what} ({n})",
                                 code="E407", hint="groups must divide both in and out channels")
        k, s, d = self._sizes(p)
        pad = self._padding(p)
        if pad == "same":
            if s != (1,) * self.rank:
                raise ShapeError(f"{self.name} padding 'same' needs stride 1, found stride {p.stride}",
                                 code="E404", hint="give the padding as numbers, e.g. "
                                 "padding: kernel // 2, to combine it with a stride")
            # torch pads d(k-1) in all, the smaller half before: an even kernel pads one more after
            totals = [d[i] * (k[i] - 1) for i in range(self.rank)]
            self._check_padding_mode(p, t, [(2 + i, n // 2, n - n // 2) for i, n in enumerate(totals)])
            return [t.with_shape((t.shape[0], p.out, *t.shape[2:]))]
        self._check_padding_mode(p, t, [(2 + i, pad[i], pad[i]) for i in range(self.rank)])
        spatial = []
        for i in range(self.rank):
            size = window_out(t.shape[2 + i], k[i], s[i], pad[i], d[i])
            check_positive(self.name, size, 2 + i, t, geometry_hint(p.kernel, p.stride, p.padding,
                                                                    p.dilation))
            spatial.append(size)
        return [t.with_shape((t.shape[0], p.out, *spatial))]

    def out_size_text(self, p, axis, size, param):
        if not 2 <= axis < 2 + self.rank:
            return None
        if p.padding == "same":
            return size
        i = axis - 2
        padding = "0" if p.padding == "valid" else param("padding", i)
        return window_out_text(size, param("kernel", i), param("stride", i), padding, param("dilation", i))

    def _check_padding_mode(self, p, t, amounts) -> None:
        """torch pads the input itself first in a padding_mode other than zeros, by its limits."""
        if p.padding_mode != "zeros":
            check_mode_amounts(f"{self.name} padding_mode", p.padding_mode, t, amounts)

    def build(self, p, inputs):
        import torch

        k, s, d = self._sizes(p)
        module = getattr(torch.nn, f"Conv{self.rank}d")(
            inputs[0].shape[1], p.out, k, stride=s, padding=self._padding(p), dilation=d,
            groups=p.groups, bias=p.bias, padding_mode=p.padding_mode)
        if p.weight_norm:
            module = torch.nn.utils.parametrizations.weight_norm(module)
        return module

    def num_params(self, p, inputs):
        weight = p.out * (inputs[0].shape[1] // p.groups) * math.prod(per_dim(p.kernel, self.rank))
        # weight_norm splits the weight into direction v (same size) and one gain per out channel
        return weight + (p.out if p.weight_norm else 0) + (p.out if p.bias else 0)

    def resize_reason(self, p):
        return f"has kernel {p.kernel} with padding {p.padding}"

    def resize_fixes(self, p):
        k, _, d = self._sizes(p)
        same = tuple(dd * (kd - 1) // 2 for kd, dd in zip(k, d))  # what keeps the size at stride 1, odd kernels
        if self._padding(p) == same or any(kd % 2 == 0 for kd in k):
            return []
        return [(f"padding: {size_text(same)}", p.model_copy(update={"padding": list(same)}))]

    def macs(self, p, inputs, outputs):
        out = batch1(outputs[0])
        if out is None or batch1(inputs[0]) is None:
            return None
        _, c_out, *spatial = out
        window = (inputs[0].shape[1] // p.groups) * math.prod(per_dim(p.kernel, self.rank))
        return c_out * math.prod(spatial) * window

    def describe(self, p):
        k, s, d = self._sizes(p)
        text = "×".join(map(str, k))
        if s != (1,) * self.rank:
            text += f" /{size_text(s)}"
        if d != (1,) * self.rank:
            text += f" d{size_text(d)}"
        if p.groups != 1:
            text += f" g{p.groups}"
        return f"{text}, {p.out}"


@register_op
class Conv1d(_Conv):
    """1-D convolution (sequences, audio, signals). Shape: [N, C_in, L] -> [N, out, L'].

    L' = floor((L + 2p - d(k-1) - 1) / s) + 1 (L' = L for padding "same"). C_in is read
    from the input and must be concrete; ``groups`` must divide both C_in and ``out``.
    """

    name = "conv1d"
    aliases = ('convolution1d', 'temporal_convolution')
    rank = 1
    Params = conv_params(1)


@register_op
class Conv2d(_Conv):
    """2-D convolution. Shape: [N, C_in, H, W] -> [N, out, H', W'].

    H' = floor((H + 2p - d(k-1) - 1) / s) + 1 (H' = H for padding "same"). C_in is read
    from the input and must be concrete; ``groups`` must divide both C_in and ``out``.
    """

    name = "conv2d"
    aliases = ('conv', 'convolution')
    rank = 2
    Params = conv_params(2)


@register_op
class Conv3d(_Conv):
    """3-D convolution (video, volumes). Shape: [N, C_in, D, H, W] -> [N, out, D', H', W'].

    Each of D', H', W' = floor((S + 2p - d(k-1) - 1) / s) + 1 (= S for padding "same"). C_in is
    read from the input and must be concrete; ``groups`` must divide both C_in and ``out``.
    """

    name = "conv3d"
    aliases = ('convolution3d', 'volumetric_convolution')
    rank = 3
    Params = conv_params(3)


__all__ = ["Conv1d", "Conv2d", "Conv3d", "conv_params", "spatial_layout", "window_out", "window_out_text",
           "geometry_hint",
           "SPATIAL_NAMES"]
