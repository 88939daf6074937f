"""A run killed with SIGKILL at any point resumes exactly: 20 trials, each killing a tiny run at a
random point (after a training step, or in the middle of a checkpoint write, a random number of
bytes in), then continuing it with ``resume`` and comparing the final checkpoint with a run that
was never interrupted: every weight, every optimiser state, bit for bit, and the metrics of
every epoch.

The kill points are drawn from a seeded generator and reached deterministically (the process
kills itself there), so a loaded machine changes nothing but the time taken. Each trial runs in
a process forked from a forkserver that has imported torch, Lightning and specgraph once, so a
trial costs its training steps, not a Python start-up.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("sklearn")

TINY = """
specgraph: 1
name: tiny
params: {num_classes: 10}
inputs:
  image: [N, 1, 8, 8]
graph:
  flatten: {op: flatten}
  hidden: {op: linear, out: 16}
  drop: {op: dropout, p: 0.2}
  act: {op: relu}
  out: {op: linear, out: $num_classes}
"""
EPOCHS, STEPS = 3, 3  # steps per epoch
SETTINGS = dict(epochs=EPOCHS, batch_size=32, limit_train_batches=STEPS, limit_val_batches=2, threads=1, quiet=True,
                seed=5, progress=False)
TRIALS = 20


def _run(spec: str, out: str, kill: tuple | None, resume: bool, overwrite: bool) -> None:
    """In a forked process: train, killing this process with SIGKILL at ``kill`` (None: never)."""
    import importlib

    import lightning as L

    from specgraph.train.runner import train

    checkpoints = importlib.import_module("specgraph.train.checkpoints")  # specgraph.train is also a function
    curves = importlib.import_module("specgraph.train.curves")
    curves.plot_curves = lambda *args, **kwargs: False  # half of a trial's time, and not what is tested

    callbacks = []
    if kill is not None and kill[0] == "step":
        class KillAtStep(L.Callback):
            def on_train_batch_end(self, trainer, *args):
                if trainer.global_step == kill[1]:
                    os.kill(os.getpid(), signal.SIGKILL)

        callbacks.append(KillAtStep())
    elif kill is not None and kill[0] == "write":
        _, nth, fraction = kill
        real_save, writes = checkpoints.torch.save, [0]

        class CutFile:
            """A file that takes the first ``fraction`` of what is written, then the process dies."""

            def __init__(self, fh, limit):
                self.fh, self.limit, self.written = fh, limit, 0

            def write(self, data):
                if self.written + len(data) >= self.limit:
                    self.fh.write(bytes(data)[:max(0, self.limit - self.written)])
                    self.fh.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
                self.written += len(data)
                return self.fh.write(data)

            def flush(self):
                self.fh.flush()

        def save(obj, fh):
            writes[0] += 1
            if writes[0] != nth:
                return real_save(obj, fh)
            import io

            size = len(_bytes(real_save, obj, io))
            real_save(obj, CutFile(fh, max(1, int(size * fraction))))

        checkpoints.torch.save = save
    train(spec, "digits", out=out, resume=resume, overwrite=overwrite, callbacks=callbacks, **SETTINGS)


def _bytes(save, obj, io) -> bytes:
    buffer = io.BytesIO()
    save(obj, buffer)
    return buffer.getvalue()


def _in_child(ctx, *args) -> int:
    p = ctx.Process(target=_run, args=args)
    p.start()
    p.join(timeout=600)  # generous: a trial takes seconds, a loaded CI machine many more
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail(f"a trial did not finish in 10 minutes: {args}")
    return p.exitcode


def _final(folder: Path) -> dict:
    return torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _metrics(folder: Path) -> list[dict]:
    from specgraph.train.curves import epoch_metrics

    return epoch_metrics(folder / "logs")


def test_sigkill_at_random_points_then_resume_is_exact(tmp_path):
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "lightning", "specgraph.train.runner", "specgraph.train.datasets.images"])
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    reference = tmp_path / "reference"
    assert _in_child(ctx, str(spec), str(reference), None, False, False) == 0
    whole, whole_metrics = _final(reference), _metrics(reference)
    assert whole["epoch"] == EPOCHS - 1 and whole["global_step"] == EPOCHS * STEPS
    # checkpoint writes of a whole run: last.ckpt every epoch, best.ckpt when val_loss improves
    writes = EPOCHS + sum(1 for i, row in enumerate(whole_metrics)
                          if row["val_loss"] < min([r["val_loss"] for r in whole_metrics[:i]], default=float("inf")))
    rng = random.Random(15)
    points = [("step", rng.randrange(1, EPOCHS * STEPS)) if i % 2 == 0 else
              ("write", rng.randrange(1, writes + 1), rng.uniform(0.01, 0.99)) for i in range(TRIALS)]
    for i, point in enumerate(points):
        folder = tmp_path / f"trial{i}"
        assert _in_child(ctx, str(spec), str(folder), point, False, False) == -signal.SIGKILL, point
        last = folder / "checkpoints" / "last.ckpt"
        if last.exists():  # whole, never cut: the old epoch or the new one
            torch.load(last, map_location="cpu", weights_only=True)
        resumed = last.exists()
        assert _in_child(ctx, str(spec), str(folder), None, resumed, not resumed) == 0, point
        final = _final(folder)
        assert _equal(final["state_dict"], whole["state_dict"]), f"weights differ after {point}"
        assert _equal(final["optimizer_states"], whole["optimizer_states"]), f"optimiser differs after {point}"
        assert (final["epoch"], final["global_step"]) == (whole["epoch"], whole["global_step"]), point
        assert _metrics(folder) == whole_metrics, point
        assert not list((folder / "checkpoints").glob(".*")), "a partial checkpoint was left behind"
