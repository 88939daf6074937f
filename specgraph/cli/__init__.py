"""The `specgraph` command line: app.py holds the typer app and its commands."""

from .app import app, main

__all__ = ["app", "main"]
