"""Render: a Graph as a diagram (see dot.py; view.py decides what is drawn, layout.py the
roles of edges, style.py the look, files.py the SVG/PNG files and the render/ folder)."""

from .dot import render, render_partial, render_view
from .view import RenderOptionError

__all__ = ["render", "render_partial", "render_view", "RenderOptionError"]
