"""``specgraph check``: validate and shape-check specs — one, or many files and globs (CI, pre-commit)."""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..diagnostics import SpecError
from .app import (STDIN, IncludeRootOpt, LimitOpt, OutputFormat, SetOpt, TextOpt, app, err, guarded, load_spec, one_of, out,
                  overrides, print_warnings)

_GLOB = set("*?[")


def spec_arguments(specs: List[str], text: bool) -> tuple[list[str], list[str]]:
    """(the specs to check, the patterns that matched no file): each argument that is not an
    existing file and holds * ? [ is a glob (** reaches subfolders), expanded in sorted order."""
    found, unmatched = [], []
    for spec in specs:
        if text or spec == "-" or "\n" in spec or Path(spec).exists() or not _GLOB & set(spec):
            found.append(spec)
            continue
        matches = sorted(m for m in glob.glob(spec, recursive=True) if not Path(m).is_dir())
        found += matches
        if not matches:
            unmatched.append(spec)
    return list(dict.fromkeys(found)), unmatched


def check_report(spec: str, loaded, sets, no_warn: bool = False) -> dict[str, Any]:
    """The report of one spec (raises SpecError): its inputs, outputs, warnings (none with
    ``no_warn``) and the conditions on symbolic sizes that only the input decides (checked by the
    built model's input check); or, for a block library (blocks and no graph), its blocks: they
    are checked where a spec uses them."""
    from .. import api

    doc = loaded.doc
    if not doc.graph and doc.blocks:
        return {"ok": True, "library": True, "blocks": list(doc.blocks), "diagnostics": []}
    graph = api.check(loaded, **overrides(sets))
    warnings = () if no_warn else graph.warnings
    return {"ok": True, "graph": graph, "diagnostics": [w.to_json() for w in warnings],
            "inputs": {k: str(v) for k, v in graph.inputs.items()},
            "outputs": {o.name: str(o.value.type) for o in graph.outputs},
            "checked_when_called": [{"node": node.path, "condition": req.condition, "code": req.code}
                                    for node, req in graph.requirements()]}


@app.command()
def check(specs: List[str] = typer.Argument(..., metavar="SPEC...",
                                            help="spec files (any suffix) or globs ('specs/**/*.yaml'); '-' reads "
                                                 "the YAML from stdin"),
          set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt,
          include_root: Optional[Path] = IncludeRootOpt, text: bool = TextOpt,
          format: OutputFormat = typer.Option("text", "--format", help="how to print the results",
                                              parser=one_of(OutputFormat, "--format", "expected text or json")),
          no_warn: bool = typer.Option(False, "--no-warn", help="do not show warnings (W-codes: unused inputs, "
                                                                 "params and `let` values, nodes that reach no output)")):
    """Validate and shape-check specs. Exit 0 when every one is correct (warnings or not), 1 when
    one has errors, 2 when a glob matches no file: the worst of them, for CI and pre-commit.

    A block library (a file of blocks without a graph) is read and validated; its blocks are
    shape-checked where a spec uses them."""
    files, unmatched = spec_arguments(specs, text)
    as_json = format == "json"
    reports: list[dict[str, Any]] = []
    worst = 2 if unmatched else 0
    for pattern in unmatched:
        err.print(f"error: no file matches {pattern!r}", markup=False)
    for spec in files:
        shown = "<text>" if text else STDIN if spec == "-" else spec
        failed: list[SpecError] = []
        try:
            report = guarded(lambda: check_report(spec, load_spec(spec, limit, include_root, text), set_, no_warn),
                             report=failed.append if as_json else None)
        except typer.Exit as e:
            worst = max(worst, e.exit_code)
            reports.append({"file": shown, "ok": False,
                            "diagnostics": [d.to_json() for e in failed for d in e.diagnostics]})
            continue
        graph = report.pop("graph", None)
        reports.append({"file": shown, **report})
        if as_json:
            continue
        if report.get("library"):
            out.print(f"{shown}: ok — a block library of {len(report['blocks'])} blocks "
                      f"({', '.join(report['blocks'])}); each is checked where a spec uses it", markup=False)
            continue
        if report["diagnostics"]:
            print_warnings(graph)
        ins = ", ".join(f"{k} {v}" for k, v in graph.inputs.items())
        outs = ", ".join(f"{o.name} {o.value.type}" + (" (train only)" if o.train_only else "") for o in graph.outputs)
        out.print(f"{shown}: ok — {len(graph) - len(graph.inputs)} nodes; in: {ins}; out: {outs}", markup=False)
        conditions = report["checked_when_called"]
        if conditions:
            listed = "; ".join(f"{c['condition']} ({c['node']})" for c in conditions[:8])
            more = f"; and {len(conditions) - 8} more" if len(conditions) > 8 else ""
            out.print(f"  checked when the model is called: {listed}{more}", markup=False)
    if as_json:
        if len(specs) == 1 and len(reports) == 1 and not unmatched:  # one spec: its report, as it always was
            report = reports[0]
            report.pop("file")
            print(json.dumps(report, indent=2))
        else:
            print(json.dumps({"ok": worst == 0, "files": reports, "unmatched": unmatched}, indent=2))
    elif len(files) > 1:
        bad = sum(1 for r in reports if not r["ok"])
        out.print(f"{len(files)} specs: {len(files) - bad} ok, {bad} with errors", markup=False)
    if worst:
        raise typer.Exit(worst)
