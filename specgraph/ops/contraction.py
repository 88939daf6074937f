"""Contractions: sums of products over shared dims.  matmul ([.., n, k] @ [.., k, m]) and einsum
(any contraction an equation names: ``bhqd,bhkd->bhqk``), both with torch's broadcasting.

Sizes are compared symbolically: equal symbols agree, a 1 broadcasts, and a symbol against any
other size is refused (E406) rather than left to fail at run time.
"""

from __future__ import annotations

import math

from pydantic import model_validator

from ..ir.dims import Dim, is_concrete
from ..ir.traits import Trait
from .base import FLOAT_DTYPES, Op, OpParams, ShapeError, Str, TensorType, input_details
from .einsum_equation import ELLIPSIS, Equation, parse_equation
from .registry import register_op


@register_op
class Matmul(Op):
    """Matrix product with torch.matmul's rules: [.., n, k] @ [.., k, m] -> [.., n, m], batch dims
    broadcast; a rank-1 operand is a vector (its dim dropped from the result)."""

    name = "matmul"
    aliases = ('bmm', 'mm', 'dot', 'batch_matmul')
    category = "attention"
    min_inputs = max_inputs = 2
    input_dtypes = FLOAT_DTYPES

    def infer(self, p, inputs):
        from .merge import broadcast_shape

        a, b = inputs
        if a.dtype != b.dtype:
            raise ShapeError(f"matmul needs one dtype, found {a.dtype} and {b.dtype}", code="E409",
                             details=input_details(inputs))
        if a.rank == 0 or b.rank == 0:
            raise ShapeError("matmul needs tensors of rank 1 or more", code="E410", details=input_details(inputs))
        ka = a.shape[-1]
        kb = b.shape[0] if b.rank == 1 else b.shape[-2]
        if ka != kb and not (isinstance(ka, int) and isinstance(kb, int)):
            raise ShapeError(f"matmul cannot prove the inner dims {ka} and {kb} equal", code="E406",
                             details=input_details(inputs), hint="give those dims numbers, or the same symbol")
        if ka != kb:
            raise ShapeError(f"matmul: the inner dims differ ({ka} and {kb})", code="E402", details=input_details(inputs),
                             hint="a [.., n, k] @ [.., k, m]; a transpose of one operand may be missing")
        batch_a = a.shape[:-2] if a.rank > 1 else ()
        batch_b = b.shape[:-2] if b.rank > 1 else ()
        batch = broadcast_shape(self.name, [a.with_shape(batch_a), b.with_shape(batch_b)]) if batch_a or batch_b else ()
        rows = (a.shape[-2],) if a.rank > 1 else ()
        cols = (b.shape[-1],) if b.rank > 1 else ()
        return [a.with_shape((*batch, *rows, *cols))]

    def emit(self, p, graph, args):
        import torch

        return graph.call_function(torch.matmul, tuple(args))

    def macs(self, p, inputs, outputs):
        from .rules import batch1

        out = batch1(outputs[0]) if outputs[0].rank > 1 else (1,)
        k = inputs[0].shape[-1]
        if out is None or not isinstance(k, int):
            return None
        return math.prod(out) * k


# A dim's subscript: its letter, or, for a dim under '...', its place in the broadcast batch
# dims counted from the right (-1 the last), so that the batch dims of all inputs line up as
# numpy aligns them.
Label = str | int


def labels_of(eq: Equation, k: int, rank: int) -> list[Label]:
    """The subscript of each dim of input ``k`` (of rank ``rank``, already checked to fit)."""
    term = eq.inputs[k]
    if ELLIPSIS not in term:
        return list(term)
    at = term.index(ELLIPSIS)
    covered = rank - (len(term) - 1)
    return [*term[:at], *range(-covered, 0), *term[at + 1:]]


def _what(label: Label) -> str:
    return f"subscript '{label}'" if isinstance(label, str) else "a dim under '...'"


def _disagree(p, inputs, label: Label, first: tuple[Dim, int, int], then: tuple[Dim, int, int],
              diagonal: bool = False) -> ShapeError:
    """E402 (two numbers that differ) or E406 (a symbol that nothing proves equal to the other size)."""
    (a, ka, axa), (b, kb, axb) = first, then
    where = f"{a} in input {ka} (dim {axa}) and {b} in input {kb} (dim {axb})"
    if not (is_concrete(a) and is_concrete(b)):
        return ShapeError(f"einsum '{p.equation}' cannot prove {_what(label)} the same size: {where}", code="E406",
                          details=input_details(inputs),
                          hint="give those dims numbers, or the same symbol (a size 1 broadcasts)")
    if diagonal:
        return ShapeError(f"einsum '{p.equation}': subscript '{label}' repeats in input {ka} (its diagonal), "
                          f"so its dims {axa} and {axb} must be equal, found {a} and {b}", code="E402",
                          details=input_details(inputs))
    return ShapeError(f"einsum '{p.equation}': {_what(label)} is {where}; its sizes must be equal or 1",
                      code="E402", details=input_details(inputs),
                      hint="each letter names one size across the inputs: check which dims the equation pairs")


def label_sizes(p, inputs: list[TensorType], labels: list[list[Label]]) -> dict[Label, Dim]:
    """Each subscript's size, as torch's einsum decides it: across inputs a size 1 broadcasts
    and other sizes must be equal; a letter repeated within one input (a diagonal) must have
    equal sizes there, without broadcasting."""
    sizes: dict[Label, Dim] = {}
    stretched: dict[Label, tuple[Dim, int, int]] = {}  # the first size other than 1, and where
    for k, (t, dims) in enumerate(zip(inputs, labels)):
        for axis, (label, d) in enumerate(zip(dims, t.shape)):
            first = dims.index(label)
            if first != axis:
                if d != t.shape[first]:
                    raise _disagree(p, inputs, label, (t.shape[first], k, first), (d, k, axis), diagonal=True)
                continue
            sizes.setdefault(label, 1)
            if d == 1:
                continue
            if label in stretched and stretched[label][0] != d:
                raise _disagree(p, inputs, label, stretched[label], (d, k, axis))
            stretched.setdefault(label, (d, k, axis))
            sizes[label] = d
    return sizes


def output_labels(eq: Equation, labels: list[list[Label]]) -> list[Label]:
    """The output's subscripts, '...' spelt out as the broadcast batch dims."""
    batch = max((-min((x for x in dims if isinstance(x, int)), default=0) for dims in labels), default=0)
    out: list[Label] = []
    for s in eq.output:
        out.extend(range(-batch, 0)) if s == ELLIPSIS else out.append(s)
    return out


@register_op
class Einsum(Op):
    """Sums of products named by an ``equation``, as torch.einsum: "bhqd,bhkd->bhqk" takes q [b, h, q, d]
    and k [b, h, k, d] to [b, h, q, k]. One subscript letter per dim; a letter's sizes agree across
    the inputs (a 1 broadcasts); letters missing from the output are summed; "..." stands for
    batch dims, broadcast aligned on the right. Without "->" the output is "..." then the letters
    used once, in ASCII order (torch's implicit form: "ij,jk" is "ij,jk->ik").

    MACs at batch 1 (the subscript of input 0's dim 0 taken as 1): for two inputs the product
    of every subscript's size (less those only one input has and the output drops: summed
    first); for more, the sum of those of each pairwise step, left to right as torch does.
    """

    name = "einsum"
    aliases = ('tensordot', 'contract')
    category = "attention"
    min_inputs = 1
    max_inputs = None  # as many as the equation has terms (checked by infer, naming the equation)
    input_dtypes = FLOAT_DTYPES
    traits = frozenset({Trait.ROW_WISE})

    class Params(OpParams):
        equation: Str

        @model_validator(mode="after")
        def _readable(self):
            parse_equation(self.equation)  # an EquationError is a ValueError: E204, at the node
            return self

    def node_traits(self, p, inputs):
        # Row-wise only when every input and the output lead with one batch letter that
        # appears nowhere else: then output row i is made of the inputs' rows i alone.
        eq = parse_equation(p.equation)
        leads = {term[0] if term else None for term in eq.inputs}
        batch = next(iter(leads))
        row_wise = (len(leads) == 1 and batch not in (None, ELLIPSIS) and eq.output[:1] == (batch,)
                    and all(term.count(batch) == 1 for term in eq.inputs))
        return self.traits if row_wise else frozenset()

    def _labels(self, p, eq: Equation, inputs: list[TensorType]) -> list[list[Label]]:
        if len(inputs) != len(eq.inputs):
            raise ShapeError(f"einsum '{p.equation}' has {len(eq.inputs)} input term(s), found {len(inputs)} "
                             f"input(s)", code="E408", details=input_details(inputs),
                             hint="one input per comma-separated term, in order: `from: [a, b]`")
        out = []
        for k, t in enumerate(inputs):
            term, letters = "".join(eq.inputs[k]), len(eq.letters(k))
            if eq.has_ellipsis(k) and t.rank < letters:
                raise ShapeError(f"einsum '{p.equation}': input {k} has {letters} subscripts besides '...' ('{term}') "
                                 f"but rank {t.rank}: {t}", code="E410", details=input_details(inputs))
            if not eq.has_ellipsis(k) and t.rank != letters:
                raise ShapeError(f"einsum '{p.equation}': input {k} has {letters} subscript(s) ('{term}') but "
                                 f"rank {t.rank}: {t}", code="E410", details=input_details(inputs),
                                 hint="one subscript per dim; '...' stands for any number of leading dims")
            out.append(labels_of(eq, k, t.rank))
        return out

    def infer(self, p, inputs):
        eq = parse_equation(p.equation)
        labels = self._labels(p, eq, inputs)
        dtypes = list(dict.fromkeys(t.dtype for t in inputs))
        if len(dtypes) > 1:
            raise ShapeError(f"einsum needs one dtype, found {' and '.join(dtypes)}", code="E409",
                             details=input_details(inputs))
        sizes = label_sizes(p, inputs, labels)
        return [inputs[0].with_shape(sizes[s] for s in output_labels(eq, labels))]

    def emit(self, p, graph, args):
        import torch

        # the explicit form: the printed code says which output the shape rule inferred
        return graph.call_function(torch.einsum, (parse_equation(p.equation).text, *args))

    def num_params(self, p, inputs):
        return 0

    def macs(self, p, inputs, outputs):
        if len(inputs) < 2:
            return 0  # a transpose, a diagonal or a sum: no products
        eq = parse_equation(p.equation)
        labels = [labels_of(eq, k, t.rank) for k, t in enumerate(inputs)]
        sizes = label_sizes(p, inputs, labels)
        if labels[0]:
            sizes[labels[0][0]] = 1  # at batch 1
        if not all(is_concrete(d) for d in sizes.values()):
            return None
        wanted = set(output_labels(eq, labels))
        later = [wanted.union(*labels[k + 1:]) for k in range(len(labels))]  # needed after input k
        # As torch contracts (left to right, without opt_einsum): a subscript that only one
        # side of a step has and nothing later needs is summed out first, at no product.
        held, total = set(labels[0]) & later[0], 0
        for k in range(1, len(labels)):
            step = held | (set(labels[k]) & (later[k] | held))
            total += math.prod(sizes[s] for s in step)
            held = step & later[k]
        return total

    def describe(self, p):
        return " ".join(p.equation.split())


__all__ = ["Matmul", "Einsum", "labels_of", "label_sizes", "output_labels"]
