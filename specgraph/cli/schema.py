"""``specgraph schema``: the JSON Schema of the spec language."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .app import app, guarded, out
from .paths import writable_file, write_failed


@app.command()
def schema(output: Optional[Path] = typer.Option(None, "-o", "--output", help="file to write (default: stdout)")):
    """Print the JSON Schema of the spec language (ops included), for editors' completion and validation.

    docs/specgraph.schema.json is this output; a spec's first line
    `# yaml-language-server: $schema=<path to it>` enables it in VS Code's YAML extension.
    """
    from ..api import schema_text

    if output is not None:
        guarded(lambda: writable_file(output, "-o"))
    text = guarded(schema_text)
    if output is None:
        sys.stdout.write(text)
    else:
        def write():
            try:
                output.write_text(text, encoding="utf-8")
            except OSError as e:
                raise write_failed(e, output, "-o") from None

        guarded(write)
        out.print(f"wrote {output}", markup=False)
