"""Hints for the classic shape mistakes, found by looking upstream of a failing merge.

An op's shape rule sees only its own inputs; the cause of a mismatch at a concat or add
usually lies further up (a pooling with the wrong ``ceil_mode``, a conv without padding).
These functions read the graph built so far to name that cause.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import networkx as nx

from ..ir.graph import Value

_SPATIAL_OPS = ("maxpool2d", "avgpool2d", "conv2d")


def shape_error_hint(g: nx.DiGraph, op: str, params: Any, inputs: list[Value], error: Exception) -> str | None:
    """A hint for a merge whose inputs disagree on a spatial dim, else None."""
    if op not in ("concat", "add", "mul") or getattr(error, "code", None) != "E402" or len(inputs) < 2:
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
        if culprit is None or all(culprit == u.node or culprit in nx.ancestors(g, u.node) for u in inputs):
            continue  # no change on this branch, or one all branches went through
        others = Counter(s for u, s in zip(inputs, sizes) if u is not value)
        keep = "x".join(map(str, others.most_common(1)[0][0]))
        node = g.nodes[culprit]["node"]
        p = node.params
        if node.op in ("maxpool2d", "avgpool2d"):
            return (f"{culprit} ({node.op}) uses ceil_mode: {str(p.ceil_mode).lower()} and padding: {p.padding}; "
                    f"its siblings keep {keep}")
        return f"{culprit} (conv2d) has kernel {p.kernel} with padding {p.padding}; its siblings keep {keep}"
    return None


def _last_spatial_change(g: nx.DiGraph, value: Value) -> str | None:
    """Walk up single-input producers to the last node that changed H or W."""
    path = value.node
    seen = 0
    while path in g and seen < 1000:
        seen += 1
        node = g.nodes[path]["node"]
        if node.op == "input" or not node.inputs:
            return None
        src = node.inputs[0]
        if node.op in _SPATIAL_OPS and tuple(src.type.shape[2:]) != tuple(node.out.shape[2:]):
            return path
        path = src.node
    return None
