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

from ..lang.params import parse_override
from ..diagnostics import SpecError
from ..lang.limits import DEFAULT_LIMITS, Limits

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


def _dims(items: Optional[List[str]], minimum: int) -> dict[str, int]:
    """``--dim NAME=INT`` options as {name: size}, each size at least ``minimum``."""
    dims = {}
    for item in items or []:
        key, _, raw = item.partition("=")
        if not key.strip().isidentifier() or not raw.strip().isdigit() or int(raw) < minimum:
            raise typer.BadParameter(f"expected NAME=INTEGER of at least {minimum}, found {item!r}", param_hint="--dim")
        dims[key.strip()] = int(raw)
    return dims


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
    from .. import api

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
            set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt,
            batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1,
                                                     help="batch size (the dim N) for the memory columns [default: 1]"),
            dim: Optional[List[str]] = typer.Option(None, "--dim", help="size of another symbolic dim: NAME=INT (repeatable)"),
            format: str = typer.Option("text", "--format", help="text | json")):
    """Table of every node: path, op, output shape, parameters, MACs, parameter and activation
    bytes; with totals and the predicted inference peak memory (see specgraph/analysis/memory/)."""
    from ..analysis.memory.walk import SizeError
    from ..analysis.summary import summarize

    if format not in ("text", "json"):
        raise typer.BadParameter("expected text or json", param_hint="--format")
    dims = _dims(dim, minimum=1)
    if batch_size is not None and dims.get("N", batch_size) != batch_size:
        raise typer.BadParameter(f"--dim N={dims['N']} contradicts --batch-size {batch_size}", param_hint="--dim")
    graph = _run(lambda: _check(spec, set_, limit), json_errors=format == "json")

    def go():
        try:
            return summarize(graph, batch_size, dims)
        except SizeError as e:  # sizes that do not fit the spec: a usage error
            raise typer.BadParameter(str(e), param_hint="--batch-size / --dim") from e

    s = _run(go)
    if format == "json":
        print(json.dumps(s.to_json(), indent=2))
        return
    print_summary(s)


def print_summary(s) -> None:
    table = Table(title=s.name, show_lines=False, title_justify="left")
    for i, col in enumerate(s.columns()):
        table.add_column(col, justify="right" if i >= 3 else "left")
    for r in s.rows:
        table.add_row(*s.cells(r))
    table.add_section()
    foot = list(s.total_cells())
    foot[2] = ", ".join(s.outputs.values())
    table.add_row(*foot)
    out.print(table)
    for line in s.memory_lines():
        out.print(line, markup=False)


@app.command()
def build(spec: Path = typer.Argument(..., help="the spec file"),
          set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt,
          code: bool = typer.Option(False, "--code", help="print the generated forward()"),
          save: Optional[Path] = typer.Option(None, "--save", help="save the initialised state_dict here"),
          optimize: Optional[str] = typer.Option(None, "--optimize", help="inference: fold batch norm, drop dropout, "
                                                 "channels_last (eval only; see specgraph/torch/passes/)")):
    """Build the torch module; print its generated code or save its state_dict."""
    if optimize is not None and optimize != "inference":
        raise typer.BadParameter(f"expected inference, found {optimize!r}", param_hint="--optimize")
    graph = _run(lambda: _check(spec, set_, limit))

    def make():
        from ..torch.build import build_module

        if optimize:
            from ..torch.passes.optimize import optimize as run_passes

            return run_passes(build_module(graph), optimize, graph=graph)
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
    from ..ops import all_ops

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


@app.command()
def render(spec: Path = typer.Argument(..., help="the spec file"),
           output: Optional[Path] = typer.Option(None, "-o", "--output",
                                                 help="file to write (default: <spec name>.<format>; '-' for stdout)"),
           format: Optional[str] = typer.Option(None, "--format", "-f", help="svg | png | pdf | dot (default: from -o, else svg)"),
           depth: Optional[int] = typer.Option(None, "--depth", help="levels of nested blocks drawn open; deeper ones become one node"),
           collapse: Optional[List[str]] = typer.Option(None, "--collapse", help="draw this block or seq as one node (repeatable)"),
           only: Optional[str] = typer.Option(None, "--only", help="draw only this block, seq or node"),
           rankdir: str = typer.Option("TB", "--rankdir", help="TB (top to bottom) | LR (left to right)"),
           no_shapes: bool = typer.Option(False, "--no-shapes", help="leave the tensor shapes off the edges"),
           rolled: bool = typer.Option(False, "--rolled", help="draw a run of identical blocks once, marked ×N"),
           set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt):
    """Draw the spec as a Graphviz diagram: clusters per block, a shape on every edge.

    A spec with errors is drawn up to the failure, failing nodes in red; exit code 1.
    """
    from .. import api
    from ..render.dot import render_partial
    from ..render.files import FORMATS, GraphvizMissing, layout
    from ..render.view import RenderOptionError

    fmt = format or (output.suffix.lstrip(".").lower() if output is not None and output.suffix else "svg")
    if fmt not in FORMATS:
        raise typer.BadParameter(f"expected one of {', '.join(FORMATS)}, found {fmt!r}", param_hint="--format")
    if rankdir.upper() not in ("TB", "LR", "BT", "RL"):
        raise typer.BadParameter(f"expected TB or LR, found {rankdir!r}", param_hint="--rankdir")
    loaded = _run(lambda: api.load(str(spec), limits=_limits(limit)).with_params(**_overrides(set_)))

    def draw():
        try:
            return render_partial(loaded, depth=depth, collapse=collapse or (), only=only, rankdir=rankdir.upper(),
                                  shapes=not no_shapes, rolled=rolled)
        except RenderOptionError as e:  # a path the graph does not have: a usage error
            raise typer.BadParameter(str(e)) from e

    dot, partial = _run(draw)
    try:  # not inside _run, where a missing Graphviz would count as an internal error
        data = layout(dot, fmt)
    except GraphvizMissing as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(1)
    if output is not None and str(output) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        target = output or Path(f"{loaded.name}.{fmt}")
        target.write_bytes(data)
        out.print(f"wrote {target}", markup=False)
    if not partial.ok:
        e = SpecError(partial.diagnostics)
        err.print(e.format(), markup=False)
        err.print(f"{len(e.errors)} error{'s' if len(e.errors) != 1 else ''} (drawn in red)", markup=False)
        raise typer.Exit(1)


@app.command("render-all")
def render_all(spec_dir: Path = typer.Argument(Path("specs"), help="folder of specs (subfolders too, except lib/)"),
               out_dir: Path = typer.Argument(Path("render"), help="folder for the SVGs"),
               check: bool = typer.Option(False, "--check", help="write nothing; exit 1 when a diagram is stale or missing")):
    """Render every spec to OUT_DIR/<name>.svg (what `make render` runs)."""
    from ..render.files import GraphvizMissing, render_all as run_all, stale

    def go():
        try:
            return run_all(spec_dir, out_dir, check=check)
        except GraphvizMissing as e:  # not an internal error: say how to install it
            err.print(f"error: {e}", markup=False)
            raise typer.Exit(1)

    outcomes = _run(go)
    for o in outcomes:
        shown = o.target.svg if o.status in ("written", "stale", "missing", "removed") else o.target.spec
        if o.status != "unchanged" or o.detail:
            out.print(f"{o.status:>9}  {shown}" + (f"  ({o.detail})" if o.detail else ""), markup=False)
    bad = stale(outcomes)
    if check and bad:
        err.print(f"{len(bad)} diagram(s) in {out_dir} out of date: run `make render`", markup=False)
        raise typer.Exit(1)
    if check:
        out.print(f"{out_dir}: up to date", markup=False)


@app.command()
def schema(output: Optional[Path] = typer.Option(None, "-o", "--output", help="file to write (default: stdout)")):
    """Print the JSON Schema of the spec language (ops included), for editors' completion and validation.

    docs/specgraph.schema.json is this output; a spec's first line
    `# yaml-language-server: $schema=<path to it>` enables it in VS Code's YAML extension.
    """
    from ..api import schema_text

    text = _run(schema_text)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.print(f"wrote {output}", markup=False)


@app.command()
def train(spec: Path = typer.Argument(..., help="the spec file"),
          data: Optional[str] = typer.Option(None, "--data", "-d", help="dataset: fashion-mnist, digits, imagefolder:PATH, sunspots, co2, csv:PATH, lee, text:PATH, nuclei, segfolder:PATH"),
          data_option: Optional[List[str]] = typer.Option(
              None, "--data-option", "-D", metavar="KEY=VALUE",
              help="an option of the dataset's loader (repeatable; the value is read as YAML: 5, 0.001, true, "
                   "0.8,0.1,0.1). lee, text: min_count, subsample, window (word2vec), seq_len (LM), split; "
                   "sunspots, co2, csv: window, horizon, split; nuclei, segfolder: size, stride, split; "
                   "digits, imagefolder: split. See docs/training.md"),
          config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file of training settings"),
          epochs: Optional[int] = typer.Option(None, "--epochs"),
          batch_size: Optional[int] = typer.Option(None, "--batch-size"),
          lr: Optional[float] = typer.Option(None, "--lr"),
          optimizer: Optional[str] = typer.Option(None, "--optimizer", help="sgd | adam | adamw"),
          weight_decay: Optional[float] = typer.Option(None, "--weight-decay"),
          early_stop: Optional[int] = typer.Option(None, "--early-stop", help="patience: validation checks without improvement"),
          monitor: Optional[str] = typer.Option(None, "--monitor", help="metric for early stopping and the best checkpoint (val_loss)"),
          grad_clip: Optional[float] = typer.Option(None, "--grad-clip", help="clip the gradient norm to this"),
          precision: Optional[str] = typer.Option(None, "--precision", help="32 | bf16-mixed | 16-mixed"),
          accelerator: Optional[str] = typer.Option(None, "--accelerator", help="cpu | gpu | auto"),
          devices: Optional[str] = typer.Option(None, "--devices", help="devices per node (a number, or auto)"),
          num_nodes: Optional[int] = typer.Option(None, "--num-nodes"),
          strategy: Optional[str] = typer.Option(None, "--strategy", help="auto | ddp | fsdp"),
          init_from: Optional[Path] = typer.Option(None, "--init-from", help="checkpoint or state_dict to start from (partial, by name)"),
          freeze: Optional[List[str]] = typer.Option(None, "--freeze", help="glob of parameter/module names to freeze (repeatable)"),
          augment: Optional[List[str]] = typer.Option(None, "--augment", help="flip, vflip, crop[:PAD], rotation[:DEG], brightness[:F], contrast[:F] (repeatable)"),
          out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="run folder (default runs/<spec name>)"),
          resume: bool = typer.Option(False, "--resume", help="continue from the run folder's last.ckpt"),
          seed: Optional[int] = typer.Option(None, "--seed"),
          workers: Optional[int] = typer.Option(None, "--workers", help="DataLoader worker processes"),
          threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch (1 is fastest on a busy machine)"),
          no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
          set_: Optional[List[str]] = SetOpt):
    """Train the spec on a dataset with Lightning: checkpoints, early stopping, metrics, curves."""
    data_options = {}
    for item in data_option or []:
        try:
            key, value = parse_override(item)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--data-option") from e
        data_options[key] = value
    settings = dict(data_options=data_options or None, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                    early_stop=early_stop, monitor=monitor, grad_clip=grad_clip, precision=precision,
                    accelerator=accelerator, num_nodes=num_nodes, strategy=strategy,
                    init_from=str(init_from) if init_from else None, freeze=freeze or None, augment=augment or None,
                    out=str(out_dir) if out_dir else None, resume=True if resume else None, seed=seed, workers=workers,
                    threads=threads,
                    progress=False if no_progress else None,
                    devices=(int(devices) if devices and devices.isdigit() else devices))
    params = _overrides(set_)

    def go():
        from ..train import train as run

        return run(str(spec), data, config=str(config) if config else None, params=params, **settings)

    _run(go)


@app.command()
def export(spec: Path = typer.Argument(..., help="the spec file"),
           onnx: Optional[Path] = typer.Option(None, "--onnx", help="write ONNX here (run in onnxruntime & co.)"),
           torchscript: Optional[Path] = typer.Option(None, "--torchscript", help="write TorchScript here (torch.jit.load)"),
           exported: Optional[Path] = typer.Option(None, "--exported", help="write a torch.export program here (.pt2)"),
           python: Optional[Path] = typer.Option(None, "--python", help="write a standalone nn.Module source file here"),
           optimize: Optional[str] = typer.Option(None, "--optimize", help="inference: run the graph passes first"),
           dim: Optional[List[str]] = typer.Option(None, "--dim", help="size of a symbolic dim in the example inputs: "
                                                   "NAME=INT, at least 2 (torch.export fixes dims traced at 0 or 1)"),
           set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt):
    """Export the spec's model (eval mode) to ONNX, TorchScript, a .pt2 program and/or Python source."""
    if not any((onnx, torchscript, exported, python)):
        raise typer.BadParameter("give at least one of --onnx, --torchscript, --exported, --python")
    if optimize is not None and optimize != "inference":
        raise typer.BadParameter(f"expected inference, found {optimize!r}", param_hint="--optimize")
    dims = _dims(dim, minimum=2)  # torch.export fixes dims traced at 0 or 1
    graph = _run(lambda: _check(spec, set_, limit))
    _print_warnings(graph)

    def go():
        from ..torch.export.formats import ExportError, export as run_export

        try:
            return run_export(graph, onnx=onnx, torchscript=torchscript, exported=exported, python=python,
                              optimize=optimize, dims=dims, source=str(spec))
        except ExportError as e:  # a model the format cannot hold: the spec's limit, not a bug
            err.print(f"error: {e}", markup=False)
            raise typer.Exit(1)

    for fmt, path in _run(go).items():
        out.print(f"wrote {path} ({fmt})", markup=False)


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
