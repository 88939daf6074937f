"""Hints for the classic shape mistakes, found by looking upstream of a failing merge.

An op's shape rule sees only its own inputs; the cause of a mismatch at a concat or add
usually lies further up (a pooling with the wrong ``ceil_mode``, a conv without padding).
These functions read the graph built so far to name that cause: merges say so with
``Trait.MERGE``, and an op that changes the spatial size says which of its params do it
(``Op.resize_reason``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..ir.graph import GraphBuilder, Value
from ..ir.traits import Trait


def shape_error_hint(g: GraphBuilder, op: Any, inputs: list[Value], error: Exception) -> str | None:
    """A hint for a merge whose inputs disagree on a spatial dim, else None."""
    if Trait.MERGE not in op.traits or getattr(error, "code", None) != "E402" or len(inputs) < 2:
        return None
    ranks = {v.type.rank for v in inputs}
    if ranks != {4}:
        return None
    sizes = [tuple(v.type.shape[2:]) for v in inputs]
    counts = Counter(sizes)
    top = max(counts.values())
    # Inputs of a size fewer siblings share are the suspects; on a tie (two branches) any may be.
    suspects = [v for v, s in zip(inputs, sizes) if counts[s] < top] or list(inputs)
    for value in suspects:
        culprit = _last_spatial_change(g, value)
        if culprit is None or all(culprit == u.node or culprit in g.ancestors(u.node) for u in inputs):
            continue  # no change on this branch, or one all branches went through
        others = Counter(s for u, s in zip(inputs, sizes) if u is not value)
        keep = "x".join(map(str, others.most_common(1)[0][0]))
        node = g.node(culprit)
        return f"{culprit} ({node.op_name}) {node.op.resize_reason(node.params)}; its siblings keep {keep}"
    return None


def _last_spatial_change(g: GraphBuilder, value: Value) -> str | None:
    """Walk up single-input producers to the last node that changed H or W and says why."""
    path = value.node
    seen = 0
    while path in g and seen < 1000:
        seen += 1
        node = g.node(path)
        if node.is_input or not node.inputs:
            return None
        src = node.inputs[0]
        if node.out.rank == 4 and node.op.resize_reason(node.params) is not None \
                and tuple(src.type.shape[2:]) != tuple(node.out.shape[2:]):
            return path
        path = src.node
    return None
