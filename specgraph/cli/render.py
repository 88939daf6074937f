"""``specgraph render`` (one spec as a Graphviz diagram) and ``specgraph render-all`` (``make render``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Literal, Optional

import typer

from ..diagnostics import SpecError
from .app import LimitOpt, SetOpt, SpecArg, TextOpt, app, err, error_count, guarded, load_spec, one_of, out, overrides
from .paths import writable_file, writable_folder, write_failed

RankDir = Literal["TB", "LR", "BT", "RL"]


@app.command()
def render(spec: str = SpecArg,
           output: Optional[Path] = typer.Option(None, "-o", "--output",
                                                 help="file to write (default: <spec name>.<format>; '-' for stdout)"),
           format: Optional[str] = typer.Option(None, "--format", "-f",
                                                help="svg | png | pdf | dot | html (default: from -o, else svg); "
                                                     "html: the interactive viewer, one self-contained file"),
           depth: Optional[int] = typer.Option(None, "--depth", help="levels of nested blocks drawn open; deeper ones become one node"),
           collapse: Optional[List[str]] = typer.Option(None, "--collapse", help="draw this block or seq as one node (repeatable)"),
           only: Optional[str] = typer.Option(None, "--only", help="draw only this block, seq or node"),
           rankdir: RankDir = typer.Option("TB", "--rankdir", help="TB (top to bottom) | LR (left to right)",
                                           parser=one_of(RankDir, "--rankdir", "expected TB or LR, found {found!r}",
                                                         case_sensitive=False)),
           no_shapes: bool = typer.Option(False, "--no-shapes", help="leave the tensor shapes off the edges"),
           rolled: bool = typer.Option(False, "--rolled", help="draw a run of identical blocks once, marked ×N"),
           set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt, text: bool = TextOpt):
    """Draw the spec: a Graphviz diagram (clusters per block, a shape on every edge), or with
    -o NAME.html the interactive viewer (pan, zoom, open blocks, search, a panel per node).

    A spec with errors is drawn up to the failure, failing nodes in red; exit code 1.
    """
    from ..render.dot import render_partial
    import graphviz

    from ..render.files import FORMATS, GraphvizMissing, layout
    from ..render.fit import LIMITS, fit
    from ..render.view import RenderOptionError

    # checked here, not as a choice of --format: the format may come from -o's suffix too
    fmt = format or (output.suffix.lstrip(".").lower() if output is not None and output.suffix else "svg")
    if fmt not in FORMATS + ("html",):
        raise typer.BadParameter(f"expected one of {', '.join(FORMATS + ('html',))}, found {fmt!r}",
                                 param_hint="--format")
    if output is not None and str(output) != "-":  # a path that cannot be written: said before the work
        guarded(lambda: writable_file(output, "-o"))
    loaded = guarded(lambda: load_spec(spec, limit, text=text).with_params(**overrides(set_)))
    if output is None:  # the default name, known now
        guarded(lambda: writable_file(Path(f"{loaded.name}.{fmt}"), "-o"))
    if fmt == "html":
        static = [name for name, given in (("--depth", depth is not None), ("--collapse", collapse),
                                           ("--only", only), ("--rolled", rolled), ("--no-shapes", no_shapes),
                                           ("--rankdir", rankdir != "TB")) if given]
        if static:
            raise typer.BadParameter(f"{', '.join(static)} draw static diagrams; the HTML viewer opens and closes "
                                     "blocks itself (and shows every shape)", param_hint=static[0])
        from ..expand.partial import expand_partial
        from ..render.html import viewer_html

        partial = guarded(lambda: expand_partial(loaded))
        _write(guarded(lambda: viewer_html(partial, loaded)).encode("utf-8"), output, loaded.name, fmt)
        _report(partial)
        return

    def draw(at_depth=depth):
        try:
            return render_partial(loaded, depth=at_depth, collapse=collapse or (), only=only, rankdir=rankdir,
                                  shapes=not no_shapes, rolled=rolled)
        except RenderOptionError as e:  # a path the graph does not have: a usage error
            raise typer.BadParameter(str(e)) from e

    dot, partial = guarded(draw)
    try:  # not inside guarded(), where a missing Graphviz would count as an internal error
        if depth is None and fmt in LIMITS:  # too large for a bitmap or a PDF page: a depth that fits
            fitted = fit(lambda d: draw(d)[0], partial.graph, fmt)
            dot = fitted.dot
            if fitted.note:
                err.print(fitted.note, markup=False)
        data = layout(dot, fmt)
    except (GraphvizMissing, graphviz.ExecutableNotFound) as e:
        err.print(f"error: {e if isinstance(e, GraphvizMissing) else GraphvizMissing(fmt)}", markup=False)
        raise typer.Exit(1)
    _write(data, output, loaded.name, fmt)
    _report(partial)


def _write(data: bytes, output: Optional[Path], name: str, fmt: str) -> None:
    if output is not None and str(output) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        target = output or Path(f"{name}.{fmt}")

        def write():
            try:
                target.write_bytes(data)
            except OSError as e:
                raise write_failed(e, target, "-o") from None

        guarded(write)
        out.print(f"wrote {target}", markup=False)


def _report(partial) -> None:
    """A spec that failed checking was drawn up to the failure: say why, exit 1."""
    if not partial.ok:
        e = SpecError(partial.diagnostics)
        err.print(e.format(), markup=False)
        err.print(f"{error_count(len(e.errors))} (drawn in red)", markup=False)
        raise typer.Exit(1)


@app.command("render-all")
def render_all(spec_dir: Path = typer.Argument(Path("specs"), help="folder of specs (subfolders too, except lib/)"),
               out_dir: Path = typer.Argument(Path("render"), help="folder for the SVGs"),
               check: bool = typer.Option(False, "--check", help="write nothing; exit 1 when a diagram is stale or missing")):
    """Render every spec to OUT_DIR/<name>.svg, and its interactive viewer to OUT_DIR/<name>.html
    (what `make render` runs; --check compares the SVGs only: the pages are not versioned)."""
    from ..render.files import GraphvizMissing, render_all as run_all, stale

    if not check:
        guarded(lambda: writable_folder(out_dir, "OUT_DIR"))

    def go():
        try:
            return run_all(spec_dir, out_dir, check=check)
        except GraphvizMissing as e:  # not an internal error: say how to install it
            err.print(f"error: {e}", markup=False)
            raise typer.Exit(1)

    outcomes = guarded(go)
    for o in outcomes:
        shown = o.path if o.status in ("written", "stale", "missing", "removed") else o.target.spec
        if o.status != "unchanged" or o.detail:
            out.print(f"{o.status:>9}  {shown}" + (f"  ({o.detail})" if o.detail else ""), markup=False)
    bad = stale(outcomes)
    if check and bad:
        err.print(f"{len(bad)} diagram(s) in {out_dir} out of date: run `make render`", markup=False)
        raise typer.Exit(1)
    if check:
        out.print(f"{out_dir}: up to date", markup=False)

