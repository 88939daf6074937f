"""The `specgraph` command line (typer + rich): app.py holds the typer app and what the commands
share; each command is a module here that registers itself on the app when imported."""

from .app import app, main

# Importing a command's module registers it; `specgraph --help` lists them in this order.
from . import check, summary, build, ops, render, schema, train, export, serve

COMMANDS = (check, summary, build, ops, render, schema, train, export, serve)

__all__ = ["app", "main"]
