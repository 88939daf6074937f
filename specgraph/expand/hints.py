"""Hints for the classic shape mistakes, found by looking upstream of a failing merge.

An op's shape rule sees only its own inputs; the cause of a mismatch at a concat or add
usually lies further up (a pooling with the wrong ``ceil_mode``, a conv without padding).
These functions read the graph built so far to name that cause: merges say so with
``Trait.MERGE``, an op that changes the spatial size says so (``Op.resize_reason``), and
offers the param changes that would change it (``Op.resize_fixes``), which are tried: the
hint names the one that gives the siblings' size (a missing padding is not blamed on
``ceil_mode``), and no param at all when none does.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..ir.graph import GraphBuilder, Value
from ..ir.traits import Trait
from ..ops import ShapeError


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
    # The cause is a param change that gives a branch its siblings' size: first on a suspect,
    # then on the others (two 3x3 pools beside one 2x2 may be the ones that need ceil_mode).
    candidates = [(v, _most_common_other(v, inputs, sizes), "its siblings") for v in suspects]
    candidates += [(v, sizes[inputs.index(suspects[0])], suspects[0].ref) for v in inputs if v not in suspects]
    plain = None
    for value, want, like in candidates:
        culprit = _last_spatial_change(g, value)
        if culprit is None or all(culprit == u.node or culprit in g.ancestors(u.node) for u in inputs):
            continue  # no change on this branch, or one all branches went through
        node = g.node(culprit)
        have, keep = ("x".join(map(str, d)) for d in (node.out.shape[2:], want))
        fix = _fix_giving(node, want)
        if fix is not None:
            return f"{culprit} ({node.op_name}) gives {have}; with {fix} it gives {keep}, as {like}"
        # no single param makes the sizes agree (the kernels differ): name where they part, no param
        plain = plain or f"{culprit} ({node.op_name}) gives {have}, {like} {keep}"
    return plain


def _most_common_other(value: Value, inputs: list[Value], sizes: list[tuple]) -> tuple:
    return Counter(s for u, s in zip(inputs, sizes) if u is not value).most_common(1)[0][0]


def _fix_giving(node, want: tuple) -> str | None:
    """The param change of ``node`` (one the op offers) that makes its output ``want`` in H, W."""
    for text, params in node.op.resize_fixes(node.params):
        try:
            out = node.op.infer(params, [v.type for v in node.inputs])[0]
        except ShapeError:  # a fix the rest of the params refuse is no fix
            continue
        if tuple(out.shape[2:]) == want:
            return text
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
