"""Taking a tensor apart along a dim and stretching it: select (x[:, i]) and expand (broadcast a
size-1 dim to another tensor's size: ViT's class token to the batch)."""

from __future__ import annotations

from ..ir.traits import Trait
from .base import Int, Op, OpParams, ShapeError, input_details, normalize_dim
from .registry import register_op
from .rules import unless_along_batch


@register_op
class Select(Op):
    """One index along ``dim``, the dim removed: [N, T, E] with dim 1, index 0 -> [N, E] (x[:, 0])."""

    name = "select"
    category = "reshape"
    traits = frozenset({Trait.VIEW, Trait.ROW_WISE})

    class Params(OpParams):
        dim: Int
        index: Int

    def node_traits(self, p, inputs):
        return unless_along_batch(self.traits, [p.dim], inputs[0].rank)

    def infer(self, p, inputs):
        t = inputs[0]
        axis = normalize_dim(p.dim, t.rank)
        size = t.shape[axis]
        if isinstance(size, int) and not -size <= p.index < size:
            raise ShapeError(f"select index {p.index} is out of range for dim {p.dim} of size {size} in {t}",
                             code="E405", hint=f"valid indices are {-size}..{size - 1}")
        if not isinstance(size, int) and p.index != 0 and p.index != -1:
            raise ShapeError(f"select index {p.index} on the symbolic dim {size} of {t} may be out of range",
                             code="E406", hint="index 0 (the first) or -1 (the last) exists at any size")
        return [t.with_shape(d for i, d in enumerate(t.shape) if i != axis)]

    def view_strides(self, p, shape, strides, out_shape):
        axis = p.dim % len(shape)
        return tuple(s for i, s in enumerate(strides) if i != axis)

    def emit(self, p, graph, args):
        import torch

        return graph.call_function(torch.select, (args[0], p.dim, p.index))

    def describe(self, p):
        return f"dim {p.dim} [{p.index}]"


@register_op
class ExpandLike(Op):
    """Broadcasts input 0's size-1 ``dims`` to input 1's sizes there (a view, nothing copied):
    class_token [1, 1, E] and x [N, T, E] with dims [0] -> [N, 1, E]."""

    name = "expand_like"
    category = "reshape"
    min_inputs = max_inputs = 2
    traits = frozenset({Trait.VIEW})

    class Params(OpParams):
        dims: list[Int] = [0]

    def infer(self, p, inputs):
        x, like = inputs
        if x.rank != like.rank:
            raise ShapeError(f"expand_like needs inputs of one rank, found {x.rank} and {like.rank}", code="E410",
                             details=input_details(inputs))
        axes = {normalize_dim(d, x.rank) for d in p.dims}
        for axis in sorted(axes):
            if x.shape[axis] != 1:
                raise ShapeError(f"expand_like stretches dims of size 1, but dim {axis} of {x} is {x.shape[axis]}",
                                 code="E402", details=input_details(inputs))
        return [x.with_shape(like.shape[i] if i in axes else d for i, d in enumerate(x.shape))]

    def view_strides(self, p, shape, strides, out_shape):
        return tuple(0 if a != b else s for a, b, s in zip(shape, out_shape, strides))

    def emit(self, p, graph, args):
        sizes = graph.call_function(_expanded_sizes, (args[0], args[1], tuple(p.dims)))
        return graph.call_method("expand", (args[0], sizes))

    def describe(self, p):
        return f"dims {p.dims}"


def _expanded_sizes(x, like, axes):
    """The sizes ``expand`` gets: ``like``'s along ``axes`` (negative ones counted from the end), -1 elsewhere."""
    rank = x.dim()
    chosen = {a % rank for a in axes}
    return [like.shape[i] if i in chosen else -1 for i in range(rank)]


__all__ = ["Select", "ExpandLike"]
