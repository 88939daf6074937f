"""The cost of the built module's input check (specgraph/torch/input_check.py).

resnet18 (specs/resnet18.yaml), batch 1, 3x224x224, eval, no_grad, 2 threads: the module built
with the check and the same module built without (``check_inputs=False``, the same weights),
timed in interleaved rounds of 5 forwards each.  Reported: the median of the per-round ratios
(checked / plain), and the check alone (its own call, timed over many calls) as a share of
the plain forward, which is the steadier of the two on a busy machine.

Run alone with ``.venv/bin/python benchmarks/bench_input_check.py [--quick]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import (Config, Section, cpu_ratio, fmt_time, interleaved, markdown_table, paired_ratios,  # noqa: E402
                    quartiles)

THREADS = 2
CALLS = 5  # forwards per timed round
TARGET = 0.01  # the promise: under 1% of the forward


def run(cfg: Config) -> list[Section]:
    import torch

    import specgraph
    from specgraph.torch.build import build_module

    torch.set_num_threads(THREADS)
    graph = specgraph.check(ROOT / "specs" / "resnet18.yaml")
    checked, plain = build_module(graph).eval(), build_module(graph, check_inputs=False).eval()
    plain.load_state_dict(checked.state_dict(), strict=True)
    x = torch.randn(1, 3, 224, 224)

    def forwards(model):
        def call():
            with torch.no_grad():
                for _ in range(CALLS):
                    model(x)
        return call

    samples = interleaved({"checked": forwards(checked), "plain": forwards(plain)},
                          repeats=cfg.repeats(10, 6, quick=2), max_repeats=cfg.repeats(100, 6, quick=2),
                          budget_s=cfg.budget(40.0), progress=cfg.progress, label="resnet18 input check")
    low, mid, high = quartiles(paired_ratios(samples["checked"], samples["plain"]))
    forward = samples["plain"].median / CALLS

    check, n = checked.input_check, cfg.repeats(20000, 2000, quick=200)
    best = float("inf")
    for _ in range(5):  # the fastest of 5 runs of n calls: the check's own cost, with the least noise
        start = time.perf_counter()
        for _ in range(n):
            check(x)
        best = min(best, (time.perf_counter() - start) / n)
    table = markdown_table(
        ["measure", "value"],
        [["plain forward (median)", fmt_time(forward)],
         ["checked / plain, median of paired rounds (quartiles)", f"{mid:.4f} ({low:.4f}–{high:.4f})"],
         ["checked / plain, CPU time (medians)", f"{cpu_ratio(samples['checked'], samples['plain']):.4f}"],
         ["the check alone, per call", fmt_time(best)],
         ["the check alone / plain forward", f"{best / forward:.3%}"]])
    verdict = "within" if best / forward < TARGET else "OVER"
    notes = [f"{samples['plain'].n} interleaved rounds of {CALLS} forwards; {THREADS} threads. The check is "
             f"{verdict} the promised {TARGET:.0%} of the forward. Paired rounds on a loaded machine "
             "scatter by more than the check costs; the check timed alone is the figure to read."]
    return [Section("Input check: resnet18, batch 1", table, notes)]


if __name__ == "__main__":
    for section in run(Config(quick="--quick" in sys.argv)):
        print(section.markdown())
