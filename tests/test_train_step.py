"""The optimiser step that SpecModule takes itself (Lightning's manual optimisation) against
Lightning's automatic optimisation, which specgraph used before: the reference is the module as it
was (``AutomaticSpecModule`` below: automatic_optimization on, training_step returning the loss,
Lightning's closure, clipping hook and schedule stepping). The same run must give the same losses,
weights, optimiser state and lr at every step, bit for bit; and a checkpoint that automatic
optimisation wrote must resume at its step count, epoch and schedule position, and go on exactly as
a run that was never interrupted.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("sklearn")

import lightning as L  # noqa: E402

from specgraph.train import module as module_py  # noqa: E402
from specgraph.train.stepping import upgrade_step_count  # noqa: E402
from specgraph.train.module import SpecModule  # noqa: E402
from specgraph.train.rundir import TrainingInterrupted  # noqa: E402
from specgraph.train.runner import train  # noqa: E402
from test_train_schedule import CtrlCAtEpoch  # noqa: E402

QUICK = dict(batch_size=32, limit_train_batches=4, limit_val_batches=2, threads=1, progress=False)
AUTOMATIC_STEPS = "epoch_loop.automatic_optimization.optim_progress"
MANUAL_STEPS = "epoch_loop.manual_optimization.optim_step_progress"


class AutomaticSpecModule(SpecModule):
    """SpecModule as it was before it stepped the optimiser itself: Lightning's automatic
    optimisation, with Lightning's own clipping hook (then given ``gradient_clip_val`` by the Trainer)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.automatic_optimization = True
        vars(self).pop("on_before_optimizer_step", None)  # Lightning's no-op: clipping is the hook below
        self.on_before_optimizer_step = None

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        if self._step_loss_is_read():
            self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=int(batch[1].shape[0]))
        return loss

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        if self.config.grad_clip:  # what Trainer(gradient_clip_val=grad_clip) made Lightning's default do
            self.clip_gradients(optimizer, gradient_clip_val=self.config.grad_clip, gradient_clip_algorithm="norm")


class Seen(L.Callback):
    """Per step: global_step and epoch as the step starts, the lr the optimiser uses, the loss;
    the hooks around zero_grad."""

    def __init__(self):
        self.steps, self.epochs, self.lrs, self.losses, self.zero_grads = [], [], [], [], 0
        self.plain_backward = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.plain_backward = module._plain_backward  # found as training starts, after the callbacks' hook
        self.steps.append(trainer.global_step)
        self.epochs.append(trainer.current_epoch)

    def on_before_zero_grad(self, trainer, module, optimizer):
        assert isinstance(optimizer, torch.optim.Optimizer)
        self.zero_grads += 1

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _same_tensors(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same_tensors(x, y) for x, y in zip(a, b))
    return a == b


class GradNorms(L.Callback):
    """A backward hook that does something: the gradients' norm after every backward."""

    def __init__(self):
        self.norms = []

    def on_after_backward(self, trainer, module):
        self.norms.append(float(torch.linalg.vector_norm(module.model.hidden.weight.grad)))


@pytest.mark.parametrize("settings,hooked,plain", [
    (dict(optimizer="sgd", momentum=0.9, lr=0.5, grad_clip=0.05, lr_schedule="linear"), False, True),
    (dict(optimizer="sgd", momentum=0.9, lr=0.5, grad_clip=0.05, lr_schedule="linear"), True, False),
    (dict(optimizer="adam", lr=0.01, lr_schedule="cosine"), False, True),
    (dict(optimizer="adamw", lr=0.01, precision="bf16-mixed"), False, False),
], ids=["sgd-clip-linear", "sgd-clip-linear-backward-hook", "adam-cosine", "adamw-bf16"])
def test_the_step_is_automatic_optimisations_bit_for_bit(tiny, monkeypatch, settings, hooked, plain):
    """``plain``: whether the backward is loss.backward() itself (no hook to call, full precision)."""
    ours, theirs, our_norms, their_norms = Seen(), Seen(), GradNorms(), GradNorms()
    extra = ([our_norms], [their_norms]) if hooked else ([], [])
    a = train(tiny, "digits", epochs=2, out="ours", callbacks=[ours, *extra[0]], **settings, **QUICK)
    with monkeypatch.context() as m:
        m.setattr(module_py, "SpecModule", AutomaticSpecModule)
        b = train(tiny, "digits", epochs=2, out="theirs", callbacks=[theirs, *extra[1]], **settings, **QUICK)
    assert ours.plain_backward is plain
    assert our_norms.norms == their_norms.norms and len(our_norms.norms) == (8 if hooked else 0)
    assert ours.losses == theirs.losses and len(ours.losses) == 8
    assert ours.lrs == theirs.lrs and ours.steps == theirs.steps == list(range(8))
    assert ours.zero_grads == theirs.zero_grads == 8  # a user's on_before_zero_grad, every step
    x, y = _state(a.last_checkpoint), _state(b.last_checkpoint)
    assert x["global_step"] == y["global_step"] == 8
    assert _same_tensors(x["state_dict"], y["state_dict"])
    assert _same_tensors(x["optimizer_states"], y["optimizer_states"]) and x["lr_schedulers"] == y["lr_schedulers"]
    assert a.history == b.history


def test_nan_skip_is_automatic_optimisations(tiny, monkeypatch):
    """A skipped step (nan_policy: skip) moves nothing, counts as a step and steps the schedule."""

    class Poison(Seen):
        def on_before_optimizer_step(self, trainer, module, optimizer):
            super().on_before_optimizer_step(trainer, module, optimizer)
            if trainer.global_step in (2, 5):
                module.model.hidden.weight.grad[0, 0] = float("nan")

    settings = dict(epochs=2, nan_policy="skip", optimizer="sgd", lr=0.3, lr_schedule="linear", **QUICK)
    ours, theirs = Poison(), Poison()
    a = train(tiny, "digits", out="ours", callbacks=[ours], **settings)
    with monkeypatch.context() as m:
        m.setattr(module_py, "SpecModule", AutomaticSpecModule)
        b = train(tiny, "digits", out="theirs", callbacks=[theirs], **settings)
    assert a.skipped_steps == b.skipped_steps == 2
    assert ours.losses == theirs.losses and ours.lrs == theirs.lrs
    assert _same_tensors(_state(a.last_checkpoint)["state_dict"], _state(b.last_checkpoint)["state_dict"])


def test_an_automatic_optimisation_checkpoint_resumes_exactly(tiny, monkeypatch):
    """last.ckpt of a run interrupted after epoch 2 of 4 under automatic optimisation (the format
    every run before this change wrote), resumed by today's code: the step count, epoch and
    schedule go on where they were, and every later loss and the final state are those of a run
    that was never interrupted."""
    settings = dict(epochs=4, optimizer="adam", lr=0.02, lr_schedule="linear", seed=3, **QUICK)
    whole_seen = Seen()
    whole = train(tiny, "digits", out="whole", callbacks=[whole_seen], **settings)
    with monkeypatch.context() as m:
        m.setattr(module_py, "SpecModule", AutomaticSpecModule)
        with pytest.raises(TrainingInterrupted):
            train(tiny, "digits", out="split", callbacks=[CtrlCAtEpoch(2)], **settings)
    old = _state(tiny.parent / "split" / "checkpoints" / "last.ckpt")
    loops = old["loops"]["fit_loop"]
    assert old["global_step"] == 8 and old["epoch"] == 1
    assert loops[AUTOMATIC_STEPS]["optimizer"]["step"]["total"]["completed"] == 8  # the old format
    assert loops[MANUAL_STEPS]["total"]["completed"] == 0

    seen = Seen()
    resumed = train(tiny, "digits", out="split", resume=True, callbacks=[seen], **settings)
    assert seen.steps == list(range(8, 16)) and seen.epochs == [2] * 4 + [3] * 4
    assert seen.lrs == pytest.approx([0.02 * (1 - k / 16) for k in range(8, 16)], rel=1e-12)
    assert seen.lrs == whole_seen.lrs[8:] and seen.losses == whole_seen.losses[8:]
    a, b = _state(whole.last_checkpoint), _state(resumed.last_checkpoint)
    assert a["global_step"] == b["global_step"] == 16 and a["epoch"] == b["epoch"] == 3
    assert _same_tensors(a["state_dict"], b["state_dict"])
    assert _same_tensors(a["optimizer_states"], b["optimizer_states"]) and a["lr_schedulers"] == b["lr_schedulers"]
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[2:] == whole.history[2:]


def test_without_the_upgrade_the_old_checkpoint_would_count_from_zero(tiny, monkeypatch):
    """What upgrade_step_count is for: Lightning reads the other counter under manual optimisation."""
    settings = dict(epochs=3, optimizer="sgd", lr=0.05, **QUICK)
    with monkeypatch.context() as m:
        m.setattr(module_py, "SpecModule", AutomaticSpecModule)
        with pytest.raises(TrainingInterrupted):
            train(tiny, "digits", out="split", callbacks=[CtrlCAtEpoch(1)], **settings)
    monkeypatch.setattr(SpecModule, "on_load_checkpoint", lambda self, checkpoint: None)
    seen = Seen()
    train(tiny, "digits", out="split", resume=True, callbacks=[seen], **settings)
    assert seen.steps[0] == 0 and seen.epochs[0] == 1  # the epoch is right, the step count restarted


def test_upgrade_step_count_moves_only_an_automatic_count():
    automatic = {"optimizer": {"step": {"total": {"ready": 8, "completed": 8}, "current": {"ready": 4, "completed": 4}},
                               "zero_grad": {}}}
    empty = {"total": {"ready": 0, "completed": 0}, "current": {"ready": 0, "completed": 0}}
    old = {"loops": {"fit_loop": {AUTOMATIC_STEPS: automatic, MANUAL_STEPS: dict(empty)}}}
    assert upgrade_step_count(old)
    assert old["loops"]["fit_loop"][MANUAL_STEPS] == automatic["optimizer"]["step"]
    assert old["loops"]["fit_loop"][MANUAL_STEPS] is not automatic["optimizer"]["step"]
    new = {"loops": {"fit_loop": {AUTOMATIC_STEPS: {"optimizer": {"step": empty}},
                                  MANUAL_STEPS: {"total": {"ready": 5, "completed": 5}, "current": {}}}}}
    assert not upgrade_step_count(new) and new["loops"]["fit_loop"][MANUAL_STEPS]["total"]["completed"] == 5
    assert not upgrade_step_count({}) and not upgrade_step_count({"loops": {}})


@pytest.mark.parametrize("batch", [
    (torch.randn(3, 2), torch.arange(3)),
    [torch.randn(3, 2), torch.arange(3)],
    ((torch.randn(3, 2), torch.randn(3, 4)), torch.arange(3)),
    ([torch.randn(3, 2)], torch.arange(3)),
], ids=["tuple", "list", "two-inputs", "inputs-list"])
def test_batches_move_as_lightning_moves_them(batch):
    from lightning.fabric.utilities.apply_func import move_data_to_device

    from specgraph.train.module import _moved

    device = torch.device("cpu")
    ours, theirs = _moved(batch, device), move_data_to_device(batch, device)
    assert type(ours) is type(theirs) and len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert type(a) is type(b)
        for x, y in zip(a if isinstance(a, (tuple, list)) else [a], b if isinstance(b, (tuple, list)) else [b]):
            assert x is y  # already on the device: the same tensor, as .to() gives it
    assert _moved({"x": torch.zeros(1)}, device) is None and _moved((torch.zeros(1), "label"), device) is None
