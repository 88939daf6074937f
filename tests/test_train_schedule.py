"""The learning-rate schedule (--lr-schedule) and sparse embedding gradients (embedding sparse: true):
the lr of every step against the formula, --resume mid-run against an uninterrupted run (bit for
bit, the schedule's state included), sparse gradients against dense ones, and the refusals."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("sklearn")

import lightning as L  # noqa: E402

from specgraph.diagnostics import SpecError  # noqa: E402
from specgraph.train.optim import lr_factor  # noqa: E402
from specgraph.train.rundir import TrainingInterrupted  # noqa: E402
from specgraph.train.runner import train  # noqa: E402

TINY = """specgraph: 1
name: tiny
params: {num_classes: 10}
inputs:
  image: [N, 1, 8, 8]
graph:
  flatten: {op: flatten}
  hidden: {op: linear, out: 16}
  act: {op: relu}
  out: {op: linear, out: $num_classes}
"""
QUICK = dict(batch_size=32, limit_train_batches=4, limit_val_batches=2, threads=1, progress=False)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    return spec


class LrSeen(L.Callback):
    """The lr each optimiser step uses (read just before the step)."""

    def __init__(self):
        self.lrs: list[float] = []

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])


class CtrlCAtEpoch(L.Callback):
    """Ctrl-C as epoch ``epoch`` (0-based) starts, after the previous epoch's checkpoint."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
def test_the_lr_of_step_k_is_the_formula(tiny, schedule):
    seen = LrSeen()
    train(tiny, "digits", epochs=3, lr=0.2, optimizer="sgd", lr_schedule=schedule, out="run", callbacks=[seen],
          **QUICK)
    total = 3 * 4
    expected = {"linear": [0.2 * (1 - k / total) for k in range(total)],
                "cosine": [0.2 * 0.5 * (1 + math.cos(math.pi * k / total)) for k in range(total)],
                "constant": [0.2] * total}[schedule]
    assert seen.lrs == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert lr_factor("linear", total)(total) == 0.0 and lr_factor("cosine", total)(total) == pytest.approx(0.0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_mid_run_continues_the_schedule_exactly(tiny, optimizer):
    settings = dict(epochs=4, lr=0.05, optimizer=optimizer, lr_schedule="linear", seed=2, **QUICK)
    whole = train(tiny, "digits", out="whole", **settings)
    with pytest.raises(TrainingInterrupted):
        train(tiny, "digits", out="split", callbacks=[CtrlCAtEpoch(2)], **settings)
    seen = LrSeen()
    resumed = train(tiny, "digits", out="split", resume=True, callbacks=[seen], **settings)
    assert seen.lrs == pytest.approx([0.05 * (1 - k / 16) for k in range(8, 16)], rel=1e-12)  # epochs 3 and 4
    a = torch.load(whole.last_checkpoint, weights_only=True)
    b = torch.load(resumed.last_checkpoint, weights_only=True)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["lr_schedulers"] == b["lr_schedulers"] and a["lr_schedulers"][0]["last_epoch"] == 16
