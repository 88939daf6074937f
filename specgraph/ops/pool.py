"""2-D pooling: max and average over windows, and their adaptive (fixed output size) forms.

Pools have no weights and no train/eval behaviour, so they are emitted as functional calls.
"""

from __future__ import annotations

from typing import Optional

from .base import FLOAT_DTYPES, Bool, IntPair, NonNegativePair, Op, OpParams, ShapeError, pair
from .conv import geometry_hint, window_out
from .registry import register_op
from .rules import check_positive, expect_rank


def _text(v) -> str:
    a, b = pair(v)
    return str(a) if a == b else f"({a},{b})"


class _WindowPool(Op):
    """Shared shape rule of max/avg pooling. Shape: [N, C, H, W] -> [N, C, H', W'].

    H' = floor((H + 2p - d(k-1) - 1) / s) + 1, or with ceil_mode the ceiling, minus one
    when the last window would start beyond the input and its left padding (torch's rule,
    exact for symbolic H too; see conv.window_out). stride defaults to the kernel.
    """

    category = "pool"

    def _geometry(self, p):
        k = pair(p.kernel)
        s = pair(p.stride) if p.stride is not None else k
        d = pair(getattr(p, "dilation", 1))
        return k, s, pair(p.padding), d

    def infer(self, p, inputs):
        t = inputs[0]
        expect_rank(self.name, t, (4,), "a rank-4 input [N, C, H, W]")
        k, s, pad, d = self._geometry(p)
        if pad[0] > k[0] // 2 or pad[1] > k[1] // 2:
            raise ShapeError(f"{self.name} padding {p.padding} exceeds half the kernel {p.kernel}",
                             code="E404", hint="torch allows padding of at most kernel // 2")
        hw = []
        for i in range(2):
            size = window_out(t.shape[2 + i], k[i], s[i], pad[i], d[i], p.ceil_mode)
            check_positive(self.name, size, 2 + i, t, geometry_hint(k, s, pad, d))
            hw.append(size)
        return [t.with_shape((*t.shape[:2], *hw))]

    def resize_reason(self, p):
        return f"uses ceil_mode: {str(p.ceil_mode).lower()} and padding: {p.padding}"

    def describe(self, p):
        k, s, _, d = self._geometry(p)
        text = f"{k[0]}×{k[1]}"
        if s != (1, 1):
            text += f" /{_text(s)}"
        if d != (1, 1):
            text += f" d{_text(d)}"
        return text + (" ceil" if p.ceil_mode else "")


@register_op
class MaxPool2d(_WindowPool):
    """Max over k×k windows. Shape: [N, C, H, W] -> [N, C, H', W'] (see _WindowPool)."""

    name = "maxpool2d"
    aliases = ('max_pool2d', 'maxpool', 'max_pool')

    class Params(OpParams):
        kernel: IntPair
        stride: Optional[IntPair] = None
        padding: NonNegativePair = 0
        dilation: IntPair = 1
        ceil_mode: Bool = False

    def emit(self, p, graph, args):
        import torch.nn.functional as F
        k, s, pad, d = self._geometry(p)
        return graph.call_function(F.max_pool2d, (args[0],), {
            "kernel_size": k, "stride": s, "padding": pad, "dilation": d,
            "ceil_mode": p.ceil_mode})


@register_op
class AvgPool2d(_WindowPool):
    """Mean over k×k windows. Shape: [N, C, H, W] -> [N, C, H', W'] (see _WindowPool).

    count_include_pad: whether zero padding counts in each window's divisor.
    """

    name = "avgpool2d"
    aliases = ('avg_pool2d', 'avgpool', 'average_pooling2d')
    input_dtypes = FLOAT_DTYPES

    class Params(OpParams):
        kernel: IntPair
        stride: Optional[IntPair] = None
        padding: NonNegativePair = 0
        ceil_mode: Bool = False
        count_include_pad: Bool = True

    def emit(self, p, graph, args):
        import torch.nn.functional as F
        k, s, pad, _ = self._geometry(p)
        return graph.call_function(F.avg_pool2d, (args[0],), {
            "kernel_size": k, "stride": s, "padding": pad, "ceil_mode": p.ceil_mode,
            "count_include_pad": p.count_include_pad})


class _AdaptivePool(Op):
    """Pools to a fixed output size. Shape: [N, C, H, W] -> [N, C, size_h, size_w]."""

    category = "pool"
    function = ""  # name in torch.nn.functional
    input_dtypes = FLOAT_DTYPES

    class Params(OpParams):
        size: IntPair

    def infer(self, p, inputs):
        t = inputs[0]
        expect_rank(self.name, t, (4,), "a rank-4 input [N, C, H, W]")
        return [t.with_shape((*t.shape[:2], *pair(p.size)))]

    def emit(self, p, graph, args):
        import torch.nn.functional as F
        return graph.call_function(getattr(F, self.function), (args[0], pair(p.size)))

    def describe(self, p):
        h, w = pair(p.size)
        return f"→ {h}×{w}"


@register_op
class AdaptiveAvgPool2d(_AdaptivePool):
    """Adaptive average pooling. Shape: [N, C, H, W] -> [N, C, size_h, size_w]."""

    name = "adaptive_avgpool2d"
    function = "adaptive_avg_pool2d"


@register_op
class AdaptiveMaxPool2d(_AdaptivePool):
    """Adaptive max pooling. Shape: [N, C, H, W] -> [N, C, size_h, size_w]."""

    name = "adaptive_maxpool2d"
    function = "adaptive_max_pool2d"
