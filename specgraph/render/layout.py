"""Layout by role: which edge is the main path, a branch lane, a skip, or a U-Net bridge.

Graphviz's ``dot`` ranks nodes along the edges and pulls heavy edges straight.  Each edge
of a view gets a role, and the role its weight and look (render.py):

- ``main``: a chain edge (one producer, one consumer): heavy, so the main path is straight;
- ``fan``: into or out of a branch point: inception lanes stay parallel into their concat;
- ``skip``: a shortcut over a longer path between the same two nodes (ResNet's identity):
  dashed and left out of the ranking, so it cannot bend the main path;
- ``bridge``: a skip that spans a loss and a recovery of resolution (encoder level i to
  decoder level i, the U-Net pattern; :func:`is_bridge` states the rule).  The decoder side
  is then laid out rising (its edges reversed for ranking, arrows unchanged) and each bridge
  holds its two ends on one rank, encoder on the left, so the U is visible.  Skips nested in
  a residual (a squeeze-excitation inside an inverted residual) are no bridges: they stay
  skips, and the block reads top-down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ..ir.dims import evaluate
from ..ir.tensor_type import TensorType

if TYPE_CHECKING:  # pragma: no cover
    from .view import VEdge, View, VNode


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
    out_edges: dict[str, list[VEdge]] = {}  # each skip's trunk reads the edges among its nodes only:
    for e in view.edges:                     # a scan of every edge per skip was quadratic in the graph
        out_edges.setdefault(e.tail, []).append(e)
    bridges = _nested_skips([e for e in skips if is_bridge(e, view, succ, pred, order, out_edges)], succ, order)
    if bridges:
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
    """The longest run of skips each nested in the one before (outermost first)."""
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
    return best


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


def _closure(start: str, adjacency: dict[str, list[str]], within=lambda n: True) -> set[str]:
    """``start`` and what it reaches through ``adjacency``, passing only nodes ``within``
    (the ends of the walk are kept)."""
    seen = {start}
    stack = [start]
    while stack:
        for n in adjacency.get(stack.pop(), ()):
            if n not in seen and within(n):
                seen.add(n)
                stack.append(n)
    return seen


# ---- bridges ------------------------------------------------------------------------------------

class _Nominal(dict):
    """Sizes for symbolic dims when comparing resolutions: every symbol one large size, so that
    H/2 < H and (H - 4) // 2 < H - 4 compare as they do for real inputs."""

    def __missing__(self, key: str) -> int:
        return 4096


_NOMINAL = _Nominal()


def _positions(t: TensorType) -> int:
    """The spatial positions of an image-like tensor: the product of its dims after dim 1."""
    size = 1
    for d in t.shape[2:]:
        size *= evaluate(d, _NOMINAL)
    return size


def resolution_change(before: TensorType | None, after: TensorType | None) -> int:
    """-1 when ``after`` has fewer spatial positions than ``before``, 1 when more, else 0.

    Only image-like tensors compare: both of one rank of 4 or more and one batch dim, so a
    reshape that moves windows into the batch or into new dims (Swin) changes nothing."""
    if before is None or after is None or before.rank < 4 or after.rank != before.rank or \
            after.shape[0] != before.shape[0]:
        return 0
    a, b = _positions(before), _positions(after)
    return (b > a) - (b < a)


def _change(v: "VNode") -> int:
    """How a drawn node changes the resolution of its first input."""
    if v.node is not None and v.node.op is not None and v.node.inputs:
        return resolution_change(v.node.inputs[0].type, v.node.out)
    if v.scope is not None and v.scope.inputs and v.scope.outputs:
        return resolution_change(v.scope.inputs[0].type, next(iter(v.scope.outputs.values())).type)
    return 0


def is_bridge(skip: "VEdge", view: "View", succ: dict[str, list[str]], pred: dict[str, list[str]],
              order: dict[str, int], out_edges: dict[str, list["VEdge"]]) -> bool:
    """Whether a skip edge t -> h is an encoder-decoder bridge.

    The rule: take the *trunk* the skip bypasses — the nodes that lie on every other path from
    t to h (a side branch such as a squeeze-excitation's pooled gate lies on some paths only).
    The skip is a bridge when a trunk node lowers the resolution (outputs fewer spatial
    positions than its first input: a pooling, a strided or unpadded convolution) and a later
    trunk node — or h itself, when h is a collapsed block — raises it again (an up-sampling,
    a transposed convolution).  Resolution is that of image-like tensors, rank 4 or more.

    So a U-Net's crop-and-concat edges are bridges; a residual around a squeeze-excitation is
    not (its trunk keeps the resolution: only the side branch pools), nor is the excitation's
    own skip (its trunk pools to the 1×1 gate and never rises again).  An edge that carries
    only a size (the image read by a final resize or crop, ``Op.size_only_inputs``) is never
    a bridge.
    """
    t, h = skip.tail, skip.head
    if skip.size_only or skip.type is None or skip.type.rank < 4:  # a `like` input carries a size, not features
        return False
    lo, hi = order[t], order[h]  # nodes between t and h sit between them in topological order
    between = _closure(t, succ, lambda n: order[n] < hi) & _closure(h, pred, lambda n: order[n] > lo)
    between -= {t, h}
    inner = between | {t, h}
    trunk = _trunk(t, h, between, [e for n in inner for e in out_edges.get(n, ()) if e.head in inner], order)
    changes = [_change(view.nodes[n]) for n in trunk]
    if view.nodes[h].kind == "block":
        changes.append(_change(view.nodes[h]))
    return -1 in changes and 1 in changes[changes.index(-1):]


def _trunk(t: str, h: str, between: set[str], edges: list["VEdge"], order: dict[str, int]) -> list[str]:
    """The nodes between t and h that every path from t to h passes through, in order.

    In a topological order of t, the nodes between and h, a node lies on every path exactly
    when no edge jumps over it (an edge that does is the start of a path around it)."""
    seq = sorted(between, key=order.__getitem__)
    pos = {n: i + 1 for i, n in enumerate(seq)}
    pos[t], pos[h] = 0, len(seq) + 1
    cover = [0] * (len(seq) + 3)
    for e in edges:
        a, b = pos.get(e.tail), pos.get(e.head)
        if a is None or b is None or (e.tail, e.head) == (t, h) or b - a < 2:
            continue
        cover[a + 1] += 1
        cover[b] -= 1
    running, trunk = 0, []
    for i, n in enumerate(seq, start=1):
        running += cover[i]
        if running == 0:
            trunk.append(n)
    return trunk
