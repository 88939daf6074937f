"""Where does a built model's forward time differ from torchvision's?  (not run by `make bench`)

For one model of bench_core's list (resnet50, googlenet, vit_b_16, convnext_tiny,
mobilenet_v3_large) this times, with identical weights, in interleaved rounds:

  tv      the torchvision model (eager nn.Module tree)
  tv_fx   the same model through torch.fx.symbolic_trace (``--fx``; not for vit_b_16, whose
          shape checks do not trace): isolates fx GraphModule overhead
  built   specgraph.build(specs/<model>.yaml) with torchvision's state_dict loaded strictly

in three phases in this one (fresh) process, as bench_core does: eval forward (no_grad) in the
fresh process, train forward+backward, then eval forward again after training (a different C
allocator state, see bench_core's findings).  Per phase it prints the wall and CPU-time medians
and ratios, and the per-call medians of user/system CPU time and minor page faults.
``--profile`` adds torch.profiler self CPU time per aten op in eval mode for tv and built.

    .venv/bin/python benchmarks/investigate_forward.py --model mobilenet_v3_large --batch 1 \
        [--repeats 5] [--threads 1] [--phases eval_fresh,train,eval_trained] [--fx] [--profile]

With ``--threads 1`` the CPU-time column is the cleanest measure on a busy machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from bench_core import PHASES, _model_pair, _models  # noqa: E402
from timing import fmt_time, interleaved, paired_ratios, quartiles  # noqa: E402


def main() -> None:
    names = [n for n, _, _ in _models()]
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=names, default="resnet50")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--phases", default=",".join(p for p, _ in PHASES))
    ap.add_argument("--fx", action="store_true", help="also time torchvision traced into fx")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    _, spec_path, make_reference = _models()[names.index(args.model)]
    built, tv = _model_pair(spec_path, make_reference)
    models = {"tv": tv, "built": built}
    if args.fx:
        models["tv_fx"] = torch.fx.symbolic_trace(tv)
    x = torch.randn(args.batch, 3, 224, 224)
    for m in models.values():
        m.eval()
    with torch.no_grad():
        ref = tv(x)
        for k, m in models.items():
            print(f"{k}: max abs diff to tv {(m(x) - ref).abs().max().item():.1e}", file=sys.stderr)

    def call(m, train):
        if train:
            def f():
                m(x).sum().backward()
        else:
            def f():
                with torch.no_grad():
                    m(x)
        return f

    labels = dict(PHASES)
    print(f"# {args.model}, batch {args.batch}, {args.threads} thread(s), {args.repeats} rounds")
    print(f"{'phase':14} {'variant':7} {'wall':>9} {'ratio':>6} {'paired q1-q3':>13} {'cpu':>9} "
          f"{'cpu ratio':>9} {'user ms':>8} {'sys ms':>7} {'faults':>8}")
    for phase in args.phases.split(","):
        train = phase == "train"
        for m in models.values():
            m.train(train)
        s = interleaved({k: call(m, train) for k, m in models.items()}, repeats=args.repeats, warmup=1,
                        before_each=lambda k: models[k].zero_grad(set_to_none=True),
                        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
                        label=f"{args.model} b{args.batch} {labels[phase]}")
        base = s["tv"]
        for k, smp in s.items():
            q1, _, q3 = quartiles(paired_ratios(smp, base))
            user = smp.cpu_median - smp.sys_median
            print(f"{phase:14} {k:7} {fmt_time(smp.median):>9} {smp.median / base.median:6.3f} "
                  f"{q1:6.3f}-{q3:.3f} {fmt_time(smp.cpu_median):>9} {smp.cpu_median / base.cpu_median:9.3f} "
                  f"{user * 1e3:8.0f} {smp.sys_median * 1e3:7.0f} {smp.faults_median:8.0f}", flush=True)

    if args.profile:
        from collections import defaultdict

        from torch.profiler import ProfilerActivity, profile

        totals = {}
        for k in ("tv", "built"):
            m = models[k].eval()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(2):
                    call(m, False)()
            agg = defaultdict(float)
            for e in prof.key_averages():
                agg[e.key] += e.self_cpu_time_total / 2 / 1e3  # ms per call
            totals[k] = agg
        keys = sorted(set(totals["tv"]) | set(totals["built"]),
                      key=lambda n: -max(totals["tv"].get(n, 0), totals["built"].get(n, 0)))
        print(f"\n{'aten op (self CPU ms / call)':40} {'tv':>9} {'built':>9}")
        for n in keys[:25]:
            print(f"{n:40} {totals['tv'].get(n, 0):9.2f} {totals['built'].get(n, 0):9.2f}")
        print(f"{'TOTAL':40} {sum(totals['tv'].values()):9.1f} {sum(totals['built'].values()):9.1f}")


if __name__ == "__main__":
    main()
