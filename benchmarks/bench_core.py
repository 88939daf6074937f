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
    warmup = 1
    rows = []
    verdicts = []
    for name, spec_path, make_reference in _models():
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
        f"then {repeats} timed rounds each; a full `gc.collect()` before every call, untimed). "
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
    ]
    return Section("Built models vs torchvision (CPU)", table, notes)


def _model_verdict(verdicts) -> str:
    missed = [(n, m, r) for n, m, r, ok in verdicts if not ok]
    if not missed:
        return (f"**Target ≤ {FORWARD_TARGET}: met** for every model and mode. The built modules run the same "
                f"aten kernels as torchvision's; what differs is only Python dispatch (an fx GraphModule's "
                f"generated `forward` instead of nested `nn.Module` calls) and that specgraph emits "
                f"out-of-place `torch.relu` and `a + b` where torchvision uses `ReLU(inplace=True)` and "
                f"`out += identity`.")
    listed = ", ".join(f"{n} {m} ({r:.3f})" for n, m, r in missed)
    return (f"**Target ≤ {FORWARD_TARGET}: missed** for {listed}. Read together with the per-round spread: "
            f"where q1 – q3 straddles 1.02 the miss is within this machine's noise (on a 2-core machine "
            f"shared with other processes a single slow round moves a 7-sample median by a few percent). "
            f"Structural differences that can cost time: specgraph emits out-of-place `torch.relu` and "
            f"`a + b` where torchvision uses `ReLU(inplace=True)` and `out += identity` (a fresh "
            f"activation-sized buffer per relu/add, i.e. more allocation and memory traffic), and the fx "
            f"GraphModule's generated forward (Python overhead per node, negligible against "
            f"convolution time at batch 8). `benchmarks/investigate_forward.py` measures each of these "
            f"separately.")


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
    """resnet50 eval forward: profiler self CPU time per op group, and minor page faults, per model."""
    import resource
    from collections import defaultdict

    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    built, reference = _model_pair(RESNET50, _models()[0][2])
    models = {"built": built.eval(), "torchvision": reference.eval()}
    x = torch.randn(BATCH, 3, 224, 224)
    rounds = cfg.repeats(3, minimum=2, quick=1)
    ms = {k: defaultdict(float) for k in models}
    faults = {k: [] for k in models}
    with torch.no_grad():
        for m in models.values():
            m(x)  # warmup
        for r in range(rounds):
            for k in (list(models) if r % 2 == 0 else list(models)[::-1]):
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                models[k](x)
                faults[k].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    models[k](x)
                for e in prof.key_averages():
                    ms[k][_group(e.key)] += e.self_cpu_time_total / 1e3 / rounds
            cfg.progress(f"resnet50 op breakdown {r + 1}/{rounds}")
    groups = _GROUPS
    rows = []
    for g in groups:
        b, t = ms["built"][g], ms["torchvision"][g]
        rows.append([g, f"{b:.1f}", f"{t:.1f}", f"{b - t:+.1f}"])
    tb, tt = sum(ms["built"].values()), sum(ms["torchvision"].values())
    rows.append(["**total**", f"{tb:.1f}", f"{tt:.1f}", f"{tb - tt:+.1f}"])
    fb = sorted(faults["built"])[len(faults["built"]) // 2]
    ft = sorted(faults["torchvision"])[len(faults["torchvision"]) // 2]
    rows.append(["minor page faults per forward (median)", f"{fb}", f"{ft}", f"{fb - ft:+d}"])
    table = markdown_table(["op group", "built (ms)", "torchvision (ms)", "built − tv (ms)"], rows, align="lrrr")
    extra = (ms["built"][groups[2]] - ms["torchvision"][groups[2]]) + (ms["built"][groups[3]] - ms["torchvision"][groups[3]])
    notes = [
        f"`torch.profiler` self CPU time per aten op, summed by group, mean of {rounds} profiled eval forwards "
        f"per model (interleaved, batch {BATCH}, 2 threads); page faults from `getrusage` around an unprofiled "
        f"forward. Per-op times are as noisy as the machine; compare the relu and add rows, where the two "
        f"models run different kernels: specgraph's fx graph calls out-of-place `torch.relu` and `a + b`, "
        f"torchvision calls `ReLU(inplace=True)` and `out += identity`.",
        f"This run: out-of-place relu + add cost **{extra:+.1f} ms** per forward against in-place "
        f"({100 * extra / tt:+.1f}% of torchvision's profiled total). An out-of-place op writes a fresh "
        f"activation-sized buffer (up to 8×256×56×56 floats = 25.7 MB in layer1); large CPU allocations are "
        f"returned to the OS when freed, so each one is faulted in again (the page-fault row), and the extra "
        f"buffer costs memory bandwidth. Convolution and batch norm run identical kernels in both.",
    ]
    return Section("Where the time goes: resnet50 eval forward by op", table, notes)


def bench_check(cfg: Config) -> Section:
    import specgraph

    path = str(RESNET50)
    repeats = cfg.repeats(40, minimum=20, quick=3)
    cfg.progress(f"check/load resnet50: {repeats} rounds")
    s = interleaved({"check (load + expand + infer)": lambda: specgraph.check(path),
                     "load only": lambda: specgraph.load(path)},
                    repeats=repeats, warmup=3, alternate=True)
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
        f"path, so every call reads and parses the file again (no caching between calls). Interleaved rounds, "
        f"3 warmup rounds, `gc.collect()` before each call (untimed). An absolute time, not a ratio: there is "
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
    repeats = cfg.repeats(10, minimum=7, quick=1)
    cfg.progress(f"build resnet50: {repeats} rounds")
    s = interleaved({"specgraph.build(path)": lambda: specgraph.build(path),
                     "build_module(graph)": lambda: build_module(graph),
                     "torchvision.models.resnet50()": lambda: torchvision.models.resnet50()},
                    repeats=repeats, warmup=1, progress=cfg.progress, label="build")
    tv = s["torchvision.models.resnet50()"]
    rows = []
    for name, smp in s.items():
        rows.append([f"`{name}`", fmt_time(smp.median), fmt_time(smp.min), fmt_time(smp.max),
                     f"{ratio(smp, tv):.3f}", smp.n])
    table = markdown_table(["what", "median", "min", "max", "ratio to torchvision", "repeats"], rows,
                           align="lrrrrr")
    notes = [
        "**ratio to torchvision** = median time ÷ median time of `torchvision.models.resnet50()`, in the same "
        "interleaved rounds (1 warmup round). `specgraph.build(path)` includes check (load + expand + infer, "
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
