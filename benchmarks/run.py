"""Run every benchmark module and rewrite BENCHMARKS.md (``make bench``).

Discovers ``benchmarks/bench_*.py`` (sorted by name); each module exposes
``run(cfg: timing.Config) -> list[timing.Section]``, where a Section is a title, a markdown
table and notes.  Progress goes to stderr; the sections are written to BENCHMARKS.md under
a header describing the machine (CPU model, cores, load, torch version, date).

    .venv/bin/python benchmarks/run.py                 # all modules, rewrite BENCHMARKS.md
    .venv/bin/python benchmarks/run.py --only core     # just bench_core.py
    .venv/bin/python benchmarks/run.py --quick --no-write   # smoke run, print only
    .venv/bin/python benchmarks/run.py --scale 2       # twice the default repeats

Each module runs in a child process of its own (``run.py --child NAME``), so that one
module's process state — torch's thread count, the allocator's heap, imports, monkeypatches —
cannot change another's numbers.  A module that raises or dies does not stop the others: its
error is recorded as a section and the exit status is 1.  Speed is always reported as a ratio against a reference timed in the
same run (see timing.py); never put timed assertions in tests.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import json
import platform
import re
import subprocess
import sys
import tempfile
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


def cpu_label() -> str:
    """The CPU's model, architecture and the vector ISA torch's kernels run with here (the machines
    these reports come from vary: AVX2 and AVX-512 parts under the same model name)."""
    import torch

    return f"{cpu_model()} ({platform.machine()}, {torch.backends.cpu.get_cpu_capability()})"


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


def now_str() -> str:
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def versions() -> tuple[str, str]:
    import torch

    try:
        import torchvision
        tv = torchvision.__version__
    except ImportError:
        tv = "not installed"
    return torch.__version__, tv


# Each module's sections sit between markers carrying when and how they were measured, so that
# `--only NAME` can rerun one module and keep the others' blocks from the previous report.
_BLOCK = re.compile(r"<!-- (bench_\w+) begin (\{.*?\}) -->\n(.*?)<!-- \1 end -->\n?", re.S)


def block(name: str, meta: dict, body: str) -> str:
    return f"<!-- {name} begin {json.dumps(meta, ensure_ascii=False)} -->\n{body.rstrip()}\n\n<!-- {name} end -->\n"


def read_blocks(path: Path) -> dict[str, tuple[dict, str]]:
    """{module: (meta, markdown body)} from an earlier report; {} when there is none."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    out = {}
    for m in _BLOCK.finditer(text):
        try:
            out[m.group(1)] = (json.loads(m.group(2)), m.group(3))
        except json.JSONDecodeError:
            continue
    return out


def report(blocks: list[tuple[str, dict, str]]) -> str:
    """The whole of BENCHMARKS.md: header (machine, and when/how each module was measured), then blocks."""
    torch_v, tv_v = versions()
    cpu = cpu_label()
    rows = []
    for name, meta, _ in blocks:
        other = []
        if meta.get("cpu", cpu) != cpu:
            other.append(f"CPU {meta['cpu']}")
        if meta.get("torch", torch_v) != torch_v:
            other.append(f"torch {meta['torch']}")
        rows.append(f"| {name}.py | {meta.get('date', '?')} | {meta.get('load_before', '?')} → "
                    f"{meta.get('load_after', '?')} | {meta.get('seconds', 0):.0f} s | {meta.get('mode', '?')}"
                    f"{' | **FAILED**' if not meta.get('ok', True) else ' | ok'}"
                    f"{' (other machine: ' + ', '.join(other) + ')' if other else ''} |")
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`.venv/bin/python benchmarks/run.py`); do not edit by hand — rerun it "
        "(`benchmarks/run.py --only NAME` reruns one module and keeps the others' sections). Speed is measured "
        "as **ratios against a reference timed in the same run** (medians of interleaved repeats, see "
        "`benchmarks/timing.py`), never as timed assertions in tests. Absolute times depend on the machine "
        "and its load; compare ratios, not seconds, between runs.",
        "",
        "| machine | |",
        "| :--- | :--- |",
        f"| CPU | {cpu} |",
        f"| cores | {cpu_counts()}; torch threads for model timings: 2 (`torch.set_num_threads(2)`) |",
        f"| python | {platform.python_version()} |",
        f"| torch | {torch_v} (CPU) |",
        f"| torchvision | {tv_v} |",
        f"| report written | {now_str()} |",
        "",
        "| module | measured | load average (1/5/15 min) before → after | time | repeats | status |",
        "| :--- | :--- | :--- | ---: | :--- | :--- |",
        *rows,
        "",
        "Each module runs in a process of its own. A load average well above the core count means other "
        "processes shared the CPU while it ran: the interleaving keeps the ratios fair, but their spread (and "
        "the absolute times) grow.",
        "",
    ]
    return "\n".join(lines) + "\n" + "\n".join(body for _, _, body in blocks)


def run_child(name: str, cfg: Config, out: Path) -> int:
    """In the child: run one module, write its sections (or its traceback) as JSON to ``out``."""
    try:
        module = importlib.import_module(name)
        sections = module.run(cfg)
        rc = 0
    except Exception:  # noqa: BLE001 - reported as a FAILED section by the parent
        tb = traceback.format_exc()
        print(tb, file=sys.stderr)
        sections = [Section(f"{name}: FAILED", "```\n" + tb.rstrip() + "\n```\n")]
        rc = 1
    out.write_text(json.dumps([sec.to_dict() for sec in sections]))
    return rc


def run_module(name: str, cfg: Config) -> tuple[list[Section], bool]:
    """In the parent: run one module in a child process; (sections, ok)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sections.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--json", str(out),
               "--t0", repr(cfg.started), "--scale", repr(cfg.scale)] + (["--quick"] if cfg.quick else [])
        proc = subprocess.run(cmd, cwd=ROOT)  # stdout/stderr pass through: progress stays live
        if out.exists():
            sections = [Section.from_dict(d) for d in json.loads(out.read_text())]
            return sections, proc.returncode == 0
    return [Section(f"{name}: FAILED", f"The child process exited with status {proc.returncode} without "
                                       f"writing its results (crashed or killed; see the log).\n")], False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these modules (core or bench_core)")
    ap.add_argument("--quick", action="store_true", help="smoke run with minimal repeats (implies --no-write)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the default repeat counts and time budgets")
    ap.add_argument("--no-write", action="store_true", help="print the report instead of writing BENCHMARKS.md")
    ap.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md", help="where to write the report")
    ap.add_argument("--child", metavar="NAME", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    cfg = Config(quick=args.quick, scale=args.scale)
    if args.t0 is not None:
        cfg.started = args.t0
    if args.child:
        return run_child(args.child, cfg, args.json)

    modules = discover(args.only)
    torch_v, _ = versions()
    mode = "quick smoke run (numbers not meaningful)" if cfg.quick else (
        f"default × {cfg.scale:g}" if cfg.scale != 1 else "default")
    fresh: dict[str, tuple[dict, str]] = {}
    failed = False
    for name in modules:
        cfg.progress(f"== {name}")
        meta = {"date": now_str(), "load_before": load_average(), "cpu": cpu_label(),
                "torch": torch_v, "mode": mode}
        t0 = time.time()
        got, ok = run_module(name, cfg)
        meta.update(load_after=load_average(), seconds=round(time.time() - t0, 1), ok=ok)
        fresh[name] = (meta, "\n".join(sec.markdown() for sec in got))
        failed |= not ok

    write = not (args.no_write or args.quick)
    kept = read_blocks(args.output) if (args.only and write) else {}
    blocks = []
    for name in discover(None):  # every module, in order: this run's, else kept from the last report
        if name in fresh:
            blocks.append((name, *fresh[name]))
        elif name in kept:
            blocks.append((name, *kept[name]))
    text = report([(n, m, block(n, m, body)) for n, m, body in blocks])
    print(text)
    if write:
        args.output.write_text(text)
        cfg.progress(f"wrote {args.output}" + (f" (kept from the previous report: {', '.join(sorted(set(kept) - set(fresh)))})"
                                               if kept else ""))
    cfg.progress(f"done in {time.time() - cfg.started:.0f} s" + (" (with failures)" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
