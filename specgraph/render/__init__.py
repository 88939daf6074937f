"""Render: a Graph as a diagram — static (dot.py; view.py decides what is drawn, layout.py the
roles of edges, style.py the look, fit.py the depth a large PNG/PDF fits at, files.py the files
and the render/ folder) or interactive (html.py: the viewer page of model.py's JSON; live.py:
`specgraph serve`).  docs/render.md describes both."""

from .dot import render, render_partial, render_view
from .view import RenderOptionError

__all__ = ["render", "render_partial", "render_view", "RenderOptionError"]
