"""Pooling over 1, 2 or 3 spatial dims: max and average over windows, and their adaptive
(fixed output size) forms.

Pools have no weights and no train/eval behaviour, so they are emitted as functional calls
(``function``, in torch.nn.functional).  One class per op and rank, each a few lines over the
rank-generic :class:`_WindowPool` and :class:`_AdaptivePool`.
"""

from __future__ import annotations

from typing import ClassVar, Optional

from .base import FLOAT_DTYPES, Bool, NonNegativeInt, Op, OpParams, ShapeError, size_text
from .conv import geometry_hint, spatial_layout, window_out, window_out_text
from .param_types import ints_per_dim, per_dim
from .registry import register_op
from ..ir.dims import sub
from .rules import check_positive, expect_rank, require


def max_pool_params(rank: int) -> type[OpParams]:
    """maxpool{rank}d's params: each size one int for all ``rank`` dims, or a list of ``rank``."""
    Size, Padding = ints_per_dim(rank), ints_per_dim(rank, NonNegativeInt)

    class Params(OpParams):
        kernel: Size
        stride: Optional[Size] = None
        padding: Padding = 0
        dilation: Size = 1
        ceil_mode: Bool = False

    return Params


def avg_pool_params(rank: int) -> type[OpParams]:
    """avgpool{rank}d's params (no dilation: torch's average pools have none)."""
    Size, Padding = ints_per_dim(rank), ints_per_dim(rank, NonNegativeInt)

    class Params(OpParams):
        kernel: Size
        stride: Optional[Size] = None
        padding: Padding = 0
        ceil_mode: Bool = False
        count_include_pad: Bool = True

    return Params


class _WindowPool(Op):
    """Shared shape rule of max/avg pooling over the ``rank`` spatial dims of [N, C, *spatial].

    Each S' = floor((S + 2p - d(k-1) - 1) / s) + 1, or with ceil_mode the ceiling, minus one
    when the last window would start beyond the input and its left padding (torch's rule,
    exact for symbolic S too; see conv.window_out). stride defaults to the kernel.
    """

    category = "pool"
    rank: ClassVar[int]
    function: ClassVar[str]  # in torch.nn.functional

    def _geometry(self, p):
        k = per_dim(p.kernel, self.rank)
        s = per_dim(p.stride, self.rank) if p.stride is not None else k
        d = per_dim(getattr(p, "dilation", 1), self.rank)
        return k, s, per_dim(p.padding, self.rank), d

    def infer(self, p, inputs):
        t = inputs[0]
        expect_rank(self.name, t, (self.rank + 2,), spatial_layout(self.rank))
        k, s, pad, d = self._geometry(p)
        if any(pd > kd // 2 for pd, kd in zip(pad, k)):
            raise ShapeError(f"{self.name} padding {p.padding} exceeds half the kernel {p.kernel}",
                             code="E404", hint="torch allows padding of at most kernel // 2")
        spatial = []
        for i in range(self.rank):
            size = window_out(t.shape[2 + i], k[i], s[i], pad[i], d[i], p.ceil_mode)
            check_positive(self.name, size, 2 + i, t, geometry_hint(k, s, pad, d))
            spatial.append(size)
        return [t.with_shape((*t.shape[:2], *spatial))]

    def out_size_text(self, p, axis, size, param):
        if not 2 <= axis < 2 + self.rank:
            return None
        i = axis - 2
        stride = param("stride" if p.stride is not None else "kernel", i)
        dilation = param("dilation", i) if "dilation" in type(p).model_fields else "1"
        if not p.ceil_mode:
            return window_out_text(size, param("kernel", i), stride, param("padding", i), dilation)
        k, s, pad, d = self._geometry(p)  # ceil mode: the window's constant, from these numbers only
        texts = (param("kernel", i), stride, param("padding", i), dilation)
        if texts != tuple(str(v[i]) for v in (k, s, pad, d)):
            return None
        span = d[i] * (k[i] - 1) + 1
        c = min(2 * pad[i] - span + 2 * s[i] - 1, pad[i] + s[i] - 1)  # as window_out's ceil mode
        return f"(({size}) + {c}) // {s[i]}"

    def resize_reason(self, p):
        return f"uses ceil_mode: {str(p.ceil_mode).lower()} and padding: {p.padding}"

    def resize_fixes(self, p):
        k, _, pad, _ = self._geometry(p)
        fixes = [(f"ceil_mode: {str(not p.ceil_mode).lower()}", p.model_copy(update={"ceil_mode": not p.ceil_mode}))]
        half = tuple(kd // 2 for kd in k)  # the most padding torch allows
        if half != pad:
            fixes.append((f"padding: {size_text(half)}", p.model_copy(update={"padding": list(half)})))
        return fixes

    def describe(self, p):
        k, s, _, d = self._geometry(p)
        text = "×".join(map(str, k))
        if s != (1,) * self.rank:
            text += f" /{size_text(s)}"
        if d != (1,) * self.rank:
            text += f" d{size_text(d)}"
        return text + (" ceil" if p.ceil_mode else "")


class _MaxPool(_WindowPool):
    # ATen's max_pool1d without indices reads L as a plain int, so torch.export (and the ONNX
    # export) would fix L at the example's size; the kernel with indices keeps it symbolic.
    with_indices: ClassVar[bool] = False

    def emit(self, p, graph, args):
        import operator

        import torch.nn.functional as F
        k, s, pad, d = self._geometry(p)
        kwargs = {"kernel_size": k, "stride": s, "padding": pad, "dilation": d, "ceil_mode": p.ceil_mode}
        if not self.with_indices:
            return graph.call_function(getattr(F, self.function), (args[0],), kwargs)
        pooled = graph.call_function(getattr(F, self.function), (args[0],), {**kwargs, "return_indices": True})
        return graph.call_function(operator.getitem, (pooled, 0))


class _AvgPool(_WindowPool):
    input_dtypes = FLOAT_DTYPES

    def emit(self, p, graph, args):
        import torch.nn.functional as F
        k, s, pad, _ = self._geometry(p)
        return graph.call_function(getattr(F, self.function), (args[0],), {
            "kernel_size": k, "stride": s, "padding": pad, "ceil_mode": p.ceil_mode,
            "count_include_pad": p.count_include_pad})


@register_op
class MaxPool1d(_MaxPool):
    """Max over windows of k along L. Shape: [N, C, L] -> [N, C, L'] (see _WindowPool)."""

    name = "maxpool1d"
    aliases = ('max_pool1d', 'maxpooling1d', 'max_pooling1d')
    rank, function = 1, "max_pool1d"
    with_indices = True
    Params = max_pool_params(1)


@register_op
class MaxPool2d(_MaxPool):
    """Max over k×k windows. Shape: [N, C, H, W] -> [N, C, H', W'] (see _WindowPool)."""

    name = "maxpool2d"
    aliases = ('max_pool2d', 'maxpool', 'max_pool')
    rank, function = 2, "max_pool2d"
    Params = max_pool_params(2)


@register_op
class MaxPool3d(_MaxPool):
    """Max over k×k×k windows. Shape: [N, C, D, H, W] -> [N, C, D', H', W'] (see _WindowPool)."""

    name = "maxpool3d"
    aliases = ('max_pool3d', 'maxpooling3d', 'max_pooling3d')
    rank, function = 3, "max_pool3d"
    Params = max_pool_params(3)


@register_op
class AvgPool1d(_AvgPool):
    """Mean over windows of k along L. Shape: [N, C, L] -> [N, C, L'] (see _WindowPool).

    count_include_pad: whether zero padding counts in each window's divisor.
    """

    name = "avgpool1d"
    aliases = ('avg_pool1d', 'average_pooling1d', 'averagepooling1d')
    rank, function = 1, "avg_pool1d"
    Params = avg_pool_params(1)


@register_op
class AvgPool2d(_AvgPool):
    """Mean over k×k windows. Shape: [N, C, H, W] -> [N, C, H', W'] (see _WindowPool).

    count_include_pad: whether zero padding counts in each window's divisor.
    """

    name = "avgpool2d"
    aliases = ('avg_pool2d', 'avgpool', 'average_pooling2d')
    rank, function = 2, "avg_pool2d"
    Params = avg_pool_params(2)


@register_op
class AvgPool3d(_AvgPool):
    """Mean over k×k×k windows. Shape: [N, C, D, H, W] -> [N, C, D', H', W'] (see _WindowPool).

    count_include_pad: whether zero padding counts in each window's divisor. Unlike the 1-D and
    2-D pools, torch's 3-D average pool needs each input dim at least the kernel, padding aside.
    """

    name = "avgpool3d"
    aliases = ('avg_pool3d', 'average_pooling3d', 'averagepooling3d')
    rank, function = 3, "avg_pool3d"
    Params = avg_pool_params(3)

    def infer(self, p, inputs):
        t = inputs[0]
        out = super().infer(p, inputs)
        for axis, k in enumerate(self._geometry(p)[0], start=2):
            require(sub(t.shape[axis], k), at_least=0, code="E404", hint="a smaller kernel, or a larger input",
                    message=f"avgpool3d needs dim {axis} ({t.shape[axis]}) of {t} at least the kernel ({k})")
        return out


def adaptive_pool_params(rank: int) -> type[OpParams]:
    """The params of an adaptive pool: the output size, one int for all ``rank`` dims or ``rank``."""
    Size = ints_per_dim(rank)

    class Params(OpParams):
        size: Size

    return Params


class _AdaptivePool(Op):
    """Pools the ``rank`` spatial dims of [N, C, *spatial] to a fixed ``size``."""

    category = "pool"
    input_dtypes = FLOAT_DTYPES
    rank: ClassVar[int]
    function: ClassVar[str]  # in torch.nn.functional

    def infer(self, p, inputs):
        t = inputs[0]
        expect_rank(self.name, t, (self.rank + 2,), spatial_layout(self.rank))
        return [t.with_shape((*t.shape[:2], *per_dim(p.size, self.rank)))]

    def emit(self, p, graph, args):
        import torch.nn.functional as F
        return graph.call_function(getattr(F, self.function), (args[0], per_dim(p.size, self.rank)))

    def describe(self, p):
        return "→ " + "×".join(map(str, per_dim(p.size, self.rank)))


@register_op
class AdaptiveAvgPool1d(_AdaptivePool):
    """Adaptive average pooling. Shape: [N, C, L] -> [N, C, size]."""

    name = "adaptive_avgpool1d"
    aliases = ('adaptive_avg_pool1d',)
    rank, function = 1, "adaptive_avg_pool1d"
    Params = adaptive_pool_params(1)


@register_op
class AdaptiveAvgPool2d(_AdaptivePool):
    """Adaptive average pooling. Shape: [N, C, H, W] -> [N, C, size_h, size_w]."""

    name = "adaptive_avgpool2d"
    rank, function = 2, "adaptive_avg_pool2d"
    Params = adaptive_pool_params(2)


@register_op
class AdaptiveAvgPool3d(_AdaptivePool):
    """Adaptive average pooling. Shape: [N, C, D, H, W] -> [N, C, size_d, size_h, size_w]."""

    name = "adaptive_avgpool3d"
    aliases = ('adaptive_avg_pool3d',)
    rank, function = 3, "adaptive_avg_pool3d"
    Params = adaptive_pool_params(3)


@register_op
class AdaptiveMaxPool1d(_AdaptivePool):
    """Adaptive max pooling. Shape: [N, C, L] -> [N, C, size]."""

    name = "adaptive_maxpool1d"
    aliases = ('adaptive_max_pool1d',)
    rank, function = 1, "adaptive_max_pool1d"
    Params = adaptive_pool_params(1)


@register_op
class AdaptiveMaxPool2d(_AdaptivePool):
    """Adaptive max pooling. Shape: [N, C, H, W] -> [N, C, size_h, size_w]."""

    name = "adaptive_maxpool2d"
    rank, function = 2, "adaptive_max_pool2d"
    Params = adaptive_pool_params(2)


@register_op
class AdaptiveMaxPool3d(_AdaptivePool):
    """Adaptive max pooling. Shape: [N, C, D, H, W] -> [N, C, size_d, size_h, size_w]."""

    name = "adaptive_maxpool3d"
    aliases = ('adaptive_max_pool3d',)
    rank, function = 3, "adaptive_max_pool3d"
    Params = adaptive_pool_params(3)
