"""``specgraph summary``: the table of every node, with totals and the predicted peak memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from .app import LimitOpt, OutputFormat, SetOpt, SpecArg, app, check_spec, dims, guarded, known_dims, one_of, print_summary


@app.command()
def summary(spec: Path = SpecArg,
            set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt,
            batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1,
                                                     help="batch size (the dim N) for the memory columns [default: 1]"),
            dim: Optional[List[str]] = typer.Option(None, "--dim", help="size of another symbolic dim: NAME=INT (repeatable)"),
            format: OutputFormat = typer.Option("text", "--format", help="text | json",
                                                parser=one_of(OutputFormat, "--format", "expected text or json"))):
    """Table of every node: path, op, output shape, parameters, MACs, parameter and activation
    bytes; with totals and the predicted inference peak memory (see specgraph/analysis/memory/)."""
    from ..analysis.memory.walk import SizeError
    from ..analysis.summary import summarize

    sizes = dims(dim, minimum=1)
    if batch_size is not None and sizes.get("N", batch_size) != batch_size:
        raise typer.BadParameter(f"--dim N={sizes['N']} contradicts --batch-size {batch_size}", param_hint="--dim")
    graph = guarded(lambda: check_spec(spec, set_, limit), json_errors=format == "json")
    known_dims(sizes, graph)

    def go():
        try:
            return summarize(graph, batch_size, sizes)
        except SizeError as e:  # sizes that do not fit the spec: a usage error
            raise typer.BadParameter(str(e), param_hint="--batch-size / --dim") from e

    s = guarded(go)
    if format == "json":
        print(json.dumps(s.to_json(), indent=2))
        return
    print_summary(s)

