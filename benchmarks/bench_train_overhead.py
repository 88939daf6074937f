"""Training overhead (issue 18): specgraph.train's training steps against a plain PyTorch loop.

LeNet-5 on Fashion-MNIST (batch 128, Adam, one thread), the same model, data, shuffle and
number of steps: the time from the first step's start to the last step's end, which leaves out
what a run does once (loading data, building, validation, checkpoints, the test pass) and
keeps what Lightning does around every step. Then the same with each of the savings of
specgraph/train/lean.py, guards.py, module.py, stepping.py, metrics.py, checkpoints.py and
optim.py undone, one at a time and all together, to say what each buys. Rounds interleave the variants (order reversed every other round).

    .venv/bin/python benchmarks/run.py --only train_overhead
    .venv/bin/python benchmarks/bench_train_overhead.py [--quick] [--steps N] [--rounds R]
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import specgraph
from timing import Config, Section, markdown_table

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "lenet5.yaml"
SETTINGS = dict(optimizer="adam", lr=2e-3, batch_size=128, seed=0, threads=1)
TARGET = 1.03


def _timer():
    import lightning as L

    class StepsTimer(L.Callback):
        """Wall time from the first training step's start to the last one's end."""

        def __init__(self, steps: int):
            self.steps, self.t0, self.seconds = steps, None, None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                self.t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == self.steps - 1:
                self.seconds = time.perf_counter() - self.t0

    return StepsTimer


def specgraph_steps(steps: int, out: str) -> float:
    timer = _timer()(steps)
    specgraph.train(str(SPEC), "fashion-mnist", epochs=1, limit_train_batches=steps, limit_val_batches=1,
                    accelerator="cpu", monitor="train_loss", progress=False, quiet=True, out=out, overwrite=True,
                    callbacks=[timer], **SETTINGS)
    return timer.seconds


def plain_steps(bundle, steps: int) -> float:
    """The built spec, a DataLoader with specgraph's shuffle, Adam (fused, as specgraph.train's):
    ``steps`` steps."""
    from torch.utils.data import DataLoader

    from specgraph.train.module import EpochSampler

    threads = torch.get_num_threads()
    torch.set_num_threads(SETTINGS["threads"])
    try:
        torch.manual_seed(SETTINGS["seed"])
        model = specgraph.build(str(SPEC), num_classes=bundle.num_classes)
        opt = torch.optim.Adam(model.parameters(), lr=SETTINGS["lr"], fused=True)  # as specgraph.train's
        sampler = EpochSampler(len(bundle.train), SETTINGS["seed"])
        batches = iter(DataLoader(bundle.train, batch_size=SETTINGS["batch_size"], sampler=sampler))
        model.train()
        x, y = next(batches)
        t0 = time.perf_counter()
        for i in range(steps):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            if i < steps - 1:
                x, y = next(batches)
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)


def _undo_patches() -> dict[str, list[tuple[object, str, object]]]:
    """Each saving and how to undo it: (object, attribute, the plain behaviour)."""
    import lightning as L
    import torch.nn as nn
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.profilers import PassThroughProfiler
    from torchmetrics import Metric
    from torchmetrics.classification import MulticlassAccuracy

    from specgraph.train import guards, lean, metrics, module, optim, stepping, tasks
    from specgraph.train.checkpoints import RunCheckpoint
    from specgraph.train.module import SpecModule

    def isfinite_each(loss, grads):  # the check before guards.all_finite
        flags = [torch.isfinite(loss).all()] if loss is not None else []
        flags += [torch.isfinite(g).all() for g in grads]
        return not flags or bool(torch.stack(flags).all())

    def flag_per_dtype(loss, grads):  # guards.all_finite before one flag per device (dense gradients only)
        checks = [torch.isfinite(loss.detach()).all().reshape(1)] if loss is not None else []
        dense = {}
        for g in grads:
            dense.setdefault((g.device, g.dtype), []).append(g)
        for (device, _), tensors in dense.items():
            found = torch.zeros(1, device=device)
            torch._amp_foreach_non_finite_check_and_unscale_(tensors, found, torch.ones(1, device=device))
            checks.append(found == 0)
        return not checks or bool(torch.cat([c.to(checks[0].device) for c in checks]).all())

    def mean_reassigned(self, value, weight):  # WeightedMean.update before its in-place adds
        self.total += value.detach().float() * weight
        self.weight += weight

    def guard_batch_start(self, trainer, pl_module, batch, batch_idx):  # the guard noted the batch in a hook
        self._batch = batch_idx

    undo = {
        "profiler: Lightning's PassThroughProfiler": [(lean.NoProfiler, "profile", PassThroughProfiler.profile)],
        "callback state keys worked out at every hook": [
            (lean.StateKeyOnce, "state_key", property(lambda self: super(lean.StateKeyOnce, self).state_key))],
        "`_current_fx_name` set through nn.Module.__setattr__": [(SpecModule, "__setattr__", nn.Module.__setattr__)],
        "step loss logged every step": [(SpecModule, "_step_loss_is_read", lambda self: True)],
        "non-finite check: isfinite per tensor": [(guards, "all_finite", isfinite_each)],
        "non-finite check: a flag per dtype, joined by cat": [(guards, "all_finite", flag_per_dtype)],
        "accuracy: torchmetrics' MulticlassAccuracy": [(tasks, "_accuracy", lambda: MulticlassAccuracy(
            num_classes=10, average="micro", validate_args=False))],  # Fashion-MNIST's ten classes
        "metric updates: torchmetrics' wrapper, states reassigned": [
            (metrics.SumsMetric, "_wrap_update", Metric._wrap_update), (metrics.WeightedMean, "update", mean_reassigned)],
        "idle per-step hooks of our callbacks and the module called": [
            (lean, "skip_idle_step_hooks", lambda obj, base: []), (module, "skip_idle_step_hooks", lambda obj, base: []),
            (RunCheckpoint, "__init__", ModelCheckpoint.__init__),
            (guards.NonFiniteGuard, "on_train_batch_start", guard_batch_start)],
        "training_step's signature rebuilt every step": [(SpecModule.training_step, "__signature__", None)],
        "gradient clipping's hook called with nothing to clip": [(SpecModule, "__init__", _clip_hook_kept(SpecModule))],
        # Lightning's closure, its progress counters, the hooks around zero_grad and the step, the
        # scheduler loop; training_step then only returns the loss (its clipping hook off, as before)
        "automatic optimisation: Lightning's loop steps the optimiser": [
            (SpecModule, "automatic_optimization", True), (SpecModule, "_optimise", lambda self, loss: None),
            (SpecModule, "configure_gradient_clipping", None)],
        "backward through Lightning with no hook to call": [(stepping, "_backward_is_plain", lambda module, trainer: False)],
        "batch moved by Lightning's generic walk": [
            (SpecModule, "transfer_batch_to_device", L.LightningModule.transfer_batch_to_device)],
    }
    # all of them: the per-tensor check is what came before both non-finite savings
    undo["all of the above undone"] = [p for name, ps in undo.items() if name != "non-finite check: a flag per dtype, "
                                       "joined by cat" for p in ps]
    # not a loop overhead (the plain loop above uses the fused kernel too): what it buys the step
    undo["Adam: torch's default per-tensor loop (plain loop fused)"] = [(optim, "_fused_adam", lambda *a: None)]
    return undo


def _clip_hook_kept(cls):
    """SpecModule.__init__, then its clipping hook (on_before_optimizer_step) called every step again."""
    init = cls.__init__

    def kept(self, *args, **kwargs):
        init(self, *args, **kwargs)
        vars(self).pop("on_before_optimizer_step", None)

    return kept


@contextlib.contextmanager
def patched(patches):
    saved = [(obj, name, obj.__dict__[name] if name in vars(obj) else getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in reversed(saved):
            setattr(obj, name, value)


def run(cfg: Config | None = None, steps: int | None = None, rounds: int | None = None) -> list[Section]:
    cfg = cfg or Config()
    import warnings

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    from specgraph.train.datasets import load_dataset

    steps = steps or (40 if cfg.quick else 300)
    rounds = rounds or cfg.repeats(3, minimum=2, quick=1)
    bundle = load_dataset("fashion-mnist", seed=SETTINGS["seed"])
    undo = _undo_patches()
    variants = {"plain PyTorch loop": None, "specgraph.train": [], **undo}
    times: dict[str, list[float]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as tmp:
        specgraph_steps(5, f"{tmp}/warm")  # imports, page cache
        for r in range(rounds):
            order = list(variants)[::-1] if r % 2 else list(variants)
            for name in order:
                if variants[name] is None:
                    times[name].append(plain_steps(bundle, steps))
                else:
                    with patched(variants[name]):
                        times[name].append(specgraph_steps(steps, f"{tmp}/run"))
            cfg.progress(f"train overhead: round {r + 1}/{rounds}: "
                         + ", ".join(f"{k.split(':')[0][:24]} {v[-1]:.2f} s" for k, v in times.items()))
    plain = statistics.median(times["plain PyTorch loop"])
    ours = statistics.median(times["specgraph.train"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        step = med / steps
        rows.append([name, f"{step * 1e3:.2f} ms", f"{min(ts) / steps * 1e3:.2f}–{max(ts) / steps * 1e3:.2f} ms",
                     f"**{med / plain:.3f}**", "" if variants[name] in (None, []) else f"{(med - ours) / steps * 1e6:+.0f} µs"])
    table = markdown_table(["training steps of", "median step", "range", "time / plain loop",
                            "step cost of undoing it"], rows, align="lrrrr")
    met = "met" if ours / plain <= TARGET else "**not met**"
    notes = [
        f"Target (issue 18): specgraph.train ≤ {TARGET:.2f}× the plain loop: {ours / plain:.3f}×, {met}. "
        f"{steps} training steps of specs/lenet5.yaml on Fashion-MNIST, batch {SETTINGS['batch_size']}, Adam lr "
        f"{SETTINGS['lr']:g}, one torch thread, medians of {rounds} interleaved rounds, each run a whole "
        "`specgraph.train` call (its progress bar off, as in a log file) of which only the steps are timed: from the "
        "first step's start to the last step's end (a callback), so data loading, building, validation, "
        "checkpoints and the test pass are left out; the plain loop (the same built spec, a DataLoader with "
        "specgraph's shuffle, Adam) is timed the same way.",
        "The rows below specgraph.train undo one saving each (the code before it, restored by a patch in this "
        "benchmark): what the step then costs more is what that saving buys. `profiler`: Lightning wraps every hook "
        "call (about ninety a step) in its profiler's context, a generator-based one when none is asked for; "
        "`state keys`: the callbacks' labels for those contexts (ModelCheckpoint's is the repr of five "
        "settings); `_current_fx_name`: Lightning sets it around every hook, through nn.Module's __setattr__; "
        "`step loss`: `self.log` of the step loss, now only on the steps whose logs are written (every "
        "log_every_n_steps) or with a progress bar; `non-finite check`: one fused kernel per dtype "
        "(torch's GradScaler check) instead of two kernels per gradient, then one flag per device, read once, and "
        "the loss read as a number, instead of a flag per dtype and the loss's isfinite joined by `cat`; `accuracy`: hits / "
        "examples counted in four operations, where torchmetrics' micro MulticlassAccuracy counted every class's four "
        "stat scores; `metric updates`: the update adds to the sums in place and counts itself without "
        "nn.Module's `__setattr__`; `idle hooks`: Lightning calls six hooks a step on every callback and on the "
        "module; those left as Lightning's no-ops (and ModelCheckpoint's step hook, which saves only every n steps) "
        "are set to None, which Lightning skips; `signature`: Lightning reads training_step's signature every step, "
        "now given rather than rebuilt; `gradient clipping`: without --grad-clip, the clipping hook checked its settings "
        "every step to clip by 0, now it is not called; `automatic optimisation`: Lightning's automatic optimisation "
        "ran every step in a closure passed to the optimiser, with its progress counters, its hooks around zero_grad "
        "and the step (on every callback) and its scheduler loop; the module now zeroes, backpropagates and steps "
        "itself (Lightning's manual optimisation), calling the hooks that do something; `backward`: with no backward hook "
        "that does something, one process and full precision, `loss.backward()` itself rather than Lightning's "
        "backward, which called the no-op hooks on every callback; `batch moved`: an (inputs, targets) batch of "
        "tensors is moved tensor by tensor, where Lightning's generic walk made an ABC isinstance check per item. "
        "The last row is not loop overhead: "
        "specgraph.train's Adam uses torch's fused kernel (the plain loop here does too); undoing it shows what "
        "that buys a LeNet step.",
    ]
    return [Section("Training overhead: specgraph.train steps against a plain loop (CPU)", table, notes)]


if __name__ == "__main__":
    args = sys.argv[1:]
    given = {k: int(args[args.index(f"--{k}") + 1]) for k in ("steps", "rounds") if f"--{k}" in args}
    for section in run(Config(quick="--quick" in args), **given):
        print(section.markdown())
