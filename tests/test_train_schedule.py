"""The learning-rate schedule (--lr-schedule) and sparse embedding gradients (embedding sparse: true):
the lr of every step against the formula, --resume mid-run against an uninterrupted run (bit for
bit, the schedule's state included), sparse gradients against dense ones, and the refusals."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("sklearn")

import lightning as L  # noqa: E402

import specgraph  # noqa: E402

from conftest import SPECS, TINY  # noqa: E402
from specgraph.diagnostics import SpecError  # noqa: E402
from specgraph.train.optim import lr_factor  # noqa: E402
from specgraph.train.rundir import TrainingInterrupted  # noqa: E402
from specgraph.train.runner import train  # noqa: E402

QUICK = dict(batch_size=32, limit_train_batches=4, limit_val_batches=2, threads=1, progress=False)



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


# ---------------------------------------------------------------- sparse embedding gradients

def _skipgram(tmp_path, sparse: bool, extra: str = "") -> str:
    """specs/skipgram_ns.yaml with its embeddings' sparse set, written next to the runs."""
    text = (SPECS / "skipgram_ns.yaml").read_text()
    text = re.sub(r"sparse: (true|false)", f"sparse: {str(sparse).lower()}", text)
    if "sparse:" not in text:
        text = text.replace("op: embedding,", f"op: embedding, sparse: {str(sparse).lower()},")
    path = tmp_path / f"skipgram_{'sparse' if sparse else 'dense'}.yaml"
    path.write_text(re.sub(r"\ntrain:.*", "\n", text, flags=re.S) + extra)  # its own settings out
    return str(path)


W2V_QUICK = dict(params={"dim": 16}, epochs=2, batch_size=256, limit_train_batches=5, limit_val_batches=1,
                 threads=1, progress=False, monitor="train_loss")


@pytest.mark.parametrize("momentum,clip", [(0.0, None), (0.9, 0.05)])
def test_sparse_embeddings_train_like_dense_ones(tmp_path, monkeypatch, momentum, clip):
    """The same run with dense and with sparse gradients (torch's dense nn.Embedding is the
    reference): the same weights, through momentum, gradient clipping and the linear schedule."""
    monkeypatch.chdir(tmp_path)
    runs = {}
    for sparse in (False, True):
        runs[sparse] = train(_skipgram(tmp_path, sparse), "lee", optimizer="sgd", momentum=momentum, lr=2.0,
                             lr_schedule="linear", grad_clip=clip, out=f"run_{sparse}", **W2V_QUICK)
    assert runs[True].model.embed.sparse and not runs[False].model.embed.sparse
    start = specgraph.build(_skipgram(tmp_path, False), vocab=runs[False].model.embed.num_embeddings, dim=16)
    for name in ("embed.weight", "outputs.weight"):
        assert not torch.equal(runs[False].model.state_dict()[name], start.state_dict()[name])  # it trained
        dense, sparse = runs[False].model.state_dict()[name], runs[True].model.state_dict()[name]
        torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-6)


def test_sparse_gradients_are_checked_for_nan(tmp_path, monkeypatch):
    class PoisonSparse(L.Callback):
        def on_before_optimizer_step(self, trainer, module, optimizer):
            if trainer.global_step == 2:
                grad = module.model.embed.weight.grad
                assert grad.is_sparse
                grad._values()[0, 0] = float("nan")

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as e:
        train(_skipgram(tmp_path, True), "lee", optimizer="sgd", out="run", callbacks=[PoisonSparse()], **W2V_QUICK)
    [d] = e.value.diagnostics
    assert d.code == "E711" and "the gradient of embed.weight is not finite at epoch 1, step 3" in d.message


def test_adam_with_sparse_embeddings_is_refused_where_it_was_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = _skipgram(tmp_path, True, extra="train:\n  optimizer: adam\n")
    with pytest.raises(SpecError) as e:
        train(spec, "lee", out="run", **W2V_QUICK)
    [d] = e.value.diagnostics
    assert d.code == "E705" and "optimizer adam cannot take sparse gradients" in d.message
    assert "the embeddings 'embed' and 'outputs' make them" in d.message and "--optimizer sgd" in d.hint
    assert d.location is not None and d.location.line == len(Path(spec).read_text().splitlines())
    assert not (tmp_path / "run").exists()  # refused before the run folder is made
    with pytest.raises(SpecError) as e:
        train(_skipgram(tmp_path, True), "lee", optimizer="adamw", out="run", **W2V_QUICK)
    assert e.value.codes == ["E705"] and "given with --optimizer" in str(e.value)


def test_weight_decay_with_sparse_embeddings_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as e:
        train(_skipgram(tmp_path, True), "lee", optimizer="sgd", weight_decay=1e-4, out="run", **W2V_QUICK)
    [d] = e.value.diagnostics
    assert d.code == "E705" and "weight_decay 0.0001 cannot be added to the sparse gradients" in d.message
    assert "given with --weight-decay" in str(e.value)


def test_sgd_momentum_of_a_sparse_gradient_stays_one_dense_table(tmp_path):
    from types import SimpleNamespace

    from specgraph.train.optim import make_optimizer

    model = specgraph.build(_skipgram(tmp_path, True), vocab=50, dim=8)
    config = SimpleNamespace(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.0, precision="32")
    sgd = make_optimizer(model, config)
    for _ in range(5):
        sgd.zero_grad()
        model(torch.randint(0, 50, (32,)), torch.randint(0, 50, (32, 6))).sum().backward()
        assert model.embed.weight.grad.is_sparse
        sgd.step()
    buffer = sgd.state[model.embed.weight]["momentum_buffer"]
    assert not buffer.is_sparse and buffer.shape == (50, 8)


def test_resume_with_another_schedule_is_refused(tiny):
    train(tiny, "digits", epochs=1, optimizer="sgd", lr_schedule="linear", out="run", **QUICK)
    with pytest.raises(SpecError) as e:
        train(tiny, "digits", epochs=2, optimizer="sgd", lr_schedule="cosine", resume=True, out="run", **QUICK)
    [d] = e.value.diagnostics
    assert d.code == "E708" and "was trained with lr_schedule linear, not cosine" in d.message
    assert "--lr-schedule linear" in d.hint and "given with --lr-schedule" in str(e.value)
