"""The optimiser step that SpecModule takes itself (Lightning's *manual* optimisation), and the
step count of checkpoints written before it did.

Under Lightning's automatic optimisation every step went through a closure handed to the
optimiser, progress counters for zero_grad and the step, the hooks around zero_grad on every
callback, the clipping hook and a scheduler loop (benchmarks/bench_train_overhead.py measures
what that cost against this). :class:`OptimiserStep` does the same things in the same order:

1. forward and loss (``training_step``), then ``on_before_zero_grad`` on the callbacks that
   define it, and ``zero_grad`` (to None);
2. backward through Lightning (``manual_backward``: ``16-mixed`` scales the loss, DDP syncs, the
   backward hooks run), or ``loss.backward()`` itself where that is all Lightning would do;
3. the optimiser's step through Lightning's wrapper, which counts ``global_step``, unscales
   ``16-mixed`` gradients, calls ``on_before_optimizer_step`` — the non-finite guard
   (guards.py), then the module's hook, which clips to ``grad_clip`` — and lets the gradient
   scaler skip an overflowing step;
4. the learning-rate schedule, after every step, skipped or not, as Lightning stepped it.

tests/test_train_step.py runs the module of automatic optimisation beside this one: the same
losses, learning rates, weights and optimiser states, bit for bit.

Lightning counts ``global_step`` in one of two progress trackers, depending on the module's
``automatic_optimization``; :func:`upgrade_step_count` moves the count of a checkpoint written
under automatic optimisation to the other, so such a run resumes at its step.
"""

from __future__ import annotations

from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.strategies import SingleDeviceStrategy, Strategy
from lightning.pytorch.trainer import call

from .lean import hook_is_live

BACKWARD_HOOKS = ("on_before_backward", "on_after_backward")


class OptimiserStep:
    """A LightningModule mixin: ``training_step`` calls :meth:`_optimise` with the loss.

    ``config.grad_clip`` (None: no clipping) is read from the module's ``config``."""

    automatic_optimization = False  # a class attribute in place of Lightning's property, read several times a step

    _optimizer: Optional[LightningOptimizer] = None  # the run's, set when training starts
    _scheduler: Any = None
    _zero_grad_hooks = False  # whether a callback or the module does something before zero_grad
    _plain_backward = False  # whether Lightning's backward would be ``loss.backward()`` and nothing else

    def _prepare_step(self, trainer: L.Trainer) -> None:
        """What every step reads, found once the trainer has set up the optimiser (on_train_start)."""
        self._optimizer = self.optimizers()  # type: ignore[attr-defined]
        self._scheduler = self.lr_schedulers()  # type: ignore[attr-defined]
        callbacks = trainer.callbacks
        self._zero_grad_hooks = hook_is_live(self, "on_before_zero_grad", L.LightningModule) or any(
            hook_is_live(c, "on_before_zero_grad", L.Callback) for c in callbacks)
        self._plain_backward = _backward_is_plain(self, trainer)

    def _forget_step(self) -> None:
        self._optimizer = self._scheduler = None  # the trainer's: not kept past the run

    def _optimise(self, loss: torch.Tensor) -> None:
        optimizer = self._optimizer
        if self._zero_grad_hooks:  # a user's callback, say: called as automatic optimisation called it
            trainer = self.trainer  # type: ignore[attr-defined]
            call._call_callback_hooks(trainer, "on_before_zero_grad", optimizer.optimizer)
            call._call_lightning_module_hook(trainer, "on_before_zero_grad", optimizer.optimizer)
        optimizer.zero_grad()  # to None, as Lightning's optimizer_zero_grad did
        if self._plain_backward:
            loss.backward()
        else:
            self.manual_backward(loss)  # type: ignore[attr-defined]
        optimizer.step()
        if self._scheduler is not None:
            self._scheduler.step()

    def on_before_optimizer_step(self, optimizer) -> None:
        """Clip the gradients' global norm to ``grad_clip`` (the module sets the hook to None
        without it): after the non-finite guard and the gradient scaler's unscaling, where
        automatic optimisation clipped."""
        self.clip_gradients(optimizer, gradient_clip_val=self.config.grad_clip,  # type: ignore[attr-defined]
                            gradient_clip_algorithm="norm")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        upgrade_step_count(checkpoint)


def _backward_is_plain(module: L.LightningModule, trainer: L.Trainer) -> bool:
    """Whether ``manual_backward(loss)`` would do nothing but ``loss.backward()``: one process,
    full precision (no loss scaling), the module's own ``backward``, and no backward hook that does
    something, on the module or on a callback. Lightning's path then only calls the hooks that
    are no-ops and detaches the loss."""
    strategy = trainer.strategy
    plain_strategy = isinstance(strategy, SingleDeviceStrategy) and all(
        getattr(type(strategy), name) is getattr(Strategy, name) for name in ("backward", "pre_backward", "post_backward"))
    if not plain_strategy or type(trainer.precision_plugin) is not Precision:
        return False
    if type(module).backward is not L.LightningModule.backward:
        return False
    return not any(hook_is_live(module, name, L.LightningModule) for name in BACKWARD_HOOKS) and not any(
        hook_is_live(c, name, L.Callback) for c in trainer.callbacks for name in BACKWARD_HOOKS)


# where Lightning keeps, in a checkpoint's loops, the optimiser steps of each kind of optimisation
AUTOMATIC_STEPS = ("epoch_loop.automatic_optimization.optim_progress", "optimizer", "step")
MANUAL_STEPS = "epoch_loop.manual_optimization.optim_step_progress"


def upgrade_step_count(checkpoint: dict[str, Any]) -> bool:
    """Carry the optimiser steps of a checkpoint written under Lightning's automatic optimisation
    (specgraph before it stepped the optimiser itself) over to where manual optimisation counts
    them; whether it did. In place, before Lightning restores its loops from ``checkpoint``.

    Lightning reads ``global_step`` from one progress counter or the other depending on the
    module's ``automatic_optimization``: unmoved, a resumed run would count its steps from 0 again
    (its logs' steps, the guard's step numbers). A checkpoint that already counts manual steps is
    left as it is. Both counters have the same form (ready and completed, in total and in the
    current epoch)."""
    loop = checkpoint.get("loops", {}).get("fit_loop")
    if not isinstance(loop, dict):
        return False
    automatic = loop.get(AUTOMATIC_STEPS[0], {}).get(AUTOMATIC_STEPS[1], {}).get(AUTOMATIC_STEPS[2])
    manual = loop.get(MANUAL_STEPS)
    if not automatic or not automatic.get("total", {}).get("completed"):
        return False
    if manual and manual.get("total", {}).get("completed"):
        return False
    loop[MANUAL_STEPS] = {part: dict(counts) for part, counts in automatic.items()}
    return True


__all__ = ["OptimiserStep", "upgrade_step_count"]
