"""Rearranging a tensor's dims: transpose, unflatten, slice, roll, channel_shuffle,
pixel_shuffle, pixel_unshuffle.  Shapes are exact over symbolic dims where torch's rule allows;
where a size must divide or fit, a symbolic one is refused (E406) rather than left to fail at
run time."""

from __future__ import annotations

import math
import operator
from typing import Optional

from pydantic import Field

from ..ir.dims import floordiv, is_concrete, mul
from ..ir.traits import Trait
from .base import Int, Op, OpParams, PositiveInt, ShapeError, normalize_dim
from .registry import register_op
from .rules import expect_rank, known_dim, require, unless_along_batch


@register_op
class Transpose(Op):
    """Swaps dims ``dim0`` and ``dim1`` (a view). [.., a, .., b, ..] -> [.., b, .., a, ..]."""

    name = "transpose"
    aliases = ('swapaxes', 'swapdims')
    category = "reshape"
    traits = frozenset({Trait.VIEW, Trait.ROW_WISE})

    class Params(OpParams):
        dim0: Int
        dim1: Int

    def node_traits(self, p, inputs):
        return unless_along_batch(self.traits, [p.dim0, p.dim1], inputs[0].rank)

    def infer(self, p, inputs):
        t = inputs[0]
        a, b = normalize_dim(p.dim0, t.rank), normalize_dim(p.dim1, t.rank)
        shape = list(t.shape)
        shape[a], shape[b] = shape[b], shape[a]
        return [t.with_shape(shape)]

    def view_strides(self, p, shape, strides, out_shape):
        a, b = p.dim0 % len(shape), p.dim1 % len(shape)
        s = list(strides)
        s[a], s[b] = s[b], s[a]
        return tuple(s)

    def emit(self, p, graph, args):
        import torch

        return graph.call_function(torch.transpose, (args[0], p.dim0, p.dim1))

    def describe(self, p):
        return f"{p.dim0} ↔ {p.dim1}"


@register_op
class Unflatten(Op):
    """Splits dim ``dim`` into ``sizes`` (one may be -1: the rest). [N, 196, E] with dim 1,
    sizes [14, 14] -> [N, 14, 14, E]. The dim must be concrete unless ``sizes`` has no -1 and is
    its exact factorisation."""

    name = "unflatten"
    category = "reshape"
    traits = frozenset({Trait.VIEW, Trait.ROW_WISE})

    class Params(OpParams):
        dim: Int
        sizes: list[Int] = Field(min_length=1)

    def node_traits(self, p, inputs):
        return unless_along_batch(self.traits, [p.dim], inputs[0].rank)

    def infer(self, p, inputs):
        t = inputs[0]
        axis = normalize_dim(p.dim, t.rank)
        size = t.shape[axis]
        free = [i for i, s in enumerate(p.sizes) if s == -1]
        if len(free) > 1 or any(s == 0 or s < -1 for s in p.sizes):
            raise ShapeError(f"unflatten sizes {p.sizes}: positive sizes and at most one -1", code="E204")
        known = math.prod(s for s in p.sizes if s != -1)
        if not is_concrete(size):
            if free:
                raise ShapeError(f"unflatten cannot infer -1 from the symbolic dim {size} of {t}", code="E406",
                                 hint="give every size, or a concrete input dim")
            raise ShapeError(f"unflatten of the symbolic dim {size} of {t} into {p.sizes} cannot be checked",
                             code="E406", hint="a concrete input dim is needed to check the sizes multiply to it")
        if (size % known if free else size != known):
            raise ShapeError(f"unflatten sizes {p.sizes} do not multiply to dim {p.dim} ({size}) of {t}", code="E402")
        sizes = [size // known if s == -1 else s for s in p.sizes]
        return [t.with_shape((*t.shape[:axis], *sizes, *t.shape[axis + 1:]))]

    def emit(self, p, graph, args):
        import torch

        return graph.call_function(torch.unflatten, (args[0], p.dim, tuple(p.sizes)))

    def describe(self, p):
        return f"dim {p.dim} → {p.sizes}"


@register_op
class Slice(Op):
    """x[start:stop:step] along ``dim`` (Python's rule; negative start/stop count from the end).
    The dim must be concrete: how much a slice leaves depends on the size."""

    name = "slice"
    category = "reshape"
    traits = frozenset({Trait.VIEW, Trait.ROW_WISE})

    class Params(OpParams):
        dim: Int
        start: Int = 0
        stop: Optional[Int] = None
        step: PositiveInt = 1

    def node_traits(self, p, inputs):
        return unless_along_batch(self.traits, [p.dim], inputs[0].rank)

    def infer(self, p, inputs):
        t = inputs[0]
        axis = normalize_dim(p.dim, t.rank)
        size = t.shape[axis]
        if is_concrete(size):
            n = len(range(*slice(p.start, p.stop, p.step).indices(size)))
        elif (p.start, p.stop, p.step) == (0, None, 1):
            n = size
        else:  # how much is left depends on the size (torch gives an empty tensor where it runs out)
            raise ShapeError(f"slice {p.start}:{'' if p.stop is None else p.stop}:{p.step} of the symbolic dim "
                             f"{size} of {t} depends on its size", code="E406",
                             hint="give that input dim a number, not a symbol")
        if n == 0:
            raise ShapeError(f"slice {p.start}:{p.stop}:{p.step} of dim {p.dim} ({size}) of {t} is empty", code="E404")
        return [t.with_shape((*t.shape[:axis], n, *t.shape[axis + 1:]))]

    def view_strides(self, p, shape, strides, out_shape):
        axis = p.dim % len(shape)
        return tuple(s * p.step if i == axis else s for i, s in enumerate(strides))

    def emit(self, p, graph, args):
        cut = slice(p.start, p.stop, p.step)
        if p.dim >= 0:
            index = (slice(None),) * p.dim + (cut,)
        else:  # counted from the end: an Ellipsis, then the dims after it
            index = (Ellipsis, cut) + (slice(None),) * (-p.dim - 1)
        return graph.call_function(operator.getitem, (args[0], index))

    def describe(self, p):
        stop = "" if p.stop is None else p.stop
        return f"dim {p.dim} [{p.start}:{stop}" + (f":{p.step}]" if p.step != 1 else "]")


@register_op
class Roll(Op):
    """Rolls the tensor by ``shifts`` along ``dims`` (Swin's shifted windows). Shape unchanged."""

    name = "roll"
    category = "reshape"
    traits = frozenset({Trait.ROW_WISE})

    class Params(OpParams):
        shifts: list[Int] = Field(min_length=1)
        dims: list[Int] = Field(min_length=1)

    def node_traits(self, p, inputs):
        return unless_along_batch(self.traits, p.dims, inputs[0].rank)

    def infer(self, p, inputs):
        if len(p.shifts) != len(p.dims):
            raise ShapeError(f"roll needs one shift per dim, found {len(p.shifts)} shifts for {len(p.dims)} dims",
                             code="E204")
        for d in p.dims:
            normalize_dim(d, inputs[0].rank)
        return [inputs[0]]

    def emit(self, p, graph, args):
        import torch

        return graph.call_function(torch.roll, (args[0], tuple(p.shifts), tuple(p.dims)))

    def describe(self, p):
        return f"{p.shifts} on {p.dims}"


@register_op
class ChannelShuffle(Op):
    """ShuffleNet's channel shuffle: [N, C, H, W] with C = g·k, channels reordered as a k×g
    transpose of g groups. Shape unchanged; ``groups`` must divide C."""

    name = "channel_shuffle"
    category = "reshape"
    traits = frozenset({Trait.ROW_WISE})

    class Params(OpParams):
        groups: PositiveInt

    def infer(self, p, inputs):
        t = inputs[0]
        expect_rank(self.name, t, (3, 4, 5), "[N, C, *]")
        c = known_dim(self.name, t, 1, "channel count")
        if c % p.groups:
            raise ShapeError(f"channel_shuffle into {p.groups} groups needs C divisible by it, found {c} in {t}",
                             code="E402")
        return [t]

    def emit(self, p, graph, args):
        import torch

        return graph.call_function(torch.channel_shuffle, (args[0], p.groups))

    def describe(self, p):
        return f"{p.groups} groups"


class _Pixels(Op):
    category = "resample"
    traits = frozenset({Trait.ROW_WISE})

    class Params(OpParams):
        factor: PositiveInt

    def describe(self, p):
        return f"×{p.factor}"


@register_op
class PixelShuffle(_Pixels):
    """Sub-pixel upsampling: [N, C·r², H, W] -> [N, C, H·r, W·r] (r = ``factor``)."""

    name = "pixel_shuffle"

    def infer(self, p, inputs):
        t = inputs[0]
        expect_rank(self.name, t, (4,), "[N, C, H, W]")
        c, r2 = known_dim(self.name, t, 1, "channel count"), p.factor ** 2
        if c % r2:
            raise ShapeError(f"pixel_shuffle by {p.factor} needs C divisible by {r2}, found {c} in {t}", code="E402")
        n, _, h, w = t.shape
        return [t.with_shape((n, c // r2, mul(h, p.factor), mul(w, p.factor)))]

    def emit(self, p, graph, args):
        import torch

        return graph.call_function(torch.pixel_shuffle, (args[0], p.factor))


@register_op
class PixelUnshuffle(_Pixels):
    """The inverse of pixel_shuffle: [N, C, H·r, W·r] -> [N, C·r², H, W]; H and W must be
    multiples of r (symbolic ones are checked when the model is called)."""

    name = "pixel_unshuffle"

    def infer(self, p, inputs):
        t = inputs[0]
        expect_rank(self.name, t, (4,), "[N, C, H, W]")
        n, c, h, w = t.shape
        for axis, size in ((2, h), (3, w)):
            require(size, multiple_of=p.factor, code="E402",
                    message=f"pixel_unshuffle by {p.factor} needs H and W divisible by it: dim {axis} is {size} in {t}")
        return [t.with_shape((n, mul(c, p.factor ** 2), floordiv(h, p.factor), floordiv(w, p.factor)))]

    def emit(self, p, graph, args):
        import torch

        return graph.call_function(torch.pixel_unshuffle, (args[0], p.factor))


__all__ = ["Transpose", "Unflatten", "Slice", "Roll", "ChannelShuffle", "PixelShuffle", "PixelUnshuffle"]
