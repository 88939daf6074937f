"""Taking a tensor apart along a dim and stretching it: select (x[:, i]), index_select and gather
(elements picked by an integer index tensor: Swin's relative position bias is its table read at
a fixed index), and expand_like and broadcast_to (size-1 dims stretched to another tensor's size or
to a given shape, as views: ViT's class token to the batch)."""

from __future__ import annotations

from typing import Optional

from pydantic import model_validator

from ..ir.dims import SYMBOL_RE, Dim, is_concrete, symbol
from ..ir.traits import Trait
from .base import Int, Op, OpParams, ShapeError, arg_type, input_details, normalize_dim
from .registry import register_op
from .rules import unless_along_batch
from .runtime_sizes import emit_size, size_program
from .shape import ShapeEntry

# The dtypes torch takes as an index (torch.index_select and torch.gather accept both).
INDEX_DTYPES = ("int64", "int32")


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
    size_only_inputs = frozenset({1})

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


@register_op
class BroadcastTo(Op):
    """Broadcasts input 0 to ``shape`` as torch.broadcast_to (a view, nothing copied): dims of
    size 1 stretch, new leading dims are added, the others keep their size. Each entry is a
    positive int, -1 (keep that dim), a symbol name such as "N", or an expression over the
    input's dims ("${x.shape[0]}"): [N, 1, 8] with shape [2, N, 5, -1] -> [2, N, 5, 8]. Without
    ``shape``, a second input gives the target, its own shape: [1, 1, E] and [N, T, E] -> [N, T, E].

    A symbolic size is known at run time only from the input's dims (or the second input), so
    an entry the input's dims cannot compute is refused (E406).
    """

    name = "broadcast_to"
    aliases = ('expand', 'broadcast', 'expand_as')
    category = "reshape"
    min_inputs = 1
    max_inputs = 2  # x, or x and the tensor whose shape it takes
    traits = frozenset({Trait.VIEW})
    size_only_inputs = frozenset({1})

    class Params(OpParams):
        shape: Optional[list[ShapeEntry]] = None

        @model_validator(mode="after")
        def _entries(self):
            for e in self.shape or ():
                if isinstance(e, str) and not SYMBOL_RE.match(e):
                    raise ValueError(f"broadcast_to entry {e!r} is not a symbol name")
                if isinstance(e, int) and e != -1 and e <= 0:
                    raise ValueError(f"broadcast_to entries are positive ints, -1 (keep the dim) or symbols, "
                                     f"not {e}")
            return self

    def _target(self, p, inputs) -> list[Dim | None]:
        """The sizes asked for, None where -1 keeps the input's."""
        if p.shape is None:
            return list(inputs[1].shape)
        return [None if isinstance(e, int) and e == -1 else symbol(e) if isinstance(e, str) else e for e in p.shape]

    def _shown(self, p) -> str:
        return "like input 1" if p.shape is None else "[" + ", ".join(map(str, p.shape)) + "]"

    def infer(self, p, inputs):
        if p.shape is None and len(inputs) == 1:
            raise ShapeError("broadcast_to needs a target: `shape: [...]`, or a second input whose shape it takes",
                             code="E408", hint="e.g. {op: broadcast_to, shape: [N, 3, 224, 224]}")
        if p.shape is not None and len(inputs) == 2:
            raise ShapeError("broadcast_to takes `shape:` or a second input whose shape it takes, not both",
                             code="E408", details=input_details(inputs))
        x, target = inputs[0], self._target(p, inputs)
        lead = len(target) - x.rank
        if lead < 0:
            raise ShapeError(f"broadcast_to cannot take the rank-{x.rank} {x} to the {len(target)} dims "
                             f"{self._shown(p)}: broadcasting adds dims in front, never removes one", code="E410",
                             details=input_details(inputs))
        out: list[Dim] = []
        for i, want in enumerate(target):
            have = x.shape[i - lead] if i >= lead else None
            if want is None and have is None:
                raise ShapeError(f"broadcast_to {self._shown(p)}: entry {i} is -1, but it is a new leading dim of "
                                 f"{x}, with no size to keep", code="E402", hint="give the new dim its size")
            if want is None or want == have:
                out.append(have)
            elif have is None or have == 1:
                out.append(want)
            elif is_concrete(want) and is_concrete(have):
                raise ShapeError(f"broadcast_to cannot stretch dim {i - lead} of {x} ({have}) to {want}: only a "
                                 f"dim of size 1 stretches", code="E402", details=input_details(inputs),
                                 hint=f"entry {i} of {self._shown(p)} should be {have} or -1")
            else:
                raise ShapeError(f"broadcast_to cannot prove dim {i - lead} of {x} ({have}) is {want} or 1",
                                 code="E406", details=input_details(inputs),
                                 hint="give those dims numbers, or the same symbol")
        if p.shape is not None:
            for d in out:
                if size_program(d, x.shape) is None:
                    raise ShapeError(f"broadcast_to {self._shown(p)} cannot compute {d} from the input {x} at run time",
                                     code="E406", hint="give the tensor whose shape to take as a second input "
                                                       "(`from: [x, like]`), or write the size from x's dims")
        return [x.with_shape(out)]

    def view_strides(self, p, shape, strides, out_shape):
        lead = len(out_shape) - len(shape)
        return (0,) * lead + tuple(0 if a != b else s for a, b, s in zip(shape, out_shape[lead:], strides))

    def emit(self, p, graph, args):
        import torch

        if p.shape is None:
            return graph.call_method("expand_as", (args[0], args[1]))
        x = arg_type(args[0])
        out = self.infer(p, [x])[0].shape
        lead = len(out) - x.rank
        # -1 wherever the input's dim is kept, so that a symbolic one stays dynamic in exports
        sizes = [-1 if i >= lead and d == x.shape[i - lead] else emit_size(graph, args[0], size_program(d, x.shape))
                 for i, d in enumerate(out)]
        return graph.call_function(torch.broadcast_to, (args[0], sizes))

    def describe(self, p):
        return self._shown(p)


def _check_index(op: str, inputs) -> None:
    """E409 unless the index (input 1) is an integer tensor; the values (input 0) may have any dtype."""
    index = inputs[1]
    if index.dtype not in INDEX_DTYPES:
        raise ShapeError(f"{op} takes an integer index (int64 or int32), found {index.dtype} {index}", code="E409",
                         details=input_details(inputs),
                         hint="the index is input 1: `from: [values, index]`; a float index has no exact element")


@register_op
class IndexSelect(Op):
    """The slices of ``x`` at the positions an integer index vector lists, along ``dim``
    (torch.index_select): x [.., D, ..] and index [K] (int64 or int32) -> [.., K, ..]; a 0-d index
    keeps the dim, of size 1. Swin's relative position bias is table [(2w-1)², heads] at index
    [w⁴] on dim 0 -> [w⁴, heads].

    Each index must lie in 0..D-1; its values are known only at run time, where torch checks them.
    """

    name = "index_select"
    aliases = ('take',)
    category = "reshape"
    min_inputs = max_inputs = 2
    traits = frozenset({Trait.ROW_WISE})

    class Params(OpParams):
        dim: Int

    def node_traits(self, p, inputs):
        return unless_along_batch(self.traits, [p.dim], inputs[0].rank)

    def infer(self, p, inputs):
        x, index = inputs
        _check_index(self.name, inputs)
        if index.rank > 1:
            raise ShapeError(f"index_select takes an index vector [K], found the rank-{index.rank} index {index}",
                             code="E410", details=input_details(inputs),
                             hint="flatten the index first ({op: flatten, start_dim: 0}), then reshape the result; "
                                  "or use gather for an index of x's rank")
        if x.rank == 0:
            raise ShapeError("index_select picks along a dim, but x is a 0-d tensor", code="E410",
                             details=input_details(inputs))
        axis = normalize_dim(p.dim, x.rank)
        picked = index.shape[0] if index.rank == 1 else 1
        return [x.with_shape((*x.shape[:axis], picked, *x.shape[axis + 1:]))]

    def emit(self, p, graph, args):
        import torch

        return graph.call_function(torch.index_select, (args[0], p.dim, args[1]))

    def describe(self, p):
        return f"dim {p.dim}"


@register_op
class Gather(Op):
    """Elements of ``x`` picked along ``dim`` by an index of x's rank (torch.gather):
    out[i][j][k] = x[index[i][j][k]][j][k] for dim 0. x [d0, .., dn] and index [k0, .., kn]
    (int64 or int32) -> [k0, .., kn], each k_i <= d_i except along ``dim``, where the index may
    be of any length.

    Each index must lie in 0..d_dim-1; its values are known only at run time, where torch checks them.
    """

    name = "gather"
    aliases = ('take_along_axis', 'take_along_dim')
    category = "reshape"
    min_inputs = max_inputs = 2
    traits = frozenset({Trait.ROW_WISE})

    class Params(OpParams):
        dim: Int

    def node_traits(self, p, inputs):
        return unless_along_batch(self.traits, [p.dim], inputs[0].rank)

    def infer(self, p, inputs):
        x, index = inputs
        _check_index(self.name, inputs)
        if index.rank != x.rank:
            raise ShapeError(f"gather takes an index of x's rank ({x.rank}), found the rank-{index.rank} index "
                             f"{index}", code="E410", details=input_details(inputs),
                             hint="unsqueeze the index to x's rank; for an index vector along one dim, use index_select")
        axis = normalize_dim(p.dim, x.rank)
        for i, (want, have) in enumerate(zip(index.shape, x.shape)):
            if i == axis or want == have or want == 1:
                continue
            if not (is_concrete(want) and is_concrete(have)):
                raise ShapeError(f"gather cannot prove dim {i} of the index ({want}) at most x's ({have})",
                                 code="E406", details=input_details(inputs),
                                 hint="give those dims numbers, or the same symbol")
            if want > have:
                raise ShapeError(f"gather: dim {i} of the index ({want}) is larger than x's ({have}); only "
                                 f"dim {axis} (the one gathered along) may be", code="E402",
                                 details=input_details(inputs))
        return [x.with_shape(index.shape)]

    def emit(self, p, graph, args):
        import torch

        return graph.call_function(torch.gather, (args[0], p.dim, args[1]))

    def describe(self, p):
        return f"dim {p.dim}"


__all__ = ["Select", "ExpandLike", "BroadcastTo", "IndexSelect", "Gather", "INDEX_DTYPES"]
