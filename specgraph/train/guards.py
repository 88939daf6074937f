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

import math
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

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.skipped = 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        loss = getattr(pl_module, "step_loss", None)
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if all_finite(loss, grads if self.check_gradients else []):
            return
        if self.policy == "stop":
            batch = trainer.fit_loop.epoch_loop.batch_idx  # the batch being trained (a hook a step less)
            raise NonFiniteStep(trainer.current_epoch + 1, trainer.global_step + 1, batch + 1,
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
            if p.grad is not None and not all_finite(None, [p.grad]):  # a sparse gradient too
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
    """Whether the loss and every gradient hold only finite numbers; one wait per device.

    Dense gradients are checked by the kernel torch's GradScaler uses to find overflows
    (``_amp_foreach_non_finite_check_and_unscale_``, with a scale of 1: every value stays as it
    is), one call per device and dtype, each raising the device's one flag; ``isfinite(g).all()``
    per tensor took two kernels and an allocation each, 0.2 ms a step for LeNet-5's ten tensors.
    A one-number loss is then read as a number.
    Sparse gradients (an ``embedding`` with ``sparse: true``) are checked on their values."""
    flags: dict[torch.device, torch.Tensor] = {}  # per device: above 0 once something is not finite

    def flag(device: torch.device) -> torch.Tensor:
        found = flags.get(device)
        if found is None:
            found = flags[device] = torch.zeros(1, device=device)
        return found

    dense: dict[tuple, list[torch.Tensor]] = {}
    for g in grads:
        if g.is_sparse:
            flag(g.device).add_(torch.isfinite(g._values()).all().logical_not())
        else:
            dense.setdefault((g.device, g.dtype), []).append(g)
    for (device, _), tensors in dense.items():
        torch._amp_foreach_non_finite_check_and_unscale_(tensors, flag(device), _one(device))
    if any(found.item() for found in flags.values()):
        return False
    if loss is None:
        return True
    if loss.numel() == 1:  # the loss, read as a number once the device is done: no kernel of its own
        return math.isfinite(loss.item())
    return bool(torch.isfinite(loss.detach()).all())


_ONES: dict[torch.device, torch.Tensor] = {}


def _one(device: torch.device) -> torch.Tensor:
    """A scale of 1 on ``device`` (read, never written, by the check above): made once."""
    one = _ONES.get(device)
    if one is None:
        one = _ONES[device] = torch.ones(1, device=device)
    return one


def _batches(trainer) -> Optional[int]:
    n = trainer.num_training_batches
    return int(n) if isinstance(n, int) or (isinstance(n, float) and n != float("inf")) else None


__all__ = ["NonFiniteGuard", "NonFiniteStep", "InterruptWatch", "all_finite"]
