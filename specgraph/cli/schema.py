"""``specgraph schema``: the JSON Schema of the spec language."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .app import app, guarded, out


@app.command()
def schema(output: Optional[Path] = typer.Option(None, "-o", "--output", help="file to write (default: stdout)")):
    """Print the JSON Schema of the spec language (ops included), for editors' completion and validation.

    docs/specgraph.schema.json is this output; a spec's first line
    `# yaml-language-server: $schema=<path to it>` enables it in VS Code's YAML extension.
    """
    from ..api import schema_text

    text = guarded(schema_text)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}", markup=False)
