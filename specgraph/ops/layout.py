"""Rearranging a tensor's dims: transpose, unflatten, slice, roll, channel_shuffle,
pixel_shuffle, pixel_unshuffle.  Shapes are exact over symbolic dims where torch's rule allows;
where a size must divide or fit, a symbolic one is refused (E406) rather than left to fail at
run time."""

from __future__ import annotations

import math
import operator
from typing import Optional, Union

from pydantic import Field

from ..ir.dims import Dim, add, floordiv, is_concrete, known_nonnegative, mul, sub
from ..ir.traits import Trait
from .base import Int, Op, OpParams, PositiveInt, ShapeError, arg_type, normalize_dim
from .registry import register_op
from .rules import expect_rank, known_dim, require, unless_along_batch
from .runtime_sizes import emit_size, size_program
from .shape import SymbolicEntry


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
    """x[start:stop:step] along ``dim`` (Python's rule; a negative number counts from the end).
    start and stop may be expressions over the dims of any tensor in sight: ``stop:
    "${tokens.shape[1]}"`` keeps the first T rows of a [1, max_len, E] position table. Shape:
    [.., D, ..] -> [.., ⌈(stop - start)/step⌉, ..].

    The slice must lie inside the dim, 0 <= start < stop <= D (torch would clip a bound past
    either end silently): what the shapes prove holds is taken, what they refute is an error, and
    where a bound or the dim is symbolic the rest is checked on every call, the message naming
    the bounds.
    """

    name = "slice"
    category = "reshape"
    traits = frozenset({Trait.VIEW, Trait.ROW_WISE})

    class Params(OpParams):
        dim: Int
        start: Union[Int, SymbolicEntry] = 0
        stop: Optional[Union[Int, SymbolicEntry]] = None
        step: PositiveInt = 1

    def node_traits(self, p, inputs):
        return unless_along_batch(self.traits, [p.dim], inputs[0].rank)

    def _shown(self, p) -> str:
        stop = "" if p.stop is None else p.stop
        return f"slice [{p.start}:{stop}" + (f":{p.step}]" if p.step != 1 else "]")

    def _bounds(self, p, t) -> tuple[Dim, Dim, bool]:
        """(start, stop) as positions from the dim's start, and whether the run must check them."""
        size = t.shape[normalize_dim(p.dim, t.rank)]
        start = add(size, p.start) if isinstance(p.start, int) and p.start < 0 else p.start
        stop = size if p.stop is None else add(size, p.stop) if isinstance(p.stop, int) and p.stop < 0 else p.stop
        unproven = False
        for gap, fault, code in ((start, "starts before the dim", "E405"), (sub(sub(stop, start), 1), "is empty", "E404"),
                                 (sub(size, stop), "stops past the end of the dim", "E405")):
            hint = "keep the bounds inside the dim (torch would clip them silently)"
            if is_concrete(gap) and gap < 0:
                raise ShapeError(f"{self._shown(p)} of dim {p.dim} ({size}) of {t} {fault}", code=code, hint=hint)
            # the input check tells it first, at the node's line (also computed on each call)
            require(gap, at_least=0, code=code, hint=hint, message=f"{self._shown(p)} of dim {p.dim} of {t} {fault}: "
                                                                   f"it needs 0 <= {start} < {stop} <= {size}")
            unproven = unproven or not known_nonnegative(gap)
        return start, stop, unproven

    def _programs(self, p, t, start, stop) -> list:
        programs = [size_program(d, t.shape) for d in (start, stop)]
        for d, program in zip((start, stop), programs):
            if program is None:
                raise ShapeError(f"{self._shown(p)}: the bound {d} cannot be computed at run time from the input {t} "
                                 f"or the spec's inputs", code="E406",
                                 hint="write the bound from the dims of a tensor in sight (${x.shape[1]})")
        return programs

    def infer(self, p, inputs):
        t = inputs[0]
        axis = normalize_dim(p.dim, t.rank)
        size = t.shape[axis]
        # one rule at every size, concrete or not (what checks at a size runs there): the bounds
        # lie inside the dim, where Python would clip them silently
        start, stop, _ = self._bounds(p, t)
        if not all(isinstance(v, int) for v in (size, p.start, 0 if p.stop is None else p.stop)):
            self._programs(p, t, start, stop)
        n = floordiv(add(sub(stop, start), p.step - 1), p.step)
        return [t.with_shape((*t.shape[:axis], n, *t.shape[axis + 1:]))]

    def view_strides(self, p, shape, strides, out_shape):
        axis = p.dim % len(shape)
        return tuple(s * p.step if i == axis else s for i, s in enumerate(strides))

    def emit(self, p, graph, args):
        t = arg_type(args[0])
        start_v, stop_v = p.start, p.stop
        if not all(isinstance(v, int) for v in (t.shape[normalize_dim(p.dim, t.rank)], p.start, p.stop or 0)):
            start, stop, unproven = self._bounds(p, t)
            positions = [emit_size(graph, args[0], prog) for prog in self._programs(p, t, start, stop)]
            start_v = start_v if isinstance(start_v, int) else positions[0]
            stop_v = stop_v if stop_v is None or isinstance(stop_v, int) else positions[1]
            if unproven:  # what the shapes could not prove, checked on every call
                size = graph.call_method("size", (args[0], p.dim))
                texts = (str(start), str(stop), str(t.shape[normalize_dim(p.dim, t.rank)]))
                stop_v = graph.call_function(slice_stop, (*positions, size, f"{self._shown(p)} of dim {p.dim}", texts))
        cut = slice(start_v, stop_v, p.step)
        if p.dim >= 0:
            index = (slice(None),) * p.dim + (cut,)
        else:  # counted from the end: an Ellipsis, then the dims after it
            index = (Ellipsis, cut) + (slice(None),) * (-p.dim - 1)
        return graph.call_function(operator.getitem, (args[0], index))

    def describe(self, p):
        return f"dim {p.dim} " + self._shown(p).removeprefix("slice ")


def slice_stop(start: int, stop: int, size: int, shown: str, texts: tuple[str, str, str]) -> int:
    """``stop``, refusing bounds outside 0 <= start < stop <= size: the spec's ``shown`` slice was
    stated for such sizes only (torch would clip the stop, or give an empty tensor).  ``texts``
    are the three as the spec's shapes write them."""
    if not 0 <= start < stop <= size:
        values = ""  # the symbolic ones, with what they are on this call (plain strings: TorchScript takes them)
        for text, value in ((texts[0], start), (texts[1], stop), (texts[2], size)):
            if text != str(value) and (text + " = ") not in values:  # each symbolic one once ([1:T] of T)
                values += (", " if values else "") + text + " = " + str(value)
        raise ValueError(f"{shown} needs 0 <= {texts[0]} < {texts[1]} <= {texts[2]}, but this input has " + values)
    return stop


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


__all__ = ["Transpose", "Unflatten", "Slice", "slice_stop", "Roll", "ChannelShuffle", "PixelShuffle", "PixelUnshuffle"]
