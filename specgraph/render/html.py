"""The interactive viewer: one self-contained HTML file (``specgraph render SPEC -o model.html``).

Everything is inlined — the model (:mod:`.model`, JSON), the scripts and the styles
(``assets/``, shipped as package data) — so the file works from ``file://`` and never
reaches the network.  The layout is computed in the page (``assets/layout.js``) each time
a block is opened, which no precomputed picture could do for every combination of open
blocks (docs/render.md argues the choice).  ``specgraph serve`` sends the same page, told
to follow the spec's changes (:mod:`.live`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from ..expand.partial import PartialGraph
from ..lang.spec import Spec
from .model import viewer_model

SCRIPTS = ("layout.js", "graph.js", "labels.js", "panel.js", "viewer.js")  # in load order

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; \
style-src 'unsafe-inline'; img-src data: blob:; connect-src 'self'">
<meta name="generator" content="specgraph">
<title>{title} — specgraph</title>
<style>{page_css}</style>
<style id="sg-diagram-css">{diagram_css}</style>
</head>
<body>
<div id="sg-app">
  <header id="sg-bar">
    <span id="sg-name"></span>
    <input id="sg-search" type="search" placeholder="search: conv2d, layer3, stride=2  ( / )" aria-label="search">
    <span id="sg-count"></span>
    <span class="sg-spacer"></span>
    <button data-act="fit" title="fit to screen (f)">fit</button>
    <button data-act="expand" title="open every block (e)">expand all</button>
    <button data-act="collapse" title="close every block (c)">collapse all</button>
    <button data-act="svg" title="the current view as SVG">SVG</button>
    <button data-act="png" title="the current view as PNG">PNG</button>
    <button data-act="theme" title="light / dark / as the OS (t)">theme</button>
  </header>
  <div id="sg-main">
    <div id="sg-canvas">
      <svg id="sg-svg" xmlns="http://www.w3.org/2000/svg"><defs>
        <marker id="sg-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,1 L10,5 L0,9 z"/></marker>
        <marker id="sg-arrow-skip" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,1 L10,5 L0,9 z"/></marker>
        <marker id="sg-arrow-error" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,1 L10,5 L0,9 z"/></marker>
      </defs><g id="sg-viewport"></g></svg>
      <canvas id="sg-minimap" hidden></canvas>
      <div id="sg-banner" hidden></div>
      <div id="sg-legend"></div>
    </div>
    <aside id="sg-panel"></aside>
  </div>
</div>
<script id="specgraph-model" type="application/json">{model}</script>
<script>window.SPECGRAPH_LIVE = {live};</script>
{scripts}
</body>
</html>
"""


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    return (resources.files("specgraph.render") / "assets" / name).read_text(encoding="utf-8")


def model_json(model: dict[str, Any]) -> str:
    """The model as JSON that can sit inside a <script> element: no "<" appears in it (a spec's
    text saying "</script>" or "<!--" cannot end or confuse the element), only its escape."""
    return json.dumps(model, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def page(model: dict[str, Any], *, live: int | None = None) -> str:
    """The viewer page showing ``model``; ``live``: the version of ``model`` at the server whose
    updates the page follows (specgraph serve), None for a page on its own."""
    from html import escape

    scripts = "\n".join(f"<script>\n{asset(name)}\n</script>" for name in SCRIPTS)
    return PAGE.format(title=escape(str(model.get("name", "spec"))), page_css=asset("viewer.css"),
                       diagram_css=asset("diagram.css"), model=model_json(model),
                       live="false" if live is None else json.dumps({"version": int(live)}), scripts=scripts)


def viewer_html(partial: PartialGraph, spec: Spec | None = None) -> str:
    """The self-contained viewer of a (possibly failing) spec's graph."""
    return page(viewer_model(partial, spec))
