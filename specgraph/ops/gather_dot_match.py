"""Recognising a gather-dot: dot products of one embedding's vectors with another's, written as
embedding -> unsqueeze, embedding -> mul -> sum over the vectors' dim (word2vec's skip-gram with
negative sampling, specs/skipgram_ns.yaml: a centre word's input vector against its context
word's and negatives' output vectors)::

    query  = unsqueeze(A[a], -2)         # [*S, 1, dim]
    keys   = B[b]                        # [*S, K, dim]
    scores = sum(query * keys, dim=-1)   # [*S, K]

The build runs the five nodes as one call, ``gather_dot(a, b, A.weight, B.weight)``
(ops/gather_dot_function.py): a C kernel that never materialises the [*S, K, dim] gathers and
product, forward or backward (ops/gather_dot_kernel.py).  The tables stay the embeddings' own
parameters at their own paths, so the state_dict is the spec's.

Recognition is structural, never by a name: op classes, their params and the wiring (``mul`` in
either operand order).  Every intermediate value must be read by the next node alone (one that is
also read elsewhere, or is an output, has to exist anyway).  A ``mul`` of two embeddings' vectors
(directly or through an ``unsqueeze``) that is not exactly this is reported as not fused, with the
reason, as ``specgraph summary`` shows it; so is a fusion the machine cannot run (no C compiler).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ..ir.graph import Graph, Node, OutputInfo
from .merge import Mul
from .recurrent import Embedding
from .reduce import Sum, Unsqueeze
from .rules import normalize_dim


@dataclass(frozen=True)
class GatherDotFusion:
    """Nodes ``query_table`` (indices [*S]), ``query`` (its unsqueeze), ``key_table`` (indices
    [*S, K]), ``product`` and ``scores`` (the sum) run as one gather-dot call at ``scores``."""

    query_table: Node
    query: Node
    key_table: Node
    product: Node
    scores: Node

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(n.path for n in (self.query_table, self.query, self.key_table, self.product, self.scores))

    def describe(self) -> str:
        return (f"fused: {', '.join(self.paths)} run as one gather-dot kernel "
                f"({self.query_table.path} · {self.key_table.path}, no [.., K, dim] product)")


@dataclass(frozen=True)
class NotFused:
    """A ``mul`` of two embeddings' vectors left as the plain ops, and why (a phrase)."""

    node: Node
    reason: str

    def describe(self) -> str:
        return f"not fused as a gather-dot: {self.reason}"


def gather_dots(graph: Graph, outputs: Iterable[OutputInfo] | None = None,
                kernel_missing: Callable[[], str | None] | None = None) -> tuple[list[GatherDotFusion], list[NotFused]]:
    """The gather-dots among the nodes ``outputs`` (default: all) need, and the near misses.
    ``kernel_missing``: asked once there is a match, why the kernel cannot run here (None: it
    can); each match is then reported not fused, with that reason."""
    outputs = tuple(graph.outputs if outputs is None else outputs)
    needed = graph.needed_by(outputs)
    readers: dict[str, list[Node]] = {}
    for node in graph.op_nodes():
        if node.path in needed:
            for v in node.inputs:
                readers.setdefault(v.node, []).append(node)
    returned = {o.value.node for o in outputs}
    fused, missed = [], []
    why_not: list[str | None] = []  # the kernel's answer, asked at the first match only (it may build it)
    for node in graph.op_nodes():
        if node.path not in needed or not isinstance(node.op, Mul):
            continue
        found = _match(graph, node, readers, returned)
        if found is None:
            continue
        if isinstance(found, str):
            missed.append(NotFused(node, found))
            continue
        if kernel_missing is not None and not why_not:
            why_not.append(kernel_missing())
        if why_not and why_not[0]:
            missed.append(NotFused(found.scores, f"the kernel cannot run here: {why_not[0]}"))
        else:
            fused.append(found)
    return fused, missed


def _table(graph: Graph, value_node: str) -> tuple[Node | None, Node | None]:
    """(the embedding whose vectors ``value_node`` is, the unsqueeze between them or None)."""
    node = graph.node(value_node)
    if isinstance(node.op, Embedding):
        return node, None
    if isinstance(node.op, Unsqueeze) and isinstance(graph.node(node.inputs[0].node).op, Embedding):
        return graph.node(node.inputs[0].node), node
    return None, None


def _match(graph: Graph, mul: Node, readers: dict[str, list[Node]], returned: set[str]) -> "GatherDotFusion | str | None":
    """The fusion rooted at ``mul``; a reason (str) for a mul of two tables' vectors that is not
    one; None for any other mul."""
    if mul.params.by is not None or len(mul.inputs) != 2:
        return None
    sides = [_table(graph, v.node) for v in mul.inputs]
    if any(table is None for table, _ in sides):
        return None  # not a product of two embeddings' vectors
    unsqueezed = [i for i, (_, unsq) in enumerate(sides) if unsq is not None]
    if len(unsqueezed) != 1:
        return "one operand must be an embedding's vectors unsqueezed at dim -2, the other an embedding's"
    (query_table, query), (key_table, _) = sides[unsqueezed[0]], sides[1 - unsqueezed[0]]
    a_index, b_index = query_table.inputs[0].type, key_table.inputs[0].type
    if normalize_dim(query.params.dim, a_index.rank + 2) != a_index.rank:
        return f"{query.path} unsqueezes dim {query.params.dim}, not the one before the vectors (-2)"
    if b_index.rank != a_index.rank + 1 or tuple(b_index.shape[:-1]) != tuple(a_index.shape):
        return (f"the indices of {key_table.path} ({b_index}) are not those of {query_table.path} "
                f"({a_index}) with one more dim")
    for table in (query_table, key_table):
        p = table.params
        if p.sparse or p.max_norm is not None or p.padding_idx is not None:
            what = "sparse: true" if p.sparse else "max_norm" if p.max_norm is not None else "padding_idx"
            return f"{table.path} has {what} (the kernel's backward is the plain dense one)"
    after = readers.get(mul.path, [])
    scores = after[0] if len(after) == 1 else None
    if scores is None or not isinstance(scores.op, Sum):
        return f"{mul.path}'s product is not read by one sum alone"
    dims = scores.params.dim if isinstance(scores.params.dim, list) else [scores.params.dim]
    rank = len(mul.out.shape)
    if len(dims) != 1 or normalize_dim(dims[0], rank) != rank - 1 or scores.params.keepdim:
        return f"{scores.path} sums over dim {scores.params.dim}{' keeping it' if scores.params.keepdim else ''}, " \
               f"not the vectors' (-1)"
    chain = ((query_table, query), (query, mul), (key_table, mul), (mul, scores))
    for node, reader in chain:
        if node.path in returned or [r.path for r in readers.get(node.path, [])] != [reader.path]:
            return f"{node.path}'s value is also read elsewhere (it must exist anyway)"
    return GatherDotFusion(query_table, query, key_table, mul, scores)


__all__ = ["gather_dots", "GatherDotFusion", "NotFused"]
