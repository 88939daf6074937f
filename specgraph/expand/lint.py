"""Warnings of a finished graph: inputs nothing reads, nodes that reach no output."""

from __future__ import annotations

from ..diagnostics import Diagnostic
from ..ir.graph import Graph


def lint(graph: Graph) -> list[Diagnostic]:
    warnings = []
    for name in graph.inputs:
        if graph.nx.out_degree(name) == 0:
            warnings.append(Diagnostic("W301", f"input '{name}' is not used", graph.node(name).location,
                                       severity="warning"))
    live = graph.needed_by()
    for node in graph.op_nodes():
        if node.path not in live:
            warnings.append(Diagnostic("W302", "node does not reach any output", node.location, path=node.path,
                                       severity="warning"))
    return warnings


__all__ = ["lint"]
