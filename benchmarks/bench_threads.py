"""Training threads (issue 15): a LeNet-5 epoch on Fashion-MNIST at 1 thread, 2 threads, the default, and
the old default, interleaved.

Why this exists: on a busy 2-core machine one LeNet-5 epoch took 3 min 9 s at torch's default
thread count (2) and 37 s on 1 thread. The cause is OpenMP (libgomp) threads *spinning* while
they wait for the next parallel region; a small net's step is hundreds of short regions, and
when another process holds a core every region waits for a descheduled thread while the other
one burns its slice spinning (CPU time grows with wall time: the threads are busy doing nothing).
specgraph now sets ``OMP_WAIT_POLICY=PASSIVE`` before torch loads and, unless ``threads`` is
given, measures a few steps at 1, half and all the cores and keeps the fastest
(specgraph/train/threads.py). The candidates:

* ``threads 1`` / ``threads 2``: ``threads: N``, OpenMP's threads sleeping when idle (the new default policy);
* ``default``: no ``threads`` (measured before the first epoch; the measurement's time is in the call time);
* ``old default``: torch's thread count with OpenMP's default (spinning) wait policy, what a run did before.

Each run is a fresh process (the wait policy is read once, when torch loads), timed inside the
process: the epoch (its training batches and its validation) from a callback, and the whole
``specgraph.train`` call (data, thread measurement, epoch, test split). Rounds are interleaved,
the order reversed every other round; medians are reported, and each candidate's ratio to the
fastest median.

    .venv/bin/python benchmarks/run.py --only threads          # into BENCHMARKS.md
    .venv/bin/python benchmarks/bench_threads.py --rounds 3 --batches 200   # printed
    .venv/bin/python benchmarks/bench_threads.py --batches 0   # whole epochs (860 batches)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import Config, Section, markdown_table

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = {  # name -> (threads setting: an int, "torch" for torch's own count, None for the default; wait policy)
    "threads 1": (1, None),
    "threads 2": (2, None),
    "default": (None, None),
    "old default": ("torch", ""),  # an empty OMP_WAIT_POLICY is libgomp's default, and specgraph leaves it alone
}

CHILD = r"""
import json, os, sys, time
from specgraph.train.threads import prefer_passive_waiting

prefer_passive_waiting()  # as `specgraph train` does, before anything loads torch (lightning does)
import lightning as L
import specgraph

spec, out, batches, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

class EpochTime(L.Callback):
    def on_train_epoch_start(self, trainer, module):
        self.t0, self.c0 = time.perf_counter(), time.process_time()
    def on_train_epoch_end(self, trainer, module):
        self.wall, self.cpu = time.perf_counter() - self.t0, time.process_time() - self.c0

timer = EpochTime()
settings = dict(epochs=1, out=out, overwrite=True, quiet=True, progress=False, limit_val_batches=20,
                accelerator="cpu")
if batches:
    settings["limit_train_batches"] = batches
if threads == "torch":
    import torch
    settings["threads"] = torch.get_num_threads()
elif threads != "default":
    settings["threads"] = int(threads)
t0 = time.perf_counter()
result = specgraph.train(spec, "fashion-mnist", callbacks=[timer], **settings)
call = time.perf_counter() - t0
print(json.dumps({"epoch_s": timer.wall, "epoch_cpu_s": timer.cpu, "call_s": call, "threads": result.threads,
                  "wait_policy": os.environ.get("OMP_WAIT_POLICY")}))
"""


def run_once(name: str, batches: int, out_dir: str) -> dict:
    threads, policy = CANDIDATES[name]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("OMP_NUM_THREADS", None)
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    cmd = [sys.executable, "-c", CHILD, str(ROOT / "specs" / "lenet5.yaml"), out_dir, str(batches),
           "default" if threads is None else str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=out_dir)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(rounds: int, batches: int, progress=print) -> dict[str, list[dict]]:
    names = list(CANDIDATES)
    samples: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                s = run_once(name, batches, tmp)
                samples[name].append(s)
                progress(f"round {r + 1}/{rounds} {name}: epoch {s['epoch_s']:.1f} s (CPU {s['epoch_cpu_s']:.1f} s), "
                         f"call {s['call_s']:.1f} s, threads {s['threads']}")
    return samples


def section(samples: dict[str, list[dict]], batches: int) -> Section:
    median = {n: statistics.median(s["epoch_s"] for s in ss) for n, ss in samples.items()}
    best = min(median.values())
    rows = []
    for name, ss in samples.items():
        rows.append([name, ", ".join(sorted({str(s["threads"]) for s in ss})), f"{median[name]:.1f} s",
                     f"{median[name] / best:.2f}", f"{statistics.median(s['epoch_cpu_s'] for s in ss):.1f} s",
                     f"{statistics.median(s['call_s'] for s in ss):.1f} s"])
    table = markdown_table(["candidate", "threads used", "epoch (median)", "× fastest", "epoch CPU time",
                            "whole call"], rows)
    epoch = f"{batches} training batches of 64" if batches else "a whole epoch (860 batches of 64)"
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    notes = [f"LeNet-5 (specs/lenet5.yaml) on Fashion-MNIST, one epoch of {epoch} and 20 validation batches, "
             f"{len(next(iter(samples.values())))} interleaved rounds, each run a fresh process; "
             f"{os.cpu_count()} logical CPUs, load average {load} when it ended. "
             "The acceptance rule of issue 15: `default` within 10% of the fastest.",
             "Why 2 threads were slow: libgomp's idle threads spin; on a machine whose cores other processes "
             "share, each of the hundreds of short parallel regions of a step waits for a descheduled thread "
             "while the other spins (CPU time grows like wall time). `OMP_WAIT_POLICY=PASSIVE` (now set by "
             "specgraph before torch loads) makes them sleep; the default then measures 1, half and all the "
             "cores before the first epoch and keeps the fastest (specgraph/train/threads.py)."]
    return Section("Training threads: LeNet-5 epoch time by thread count", table, notes)


def run(cfg: Config | None = None) -> list[Section]:
    cfg = cfg or Config()
    rounds = cfg.repeats(3, minimum=1, quick=1)
    batches = 20 if cfg.quick else 200
    return [section(measure(rounds, batches, cfg.progress), batches)]


if __name__ == "__main__":
    args = sys.argv[1:]
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 3
    batches = int(args[args.index("--batches") + 1]) if "--batches" in args else 200
    print(section(measure(rounds, batches), batches).markdown())
