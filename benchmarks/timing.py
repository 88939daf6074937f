"""Shared helpers for the benchmarks: interleaved medians, sections, markdown tables.

Speed in this project is always a *ratio against a reference measured in the same run*:
the candidate and the reference are timed in interleaved rounds, so that slow drifts of
the machine (other processes, thermal state, the allocator's state) hit both alike, and
the median of each is reported.  Absolute times are printed too, but only the ratios are
meant to be compared between machines or runs.

A benchmark module ``benchmarks/bench_<name>.py`` exposes ``run(cfg: Config) -> list[Section]``;
``benchmarks/run.py`` discovers and runs every such module and writes BENCHMARKS.md.
"""

from __future__ import annotations

import gc
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence


@dataclass
class Config:
    """What run.py hands each benchmark module.

    ``quick`` asks for a smoke run (few repeats, numbers not meant to be recorded);
    ``scale`` multiplies the default repeat counts (``--scale 2`` for steadier numbers).
    """

    quick: bool = False
    scale: float = 1.0
    started: float = field(default_factory=time.time)  # wall clock, shared with child processes

    def repeats(self, default: int, minimum: int = 1, quick: int | None = None) -> int:
        if self.quick:
            return quick if quick is not None else max(1, min(minimum, 2))
        return max(minimum, round(default * self.scale))

    def budget(self, seconds: float) -> float:
        """A time budget for extra rounds (see ``interleaved``), scaled like the repeats; none when quick."""
        return 0.0 if self.quick else seconds * self.scale

    def progress(self, message: str) -> None:
        """One line on stderr with the time elapsed since the run started."""
        print(f"[{time.time() - self.started:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class Section:
    """One block of BENCHMARKS.md: a title, a markdown table, and notes (markdown paragraphs)."""

    title: str
    table: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"title": self.title, "table": self.table, "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: dict) -> "Section":
        return cls(d["title"], d["table"], list(d.get("notes", [])))

    def markdown(self) -> str:
        parts = [f"## {self.title}", "", self.table.rstrip()]
        for note in self.notes:
            parts += ["", note.rstrip()]
        return "\n".join(parts) + "\n"


@dataclass
class Samples:
    """The times (seconds) of one candidate, in the order they were taken.

    ``times`` are wall-clock (``time.perf_counter``), the measure that counts; ``cpu_times`` are
    this process's CPU time over the same calls (``time.process_time``, all threads), which
    grows much less than wall time when other processes take the CPU away; ``sys_times`` the
    kernel's share of it, and ``faults`` the minor page faults taken during each call.
    """

    name: str
    times: list[float]
    cpu_times: list[float] = field(default_factory=list)
    sys_times: list[float] = field(default_factory=list)
    faults: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_times)

    @property
    def sys_median(self) -> float:
        return statistics.median(self.sys_times)

    @property
    def faults_median(self) -> float:
        return statistics.median(self.faults)

    def to_dict(self) -> dict:
        return {"name": self.name, "times": self.times, "cpu_times": self.cpu_times,
                "sys_times": self.sys_times, "faults": self.faults}

    @classmethod
    def from_dict(cls, d: dict) -> "Samples":
        return cls(d["name"], d["times"], d.get("cpu_times", []), d.get("sys_times", []), d.get("faults", []))

    @property
    def n(self) -> int:
        return len(self.times)


def interleaved(
    candidates: dict[str, Callable[[], object]],
    *,
    repeats: int,
    max_repeats: int | None = None,
    budget_s: float | None = None,
    warmup: int = 1,
    before_each: Callable[[str], None] | None = None,
    alternate: bool = True,
    progress: Callable[[str], None] | None = None,
    label: str = "",
) -> dict[str, Samples]:
    """Time each candidate in interleaved rounds; returns their Samples.

    At least ``repeats`` timed rounds run; with ``max_repeats`` and ``budget_s``, more rounds
    follow (up to ``max_repeats``) while the whole call, warmup included, has taken less than
    ``budget_s`` seconds: a quiet machine gets more samples, a busy one still the minimum.

    Every round runs each candidate once (A, B, C ...).  With ``alternate`` the order is
    reversed on every other round (A, B, B, A, A, B ...), so that neither candidate always
    runs right after the other one.  ``warmup`` untimed rounds come first.
    ``before_each(name)``, when given, runs untimed before every call (e.g. zeroing grads);
    a full garbage collection also runs untimed before every call.
    """
    names = list(candidates)
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    sys_t: dict[str, list[float]] = {n: [] for n in names}
    faults: dict[str, list[int]] = {n: [] for n in names}
    max_repeats = max(repeats, max_repeats or repeats)
    start = time.perf_counter()
    for r in range(warmup + max_repeats):
        timed = r - warmup  # rounds timed so far
        if timed >= repeats and (budget_s is None or time.perf_counter() - start >= budget_s):
            break
        order = names[::-1] if alternate and r % 2 else names
        round_times = []
        for name in order:
            if before_each is not None:
                before_each(name)
            gc.collect()
            fn = candidates[name]
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            c0 = time.process_time()
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            dc = time.process_time() - c0
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            if r >= warmup:
                times[name].append(dt)
                cpu[name].append(dc)
                sys_t[name].append(ru1.ru_stime - ru0.ru_stime)
                faults[name].append(ru1.ru_minflt - ru0.ru_minflt)
            round_times.append(f"{name} {fmt_time(dt)}")
        if progress is not None:
            kind = "warmup" if r < warmup else f"{r - warmup + 1}/{repeats}" + ("+" if max_repeats > repeats else "")
            progress(f"{label} {kind}: " + ", ".join(round_times))
    return {n: Samples(n, times[n], cpu[n], sys_t[n], faults[n]) for n in names}


def ratio(a: Samples, b: Samples) -> float:
    """median(a) / median(b)."""
    return a.median / b.median


def cpu_ratio(a: Samples, b: Samples) -> float:
    """median CPU time of a / median CPU time of b."""
    return a.cpu_median / b.cpu_median


def paired_ratios(a: Samples, b: Samples) -> list[float]:
    """a_i / b_i for each round: the ratio within a round, where both ran under the same load."""
    return [x / y for x, y in zip(a.times, b.times)]


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(25th, 50th, 75th) percentiles; with fewer than 2 values all three are the value."""
    if len(values) < 2:
        v = values[0]
        return v, v, v
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[1], q[2]


def fmt_time(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align`` is one letter per column (l, r, c), default l then r."""
    align = align or ("l" + "r" * (len(headers) - 1))
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines) + "\n"
