"""Core benchmarks: built models vs torchvision, check time, build time.

1. Forward (eval, no_grad) and forward+backward (train) of the modules specgraph builds
   from specs/resnet50.yaml, googlenet.yaml, vit_b_16.yaml, convnext_tiny.yaml and
   mobilenet_v3_large.yaml against torchvision's, with the same
   weights loaded into both: CPU, batch 8, 3x224x224, ``torch.set_num_threads(2)``.
2. ``specgraph.check`` (load + expand + shape inference) and ``specgraph.load`` of resnet50.
3. ``specgraph.build`` (from the path, and from an already checked Graph through
   ``specgraph.torch.build.build_module``) against ``torchvision.models.resnet50()``.

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
# (warmup included), per model and phase.  On an idle 2-core
# machine the whole of `make bench` then stays within about 4 minutes; on a busy one the
# minimum repeats take as long as they take.
# (eval fresh, train, eval after training) per model, in _models() order.
MODEL_BUDGETS_S = [(20.0, 45.0, 20.0), (10.0, 25.0, 10.0),  # resnet50, googlenet
                   (10.0, 20.0, 10.0), (10.0, 20.0, 10.0), (8.0, 15.0, 8.0)]  # vit_b_16, convnext_tiny, mobilenet_v3

RESNET50 = ROOT / "specs" / "resnet50.yaml"
GOOGLENET = ROOT / "specs" / "googlenet.yaml"


def _models():
    """(name, spec path, torchvision constructor) for the forward/backward comparison."""
    import torchvision

    return [
        ("resnet50", RESNET50, lambda: torchvision.models.resnet50()),
        ("googlenet", GOOGLENET, lambda: torchvision.models.googlenet(aux_logits=False, init_weights=False)),
        ("vit_b_16", ROOT / "specs" / "vit_b_16.yaml", lambda: torchvision.models.vit_b_16()),
        ("convnext_tiny", ROOT / "specs" / "convnext_tiny.yaml", lambda: torchvision.models.convnext_tiny()),
        ("mobilenet_v3_large", ROOT / "specs" / "mobilenet_v3_large.yaml",
         lambda: torchvision.models.mobilenet_v3_large()),
    ]


def _model_pair(spec_path: Path, make_reference):
    """(built, reference) with the reference's state_dict loaded strictly into the built one."""
    import specgraph

    reference = make_reference()
    built = specgraph.build(str(spec_path))
    built.load_state_dict(reference.state_dict(), strict=True)
    return built, reference


PHASES = [
    ("eval_fresh", "eval forward, fresh process"),
    ("train", "train forward+backward"),
    ("eval_trained", "eval forward, after training"),
]


def _measure_model(index: int, cfg: Config, batch: int = BATCH, eval_only: bool = False) -> dict:
    """Runs in a fresh child process: the three phases of one model (``eval_only``: the first), as
    JSON-able samples."""
    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    name, spec_path, make_reference = _models()[index]
    budgets = MODEL_BUDGETS_S[index]
    cfg.progress(f"{name}: building both models (child process)")
    built, reference = _model_pair(spec_path, make_reference)
    x = torch.randn(batch, 3, 224, 224)
    models = {"built": built, "torchvision": reference}

    # Sanity: in eval mode the two must compute the same function.
    with torch.no_grad():
        built.eval()
        reference.eval()
        max_diff = (built(x) - reference(x)).abs().max().item()

    def forward(m):
        def f():
            with torch.no_grad():
                m(x)
        return f

    def train_step(m):
        def f():
            m(x).sum().backward()
        return f

    repeats = cfg.repeats(7, minimum=7, quick=1)
    max_repeats = cfg.repeats(25, minimum=7, quick=1)
    out = {"max_diff": max_diff, "phases": {}}
    for (phase, label), budget in zip(PHASES[:1] if eval_only else PHASES, budgets):
        train = phase == "train"
        for m in models.values():
            m.train(train)
        s = interleaved({k: (train_step if train else forward)(m) for k, m in models.items()},
                        repeats=repeats, max_repeats=max_repeats, budget_s=cfg.budget(budget), warmup=1,
                        before_each=lambda k: models[k].zero_grad(set_to_none=True),
                        progress=cfg.progress, label=f"{name} {label}")
        out["phases"][phase] = {k: v.to_dict() for k, v in s.items()}
    return out


def _model_in_child(index: int, cfg: Config, batch: int = BATCH, eval_only: bool = False) -> dict:
    """_measure_model in a fresh Python process (so every model starts from the same process state)."""
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "samples.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child-model", str(index), "--json", str(out),
               "--t0", repr(cfg.started), "--scale", repr(cfg.scale), "--batch", str(batch)] + (["--quick"] if cfg.quick else []) + \
            (["--eval-only"] if eval_only else [])
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())


def bench_models(cfg: Config) -> list[Section]:
    from timing import Samples

    rows, acct, verdicts = [], [], []
    for index, (name, _, _) in enumerate(_models()):
        res = _model_in_child(index, cfg)
        for phase, label in PHASES:
            s = {k: Samples.from_dict(v) for k, v in res["phases"][phase].items()}
            b, t = s["built"], s["torchvision"]
            r = ratio(b, t)
            q1, _, q3 = quartiles(paired_ratios(b, t))
            met = r <= FORWARD_TARGET
            verdicts.append((name, label, r, met, cpu_ratio(b, t), q3 - q1))
            rows.append([name, label, fmt_time(b.median), fmt_time(t.median), f"**{r:.3f}**",
                         f"{q1:.3f} – {q3:.3f}", f"{b.min / t.min:.3f}", f"{cpu_ratio(b, t):.3f}", b.n,
                         f"≤ {FORWARD_TARGET} " + ("met" if met else "**missed**")])
            acct.append([name, label, f"{b.cpu_median * 1e3:.0f}", f"{t.cpu_median * 1e3:.0f}",
                         f"{b.sys_median * 1e3:.0f}", f"{t.sys_median * 1e3:.0f}",
                         f"{b.faults_median:,.0f}", f"{t.faults_median:,.0f}"])
        rows.append([name, "eval max abs diff", f"{res['max_diff']:.1e}", "", "", "", "", "", "", ""])

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
        "Each model is measured in a fresh Python process, in three phases: **eval forward, fresh process** "
        "(`model.eval()`, `with torch.no_grad(): model(x)`, before any training step: an inference-only "
        "process), **train forward+backward** (`model.train()`, `model(x).sum().backward()`, grads set to "
        "None, untimed, before each call; batch norm updates its running stats and dropout is active in both), "
        "then **eval forward, after training** (the same eval forward again, in the same process). The two "
        "eval rows differ in the state of the C allocator, not in the computation: see the findings below.",
        f"**ratio built/tv** = median time of the built module ÷ median time of torchvision's module, "
        f"both timed in the same interleaved rounds (A, B, then B, A, …; 1 untimed warmup round, then at "
        f"least 7 timed rounds, more — up to 25 — while the phase is within its time budget; the repeats "
        f"column gives the count; a full `gc.collect()` before every call, untimed). 1.000 means equally "
        f"fast; above 1 the built module is slower. **per-round ratio q1 – q3** is the spread of the ratio "
        f"taken within each round (built_i / tv_i): a wide spread means the machine was noisy and the median "
        f"ratio is uncertain by about that much. **ratio of minima** = fastest built ÷ fastest torchvision run, "
        f"the least load-disturbed pair. **CPU-time ratio** = ratio of the median CPU time the process used "
        f"per call (`time.process_time`, both threads), which other processes on the machine inflate much "
        f"less than wall time. The last two are second opinions for when the machine is busy; the target "
        f"applies to the median wall-time ratio.",
        _model_verdict(verdicts),
        FINDINGS,
    ]
    acct_table = markdown_table(
        ["model", "what", "built CPU ms", "tv CPU ms", "built system ms", "tv system ms", "built minor faults",
         "tv minor faults"], acct, align="llrrrrrr")
    acct_notes = [
        "Medians per call over the same rounds as the table above: CPU time of the process (user + system, "
        "both threads), its system (kernel) part from `getrusage`, and the minor page faults taken during "
        "the call. With 2 threads the CPU time also counts OpenMP threads spinning while they wait for "
        "each other, which grows when the machine is busy.",
        "How to read it: the built module runs relu, hardswish, hardsigmoid and the residual add in place "
        "where torchvision does (`ReLU(inplace=True)`, `out += identity`, ConvNeXt's and EfficientNet's "
        "`result += input` after the stochastic depth: `specgraph/ir/in_place.py`), so both allocate the "
        "same activation buffers. In a fresh process glibc's malloc still hands freed buffers this large "
        "back to the kernel, so both take page faults (system time) in the fresh-process eval rows; once "
        "the process has allocated more (one training step is enough), glibc's adaptive thresholds keep "
        "the memory and the faults vanish for both. A fault gap between the two columns would mean the "
        "built module allocates a buffer torchvision does not: `benchmarks/investigate_forward.py "
        "--model NAME` finds which.",
    ]
    return [Section("Built models vs torchvision (CPU)", table, notes),
            Section("Where the time goes: CPU time and page faults per call", acct_table, acct_notes)]


def _model_verdict(verdicts) -> str:
    import statistics

    widths = [w for *_, w in verdicts]
    spread = statistics.median(widths)
    noisy = spread > 2 * (FORWARD_TARGET - 1)
    noise = (f" **This run cannot resolve a {100 * (FORWARD_TARGET - 1):.0f} % target either way**: the median "
             f"width of the per-round ratio's q1 – q3 was {100 * spread:.0f} % (rows from "
             f"{100 * min(widths):.0f} % to {100 * max(widths):.0f} %), i.e. the machine's load moved single "
             f"runs far more than the effect being measured; rerun on a quiet machine, or trust the findings "
             f"below, which were measured in CPU time." if noisy else "")
    missed = [(n, m, r, c) for n, m, r, ok, c, _ in verdicts if not ok]
    if not missed:
        return f"**Target ≤ {FORWARD_TARGET}: met** for every model and phase in this run." + noise
    listed = ", ".join(f"{n} {m} ({r:.3f}, CPU-time ratio {c:.3f})" for n, m, r, c in missed)
    return (f"**Target ≤ {FORWARD_TARGET}: missed** for {listed}." + noise +
            f" Read each miss with its per-round spread and CPU-time ratio: where q1 – q3 straddles "
            f"{FORWARD_TARGET} the miss may be load noise alone (on a 2-core machine shared with other "
            f"processes one disturbed round moves a 7-sample median by several percent). A real gap is "
            f"expected nowhere since the build runs in place what torchvision does: see the findings below.")


FINDINGS = """**Findings (measured with an earlier `benchmarks/investigate_forward.py`, not by `make bench`, on
2026-12-04, before the build ran anything in place; the built module then called out-of-place relu and add).**
Wall times on this shared machine scattered by ±50 % while these were taken (load average 5–9 on 2
cores), so the investigation ran resnet50 with 1 torch thread and compared CPU time, user/system time and
page faults per call, interleaving four variants with identical weights: `tv` (torchvision eager),
`tv_fx` (torchvision through `torch.fx.symbolic_trace`), `built` (specgraph) and `built_inpl` (the built
module with its fx graph rewritten to `torch.relu_` and `+=`).

| resnet50 eval forward, 1 thread | CPU-time ratio to tv | user ms | system ms | minor faults |
| :--- | ---: | ---: | ---: | ---: |
| tv | 1.000 | 810 | 70 | 46,944 |
| tv_fx | 0.986 – 1.043 | 800 | 130 | 59,048 |
| built | 1.081 – 1.123 | 830 | 160 | 78,240 |
| built_inpl | 0.975 – 1.013 | 810 | 70 | 41,792 |
| built, after one training step (`--warm-allocator`) | 0.978 – 1.015 | 830 (tv 840) | 0 | 0 |

(fresh process unless said otherwise; ratio ranges over two runs of 9 and 5 rounds, the last row over two
runs of 5 and 2 rounds; user/system/faults: median of 3 calls.)

1. **The fx GraphModule costs nothing measurable**: torchvision's own model traced into fx runs in the same
   user time as eager; per-node Python dispatch (about 175 nodes) is microseconds against ~1 s of kernels.
2. **The gap is out-of-place relu and residual add, paid in page faults.** torchvision uses
   `ReLU(inplace=True)` and `out += identity`; specgraph emits `torch.relu(x)` and `a + b`, each allocating
   a fresh activation-sized buffer. User time is the same; the built module spends about twice the system
   time, in ~30 k extra minor page faults per forward, because glibc's malloc returns freed buffers this
   large to the kernel and every new one is faulted in and zeroed again. Rewriting the built graph to
   in-place ops (`built_inpl`) brings faults, system time and CPU time back to torchvision's.
3. **It depends on the allocator's state, not on the model.** After one training step in the same process
   (or with `MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=100000000000`), glibc keeps freed
   memory: 0 page faults for every variant and `built` runs at torchvision's CPU time. So the gap shows in
   an inference-only process (the "fresh process" eval rows), not in training or after it.
4. **Train mode is barely affected**: forward+backward CPU-time ratio `built` 1.018, `built_inpl` 1.002,
   `tv_fx` 1.016 (3 rounds, 1 thread).
5. googlenet was not investigated separately; its torchvision `BasicConv2d` also ends in
   `F.relu(x, inplace=True)`, so the same applies to specgraph's `conv_bn` block (it has no residual adds;
   its concats allocate in both).

Since then the default build runs in place what torchvision does (`specgraph/ir/in_place.py`, by op
traits: an in-place-safe op overwrites its first input when that is a fresh tensor no backward reads and
nothing else reads it; through a dropout or stochastic depth too, which is ConvNeXt's and EfficientNet's
`result = stochastic_depth(layer_scale * block(x)); result += x`). Rechecked per model with
`investigate_forward.py --model NAME --batch 1|8` (1 thread, CPU time, faults per call, all three phases):
the built fx graphs of resnet50, googlenet, mobilenet_v3_large, vit_b_16 and convnext_tiny now run the same
aten ops as torchvision's eager code, op for op (mobilenet_v3_large: in-place hardswish, relu and the SE
gate's hardsigmoid, the SE `scale * input` out of place as in torchvision; vit_b_16: the same
`nn.MultiheadAttention` fast path and out-of-place adds and GELU as torchvision), take the same page faults
per call, and their CPU-time ratios scatter around 1.00 by the machine's load (a few percent either way);
the input check costs microseconds per call.

**Lifetimes (2026-12-07).** mobilenet_v3_large's fresh-process eval still missed (1.16 at batch 8, 1.14 at
batch 1) although it ran the same ops in place: the built forward let go of each value right after its last
reader (fx's code), where torchvision's nested module calls hold a block's input until the block returns. The
built module peaked 10 % lower (55.1 against 61.3 MiB at batch 8), and glibc's heap, trimmed back to the kernel
in a different order, was left in a state where most fresh processes re-faulted ~26k pages a call against
torchvision's ~16k (strace: 7-8 `brk`s a forward in both). The build now lets go of each value when the block
it was passed into returns (`specgraph/ir/lifetimes.py`; the memory walk follows): the built resnet18/50,
mobilenet_v2/v3, efficientnet_b0/v2_s, regnet, googlenet, inception_v3, convnext, vit, maxvit, shufflenet,
squeezenet, vgg, alexnet and mnasnet now peak at exactly torchvision's bytes (measured by torch's allocator;
densenet121 and swin_t lower), and in 8 fresh processes each at batch 8 the built/torchvision ratio was
0.94-1.03 (median 0.96; 12.5-19k faults a call) against 0.93-1.26 (median 1.04) freeing at the last use;
at batch 1, 0.93-1.05 (median 0.995) against 0.96-1.13 (median 1.03), 6 processes each.
`optimize(model, "inference")` keeps freeing at the last use (the lowest peak)."""


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
    from specgraph.torch.build import build_module

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
    return [*models, bench_fresh_batch1(cfg), check, build]


def bench_fresh_batch1(cfg: Config) -> Section:
    """The eval forward at batch 1 in a fresh process per model: built vs torchvision."""
    from timing import Samples

    rows, missed = [], []
    for index, (name, _, _) in enumerate(_models()):
        res = _model_in_child(index, cfg, batch=1, eval_only=True)
        s = {k: Samples.from_dict(v) for k, v in res["phases"]["eval_fresh"].items()}
        b, t = s["built"], s["torchvision"]
        r = ratio(b, t)
        q1, _, q3 = quartiles(paired_ratios(b, t))
        if r > 1.0:
            missed.append(f"{name} ({r:.3f})")
        rows.append([name, fmt_time(b.median), fmt_time(t.median), f"**{r:.3f}**", f"{q1:.3f} – {q3:.3f}",
                     f"{cpu_ratio(b, t):.3f}", f"{b.sys_median * 1e3:.1f} / {t.sys_median * 1e3:.1f}", b.n,
                     f"{res['max_diff']:.1e}", "≤ 1.00 " + ("met" if r <= 1.0 else "**missed**")])
    table = markdown_table(["model", "built (median)", "torchvision (median)", "ratio built/tv",
                            "per-round ratio q1 – q3", "CPU-time ratio", "system ms built / tv", "repeats",
                            "eval max abs diff", "target"], rows, align="lrrrrrrrrl")
    notes = ["As the fresh-process eval rows above, at batch 1 (input 1×3×224×224): each model in a new Python "
             "process, `model.eval()`, `with torch.no_grad(): model(x)`, interleaved with torchvision's, "
             f"`torch.set_num_threads({THREADS})`. Target (issue 18): the built module ≤ 1.00× torchvision's time, "
             "which needs the build to allocate like torchvision (in-place relu and residual add).",
             "Target met for every model." if not missed else "Target missed for " + ", ".join(missed) + "."]
    return Section("Built models vs torchvision, eval forward in a fresh process, batch 1 (CPU)", table, notes)


def _main(argv: list[str]) -> None:
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Run bench_core alone and print its sections.")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--t0", type=float)
    ap.add_argument("--child-model", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=BATCH, help=argparse.SUPPRESS)
    ap.add_argument("--eval-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    cfg = Config(quick=args.quick, scale=args.scale)
    if args.t0 is not None:
        cfg.started = args.t0
    if args.child_model is not None:
        args.json.write_text(json.dumps(_measure_model(args.child_model, cfg, args.batch, args.eval_only)))
        return
    for section in run(cfg):
        print(section.markdown())


if __name__ == "__main__":
    _main(sys.argv[1:])
