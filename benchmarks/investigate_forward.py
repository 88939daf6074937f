"""Where does the built resnet50's forward time differ from torchvision's?  (not run by `make bench`)

Times four variants of resnet50 with the same weights in interleaved rounds (eval, no_grad,
or train forward+backward with ``--train``), CPU, batch 8, 2 threads:

  tv           torchvision.models.resnet50() (nn.Module tree, ReLU(inplace=True), out += identity)
  tv_fx        the same model through torch.fx.symbolic_trace: isolates fx GraphModule overhead
  built        specgraph.build('specs/resnet50.yaml') (fx, out-of-place torch.relu and a + b)
  built_inpl   the built module with relu -> relu_ and add -> iadd rewritten in its fx graph:
               isolates the cost of out-of-place activations

then per-call minor page faults and user/system CPU time, then (``--profile``) aggregates torch.profiler self CPU time per aten op for tv and built.

    .venv/bin/python benchmarks/investigate_forward.py [--repeats 7] [--threads 1] [--train]
        [--warm-allocator] [--profile]

With ``--threads 1`` the CPU-time column is the cleanest measure on a busy machine.
"""

from __future__ import annotations

import argparse
import operator
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from timing import fmt_time, interleaved, paired_ratios, quartiles  # noqa: E402


def inplace_variant(gm):
    """A copy of an fx GraphModule with torch.relu -> torch.relu_ and a + b -> a += b."""
    import copy

    import torch

    gm = copy.deepcopy(gm)
    n_relu = n_add = 0
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in (torch.relu, torch.nn.functional.relu):
            node.target = torch.relu_
            node.kwargs = {}
            n_relu += 1
        elif node.op == "call_function" and node.target in (operator.add, torch.add):
            node.target = operator.iadd
            n_add += 1
    gm.graph.lint()
    gm.recompile()
    return gm, n_relu, n_add


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warm-allocator", action="store_true",
                    help="run one train step of every variant first (weights restored afterwards)")
    args = ap.parse_args()

    import torch
    import torchvision

    import specgraph

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tv = torchvision.models.resnet50()
    built = specgraph.build(str(HERE.parent / "specs" / "resnet50.yaml"))
    built.load_state_dict(tv.state_dict(), strict=True)
    tv_fx = torch.fx.symbolic_trace(tv)
    built_inpl, n_relu, n_add = inplace_variant(built)
    print(f"built_inpl: {n_relu} relu -> relu_, {n_add} add -> iadd", file=sys.stderr)
    models = {"tv": tv, "tv_fx": tv_fx, "built": built, "built_inpl": built_inpl}
    x = torch.randn(8, 3, 224, 224)

    if args.warm_allocator:
        # One forward+backward of each grows the process heap past glibc's adaptive mmap/trim
        # thresholds, after which freed activation buffers stay in the heap (no page faults).
        import copy

        state = copy.deepcopy(tv.state_dict())
        for m in models.values():
            m.train()
            m(x).sum().backward()
            m.zero_grad(set_to_none=True)
        for m in models.values():
            m.load_state_dict(state)
    for m in models.values():
        m.train(args.train)
    if not args.train:
        with torch.no_grad():
            ref = tv(x)
            for k, m in models.items():
                print(f"{k}: max abs diff to tv {(m(x) - ref).abs().max().item():.1e}", file=sys.stderr)

    def call(m):
        if args.train:
            def f():
                m(x).sum().backward()
        else:
            def f():
                with torch.no_grad():
                    m(x)
        return f

    s = interleaved({k: call(m) for k, m in models.items()}, repeats=args.repeats, warmup=1,
                    before_each=lambda k: models[k].zero_grad(set_to_none=True),
                    progress=lambda msg: print(msg, file=sys.stderr, flush=True),
                    label="train" if args.train else "eval")
    base = s["tv"]
    print(f"\n{'variant':12} {'median':>10} {'min':>10} {'ratio/tv':>9} {'paired q1-q3':>15} "
          f"{'cpu median':>11} {'cpu ratio':>9}")
    for k, smp in s.items():
        q1, _, q3 = quartiles(paired_ratios(smp, base))
        print(f"{k:12} {fmt_time(smp.median):>10} {fmt_time(smp.min):>10} {smp.median / base.median:9.3f} "
              f"{q1:7.3f}-{q3:.3f} {fmt_time(smp.cpu_median):>11} {smp.cpu_median / base.cpu_median:9.3f}")

    # Page faults and user/system CPU split per call (3 calls each, untimed above).
    import os
    import resource

    print(f"\n{'variant':12} {'minor faults':>13} {'user ms':>9} {'sys ms':>9}")
    for k, m in models.items():
        f, u, sy = [], [], []
        for _ in range(3):
            models[k].zero_grad(set_to_none=True)
            f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, os.times()
            call(m)()
            f1, t1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, os.times()
            f.append(f1 - f0)
            u.append((t1.user - t0.user) * 1e3)
            sy.append((t1.system - t0.system) * 1e3)
        med = lambda v: sorted(v)[1]  # noqa: E731
        print(f"{k:12} {med(f):13d} {med(u):9.0f} {med(sy):9.0f}")

    if args.profile:
        from collections import defaultdict

        from torch.profiler import ProfilerActivity, profile

        totals = {}
        for k in ("tv", "built"):
            m = models[k]
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(2):
                    call(m)()
            agg = defaultdict(float)
            for e in prof.key_averages():
                agg[e.key] += e.self_cpu_time_total / 2 / 1e3  # ms per call
            totals[k] = agg
        keys = sorted(set(totals["tv"]) | set(totals["built"]),
                      key=lambda n: -max(totals["tv"].get(n, 0), totals["built"].get(n, 0)))
        print(f"\n{'aten op (self CPU ms / call)':40} {'tv':>9} {'built':>9}")
        for n in keys[:20]:
            print(f"{n:40} {totals['tv'].get(n, 0):9.1f} {totals['built'].get(n, 0):9.1f}")
        print(f"{'TOTAL':40} {sum(totals['tv'].values()):9.1f} {sum(totals['built'].values()):9.1f}")


if __name__ == "__main__":
    main()
