"""`make run`: the main job on the built-in specs — check every spec in specs/, print one
summary line per spec and the full per-node summary of GoogLeNet."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import api
from .errors import SpecError
from .summarize import _macs

SPEC_DIR = Path("specs")
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
    from .cli import print_summary

    console.print()
    print_summary(api.summary(SPEC_DIR / "googlenet.yaml"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
