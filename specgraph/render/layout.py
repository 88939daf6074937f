"""Layout by role: which edge is the main path, a branch lane, a skip, or a U-Net bridge.

Graphviz's ``dot`` ranks nodes along the edges and pulls heavy edges straight.  Each edge
of a view gets a role, and the role its weight and look (render.py):

- ``main``: a chain edge (one producer, one consumer): heavy, so the main path is straight;
- ``fan``: into or out of a branch point: inception lanes stay parallel into their concat;
- ``skip``: a shortcut over a longer path between the same two nodes (ResNet's identity):
  dashed and left out of the ranking, so it cannot bend the main path;
- ``bridge``: skips nested inside one another (encoder level i to decoder level i, the
  U-Net pattern).  The decoder side is then laid out rising (its edges reversed for ranking,
  arrows unchanged) and each bridge pulls its two ends level, so the U is visible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from .view import VEdge, View


def assign_roles(view: "View") -> None:
    succ, pred = _adjacency(view.edges)
    order = {vid: i for i, vid in enumerate(topological(view.nodes, succ))}
    out_deg = {n: len(s) for n, s in succ.items()}
    in_deg = {n: len(p) for n, p in pred.items()}
    skips: list[VEdge] = []
    for e in view.edges:
        if e.role != "main":
            continue
        if out_deg[e.tail] > 1 and in_deg[e.head] > 1 and _reaches_around(e.tail, e.head, succ, order):
            e.role = "skip"
            skips.append(e)
        elif out_deg[e.tail] > 1 or in_deg[e.head] > 1:
            e.role = "fan"
    spine = _spine(view, order, pred)
    on_spine = {n for edge in spine for n in edge}
    lanes = _adjacency(e for e in view.edges if e.role != "skip")
    for e in view.edges:
        # A branch that leaves the main path for good (an auxiliary head) leaves it straight;
        # branches that meet again (inception lanes, a projection shortcut) stay equal lanes.
        if e.role == "fan" and (e.tail, e.head) in spine and not _rejoins(e, lanes, on_spine, order):
            e.role = "main"
    bridges = _nested_skips(skips, succ, order)
    if len(bridges) >= 2:
        _lay_out_u(view, bridges, succ, pred)


def _spine(view: "View", order: dict[str, int], pred: dict[str, list[str]]) -> set[tuple[str, str]]:
    """The edges of the longest path into the first output: the main path, kept straight.

    Through a branch point it follows the longer branch (an inception's deepest lane, the
    trunk rather than an auxiliary head); ties go to the branch listed first.
    """
    usable = {(e.tail, e.head) for e in view.edges if e.role not in ("skip", "error")}
    dist: dict[str, int] = {}
    best: dict[str, str] = {}
    for n in sorted(order, key=order.__getitem__):
        dist[n] = 0
        for p in pred.get(n, ()):
            if (p, n) in usable and dist.get(p, -1) + 1 > dist[n]:
                dist[n], best[n] = dist[p] + 1, p
    outputs = [v.id for v in view.nodes.values() if v.kind == "output" and v.id in dist]
    if not dist:
        return set()
    end = outputs[0] if outputs else max(dist, key=lambda n: (dist[n], -order[n]))
    path: set[tuple[str, str]] = set()
    while end in best:
        path.add((best[end], end))
        end = best[end]
    return path


def _rejoins(e: "VEdge", lanes: tuple[dict[str, list[str]], dict[str, list[str]]], on_spine: set[str],
             order: dict[str, int]) -> bool:
    """Whether a sibling branch of spine edge ``e`` meets the spine again (a parallel lane)."""
    succ, pred = lanes
    for start, step, beyond in ((e.tail, succ, lambda n: order[n] > order[e.tail]),
                                (e.head, pred, lambda n: order[n] < order[e.head])):
        siblings = [n for n in step.get(start, ()) if n not in (e.tail, e.head)]
        seen = set(siblings)
        while siblings:
            n = siblings.pop()
            if n in on_spine and beyond(n):
                return True
            for m in step.get(n, ()):
                if m not in seen:
                    seen.add(m)
                    siblings.append(m)
    return False


def _adjacency(edges: Iterable["VEdge"]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    succ: dict[str, list[str]] = {}
    pred: dict[str, list[str]] = {}
    for e in edges:
        succ.setdefault(e.tail, []).append(e.head)
        pred.setdefault(e.head, []).append(e.tail)
    return succ, pred


def topological(nodes: Iterable[str], succ: dict[str, list[str]]) -> list[str]:
    """A topological order that keeps the given node order where the edges allow (Kahn, FIFO)."""
    indeg = {n: 0 for n in nodes}
    for heads in succ.values():
        for h in heads:
            indeg[h] = indeg.get(h, 0) + 1
    ready = [n for n, d in indeg.items() if d == 0]
    out = []
    i = 0
    while i < len(ready):
        n = ready[i]
        i += 1
        out.append(n)
        for h in succ.get(n, ()):
            indeg[h] -= 1
            if indeg[h] == 0:
                ready.append(h)
    return out


def _reaches_around(tail: str, head: str, succ: dict[str, list[str]], order: dict[str, int]) -> bool:
    """Whether ``head`` is reachable from ``tail`` other than by their direct edge."""
    limit = order.get(head, 0)
    stack = [h for h in succ.get(tail, ()) if h != head]
    seen = set(stack)
    while stack:
        n = stack.pop()
        if n == head:
            return True
        for h in succ.get(n, ()):
            if h not in seen and order.get(h, limit) <= limit:
                seen.add(h)
                stack.append(h)
    return False


def _reaches(a: str, b: str, succ: dict[str, list[str]], order: dict[str, int]) -> bool:
    if a == b:
        return True
    limit = order.get(b, 0)
    stack, seen = [a], {a}
    while stack:
        n = stack.pop()
        for h in succ.get(n, ()):
            if h == b:
                return True
            if h not in seen and order.get(h, limit) < limit:
                seen.add(h)
                stack.append(h)
    return False


def _nested_skips(skips: list["VEdge"], succ: dict[str, list[str]], order: dict[str, int]) -> list["VEdge"]:
    """The longest run of skips each nested in the one before (outermost first), or []."""
    spans = sorted(skips, key=lambda e: (order[e.tail], -order[e.head]))
    best: list[VEdge] = []
    for i, outer in enumerate(spans):
        chain = [outer]
        # By index, not `spans[i + 1:]`: that slice copies the rest of the list for every
        # outer skip, O(skips²) for a block with a shortcut repeated 25,000 times.
        for j in range(i + 1, len(spans)):
            inner, last = spans[j], chain[-1]
            if order[inner.tail] >= order[last.head]:
                break  # spans are sorted by tail: none further on can start inside `last`
            # Cheap interval test first: ResNet's skips follow one another and never nest.
            if order[last.tail] <= order[inner.tail] and order[inner.head] <= order[last.head] \
                    and inner.head != last.head and _reaches(last.tail, inner.tail, succ, order) \
                    and _reaches(inner.head, last.head, succ, order):
                chain.append(inner)
        if len(chain) > len(best):
            best = chain
        if len(best) >= len(spans) - i:
            break
    return best if len(best) >= 2 else []


def _lay_out_u(view: "View", bridges: list["VEdge"], succ: dict[str, list[str]], pred: dict[str, list[str]]) -> None:
    """Reverse the rising side (everything after the innermost bridge's head) for ranking."""
    inner = bridges[-1]
    rising = _closure(inner.head, succ)
    bottom = _closure(inner.tail, succ) & _closure(inner.head, pred)
    for e in bridges:
        e.role = "bridge"
    for e in view.edges:
        if e.role != "bridge" and e.head in rising and (e.tail in rising or e.tail in bottom):
            e.reverse = True


def _closure(start: str, adjacency: dict[str, list[str]]) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for n in adjacency.get(stack.pop(), ()):
            if n not in seen:
                seen.add(n)
                stack.append(n)
    return seen
