"""Runs: consecutive sibling blocks of one *structure*, drawn once and marked ×N.

Two copies of a block have one structure when everything that decides what they compute in
eval mode is equal: their nodes (relative paths, ops, wiring, output types) and those nodes'
params — except the params of nodes that are the identity in eval mode (``Trait.
IDENTITY_IN_EVAL``: a dropout's ``p``, a stochastic depth's rate), which often grow along a
network (ConvNeXt's and EfficientNet's drop-path rates) and would otherwise split every run.
The block params that do differ along a run are shown as ranges (``sd_prob 0 … 0.0857``).
"""

from __future__ import annotations

from typing import Any, Iterable

from ..ir.graph import Graph, Node, Scope
from ..ir.traits import Trait


def nodes_by_scope(graph: Graph) -> dict[str, list[Node]]:
    """Each scope's nodes (at any depth inside it), in topological order."""
    by_scope: dict[str, list[Node]] = {}
    for node in graph.nodes():
        for s in node.scope:
            by_scope.setdefault(s, []).append(node)
    return by_scope


def find_runs(graph: Graph, by_scope: dict[str, list[Node]] | None = None) -> dict[str, list[str]]:
    """{first copy's path: every copy's path} for each run of two or more chained sibling
    scopes (each reading exactly the previous one's single output) of one structure."""
    by_scope = nodes_by_scope(graph) if by_scope is None else by_scope
    children: dict[str | None, list[Scope]] = {}
    for scope in graph.scopes.values():
        children.setdefault(scope.parent, []).append(scope)
    runs: dict[str, list[str]] = {}
    signatures: dict[str, tuple] = {}

    def signature(scope: Scope) -> tuple:
        if scope.path not in signatures:
            signatures[scope.path] = structure(scope, by_scope)
        return signatures[scope.path]

    for siblings in children.values():
        run: list[Scope] = []
        for scope in siblings + [None]:  # type: ignore[list-item]
            if run and scope is not None and chained(run[-1], scope) and signature(run[0]) == signature(scope):
                run.append(scope)
                continue
            if len(run) > 1:
                runs[run[0].path] = [s.path for s in run]
            run = [scope] if scope is not None else []
    return runs


def chained(a: Scope, b: Scope) -> bool:
    """b takes exactly a's single output: consecutive copies, as `repeat:` makes them."""
    return len(a.outputs) == 1 and list(b.inputs) == list(a.outputs.values())


def structure(scope: Scope, by_scope: dict[str, list[Node]]) -> tuple:
    """Everything a block computes in eval mode, with paths made relative: equal for copies
    that differ only in params of eval-mode identities (dropout rates)."""
    cut = len(scope.path)
    inside = scope.path + "."
    nodes = tuple(
        (n.path[cut:], n.op_name, None if Trait.IDENTITY_IN_EVAL in n.traits else repr(n.params),
         tuple(map(str, n.outputs.values())), tuple(v.node[cut:] if v.node.startswith(inside) else "^" for v in n.inputs))
        for n in by_scope.get(scope.path, ()))
    outs = tuple(str(v.type) for v in scope.outputs.values())
    return (scope.kind, scope.name, tuple(str(v.type) for v in scope.inputs), outs, nodes)


def varying_params(graph: Graph, run: Iterable[str]) -> dict[str, tuple[Any, Any]]:
    """The block params that differ along a run: {name: (smallest, largest)} for numbers,
    {name: (first, last)} otherwise, in the block's param order."""
    scopes = [graph.scopes[p] for p in run]
    out: dict[str, tuple[Any, Any]] = {}
    for name in scopes[0].params:
        values = [s.params.get(name) for s in scopes]
        if all(v == values[0] for v in values):
            continue
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        out[name] = (min(values), max(values)) if numbers else (values[0], values[-1])
    return out
