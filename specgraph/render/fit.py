"""Large static diagrams: the depth at which a diagram fits what its output format can hold.

Graphviz's cairo renderer scales a bitmap down, silently but for one line on stderr, to fit
32,767 pixels a side (densenet121 came out 1198×32767 px, unreadable); PDF readers refuse
pages over 200 inches (14,400 pt).  So when the whole graph would not fit, ``specgraph
render`` draws it at the deepest ``--depth`` that does (blocks below it collapsed into one
node each) and says so; the size is read from Graphviz's own layout (``-Tjson0``), not
guessed.  SVG has no such limit: an SVG is always the whole graph.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import graphviz

from ..ir.graph import Graph

# format -> (largest side, unit, output units per point)
LIMITS: dict[str, tuple[int, str, float]] = {
    "png": (32767, "px", 96 / 72),  # cairo's largest bitmap; Graphviz draws PNG at 96 dpi
    "pdf": (14400, "pt", 1.0),  # 200 inches: the largest page PDF readers open
}
FILL = 0.97  # of the limit, leaving room for the margin Graphviz adds around the layout's box


@dataclass(frozen=True)
class Fit:
    dot: graphviz.Digraph
    depth: int | None  # the depth drawn (None: the whole graph, as asked)
    note: str | None  # what was done and why, for stderr; None when the diagram fit as asked


def laid_out_size(dot: graphviz.Digraph) -> tuple[float, float]:
    """Width and height in points of ``dot`` as Graphviz lays it out."""
    data = json.loads(dot.pipe(format="json0"))
    x0, y0, x1, y1 = (float(v) for v in data["bb"].split(","))
    return x1 - x0, y1 - y0


def max_depth(graph: Graph) -> int:
    """The deepest nesting of blocks (seqs do not count, as for ``--depth``)."""
    levels: dict[str, int] = {}
    for path, scope in graph.scopes.items():  # parents are recorded before children
        levels[path] = levels.get(scope.parent, 0) + int(scope.kind == "block")  # type: ignore[arg-type]
    return max(levels.values(), default=0)


def fit(draw: Callable[[int | None], graphviz.Digraph], graph: Graph, fmt: str) -> Fit:
    """Draw at the depth asked (``draw(None)``) when that fits ``fmt``, else at the deepest
    depth that does (``draw(depth)``), else at depth 0 with a note that it is still too large."""
    whole = draw(None)
    if fmt not in LIMITS:
        return Fit(whole, None, None)
    limit, unit, scale = LIMITS[fmt]
    w, h = (side * scale for side in laid_out_size(whole))
    if max(w, h) <= limit * FILL:
        return Fit(whole, None, None)
    too_big = f"the whole graph would be {w:.0f}×{h:.0f} {unit}, over the {limit} {unit} a {fmt.upper()} can hold"
    for depth in range(max_depth(graph) - 1, -1, -1):
        dot = draw(depth)
        dw, dh = (side * scale for side in laid_out_size(dot))
        if max(dw, dh) <= limit * FILL:
            return Fit(dot, depth, f"note: {too_big}; drawn at --depth {depth} ({dw:.0f}×{dh:.0f} {unit}), "
                                   f"deeper blocks as one node each. Choose with --depth or --only, or write "
                                   f"SVG or HTML for the whole graph")
    dot = draw(0) if max_depth(graph) > 0 else whole
    return Fit(dot, 0 if max_depth(graph) > 0 else None,
               f"warning: {too_big}, and so would every depth; Graphviz will scale it down. "
               f"Draw a part with --only, or write SVG or HTML")
