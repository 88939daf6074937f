"""What ends a run before its last epoch: a step whose loss or gradients are not finite, Ctrl-C.

:class:`NonFiniteGuard` looks after the backward pass and before the optimiser moves anything
(Lightning's ``on_before_optimizer_step``, before gradient clipping), so under ``stop`` (the
default) no weight and no optimiser state has seen the bad step: the last checkpoint and the
best one are finite, and the run ends with :class:`NonFiniteStep` (error E711). Under ``skip``
the step's gradients are dropped (``grad = None``: torch's optimisers leave such a parameter and
its state alone, so the step is a true no-op) and the run goes on; the count is reported with
the epoch. Under DDP the gradients are already averaged across processes when the guard looks,
so every process makes the same decision. With ``16-mixed`` the gradient scaler owns overflowing
gradients (it skips those steps and lowers its scale), so only the loss is checked.

Ctrl-C: Lightning catches the KeyboardInterrupt, tells the callbacks (:class:`InterruptWatch`
notes the epoch) and exits with ``sys.exit(1)``; the runner turns that into
:class:`~specgraph.train.rundir.TrainingInterrupted` (a KeyboardInterrupt), which ``specgraph train`` reports with the
command that continues the run, exit code 130. A checkpoint being written when Ctrl-C comes is
finished first (checkpoints.py), so the run folder always holds whole epochs.
"""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch


class NonFiniteStep(RuntimeError):
    """A training step's loss or gradients were NaN or infinite (``nan_policy: stop``)."""

    def __init__(self, epoch: int, step: int, batch: int, batches: Optional[int], what: str):
        self.epoch, self.step, self.batch, self.batches, self.what = epoch, step, batch, batches, what
        of = f" of {batches}" if batches else ""
        super().__init__(f"{what} at epoch {epoch}, step {step} (batch {batch}{of})")


class NonFiniteGuard(L.Callback):
    """Stops (``policy="stop"``) or skips (``"skip"``) a step whose loss or gradients are not finite."""

    def __init__(self, policy: str, check_gradients: bool = True):
        self.policy, self.check_gradients = policy, check_gradients
        self.skipped = 0  # in the current epoch
        self.skipped_total = 0
        self._batch = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.skipped = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch = batch_idx

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        loss = getattr(pl_module, "step_loss", None)
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if all_finite(loss, grads if self.check_gradients else []):
            return
        if self.policy == "stop":
            raise NonFiniteStep(trainer.current_epoch + 1, trainer.global_step + 1, self._batch + 1,
                                _batches(trainer), self._what(pl_module, loss))
        for group in optimizer.param_groups:
            for p in group["params"]:
                p.grad = None
        self.skipped += 1
        self.skipped_total += 1

    def _what(self, module, loss) -> str:
        if loss is not None and not bool(torch.isfinite(loss).all()):
            return f"the loss is {float(loss):g}"
        for name, p in module.named_parameters():
            if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                return f"the gradient of {name.removeprefix('model.')} is not finite"
        return "a gradient is not finite"


class InterruptWatch(L.Callback):
    """Notes the epoch (1-based) a Ctrl-C interrupted, and whether fitting had finished."""

    def __init__(self):
        self.epoch: Optional[int] = None
        self.fitted = False

    def on_exception(self, trainer, pl_module, exception) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.epoch = trainer.current_epoch + 1

    def on_fit_end(self, trainer, pl_module) -> None:
        self.fitted = True


def all_finite(loss: Optional[torch.Tensor], grads: list[torch.Tensor]) -> bool:
    """Whether the loss and every gradient hold only finite numbers; one wait for the device.

    Dense gradients are checked by the kernel torch's GradScaler uses to find overflows
    (``_amp_foreach_non_finite_check_and_unscale_``, with a scale of 1: every value stays as it
    is), one call per device and dtype; ``isfinite(g).all()`` per tensor took two kernels and an
    allocation each, 0.2 ms a step for LeNet-5's ten tensors. Sparse gradients
    (``sparse_embeddings``) are checked on their values."""
    checks = [torch.isfinite(loss.detach()).all().reshape(1)] if loss is not None else []
    dense: dict[tuple, list[torch.Tensor]] = {}
    for g in grads:
        if g.is_sparse:
            checks.append(torch.isfinite(g._values()).all().reshape(1))
        else:
            dense.setdefault((g.device, g.dtype), []).append(g)
    for (device, _), tensors in dense.items():
        found = torch.zeros(1, device=device)
        torch._amp_foreach_non_finite_check_and_unscale_(tensors, found, torch.ones(1, device=device))
        checks.append(found == 0)
    if not checks:
        return True
    first = checks[0].device
    return bool(torch.cat([c.to(first) for c in checks]).all())


def _batches(trainer) -> Optional[int]:
    n = trainer.num_training_batches
    return int(n) if isinstance(n, int) or (isinstance(n, float) and n != float("inf")) else None


__all__ = ["NonFiniteGuard", "NonFiniteStep", "InterruptWatch", "all_finite"]
