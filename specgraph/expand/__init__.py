"""Expansion and shape inference: Spec -> Graph (see expander.py)."""

from .expander import expand

__all__ = ["expand"]
