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

On the same machine quiet, spinning is what makes 2 threads pay: a LeNet-5 step's many short
regions follow each other faster than a sleeping thread wakes. 200 plain steps (batch 64) took
1.4 s on 2 spinning threads, 2.6 s on 2 sleeping ones and 2.35 s on 1 (2026-12-07). No one
policy is right on both machines, and libgomp reads it once, when torch loads; so, before that:

* :func:`choose_wait_policy` looks at the machine for a quarter of a second (``/proc/stat``):
  when other processes keep less than a quarter of a core busy and the run loads its data in
  its own process, it leaves libgomp's spinning default; otherwise it sets
  ``OMP_WAIT_POLICY=PASSIVE``, so that waiting threads sleep. A policy the user set
  (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``) is kept. It works for ``specgraph train`` and for
  ``specgraph.train`` called before torch is imported, and is inherited by DDP's processes and
  DataLoader workers.
* :func:`choose_threads` measures: a few training steps (forward, loss, backward) on a copy of
  the model and a real batch at 1 thread, half the cores and all of them, interleaved, and takes
  the fastest (the fewest threads among those within 5% of it: they are the least hurt when the
  machine gets busier). A run given ``threads`` skips this, and a resumed run keeps the count it
  used (the bits of a run depend on it).
* :class:`BusyMachineWatch`: a machine idle at the start may not stay so (a second run started
  beside this one). Spinning threads then lose several times over, so a run that chose more
  than one spinning thread watches its step times and drops to 1 thread (where nothing spins)
  when they double, saying so once.
"""

from __future__ import annotations

import copy
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

WAIT_POLICY = "OMP_WAIT_POLICY"
USER_POLICY = (WAIT_POLICY, "GOMP_SPINCOUNT")  # libgomp's settings a user may have made
IDLE_CORES = 0.25  # other processes' load under which the machine counts as idle
SPIN, PASSIVE, YOURS = "spin", "passive", "yours"
CHOSEN: str | None = None  # what choose_wait_policy chose in this process


def busy_cores(sample_s: float = 0.25) -> float | None:
    """How many cores the machine's processes keep busy now, from ``/proc/stat`` over
    ``sample_s`` (this process sleeps meanwhile); None where it cannot be read (not Linux)."""
    def totals() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:9]]  # user .. steal (guest is in user)
        return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # not idle, not iowait
    try:
        busy0, all0 = totals()
        time.sleep(sample_s)
        busy1, all1 = totals()
    except (OSError, ValueError, IndexError):
        return None
    return (busy1 - busy0) / (all1 - all0) * (os.cpu_count() or 1) if all1 > all0 else None


def user_policy(environ: Mapping[str, str]) -> bool:
    """Whether the user set how libgomp's threads wait."""
    return any(environ.get(name) for name in USER_POLICY)


def wait_policy(environ: Mapping[str, str], busy: float | None, workers: int) -> str:
    """SPIN (leave libgomp's default), PASSIVE (set it) or YOURS (the user set one)."""
    if user_policy(environ):
        return YOURS
    return SPIN if busy is not None and busy < IDLE_CORES and workers == 0 else PASSIVE


def choose_wait_policy(workers: int = 0, busy: Callable[[], float | None] = busy_cores) -> str:
    """Set how OpenMP's idle threads wait, when torch is not loaded yet (module docstring);
    the policy in force: SPIN, PASSIVE or YOURS. ``workers``: the run's DataLoader processes
    (they would compete with spinning threads)."""
    global CHOSEN
    if "torch" in sys.modules:  # too late to choose: what is in force
        if CHOSEN is None:
            CHOSEN = YOURS if user_policy(os.environ) else SPIN
    else:  # the machine is sampled only where the choice is ours
        CHOSEN = wait_policy(os.environ, None if user_policy(os.environ) else busy(), workers)
        if CHOSEN == PASSIVE:
            os.environ[WAIT_POLICY] = "PASSIVE"
    return CHOSEN


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
        waiting = {SPIN: "; idle threads spin, the machine being idle", PASSIVE: "; idle threads sleep",
                   YOURS: ""}.get(CHOSEN or YOURS, "")
        return f"threads: {self.threads} (a training step took {measured}{waiting})"


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


class BusyMachineWatch:
    """Step times of a run on several spinning threads: :meth:`step` says when to drop to one
    thread — the median of the last ``window`` steps more than ``factor`` times the median of
    the first ``window`` after ``skip`` warm-up steps (a lone slow step, a validation pass or a
    checkpoint write is not a trend). Once."""

    def __init__(self, window: int = 20, skip: int = 5, factor: float = 2.0):
        self.window, self.skip, self.factor = window, skip, factor
        self.times: list[float] = []
        self.baseline: float | None = None
        self.fired = False

    def step(self, seconds: float) -> bool:
        if self.fired:
            return False
        self.times.append(seconds)
        if self.baseline is None:
            if len(self.times) == self.skip + self.window:
                self.baseline = statistics.median(self.times[self.skip:])
                self.times.clear()
            return False
        if len(self.times) < self.window:
            return False
        recent = statistics.median(self.times)
        self.times.clear()
        self.fired = recent > self.factor * self.baseline
        return self.fired


def busy_machine_callback(say: Callable[[str], None]):
    """A Lightning callback dropping the run to 1 thread when :class:`BusyMachineWatch` says so,
    saying it with ``say`` (the run's log)."""
    import lightning as L
    import torch

    class DropToOneThread(L.Callback):
        def __init__(self):
            self.watch, self.last = BusyMachineWatch(), None

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.last = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if self.last is not None and self.watch.step(time.perf_counter() - self.last):
                before = torch.get_num_threads()
                torch.set_num_threads(1)
                say(f"threads: 1 from step {trainer.global_step}: steps took twice as long as at the start on "
                    f"{before} spinning threads (another process took a core); give --threads to fix the count")

    return DropToOneThread()


__all__ = ["choose_wait_policy", "busy_machine_callback", "wait_policy", "busy_cores", "BusyMachineWatch", "SPIN", "PASSIVE", "YOURS",
           "user_policy", "choose_threads", "measure", "fastest", "candidates", "ThreadChoice"]
