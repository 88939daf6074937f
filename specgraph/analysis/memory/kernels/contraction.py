"""Contractions: torch.matmul's batch folding and torch.einsum's pairwise steps."""

from __future__ import annotations

import importlib.util
import math

from ....ir.strides import contiguous_strides, reshape_strides
from ....ops import contraction
from ....ops.contraction import labels_of, output_labels
from ....ops.einsum_equation import parse_equation
from ..scratch import Allocations, register_scratch

@register_scratch(contraction.Matmul)
def batched_matmul(op, p, inputs, outputs, ctx) -> int:
    """torch.matmul folds its operands into one bmm (or mm): each is expanded to the broadcast
    batch and reshaped to [batch, rows, cols]; where that reshape is no view (a batch broadcast
    against a real one), it is a copy of the expanded size. A matrix on the right is never copied:
    torch folds the left operand into one mm where that is a view, and runs bmm otherwise."""
    a, b = inputs
    if len(b.shape) <= 2:  # [..., k] @ [k, m]: folded into mm where that is a view, else bmm over b broadcast
        return 0
    batch = _broadcast([t.shape[:-2] for t in inputs if len(t.shape) > 2])
    copied = 0
    for t in inputs:
        if len(t.shape) < 2:
            continue
        own = t.shape[:-2]
        lead = len(batch) - len(own)
        strides = [0] * lead + [0 if s == 1 and n != 1 else st for s, n, st in zip(own, batch[lead:], t.strides[:-2])]
        shape = (*batch, *t.shape[-2:])
        if reshape_strides(shape, (*strides, *t.strides[-2:]), (math.prod(batch), *t.shape[-2:])) is None:
            copied += math.prod(shape) * t.itemsize
    return copied


def _broadcast(shapes) -> tuple[int, ...]:
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    return tuple(max(dims) for dims in zip(*padded))




# ---- einsum: ATen's einsum (aten/src/ATen/native/Linear.cpp) replayed on shapes and strides ------

class _View:
    """A tensor in the replay: its shape and strides, and the bytes of the storage it owns (0: a
    view of an input or of another tensor)."""

    def __init__(self, shape, strides, owned: int = 0):
        self.shape, self.strides, self.owned = tuple(shape), tuple(strides), owned

    def permute(self, order) -> "_View":
        return _View([self.shape[i] for i in order], [self.strides[i] for i in order])

    def reduced(self, dims, a: Allocations, item: int) -> "_View":
        """``sum(dims, keepdim=True)``: a new tensor."""
        shape = [1 if i in dims else d for i, d in enumerate(self.shape)]
        return _View(shape, contiguous_strides(shape), a.alloc(math.prod(shape) * item))


def _operands(eq, inputs, out_labels):
    """Each input as ATen lines it up: a diagonal per repeated subscript, a size-1 dim per missing
    one, permuted to the order [output subscripts, summed subscripts] (torch's order: A-Z, a-z)."""
    labels = [labels_of(eq, k, len(t.shape)) for k, t in enumerate(inputs)]
    batch = sorted({s for term in labels for s in term if isinstance(s, int)})
    order = list(out_labels) + [s for s in batch if s not in out_labels]
    order += sorted({s for term in labels for s in term if isinstance(s, str)} - set(order))
    views = []
    for t, term in zip(inputs, labels):
        size, stride = {}, {}
        for s, d, st in zip(term, t.shape, t.strides):
            if s in size:
                stride[s] += st  # the diagonal
            else:
                size[s], stride[s] = d, st
        views.append(_View([size.get(s, 1) for s in order], [stride.get(s, 0) for s in order]))
    return views, len(out_labels), len(order)


def _sumproduct_pair(left: _View, right: _View, summed: list[int], a: Allocations, item: int) -> _View:
    """(left * right).sum(summed, keepdim) by one bmm: its operands permuted to [both, one side,
    summed] and reshaped (a copy where that is no view)."""
    if not summed:
        shape = [max(x, y) for x, y in zip(left.shape, right.shape)]
        return _View(shape, contiguous_strides(shape), a.alloc(math.prod(shape) * item))
    temporaries = []
    lro, lo, ro = [], [], []
    sum_size = 1
    for i, (x, y) in enumerate(zip(left.shape, right.shape)):
        if i in summed:
            if x != 1 and y != 1:
                sum_size *= x
            elif x != 1:
                left = left.reduced({i}, a, item)
                temporaries.append(left.owned)
            elif y != 1:
                right = right.reduced({i}, a, item)
                temporaries.append(right.owned)
        elif x != 1 and y != 1:
            lro.append(i)
        elif x != 1:
            lo.append(i)
        else:
            ro.append(i)
    if lo and ro and ro[-1] < lo[0]:  # swapped so that bmm writes the natural order
        left, right, lo, ro = right, left, ro, lo
    size = lambda v, dims: math.prod(v.shape[d] for d in dims)  # noqa: E731
    sides = []
    for view, order, shape in ((left, lro + lo + summed + ro, (size(left, lro), size(left, lo), sum_size)),
                               (right, lro + summed + ro + lo, (size(left, lro), sum_size, size(right, ro)))):
        moved = view.permute(order)
        if reshape_strides(moved.shape, moved.strides, shape) is None:
            temporaries.append(a.alloc(math.prod(shape) * item))
        sides.append(shape)
    result = math.prod((sides[0][0], sides[0][1], sides[1][2])) * item
    shape = [1] * len(left.shape)
    for d in lro + lo:
        shape[d] = left.shape[d]
    for d in ro:
        shape[d] = right.shape[d]
    out = _View(shape, contiguous_strides(shape), a.alloc(result))
    a.free(*temporaries)
    return out


def einsum_contraction_path(eq, inputs) -> list[tuple[int, int]] | None:
    """The pairs torch contracts: left to right, each result put first; None where torch would
    ask opt_einsum for the order (three operands or more, with opt_einsum installed)."""
    if len(inputs) >= 3 and importlib.util.find_spec("opt_einsum") is not None:
        return None
    return [(0, 1)] * (len(inputs) - 1)


@register_scratch(contraction.Einsum)
def einsum(op, p, inputs, outputs, ctx) -> int | None:
    """Replays torch.einsum on the operands' shapes and strides: each operand lined up as a view
    (:func:`_operands`); then pairwise, a subscript that only one side still has and no later
    operand needs is summed out of it first (a new tensor), the pair is multiplied by one bmm
    (``sumproduct_pair``: its operands copied where the permuted reshape is no view; with
    nothing summed, a broadcast product), and the step's operands and temporaries freed.  One
    operand: its summed subscripts reduced.  Not modelled (None) where torch would take
    opt_einsum's order."""
    eq = parse_equation(p.equation)
    path = einsum_contraction_path(eq, inputs)
    if path is None:
        return None
    item = inputs[0].itemsize
    labels = [labels_of(eq, k, len(t.shape)) for k, t in enumerate(inputs)]
    out_labels = output_labels(eq, labels)
    views, out_dims, all_dims = _operands(eq, inputs, out_labels)
    counts = [sum(v.shape[d] != 1 for v in views) for d in range(all_dims)]
    a = Allocations()
    if len(views) == 1:
        summed = [d for d in range(out_dims, all_dims) if views[0].shape[d] != 1]
        if summed:
            views[0].reduced(set(summed), a, item)
        return a.beyond(outputs)
    for _ in path:
        left, right = views.pop(0), views.pop(0)
        summed, mine, theirs = [], set(), set()
        for d in range(out_dims, all_dims):
            sl, sr = left.shape[d] != 1, right.shape[d] != 1
            if sl and sr:
                counts[d] -= 1
                if counts[d] == 1:
                    summed.append(d)
                    counts[d] = 0
            elif counts[d] == 1 and (sl or sr):
                (mine if sl else theirs).add(d)
                counts[d] = 0
        reduced = [v.reduced(dims, a, item) if dims else v for v, dims in ((left, mine), (right, theirs))]
        result = _sumproduct_pair(reduced[0], reduced[1], summed, a, item)
        a.free(left.owned, right.owned, *(v.owned for v, dims in zip(reduced, (mine, theirs)) if dims))
        views.insert(0, result)
    return a.beyond(outputs)
