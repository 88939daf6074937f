"""`make run`: the main job on the built-in specs — check every spec in specs/ (one summary
line each), render their diagrams into render/, print the full per-node summary of GoogLeNet,
then train LeNet-5 on Fashion-MNIST for 2 epochs and print its test accuracy."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from specgraph import api
from specgraph.diagnostics import SpecError
from specgraph.analysis.summary import _macs

SPEC_DIR = Path("specs")
RENDER_DIR = Path("render")
TRAIN_RUN = dict(data="fashion-mnist", epochs=2, batch_size=64, lr=2e-3, threads=1, out="runs/lenet5-fashion-mnist")
console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)


def spec_paths(root: Path = SPEC_DIR) -> list[Path]:
    """Buildable specs: everything under specs/ except the block libraries in specs/lib/."""
    return sorted(p for p in root.rglob("*.yaml") if "lib" not in p.relative_to(root).parts)


def main() -> int:
    table = Table(title="specgraph: every spec in specs/, checked", title_justify="left")
    for col in ("spec", "nodes", "inputs", "outputs", "params", "MACs", "check"):
        table.add_column(col, justify="right" if col in ("nodes", "params", "MACs", "check") else "left")
    failures = 0
    for path in spec_paths():
        t0 = time.perf_counter()
        try:
            graph = api.check(path)
        except SpecError as e:
            failures += 1
            console.print(e.format(), markup=False)
            table.add_row(str(path), "", "", "", "", "", "[red]error[/red]")
            continue
        ms = (time.perf_counter() - t0) * 1e3
        s = api.summary(graph)
        ins = ", ".join(f"{k} {v}" for k, v in s.inputs.items())
        outs = ", ".join(f"{k} {v}" for k, v in s.outputs.items())
        table.add_row(str(path.relative_to(SPEC_DIR)), str(len(s.rows)), ins, outs, f"{s.total_params:,}",
                      _macs(s.total_macs), f"{ms:.0f} ms")
    console.print(table)
    render_diagrams()
    from specgraph.cli.app import print_summary

    console.print()
    print_summary(api.summary(SPEC_DIR / "googlenet.yaml"))
    console.print()
    return 1 if failures or not train_lenet5() else 0


def render_diagrams() -> None:
    """`specgraph render-all specs render`: rewrite the diagrams whose spec changed."""
    from specgraph.render.files import GraphvizMissing, render_all

    try:
        outcomes = render_all(SPEC_DIR, RENDER_DIR)
    except GraphvizMissing as e:
        console.print(f"render: skipped ({e})", markup=False)
        return
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    console.print(f"{RENDER_DIR}/: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())), markup=False)


def train_lenet5() -> bool:
    """LeNet-5 on Fashion-MNIST (the Debian package's IDX files), with the progress bar."""
    from specgraph.train.runner import train

    settings = dict(TRAIN_RUN)
    data = settings.pop("data")
    try:
        result = train(SPEC_DIR / "lenet5.yaml", data, **settings)
    except SpecError as e:
        console.print(e.format(), markup=False)
        return False
    console.print(f"lenet5 on Fashion-MNIST: test accuracy {result.test.get('acc', float('nan')):.2%} "
                  f"after {result.epochs} epochs (run folder: {result.run_dir})", markup=False)
    return True


if __name__ == "__main__":
    sys.exit(main())
