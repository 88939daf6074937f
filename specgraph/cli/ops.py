"""``specgraph ops``: the available ops and their params."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from .app import app, out


@app.command()
def ops():
    """List the available ops: what each computes and its shape rule, its params."""
    from ..ops import all_ops

    table = Table(show_lines=False)
    table.add_column("op")
    table.add_column("category")
    table.add_column("params")
    table.add_column("meaning and shape", ratio=1)
    for name, op in sorted(all_ops().items()):
        fields = []
        for fname, f in op.Params.model_fields.items():
            fields.append(fname if f.is_required() else f"{fname}={f.default!r}")
        table.add_row(name, op.category, escape(", ".join(fields)), escape(op.meaning()))
    out.print(table)
