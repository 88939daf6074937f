"""Core benchmarks: built models vs torchvision, check time, build time.

1. Forward (eval, no_grad) and forward+backward (train) of the modules specgraph builds
   from specs/resnet50.yaml and specs/googlenet.yaml against torchvision's, with the same
   weights loaded into both: CPU, batch 8, 3x224x224, ``torch.set_num_threads(2)``.
2. ``specgraph.check`` (load + expand + shape inference) and ``specgraph.load`` of resnet50.
3. ``specgraph.build`` (from the path, and from an already checked Graph through
   ``specgraph.builder.build_module``) against ``torchvision.models.resnet50()``.

Run alone with ``.venv/bin/python benchmarks/bench_core.py [--quick]`` (prints the sections),
or through ``make bench`` (all modules, rewrites BENCHMARKS.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import (Config, Section, cpu_ratio, fmt_time, interleaved, markdown_table,  # noqa: E402
                    paired_ratios, quartiles, ratio)

THREADS = 2
BATCH = 8
FORWARD_TARGET = 1.02
CHECK_TARGET_S = 0.050
# Seconds each interleaved comparison may take before it stops adding rounds beyond the minimum
# (warmup included), per model: (eval forward, train forward+backward).  On an idle 2-core
# machine the whole of `make bench` then stays within about 4 minutes; on a busy one the
# minimum repeats take as long as they take.
MODEL_BUDGETS_S = [(35.0, 70.0), (20.0, 40.0)]  # resnet50, googlenet

RESNET50 = ROOT / "specs" / "resnet50.yaml"
GOOGLENET = ROOT / "specs" / "googlenet.yaml"


def _models():
    """(name, spec path, torchvision constructor) for the forward/backward comparison."""
    import torchvision

    return [
        ("resnet50", RESNET50, lambda: torchvision.models.resnet50()),
        ("googlenet", GOOGLENET, lambda: torchvision.models.googlenet(aux_logits=False, init_weights=False)),
    ]


def _model_pair(spec_path: Path, make_reference):
    """(built, reference) with the reference's state_dict loaded strictly into the built one."""
    import specgraph

    reference = make_reference()
    built = specgraph.build(str(spec_path))
    built.load_state_dict(reference.state_dict(), strict=True)
    return built, reference


def bench_models(cfg: Config) -> Section:
    import torch

    torch.set_num_threads(THREADS)
    repeats = cfg.repeats(7, minimum=7, quick=1)
    max_repeats = cfg.repeats(25, minimum=7, quick=1)
    warmup = 1
    rows = []
    verdicts = []
    for (name, spec_path, make_reference), (eval_budget, train_budget) in zip(_models(), MODEL_BUDGETS_S):
        cfg.progress(f"{name}: building both models")
        torch.manual_seed(0)
        built, reference = _model_pair(spec_path, make_reference)
        x = torch.randn(BATCH, 3, 224, 224)
        models = {"built": built, "torchvision": reference}

        # Sanity: in eval mode the two must compute the same function.
        with torch.no_grad():
            built.eval()
            reference.eval()
            max_diff = (built(x) - reference(x)).abs().max().item()

        # --- eval: forward under no_grad ---
        def forward(m):
            def f():
                with torch.no_grad():
                    m(x)
            return f

        for m in models.values():
            m.eval()
        fwd = interleaved({k: forward(m) for k, m in models.items()}, repeats=repeats, warmup=warmup,
                          max_repeats=max_repeats, budget_s=cfg.budget(eval_budget),
                          progress=cfg.progress, label=f"{name} eval forward")

        # --- train: forward + backward of sum(output); grads cleared (untimed) before each ---
        def train_step(m):
            def f():
                out = m(x)
                out.sum().backward()
            return f

        for m in models.values():
            m.train()
        trn = interleaved({k: train_step(m) for k, m in models.items()}, repeats=repeats, warmup=warmup,
                          max_repeats=max_repeats, budget_s=cfg.budget(train_budget),
                          before_each=lambda k: models[k].zero_grad(set_to_none=True),
                          progress=cfg.progress, label=f"{name} train fwd+bwd")

        for mode, s in (("eval forward", fwd), ("train forward+backward", trn)):
            r = ratio(s["built"], s["torchvision"])
            q1, _, q3 = quartiles(paired_ratios(s["built"], s["torchvision"]))
            met = r <= FORWARD_TARGET
            verdicts.append((name, mode, r, met))
            rmin = s["built"].min / s["torchvision"].min
            rcpu = cpu_ratio(s["built"], s["torchvision"])
            rows.append([name, mode, fmt_time(s["built"].median), fmt_time(s["torchvision"].median),
                         f"**{r:.3f}**", f"{q1:.3f} – {q3:.3f}", f"{rmin:.3f}", f"{rcpu:.3f}", s["built"].n,
                         f"≤ {FORWARD_TARGET} " + ("met" if met else "**missed**")])
        rows.append([name, "eval max abs diff", f"{max_diff:.1e}", "", "", "", "", "", "", ""])
        del built, reference, models

    table = markdown_table(
        ["model", "what", "built (median)", "torchvision (median)", "ratio built/tv", "per-round ratio q1 – q3",
         "ratio of minima", "CPU-time ratio", "repeats", "target"],
        rows, align="llrrrrrrrl")
    notes = [
        f"CPU, batch {BATCH}, input {BATCH}×3×224×224 float32, `torch.set_num_threads({THREADS})` "
        f"(one thread per core of the reference machine, fixed so that the numbers do not depend on "
        f"torch's default thread count). The built module (`specgraph.build(spec)`, a `torch.fx.GraphModule`) "
        f"gets torchvision's state_dict loaded strictly, so both compute the same function (the "
        f"\"eval max abs diff\" row checks it). googlenet's reference is "
        f"`torchvision.models.googlenet(aux_logits=False, init_weights=False)`.",
        f"**ratio built/tv** = median time of the built module ÷ median time of torchvision's module, "
        f"both timed in the same run in interleaved rounds (A, B, then B, A, …; {warmup} untimed warmup round, "
        f"then at least {repeats} timed rounds, more (up to {max_repeats}) while the comparison is within its "
        f"time budget — the repeats column gives the count; a full `gc.collect()` before every call, untimed). "
        f"1.000 means equally fast; above 1 the built module is slower. "
        f"**per-round ratio q1 – q3** is the spread of the ratio taken within each round "
        f"(built_i / tv_i): a wide spread means the machine was noisy and the median ratio is "
        f"uncertain by about that much. **ratio of minima** = fastest built ÷ fastest torchvision run, "
        f"the least load-disturbed pair; **CPU-time ratio** = ratio of the median CPU time this process "
        f"used per call (`time.process_time`, both threads), which other processes on the machine "
        f"inflate much less than wall time. Both are second opinions for when the machine is busy; the "
        f"target applies to the median wall-time ratio.",
        "**eval forward**: `model.eval()`, `with torch.no_grad(): model(x)`. "
        "**train forward+backward**: `model.train()`, `model(x).sum().backward()`, grads set to None "
        "(untimed) before each call; batch norm updates its running stats and dropout is active in both.",
        _model_verdict(verdicts),
        FINDINGS,
    ]
    return Section("Built models vs torchvision (CPU)", table, notes)


def _model_verdict(verdicts) -> str:
    missed = [(n, m, r) for n, m, r, ok in verdicts if not ok]
    if not missed:
        return (f"**Target ≤ {FORWARD_TARGET}: met** for every model and mode in this run. The findings below "
                f"still apply: on a quieter machine resnet50's eval forward is expected a few percent slower "
                f"than torchvision's, from out-of-place relu/add.")
    listed = ", ".join(f"{n} {m} ({r:.3f})" for n, m, r in missed)
    return (f"**Target ≤ {FORWARD_TARGET}: missed** for {listed}. Part of any miss is noise: read it together "
            f"with the per-round spread and the CPU-time ratio (where q1 – q3 straddles {FORWARD_TARGET} the "
            f"median can land on either side of the target from load alone; on a 2-core machine shared with "
            f"other processes a single disturbed round moves a 7-sample median by several percent). "
            f"Part is real for resnet50's eval forward: see the findings below.")


FINDINGS = """**Findings (resnet50; measured with `benchmarks/investigate_forward.py`, not by `make bench`).**
On the machine above (load average about 5 on 2 cores while these were taken) wall times scattered by ±50 %,
so the investigation used 1 torch thread and compared CPU time (`time.process_time`), user/system time and
page faults per call, interleaving four variants with identical weights:
`tv` (torchvision eager), `tv_fx` (torchvision through `torch.fx.symbolic_trace`), `built` (specgraph) and
`built_inpl` (the built module with its fx graph rewritten to `torch.relu_` and `+=`).

| eval forward, 1 thread | CPU-time ratio to tv | user ms | system ms | minor faults |
| :--- | ---: | ---: | ---: | ---: |
| tv | 1.000 | 810 | 70 | 46,944 |
| tv_fx | 0.986 – 1.043 | 800 | 130 | 59,048 |
| built | 1.081 – 1.123 | 830 | 160 | 78,240 |
| built_inpl | 0.975 – 1.013 | 810 | 70 | 41,792 |

(ratio ranges: two runs of 9 and 5 rounds; user/system/faults: median of 3 calls.)

1. **The fx GraphModule costs nothing measurable**: torchvision's own model traced into fx runs in the same
   user time as eager, and per-node Python dispatch (about 175 nodes) is microseconds against ~1 s of kernels.
2. **The gap is out-of-place relu and residual add.** torchvision uses `ReLU(inplace=True)` and
   `out += identity`; specgraph emits `torch.relu(x)` and `a + b`, which allocate a fresh activation-sized
   buffer each (up to 25.7 MB at batch 8). User time is equal; the built module spends about twice the
   system time, in ~30 k extra minor page faults per forward: glibc's malloc returns freed buffers this
   large to the kernel, so every new one is faulted in and zeroed again. Rewriting the built graph to
   in-place ops (`built_inpl`) brings faults, system time and CPU time back to torchvision's; so does
   keeping the memory in the allocator (`MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=100000000000`:
   0 faults for every variant, CPU-time ratio of `built` 1.049, within the ±4 % that `tv_fx` — the very
   same kernels — showed in that run).
3. **Train mode is barely affected**: forward+backward CPU-time ratio `built` 1.018, `built_inpl` 1.002,
   `tv_fx` 1.016 (3 rounds, 1 thread); backward dominates and autograd allocates in both.
4. googlenet was not investigated separately; its torchvision `BasicConv2d` also ends in
   `F.relu(x, inplace=True)`, so the same out-of-place penalty applies to specgraph's `conv_bn` block
   (no residual adds there; its concats allocate in both).

Reported to the lead rather than changed here (library files are out of this task's scope). Possible fix in
the builder: emit in-place relu (`torch.relu_`) and in-place add when the input has no other consumer, is not
a graph input, and its producer does not save its output for backward (conv, batch norm and add do not, which
is why torchvision's choice is safe); this would cost some `model.code` readability."""


_OTHER = "everything else (allocation, views, dispatch)"


def _group(key: str) -> str:
    """The op group of a profiler key (an aten op name)."""
    if key in ("aten::relu", "aten::relu_", "aten::clamp_min", "aten::clamp_min_"):
        return "relu (`clamp_min` / in-place `clamp_min_`)"
    if key in ("aten::add", "aten::add_"):
        return "residual add (`add` / in-place `add_`)"
    if "conv" in key:
        return "convolution"
    if "batch_norm" in key:
        return "batch norm"
    if "pool" in key or key == "aten::mean":
        return "pooling"
    if key in ("aten::addmm", "aten::linear", "aten::t", "aten::matmul", "aten::flatten"):
        return "linear (+ flatten)"
    return _OTHER


_GROUPS = ["convolution", "batch norm", "relu (`clamp_min` / in-place `clamp_min_`)",
           "residual add (`add` / in-place `add_`)", "pooling", "linear (+ flatten)", _OTHER]


def bench_breakdown(cfg: Config) -> Section:
    """resnet50 eval forward, per model: user/system CPU time, minor page faults, profiler time per op group."""
    import os
    import resource
    import statistics
    from collections import defaultdict

    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    built, reference = _model_pair(RESNET50, _models()[0][2])
    models = {"built": built.eval(), "torchvision": reference.eval()}
    x = torch.randn(BATCH, 3, 224, 224)
    rounds = cfg.repeats(3, minimum=3, quick=1)
    ms = {k: defaultdict(float) for k in models}
    usage = {k: {"user": [], "sys": [], "faults": []} for k in models}
    with torch.no_grad():
        for m in models.values():
            m(x)  # warmup
        for r in range(rounds):
            for k in (list(models) if r % 2 == 0 else list(models)[::-1]):
                f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, os.times()
                models[k](x)
                f1, t1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, os.times()
                usage[k]["user"].append((t1.user - t0.user) * 1e3)
                usage[k]["sys"].append((t1.system - t0.system) * 1e3)
                usage[k]["faults"].append(f1 - f0)
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    models[k](x)
                for e in prof.key_averages():
                    ms[k][_group(e.key)] += e.self_cpu_time_total / 1e3 / rounds
            cfg.progress(f"resnet50 eval breakdown {r + 1}/{rounds}")
    del built, reference, models

    def med(k, what):
        return statistics.median(usage[k][what])

    rows = [["user CPU time, both threads (ms)", f"{med('built', 'user'):.0f}", f"{med('torchvision', 'user'):.0f}",
             f"{med('built', 'user') - med('torchvision', 'user'):+.0f}"],
            ["system CPU time (ms)", f"{med('built', 'sys'):.0f}", f"{med('torchvision', 'sys'):.0f}",
             f"{med('built', 'sys') - med('torchvision', 'sys'):+.0f}"],
            ["minor page faults", f"{med('built', 'faults'):.0f}", f"{med('torchvision', 'faults'):.0f}",
             f"{med('built', 'faults') - med('torchvision', 'faults'):+.0f}"]]
    for g in _GROUPS:
        b, t = ms["built"][g], ms["torchvision"][g]
        rows.append([f"profiler: {g} (ms)", f"{b:.1f}", f"{t:.1f}", f"{b - t:+.1f}"])
    tb, tt = sum(ms["built"].values()), sum(ms["torchvision"].values())
    rows.append(["profiler: **total** (ms)", f"{tb:.1f}", f"{tt:.1f}", f"{tb - tt:+.1f}"])
    table = markdown_table(["per eval forward (median / mean of rounds)", "built", "torchvision", "built − tv"],
                           rows, align="lrrr")
    notes = [
        f"resnet50, eval, `no_grad`, batch {BATCH}, {THREADS} threads, {rounds} interleaved rounds. Per round and "
        f"model: one forward measured with `os.times()` (user and system CPU time of the process) and "
        f"`getrusage` (minor page faults), medians shown; then one forward under `torch.profiler`, self CPU "
        f"time per aten op summed by group, mean shown (profiler times are wall-clock per op, as noisy as the "
        f"machine). Where the two models differ: specgraph's fx graph calls out-of-place `torch.relu` and "
        f"`a + b`, torchvision calls `ReLU(inplace=True)` and `out += identity`; convolution, batch norm and "
        f"pooling run the same kernels.",
        "How to read it: each out-of-place relu/add allocates a fresh activation-sized buffer (up to "
        "8×256×56×56 floats = 25.7 MB in layer1). glibc's malloc hands buffers this large back to the "
        "kernel when they are freed, so the next one is faulted in page by page and zeroed by the kernel: "
        "that is the extra **system** time and the extra page faults of the built module. User time (the "
        "kernels, and Python) should match; with 2 threads it also counts OpenMP threads spinning while they "
        "wait for each other, which grows when the machine is busy. See the findings in the section above.",
    ]
    return Section("Where the time goes: resnet50 eval forward", table, notes)


def bench_check(cfg: Config) -> Section:
    import specgraph

    path = str(RESNET50)
    repeats = cfg.repeats(30, minimum=20, quick=3)
    cfg.progress(f"check/load resnet50: at least {repeats} rounds")
    s = interleaved({"check (load + expand + infer)": lambda: specgraph.check(path),
                     "load only": lambda: specgraph.load(path)},
                    repeats=repeats, max_repeats=cfg.repeats(200, minimum=20, quick=3), budget_s=cfg.budget(8.0),
                    warmup=3, alternate=True)
    chk, ld = s["check (load + expand + infer)"], s["load only"]
    graph = specgraph.check(path)
    n_nodes = len(list(graph.op_nodes()))
    rows = [[f"`specgraph.check` {RESNET50.relative_to(ROOT)}", fmt_time(chk.median), fmt_time(chk.min),
             fmt_time(chk.max), chk.n, f"< {CHECK_TARGET_S * 1e3:.0f} ms " +
             ("met" if chk.median < CHECK_TARGET_S else "**missed**")],
            [f"`specgraph.load` {RESNET50.relative_to(ROOT)}", fmt_time(ld.median), fmt_time(ld.min),
             fmt_time(ld.max), ld.n, ""],
            ["expand + infer (check − load, medians)", fmt_time(chk.median - ld.median), "", "", "", ""]]
    table = markdown_table(["what", "median", "min", "max", "repeats", "target"], rows, align="lrrrrl")
    met = chk.median < CHECK_TARGET_S
    notes = [
        f"`check` = load (YAML parse, schema validation, includes) + expand (blocks, params) + shape "
        f"inference over the {n_nodes} op nodes of resnet50; it never imports torch. Both are called on the "
        f"path, so every call reads and parses the file again (no caching between calls). Interleaved rounds "
        f"(at least {repeats}, more within an 8 s budget), 3 warmup rounds, `gc.collect()` before each call "
        f"(untimed). An absolute time, not a ratio: there is "
        f"no reference implementation to compare against.",
        (f"**Target < {CHECK_TARGET_S * 1e3:.0f} ms: met** (median {fmt_time(chk.median)})." if met else
         f"**Target < {CHECK_TARGET_S * 1e3:.0f} ms: missed** (median {fmt_time(chk.median)}); load alone is "
         f"{fmt_time(ld.median)}, expand + infer about {fmt_time(chk.median - ld.median)}."),
    ]
    return Section("check and load time (resnet50)", table, notes)


def bench_build(cfg: Config) -> Section:
    import torch
    import torchvision

    import specgraph
    from specgraph.builder import build_module

    torch.set_num_threads(THREADS)
    path = str(RESNET50)
    graph = specgraph.check(path)
    repeats = cfg.repeats(7, minimum=7, quick=1)
    cfg.progress(f"build resnet50: at least {repeats} rounds")
    s = interleaved({"specgraph.build(path)": lambda: specgraph.build(path),
                     "build_module(graph)": lambda: build_module(graph),
                     "torchvision.models.resnet50()": lambda: torchvision.models.resnet50()},
                    repeats=repeats, max_repeats=cfg.repeats(30, minimum=7, quick=1), budget_s=cfg.budget(15.0),
                    warmup=1, progress=cfg.progress, label="build")
    tv = s["torchvision.models.resnet50()"]
    rows = []
    for name, smp in s.items():
        rows.append([f"`{name}`", fmt_time(smp.median), fmt_time(smp.min), fmt_time(smp.max),
                     f"{ratio(smp, tv):.3f}", smp.n])
    table = markdown_table(["what", "median", "min", "max", "ratio to torchvision", "repeats"], rows,
                           align="lrrrrr")
    notes = [
        "**ratio to torchvision** = median time ÷ median time of `torchvision.models.resnet50()`, in the same "
        "interleaved rounds (1 warmup round, at least 7 timed rounds, more within a 15 s budget). `specgraph.build(path)` includes check (load + expand + infer, "
        "see above); `build_module(graph)` starts from an already checked Graph and only creates the "
        "submodules and the fx graph(s).",
        "Not like for like on initialization: torchvision's constructor first runs each layer's default "
        "init (`reset_parameters`) and then its own weight init over every conv "
        "(`kaiming_normal_`) and batch norm; specgraph's modules keep torch's default init "
        "(`reset_parameters` only, run once in each layer's constructor). Random init of resnet50's 25.6 M "
        "parameters is a large part of both times, so the ratio mostly tells how much the compiler itself "
        "adds on top of creating the layers.",
    ]
    return Section("Build time (resnet50)", table, notes)


def run(cfg: Config | None = None) -> list[Section]:
    cfg = cfg or Config()
    # Cheap ones first (a broken spec fails fast); reported in the order of the brief.
    check = bench_check(cfg)
    build = bench_build(cfg)
    models = bench_models(cfg)
    breakdown = bench_breakdown(cfg)
    return [models, breakdown, check, build]


if __name__ == "__main__":
    quick = "--quick" in sys.argv[1:]
    for section in run(Config(quick=quick)):
        print(section.markdown())
