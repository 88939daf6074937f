"""Warnings of a finished graph: inputs nothing reads (W301), nodes that reach no output (W302).

A node written after an output, reading it, is the case that confuses: without `from:` it
reads that output (the node before it), yet the model returns the output as it was — so W302
names it.
"""

from __future__ import annotations

from ..diagnostics import Diagnostic
from ..ir.graph import Graph, Node


def lint(graph: Graph) -> list[Diagnostic]:
    warnings = []
    for name in graph.inputs:
        if graph.nx.out_degree(name) == 0:
            warnings.append(Diagnostic("W301", f"input '{name}' is not used", graph.node(name).location,
                                       severity="warning"))
    live = graph.needed_by()
    for node in graph.op_nodes():
        if node.path not in live:
            warnings.append(_dead(graph, node))
    return warnings


def _dead(graph: Graph, node: Node) -> Diagnostic:
    message, hint = "node does not reach any output", None
    before = _output_written_before(graph, node)
    if before is not None and any(v.node == before for v in node.inputs):
        message += f": it is written after the output '{before}' and reads it, but the model returns '{before}' as it is"
        hint = (f"to return it, list it in `outputs:`; to apply it before the output, write it before '{before}' "
                "(a node without `from:` takes the one written before it)")
    return Diagnostic("W302", message, node.location, path=node.path, hint=hint, severity="warning")


def _output_written_before(graph: Graph, node: Node) -> str | None:
    """The last output of the graph's top level written above ``node`` (a top-level node), if any."""
    here = node.location
    if node.scope or here is None:
        return None
    found = None
    for o in graph.outputs:
        out = graph.node(o.value.node)
        loc = out.location
        if not out.scope and loc is not None and loc.file == here.file and loc.line < here.line:
            if found is None or loc.line > graph.node(found).location.line:
                found = out.path
    return found


__all__ = ["lint"]
