"""How many CPU threads a run uses, and why torch's default was slow.

torch's CPU kernels run on OpenMP (GNU libgomp in the PyPI wheels), one thread per core by
default. libgomp's threads *spin* while they wait for the next parallel region (``OMP_WAIT_POLICY``
unset: about 300,000 polls, ``GOMP_SPINCOUNT``, before they sleep). A small network's step is
hundreds of short parallel regions; when other processes hold some of the cores, each region
waits for a descheduled thread while the others burn their time slice spinning. On a busy 2-core
machine a LeNet-5 epoch took 3 min 9 s on torch's 2 threads against 37 s on 1; 100 steps of a
plain PyTorch loop (batch 64) took 12.1 s on 2 threads against 1.0 s on 1, with 9.5 s of CPU time
against 0.8 s: the second thread was spinning, not working. With ``OMP_WAIT_POLICY=PASSIVE`` the
same 100 steps took 1.6 s on 2 threads: still slower than 1 thread while other processes hold a
core (a region ends only when its slowest thread does), but no longer 12x. DataLoader workers
are not the cause: torch gives each worker process one thread; Lightning sets the thread count
only in DDP processes (the cores divided among them).

Two remedies, both before the first step:

* :func:`prefer_passive_waiting` sets ``OMP_WAIT_POLICY=PASSIVE`` (unless the user set it),
  so waiting threads sleep instead of spinning. libgomp reads it once, when torch is first
  imported: it works for ``specgraph train`` and for ``specgraph.train`` called before torch is
  imported, and is inherited by DDP's processes and DataLoader workers.
* :func:`choose_threads` measures: a few training steps (forward, loss, backward) on a copy of
  the model and a real batch at 1 thread, half the cores and all of them, interleaved, and takes
  the fastest (the fewest threads among those within 5% of it: they are the least hurt when the
  machine gets busier). A run given ``threads`` skips this, and a resumed run keeps the count it
  used (the bits of a run depend on it).
"""

from __future__ import annotations

import copy
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

WAIT_POLICY = "OMP_WAIT_POLICY"


def prefer_passive_waiting() -> bool:
    """Make OpenMP's idle threads sleep, when torch is not loaded yet; True when it applies."""
    if "torch" in sys.modules:
        return os.environ.get(WAIT_POLICY, "").upper() == "PASSIVE"
    os.environ.setdefault(WAIT_POLICY, "PASSIVE")
    return os.environ[WAIT_POLICY].upper() == "PASSIVE"


def candidates(cores: int) -> list[int]:
    """1, half the cores and all of them (distinct, ascending)."""
    return sorted({1, max(1, cores // 2), max(1, cores)})


@dataclass
class ThreadChoice:
    threads: int
    seconds: dict[int, float] = field(default_factory=dict)  # median seconds of a step, per count

    def describe(self) -> str:
        if len(self.seconds) < 2:
            return f"threads: {self.threads}"
        measured = ", ".join(f"{_ms(s)} at {n}" for n, s in sorted(self.seconds.items()))
        return f"threads: {self.threads} (a training step took {measured})"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds >= 0.01 else f"{seconds * 1e3:.1f} ms"


def fastest(seconds: dict[int, float], tolerance: float = 0.05) -> int:
    """The fewest threads whose time is within ``tolerance`` of the best."""
    best = min(seconds.values())
    return min(n for n, s in seconds.items() if s <= best * (1 + tolerance))


def measure(step: Callable[[], None], counts: Sequence[int], *, min_rounds: int = 3, max_rounds: int = 10,
            budget_s: float = 2.0) -> dict[int, float]:
    """Median seconds of ``step`` at each thread count: one untimed round, then interleaved timed
    rounds (the order reversed every other round) until ``min_rounds`` are done and ``budget_s``
    is spent, or ``max_rounds``; after two rounds, a count twice as fast as every other ends it
    (on a busy machine the slow counts are the expensive ones to keep measuring)."""
    import torch

    before = torch.get_num_threads()
    times: dict[int, list[float]] = {n: [] for n in counts}
    start = time.perf_counter()
    try:
        for r in range(1 + max_rounds):
            if r > min_rounds and time.perf_counter() - start > budget_s or r > 2 and _clear_winner(times):
                break
            for n in (counts if r % 2 else list(reversed(counts))):
                torch.set_num_threads(n)
                t0 = time.perf_counter()
                step()
                if r:
                    times[n].append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return {n: statistics.median(ts) for n, ts in times.items()}


def _clear_winner(times: dict[int, list[float]]) -> bool:
    medians = sorted(statistics.median(ts) for ts in times.values())
    return len(medians) > 1 and medians[0] * 2 < medians[1]


def choose_threads(module, batch, cores: int) -> ThreadChoice:
    """The thread count for training ``module`` (a SpecModule) on batches like ``batch``.

    The steps run on a deep copy, so the model's weights, batch-norm statistics and the
    optimiser are untouched; dropout draws from the global generator, which each epoch reseeds."""
    counts = candidates(cores)
    if len(counts) == 1:
        return ThreadChoice(counts[0])
    probe = copy.deepcopy(module)
    probe.train()

    def step() -> None:
        loss = probe._step(batch, "train")
        loss.backward()
        probe.zero_grad(set_to_none=True)

    seconds = measure(step, counts)
    return ThreadChoice(fastest(seconds), seconds)


__all__ = ["prefer_passive_waiting", "choose_threads", "measure", "fastest", "candidates", "ThreadChoice"]
