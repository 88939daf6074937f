"""The order a scope's nodes are expanded in: what each reads, and the cycles that forbids.

A node depends on what its `from:` names — or, without `from:`, on the node written before it
(the implicit edge) — and on the siblings its expressions read (``${conv1.channels}``).  Nodes
written in dependency order (the usual case) keep it; otherwise they are sorted, ties broken
by written order.  A cycle is an error that names its nodes, and says which of its edges no
`from:` wrote: the implicit one is what confuses ("'conv' takes the previous node 'pool'
because it has no `from:`").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import networkx as nx

from ..lang.document import NodeDef
from ..lang.expr import referenced_names
from .references import refs
from .scope import Ctx

if TYPE_CHECKING:  # pragma: no cover
    from .expander import Expander


def dependencies(nd: NodeDef, from_: Any, previous: str | None, ctx: Ctx, siblings: dict) -> tuple[set[str], str | None]:
    """(the siblings ``nd`` reads, the one it reads only because it has no `from:` or None).

    ``from_``: its `from:` with expressions evaluated (None: none written); ``previous``: the
    node written before it, which it reads without `from:`.
    """
    implicit = previous if from_ is None and previous is not None else None
    names = refs(from_) if from_ is not None else ([previous] if previous else [])
    # a scan's initial states (0: zeros) and context tensors
    names += [r for r in (nd.init or {}).values() if isinstance(r, str)] + list((nd.context or {}).values())
    # Expressions may read a sibling's shape (${conv1.channels}): that is a dependency too,
    # unless the name is a param, which expressions see first.
    read = referenced_names(nd.when) | referenced_names(nd.repeat) | referenced_names(nd.extras)
    used = {r.split(".", 1)[0] for r in names} | (read - set(ctx.params))
    return {u for u in used if u in siblings}, implicit


def dependency_order(ex: "Expander", deps: dict[str, set[str]], implicit: dict[str, str | None], written: list[str],
                     ctx: Ctx) -> list[str]:
    """The nodes of ``deps`` in an order where each comes after what it reads; the nodes on a
    cycle, and those that read them, are reported (E304) and left out (poisoned)."""
    index = {n: i for i, n in enumerate(written)}
    if all(index[d] < index[n] for n, ds in deps.items() for d in ds if d in deps):
        return [n for n in written if n in deps]  # the usual case: written in dependency order
    dg = nx.DiGraph()
    dg.add_nodes_from(deps)
    dg.add_edges_from((d, n) for n, ds in deps.items() for d in ds if d in deps)
    try:
        return list(nx.lexicographical_topological_sort(dg, key=index.__getitem__))
    except nx.NetworkXUnfeasible:
        pass
    bad: set[str] = set()
    for comp in nx.strongly_connected_components(dg):
        if len(comp) > 1 or any(dg.has_edge(n, n) for n in comp):
            first = min(comp, key=index.__getitem__)
            loop = [e[0] for e in nx.find_cycle(dg.subgraph(comp), source=first)]
            # the edges of the loop that come from written order, not from a `from:`
            taken = [(b, a) for a, b in zip(loop, loop[1:] + loop[:1]) if implicit.get(b) == a]
            details = tuple(f"'{b}' takes the previous node '{a}' because it has no `from:`" for b, a in taken)
            hint = (f"give '{taken[0][0]}' a `from:` naming its input, or write it before '{taken[0][1]}'" if taken
                    else "a node cannot depend on itself; remove one `from` on the cycle")
            ex.error("E304", f"cycle: {' -> '.join(loop + [loop[0]])}", ctx.source, ctx.base + (first,), key=True,
                     path=ctx.namer.peek(first), hint=hint, details=details)
            bad |= comp
    bad |= {d for n in bad for d in nx.descendants(dg, n)}
    for n in bad:
        ctx.names[n] = None
    dg.remove_nodes_from(bad)
    return list(nx.lexicographical_topological_sort(dg, key=index.__getitem__))


__all__ = ["dependencies", "dependency_order"]
