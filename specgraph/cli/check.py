"""``specgraph check``: validate and shape-check a spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from .app import (IncludeRootOpt, LimitOpt, OutputFormat, SetOpt, SpecArg, app, check_spec, guarded, one_of, out,
                     print_warnings)


@app.command()
def check(spec: Path = SpecArg,
          set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt,
          include_root: Optional[Path] = IncludeRootOpt,
          format: OutputFormat = typer.Option("text", "--format", help="text | json",
                                              parser=one_of(OutputFormat, "--format", "expected text or json")),
          no_warn: bool = typer.Option(False, "--no-warn", help="do not show warnings (W-codes: unused inputs, "
                                                                 "params and `let` values, nodes that reach no output)")):
    """Validate and shape-check a spec. Exit 0 when it is correct (warnings or not), 1 when it has errors."""
    graph = guarded(lambda: check_spec(spec, set_, limit, include_root), json_errors=format == "json")
    warnings = () if no_warn else graph.warnings
    # conditions on symbolic sizes that only the input decides: checked by the built model's input check
    conditions = [(node.path, req) for node, req in graph.requirements()]
    if format == "json":
        print(json.dumps({"ok": True, "diagnostics": [w.to_json() for w in warnings],
                          "inputs": {k: str(v) for k, v in graph.inputs.items()},
                          "outputs": {o.name: str(o.value.type) for o in graph.outputs},
                          "checked_when_called": [{"node": path, "condition": req.condition, "code": req.code}
                                                  for path, req in conditions]}, indent=2))
        return
    if warnings:
        print_warnings(graph)
    ins = ", ".join(f"{k} {v}" for k, v in graph.inputs.items())
    outs = ", ".join(f"{o.name} {o.value.type}" + (" (train only)" if o.train_only else "") for o in graph.outputs)
    out.print(f"{spec}: ok — {len(graph) - len(graph.inputs)} nodes; in: {ins}; out: {outs}", markup=False)
    if conditions:
        shown = "; ".join(f"{req.condition} ({path})" for path, req in conditions[:8])
        more = f"; and {len(conditions) - 8} more" if len(conditions) > 8 else ""
        out.print(f"  checked when the model is called: {shown}{more}", markup=False)
