"""Run every benchmark module and rewrite BENCHMARKS.md (``make bench``).

Discovers ``benchmarks/bench_*.py`` (sorted by name); each module exposes
``run(cfg: timing.Config) -> list[timing.Section]``, where a Section is a title, a markdown
table and notes.  Progress goes to stderr; the sections are written to BENCHMARKS.md under
a header describing the machine (CPU model, cores, load, torch version, date).

    .venv/bin/python benchmarks/run.py                 # all modules, rewrite BENCHMARKS.md
    .venv/bin/python benchmarks/run.py --only core     # just bench_core.py
    .venv/bin/python benchmarks/run.py --quick --no-write   # smoke run, print only
    .venv/bin/python benchmarks/run.py --scale 2       # twice the default repeats

A module that raises does not stop the others: its error is recorded as a section and the
exit status is 1.  Speed is always reported as a ratio against a reference timed in the
same run (see timing.py); never put timed assertions in tests.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

from timing import Config, Section  # noqa: E402


def discover(only: list[str] | None = None) -> list[str]:
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if only:
        wanted = {o if o.startswith("bench_") else "bench_" + o for o in only}
        unknown = wanted - set(names)
        if unknown:
            raise SystemExit(f"unknown benchmark module(s): {', '.join(sorted(unknown))}; have {', '.join(names)}")
        names = [n for n in names if n in wanted]
    return names


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_counts() -> str:
    logical = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = logical
    return f"{logical} logical" + (f" ({usable} usable by this process)" if usable != logical else "")


def load_average() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_header(load_before: str, load_after: str, elapsed: float, modules: list[str], cfg: Config) -> str:
    import torch

    try:
        import torchvision
        tv = torchvision.__version__
    except ImportError:
        tv = "not installed"
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    mode = "quick smoke run (numbers not meaningful)" if cfg.quick else (
        f"default repeats × {cfg.scale:g}" if cfg.scale != 1 else "default repeats")
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`.venv/bin/python benchmarks/run.py`); do not edit by hand — rerun it. "
        "Speed is measured as **ratios against a reference timed in the same run** (medians of interleaved "
        "repeats, see `benchmarks/timing.py`), never as timed assertions in tests. Absolute times depend on "
        "the machine and its load; compare ratios, not seconds, between runs.",
        "",
        "| machine | |",
        "| :--- | :--- |",
        f"| CPU | {cpu_model()} ({platform.machine()}) |",
        f"| cores | {cpu_counts()}; torch threads for model timings: 2 (`torch.set_num_threads(2)`) |",
        f"| load average (1/5/15 min) | before {load_before}, after {load_after} |",
        f"| python | {platform.python_version()} |",
        f"| torch | {torch.__version__} (CPU) |",
        f"| torchvision | {tv} |",
        f"| date | {now} |",
        f"| run | {', '.join(m + '.py' for m in modules)}; {mode}; {elapsed:.0f} s in all |",
        "",
        "A load average well above the core count means other processes shared the CPU during the run: the "
        "interleaving keeps the ratios fair, but their spread (and the absolute times) grow.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these modules (core or bench_core)")
    ap.add_argument("--quick", action="store_true", help="smoke run with minimal repeats (implies --no-write)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the default repeat counts")
    ap.add_argument("--no-write", action="store_true", help="print the report instead of writing BENCHMARKS.md")
    ap.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md", help="where to write the report")
    args = ap.parse_args(argv)

    cfg = Config(quick=args.quick, scale=args.scale)
    modules = discover(args.only)
    load_before = load_average()
    sections: list[Section] = []
    failed = False
    for name in modules:
        cfg.progress(f"== {name}")
        try:
            module = importlib.import_module(name)
            sections.extend(module.run(cfg))
        except Exception:  # noqa: BLE001 - record and go on with the other modules
            failed = True
            tb = traceback.format_exc()
            print(tb, file=sys.stderr)
            sections.append(Section(f"{name}: FAILED", "```\n" + tb.rstrip() + "\n```\n"))
    elapsed = time.perf_counter() - cfg.started
    report = machine_header(load_before, load_average(), elapsed, modules, cfg) + "\n" + \
        "\n".join(s.markdown() for s in sections)

    if args.no_write or args.quick:
        print(report)
    else:
        args.output.write_text(report)
        print(report)
        cfg.progress(f"wrote {args.output}")
    cfg.progress(f"done in {elapsed:.0f} s" + (" (with failures)" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
