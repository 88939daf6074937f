"""The order nodes of one mapping are expanded in: written order when every node reads only
nodes written before it, else a topological order (ties by written order); a cycle is E304,
reported once at its first node, and the nodes on or after it are poisoned."""

from __future__ import annotations

from typing import Any

import networkx as nx

from ..lang.document import NodeDef
from .scope import Ctx


def refs(raw: Any) -> list[str]:
    """The references a `from:` holds (a name, a list, or a mapping of them)."""
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list):
        return [r for r in raw if isinstance(r, str)]
    if isinstance(raw, dict):
        return [r for r in raw.values() if isinstance(r, str)]
    return []


def dependency_order(ex, defs: dict[str, NodeDef], deps: dict[str, set[str]], written: list[str], ctx: Ctx) -> list[str]:
    """The names of ``defs`` in expansion order (``deps``: the siblings each reads; ``ex`` the expander)."""
    index = {n: i for i, n in enumerate(written)}
    if all(index[d] < index[n] for n, ds in deps.items() for d in ds if d in defs):
        return [n for n in written if n in defs]  # the usual case: written in dependency order
    dg = nx.DiGraph()
    dg.add_nodes_from(defs)
    dg.add_edges_from((d, n) for n, ds in deps.items() for d in ds if d in defs)
    try:
        return list(nx.lexicographical_topological_sort(dg, key=index.__getitem__))
    except nx.NetworkXUnfeasible:
        pass
    bad: set[str] = set()
    for comp in nx.strongly_connected_components(dg):
        if len(comp) > 1 or any(dg.has_edge(n, n) for n in comp):
            cycle = sorted(comp, key=index.__getitem__)
            first = cycle[0]
            loop = [e[0] for e in nx.find_cycle(dg.subgraph(comp), source=first)]
            ex.error("E304", f"cycle: {' -> '.join(loop + [loop[0]])}", ctx.source, ctx.base + (first,), key=True,
                     path=ctx.namer.peek(first), hint="a node cannot depend on itself; remove one `from` on the cycle")
            bad |= comp
    bad |= {d for n in bad for d in nx.descendants(dg, n)}
    for n in bad:
        ctx.names[n] = None
    dg.remove_nodes_from(bad)
    return list(nx.lexicographical_topological_sort(dg, key=index.__getitem__))


__all__ = ["refs", "dependency_order"]
