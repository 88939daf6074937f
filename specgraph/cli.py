"""The `specgraph` command line (typer + rich).

Exit codes: 0 success, 1 the spec has errors (printed compiler-style), 2 usage error.
A Python traceback reaching the user is a bug: unexpected exceptions are reported as an
internal error with a request to file it, and exit 3.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from .bind import parse_override
from .errors import SpecError
from .limits import DEFAULT_LIMITS, Limits

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Compile YAML graph specs of neural networks: check, summarize, build, render.")
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True, highlight=False, soft_wrap=True)

SetOpt = typer.Option(None, "--set", "-s", help="override a spec param: KEY=VALUE (VALUE read as YAML)")
LimitOpt = typer.Option(None, "--limit", help="raise a resource limit: NAME=VALUE (see docs/errors.md)")
IncludeRootOpt = typer.Option(None, "--include-root", help="folder that includes may reach (default: the spec's folder)")


def _overrides(items: Optional[List[str]]) -> dict[str, Any]:
    values = {}
    for item in items or []:
        try:
            key, value = parse_override(item)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--set") from e
        values[key] = value
    return values


def _limits(items: Optional[List[str]]) -> Limits:
    changes = {}
    for item in items or []:
        key, _, raw = item.partition("=")
        try:
            changes[key.strip()] = int(raw)
        except ValueError as e:
            raise typer.BadParameter(f"expected NAME=INTEGER, found {item!r}", param_hint="--limit") from e
    try:
        return DEFAULT_LIMITS.with_overrides(**changes)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--limit") from e


def _run(action: Callable[[], Any], json_errors: bool = False) -> Any:
    """Run a command body, turning SpecError into exit code 1 and any other exception into 3."""
    try:
        return action()
    except SpecError as e:
        if json_errors:
            print(json.dumps({"ok": False, "diagnostics": [d.to_json() for d in e.diagnostics]}, indent=2))
        else:
            err.print(e.format(), markup=False)
            n = len(e.errors)
            err.print(f"{n} error{'s' if n != 1 else ''}", markup=False)
        raise typer.Exit(1)
    except (typer.Exit, typer.Abort, typer.BadParameter, KeyboardInterrupt):
        raise
    except RecursionError:
        err.print("error[E605]: the spec nests too deeply to process", markup=False)
        raise typer.Exit(1)
    except MemoryError:
        err.print("error[E605]: the spec needs more memory than is available", markup=False)
        raise typer.Exit(1)
    except Exception as e:  # a bug in specgraph, not in the spec
        err.print(f"internal error: {type(e).__name__}: {e}\nplease report this with the spec that caused it",
                  markup=False)
        raise typer.Exit(3)


def _check(spec: Path | str, sets, limits, include_root: Optional[Path] = None):
    from . import api

    loaded = api.load(str(spec), limits=_limits(limits), include_root=str(include_root) if include_root else None)
    return api.check(loaded, **_overrides(sets))


def _print_warnings(graph) -> None:
    for w in graph.warnings:
        err.print(w.format(), markup=False)


@app.command()
def check(spec: Path = typer.Argument(..., help="the spec file"),
          set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt,
          include_root: Optional[Path] = IncludeRootOpt,
          format: str = typer.Option("text", "--format", help="text | json")):
    """Validate and shape-check a spec. Exit 0 when it is correct, 1 when it has errors."""
    if format not in ("text", "json"):
        raise typer.BadParameter("expected text or json", param_hint="--format")
    graph = _run(lambda: _check(spec, set_, limit, include_root), json_errors=format == "json")
    if format == "json":
        print(json.dumps({"ok": True, "diagnostics": [w.to_json() for w in graph.warnings],
                          "inputs": {k: str(v) for k, v in graph.inputs.items()},
                          "outputs": {o.name: str(o.value.type) for o in graph.outputs}}, indent=2))
        return
    _print_warnings(graph)
    ins = ", ".join(f"{k} {v}" for k, v in graph.inputs.items())
    outs = ", ".join(f"{o.name} {o.value.type}" + (" (train only)" if o.train_only else "") for o in graph.outputs)
    out.print(f"{spec}: ok — {len(graph) - len(graph.inputs)} nodes; in: {ins}; out: {outs}", markup=False)


@app.command()
def summary(spec: Path = typer.Argument(..., help="the spec file"),
            set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt):
    """Table of every node: path, op, output shape, parameters, MACs; with totals."""
    from .summarize import summarize

    graph = _run(lambda: _check(spec, set_, limit))
    s = summarize(graph)
    print_summary(s)


def print_summary(s) -> None:
    from .summarize import _macs

    table = Table(title=s.name, show_lines=False, title_justify="left")
    for col, just in (("node", "left"), ("op", "left"), ("output shape", "left"), ("params", "right"), ("MACs", "right")):
        table.add_column(col, justify=just)
    for r in s.rows:
        table.add_row(r.path, r.op, r.output, f"{r.params:,}" if r.params else "", _macs(r.macs))
    table.add_section()
    table.add_row("total", "", ", ".join(s.outputs.values()), f"{s.total_params:,}", _macs(s.total_macs))
    out.print(table)


@app.command()
def build(spec: Path = typer.Argument(..., help="the spec file"),
          set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt,
          code: bool = typer.Option(False, "--code", help="print the generated forward()"),
          save: Optional[Path] = typer.Option(None, "--save", help="save the initialised state_dict here")):
    """Build the torch module; print its generated code or save its state_dict."""
    graph = _run(lambda: _check(spec, set_, limit))

    def make():
        from .builder import build_module

        return build_module(graph)

    model = _run(make)
    if code:
        out.print(model.code, markup=False)
    if save:
        import torch

        torch.save(model.state_dict(), save)
        out.print(f"saved state_dict to {save}", markup=False)
    if not code and not save:
        n = sum(p.numel() for p in model.parameters())
        out.print(f"{spec}: built {type(model).__name__} with {n:,} parameters", markup=False)


@app.command()
def ops():
    """List the available ops with their params."""
    from .ops import all_ops

    table = Table(show_lines=False)
    table.add_column("op")
    table.add_column("category")
    table.add_column("params")
    for name, op in sorted(all_ops().items()):
        fields = []
        for fname, f in op.Params.model_fields.items():
            fields.append(fname if f.is_required() else f"{fname}={f.default!r}")
        table.add_row(name, op.category, ", ".join(fields))
    out.print(table)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit:
        raise
    except Exception as e:  # pragma: no cover - last resort, see _run
        print(f"internal error: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":  # pragma: no cover
    main()
