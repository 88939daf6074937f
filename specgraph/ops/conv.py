"""2-D convolution, and the sliding-window size arithmetic that pooling shares."""

from __future__ import annotations

from typing import Literal, Union

from ..ir.dims import Dim, add, floordiv
from .base import FLOAT_DTYPES, Bool, IntPair, NonNegativePair, Op, OpParams, PositiveInt, ShapeError, pair, size_text
from .registry import register_op
from .rules import batch1, check_positive, expect_rank, known_dim


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


def geometry_hint(kernel, stride, padding, dilation=(1, 1)) -> str:
    return (f"the window (kernel {kernel}, stride {stride}, padding {padding}, dilation "
            f"{dilation}) does not fit the input; use a smaller kernel/stride, more padding, "
            f"or a larger input")


@register_op
class Conv2d(Op):
    """2-D convolution. Shape: [N, C_in, H, W] -> [N, out, H', W'].

    H' = floor((H + 2p - d(k-1) - 1) / s) + 1 (H' = H for padding "same"). C_in is read
    from the input and must be concrete; ``groups`` must divide both C_in and ``out``.
    """

    name = "conv2d"
    aliases = ('conv', 'convolution')
    category = "conv"
    input_dtypes = FLOAT_DTYPES

    class Params(OpParams):
        out: PositiveInt
        kernel: IntPair
        stride: IntPair = 1
        padding: Union[NonNegativePair, Literal["same", "valid"]] = 0
        dilation: IntPair = 1
        groups: PositiveInt = 1
        bias: Bool = True
        padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"
        weight_norm: Bool = False

    def _padding(self, p) -> tuple[int, int] | str:
        if p.padding == "valid":
            return (0, 0)
        return p.padding if p.padding == "same" else pair(p.padding)

    def infer(self, p, inputs):
        t = inputs[0]
        expect_rank("conv2d", t, (4,), "a rank-4 input [N, C, H, W]")
        c_in = known_dim("conv2d", t, 1, "input channel count")
        for what, n in (("input channels", c_in), ("out channels", p.out)):
            if n % p.groups:
                raise ShapeError(f"conv2d groups={p.groups} does not divide the {what} ({n})",
                                 code="E407", hint="groups must divide both in and out channels")
        k, s, d = pair(p.kernel), pair(p.stride), pair(p.dilation)
        pad = self._padding(p)
        if pad == "same":
            if s != (1, 1):
                raise ShapeError(f"conv2d padding 'same' needs stride 1, found stride {p.stride}",
                                 code="E404", hint="give the padding as numbers, e.g. "
                                 "padding: kernel // 2, to combine it with a stride")
            return [t.with_shape((t.shape[0], p.out, t.shape[2], t.shape[3]))]
        self._check_padding_mode(p, t, pad)
        hw = []
        for i in range(2):
            size = window_out(t.shape[2 + i], k[i], s[i], pad[i], d[i])
            check_positive("conv2d", size, 2 + i, t, geometry_hint(p.kernel, p.stride, p.padding,
                                                                   p.dilation))
            hw.append(size)
        return [t.with_shape((t.shape[0], p.out, *hw))]

    @staticmethod
    def _check_padding_mode(p, t, pad) -> None:
        # reflect needs padding < size, circular padding <= size (torch refuses otherwise)
        limit = {"reflect": 1, "circular": 0}.get(p.padding_mode)
        if limit is None:
            return
        for i in range(2):
            size = t.shape[2 + i]
            if isinstance(size, int) and pad[i] > size - limit:
                raise ShapeError(f"conv2d padding_mode '{p.padding_mode}' cannot pad {pad[i]} "
                                 f"on dim {2 + i} of size {size} in {t}", code="E404",
                                 hint="reduce the padding or use padding_mode: zeros")

    def build(self, p, inputs):
        import torch
        module = torch.nn.Conv2d(
            inputs[0].shape[1], p.out, pair(p.kernel), stride=pair(p.stride),
            padding=self._padding(p), dilation=pair(p.dilation), groups=p.groups, bias=p.bias,
            padding_mode=p.padding_mode)
        if p.weight_norm:
            module = torch.nn.utils.parametrizations.weight_norm(module)
        return module

    def num_params(self, p, inputs):
        kh, kw = pair(p.kernel)
        weight = p.out * (inputs[0].shape[1] // p.groups) * kh * kw
        # weight_norm splits the weight into direction v (same size) and one gain per out channel
        return weight + (p.out if p.weight_norm else 0) + (p.out if p.bias else 0)

    def resize_reason(self, p):
        return f"has kernel {p.kernel} with padding {p.padding}"

    def macs(self, p, inputs, outputs):
        out = batch1(outputs[0])
        if out is None or batch1(inputs[0]) is None:
            return None
        kh, kw = pair(p.kernel)
        _, c_out, h, w = out
        return c_out * h * w * (inputs[0].shape[1] // p.groups) * kh * kw

    def describe(self, p):
        k = pair(p.kernel)
        text = f"{k[0]}×{k[1]}"
        if pair(p.stride) != (1, 1):
            text += f" /{size_text(pair(p.stride))}"
        if pair(p.dilation) != (1, 1):
            text += f" d{size_text(pair(p.dilation))}"
        if p.groups != 1:
            text += f" g{p.groups}"
        return f"{text}, {p.out}"


__all__ = ["Conv2d", "window_out", "geometry_hint"]
