"""What the training loop does without, or does once, per step (specgraph/train/lean.py, the
non-finite check of guards.py, the step loss logged only when it is read): each against the
plain behaviour it replaces."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("sklearn")

from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint  # noqa: E402

from specgraph.train.checkpoints import RunCheckpoint, run_checkpoints  # noqa: E402
from specgraph.train.guards import all_finite  # noqa: E402
from specgraph.train.lean import NoProfiler, StateKeyOnce  # noqa: E402
from specgraph.train.module import SpecModule  # noqa: E402
from specgraph.train.runner import train  # noqa: E402


def reference_all_finite(loss, grads) -> bool:
    flags = [bool(torch.isfinite(loss).all())] if loss is not None else []
    for g in grads:
        flags.append(bool(torch.isfinite(g._values() if g.is_sparse else g).all()))
    return all(flags)


def test_all_finite_agrees_with_isfinite_and_leaves_the_gradients_alone():
    gen = torch.Generator().manual_seed(0)
    base = [torch.randn(5, 3, generator=gen), torch.randn(7, generator=gen, dtype=torch.float64),
            torch.randn(2, 2, 2, generator=gen), torch.sparse_coo_tensor([[0, 2]], torch.randn(2, 4), (5, 4), check_invariants=True)]
    loss = torch.tensor(0.7)
    cases = [(loss, []), (None, []), (None, base), (loss, base), (torch.tensor(float("nan")), base),
             (torch.tensor(float("inf")), [])]
    for i, bad in enumerate([float("nan"), float("inf"), float("-inf")]):
        for j in range(len(base)):
            grads = [g.clone() for g in base]
            if grads[j].is_sparse:
                values = grads[j]._values().clone()
                values[1, i] = bad
                grads[j] = torch.sparse_coo_tensor(grads[j]._indices(), values, grads[j].shape, check_invariants=True)
            else:
                grads[j].view(-1)[i] = bad
            cases.append((loss, grads))
    for loss_, grads in cases:
        before = [g.clone() for g in grads]
        assert all_finite(loss_, grads) == reference_all_finite(loss_, grads), (loss_, grads)
        for a, b in zip(before, grads):  # checked, not scaled: every value as it was, bit for bit
            a, b = (a.to_dense(), b.to_dense()) if a.is_sparse else (a, b)
            assert torch.equal(a.nan_to_num(), b.nan_to_num()) and torch.equal(a.isnan(), b.isnan())
    assert sum(not all_finite(l_, g) for l_, g in cases) == 3 * len(base) + 2  # and the two non-finite losses


def test_checkpoint_and_early_stopping_state_keys_are_lightnings(tmp_path):
    """Checkpoints name a callback's state by its key: ours must be the plain class's, so that a
    checkpoint of either resumes with the other."""
    best, last = run_checkpoints(tmp_path, "val_loss", "min")
    common = dict(dirpath=tmp_path, save_top_k=1, save_on_train_epoch_end=True, auto_insert_metric_name=False,
                  enable_version_counter=False)
    assert isinstance(best, RunCheckpoint)
    assert best.state_key == ModelCheckpoint(filename="best", monitor="val_loss", mode="min", **common).state_key
    assert last.state_key == ModelCheckpoint(filename="last", monitor=None, **common).state_key
    assert best.state_key != last.state_key and best.state_key is best.state_key  # worked out once

    class Stopper(StateKeyOnce, EarlyStopping):
        key_class = "EarlyStopping"

    assert Stopper(monitor="val_acc", mode="max", patience=3).state_key == \
        EarlyStopping(monitor="val_acc", mode="max", patience=3).state_key


def test_no_profiler_is_an_empty_context():
    profiler = NoProfiler()
    with profiler.profile("[Callback]ModelCheckpoint{...}.on_train_batch_end"):
        pass
    assert profiler.profile("a") is profiler.profile("b")




def test_step_loss_logs_are_those_of_logging_every_step(tiny, monkeypatch):
    """The step loss is logged only on the steps Lightning writes logs: metrics and CSV logs are
    the same as when it is logged every step."""
    quick = dict(batch_size=16, limit_val_batches=2, threads=1, progress=False, epochs=3, seed=3)  # 79 steps an epoch
    lean = train("tiny.yaml", "digits", out="lean", **quick)
    monkeypatch.setattr(SpecModule, "_step_loss_is_read", lambda self: True)
    every = train("tiny.yaml", "digits", out="every", **quick)
    assert lean.history == every.history

    def logs(run):
        [path] = (tiny.parent / run / "logs").rglob("metrics.csv")
        return path.read_text()

    text = logs("lean")
    assert text == logs("every")
    header, *rows = text.splitlines()
    col = header.split(",").index("loss")
    steps = [int(r.split(",")[header.split(",").index("step")]) for r in rows if r.split(",")[col]]
    assert steps == [49, 99, 149, 199]  # log_every_n_steps is 50


def test_adam_is_fused_on_the_cpu_and_takes_torchs_default_steps():
    """configure_optimizers picks Adam's fused kernel: ten steps land where the default loop's do."""
    from types import SimpleNamespace

    from specgraph.train.optim import _fused_adam

    gen = torch.Generator().manual_seed(1)
    for cls, wd in ((torch.optim.Adam, 0.0), (torch.optim.Adam, 0.01), (torch.optim.AdamW, 0.01)):
        start = [torch.randn(40, 7, generator=gen), torch.randn(7, generator=gen)]
        grads = [[torch.randn(p.shape, generator=gen) for p in start] for _ in range(10)]
        ends = []
        for fused in (True, None):
            params = [torch.nn.Parameter(p.clone()) for p in start]
            opt = cls(params, lr=1e-2, weight_decay=wd, fused=fused)
            for g in grads:
                for p, gi in zip(params, g):
                    p.grad = gi.clone()
                opt.step()
            ends.append(params)
        for a, b in zip(*ends):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    p = [torch.nn.Parameter(torch.zeros(3))]
    assert _fused_adam(p, "32") is True and _fused_adam(p, "bf16-mixed") is True
    assert _fused_adam(p, "16-mixed") is None and _fused_adam([], "32") is None
    assert _fused_adam([torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))], "32") is True
    module = SimpleNamespace(model=torch.nn.Linear(3, 2), config=SimpleNamespace(
        optimizer="adamw", lr=1e-3, weight_decay=0.0, momentum=0.9, precision="32", lr_schedule="constant"))
    opt = SpecModule.configure_optimizers(module)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["fused"] is True


# ---------------------------------------------------------------- the epoch metrics' step updates

def test_accuracy_is_torchmetrics_micro_accuracy():
    """metrics.Accuracy against torchmetrics' MulticlassAccuracy(average="micro"), which it
    replaces: scores with ties (small integers), [N, C] and [N, C, H, W], several updates, a reset."""
    from torchmetrics.classification import MulticlassAccuracy

    from specgraph.train.metrics import Accuracy

    gen = torch.Generator().manual_seed(2)
    for shape in ((37, 5), (6, 4, 3, 5), (1, 7)):
        ours, ref = Accuracy(), MulticlassAccuracy(num_classes=shape[1], average="micro")
        for _ in range(2):  # a second epoch after reset
            for n in (shape[0], 3):
                pred = torch.randint(0, 3, (n, *shape[1:]), generator=gen).float()  # ties: argmax takes the first
                target = torch.randint(0, shape[1], (n, *shape[2:]), generator=gen)
                ours.update(pred, target)
                ref.update(pred, target)
            assert ours.update_count == ref.update_count == 2
            assert torch.equal(ours.compute(), ref.compute()), shape
            ours.reset()
            ref.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):  # torchmetrics' warning
        assert Accuracy().compute() == 0.0  # no examples: as torchmetrics, 0


def test_weighted_mean_counts_updates_and_drops_its_cached_result_as_torchmetrics_does():
    """SumsMetric's own update wrapper: update_count, the cached compute() dropped on update,
    reset, and the sums: Σ value·weight / Σ weight, a NaN staying a NaN."""
    from specgraph.train.metrics import WeightedMean

    m = WeightedMean()
    assert not m.update_called
    m.update(torch.tensor(2.0), 3)
    m.update(torch.tensor(0.5, requires_grad=True) * 2, 1)  # a loss with a graph: read detached
    assert m.update_count == 2 and m.compute().item() == pytest.approx((2.0 * 3 + 1.0) / 4)
    assert not m.total.requires_grad
    m.update(torch.tensor(5.0), 4)  # the cached result of compute() is dropped
    assert m.compute().item() == pytest.approx((6 + 1 + 20) / 8)
    m.reset()
    assert m.update_count == 0 and m.total.item() == 0 and m.weight.item() == 0
    m.update(torch.tensor(float("nan")), 2)
    assert m.compute().isnan()
    m.reset()  # the default it resets to was not mutated by the in-place adds
    assert m.total.item() == 0 and m._defaults["total"].item() == 0


# ---------------------------------------------------------------- idle step hooks

def test_idle_step_hooks_are_skipped_and_the_others_kept(tiny):
    """Hooks left as Lightning's no-ops are None on the instance (Lightning calls only callable
    hooks); a hook a callback defines is kept; a run calls a user's callback hooks every step."""
    import lightning as L

    from specgraph.train.guards import NonFiniteGuard
    from specgraph.train.lean import STEP_HOOKS, skip_idle_step_hooks

    guard = NonFiniteGuard("stop")
    skipped = skip_idle_step_hooks(guard, L.Callback)
    assert "on_before_optimizer_step" not in skipped and callable(guard.on_before_optimizer_step)
    assert set(skipped) == set(STEP_HOOKS) - {"on_before_optimizer_step"}
    assert all(getattr(guard, h) is None for h in skipped)
    assert callable(NonFiniteGuard("stop").on_train_batch_end)  # the class is untouched

    best, last = run_checkpoints(tiny.parent / "ckpt", "val_loss", "min")
    assert best.on_train_batch_end is None and last.on_train_batch_end is None  # they save at epoch ends
    every = RunCheckpoint(dirpath=tiny.parent / "ckpt", every_n_train_steps=5)
    assert callable(every.on_train_batch_end)

    class Count(L.Callback):
        def __init__(self):
            self.calls = {h: 0 for h in STEP_HOOKS}

    def counter(hook):
        def count(self, *args):
            self.calls[hook] += 1
        return count

    for hook in STEP_HOOKS:
        setattr(Count, hook, counter(hook))
    counted = Count()
    r = train("tiny.yaml", "digits", epochs=1, limit_train_batches=4, limit_val_batches=1, threads=1,
              progress=False, out="hooks", callbacks=[counted])
    assert all(n == 4 for n in counted.calls.values()), counted.calls  # a user's callback: every hook, every step
    assert r.epochs == 1 and (r.run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (r.run_dir / "checkpoints" / "best.ckpt").is_file()


def test_training_step_signature_is_given_and_true():
    import inspect

    from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

    given = SpecModule.training_step.__signature__
    del SpecModule.training_step.__signature__
    try:
        assert inspect.signature(SpecModule.training_step) == given  # what inspect makes of the code itself
    finally:
        SpecModule.training_step.__signature__ = given
    assert is_param_in_hook_signature(SpecModule.training_step, "batch_idx", min_args=2)


def test_gradients_are_clipped_with_grad_clip_and_the_hook_is_skipped_without(tiny):
    """The module's clipping hook is not called without --grad-clip (it would clip by 0); with it,
    every step's gradients reach the optimiser clipped to the norm asked for."""
    import lightning as L

    class Norms(L.Callback):
        def on_train_start(self, trainer, module):
            self.norms, self.hook = [], module.on_before_optimizer_step

            def after_step(opt, args, kwargs):  # the clipping hook ran inside step(), before the update
                grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
                self.norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g)
                                                                              for g in grads]))))
            trainer.optimizers[0].register_step_post_hook(after_step)

    quick = dict(epochs=1, limit_train_batches=5, limit_val_batches=1, threads=1, progress=False, lr=0.05)
    clipped, free = Norms(), Norms()
    train("tiny.yaml", "digits", out="clipped", grad_clip=1e-3, callbacks=[clipped], **quick)
    train("tiny.yaml", "digits", out="free", callbacks=[free], **quick)
    assert len(clipped.norms) == len(free.norms) == 5
    assert callable(clipped.hook) and free.hook is None
    assert max(clipped.norms) <= 1e-3 * (1 + 1e-4) and min(free.norms) > 1e-2
