"""What a run prints: the banner, one line per epoch, the final report; nothing with ``quiet``.

An epoch line is printed when the epoch's metrics are complete (train and validation), in a
terminal above the progress bar of the running epoch (Lightning's Rich bar, which shows only
that epoch), and without a terminal as plain lines, the bar left out::

    epoch 3/10  train loss 0.4123 acc 0.8512 | val loss 0.3921 acc 0.8610 *  12.3 s  lr 0.001

``*`` marks a new best of the monitored metric (the epoch ``best.ckpt`` now holds).
Only process 0 prints.
"""

from __future__ import annotations

import sys
import time
from typing import Optional

import lightning as L


def rank() -> int:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def interactive() -> bool:
    return sys.stdout.isatty()


class RunLog:
    """Prints for the run, unless ``quiet`` (or not process 0)."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    def say(self, text: str) -> None:
        if not self.quiet and rank() == 0:
            print(text, flush=True)


def _metric(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


class EpochLines(L.Callback):
    """One line per finished epoch; ``report()`` is called by the LightningModule once the
    epoch's train metrics are logged (Lightning runs callbacks' epoch-end hooks before the
    module's, so a callback's own hook would not see them). Not ``self.log``: Lightning sets
    that attribute of every callback to the module's ``log``."""

    def __init__(self, runlog: RunLog, metrics: tuple[str, ...], monitor: str, mode: str, best=None, guard=None):
        self.runlog, self.metrics, self.monitor, self.mode = runlog, ("loss", *metrics), monitor, mode
        self.best, self.guard = best, guard  # the best-checkpoint callback, the non-finite guard
        self._start = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def report(self, trainer) -> None:
        if self.runlog.quiet or rank() != 0 or trainer.sanity_checking:
            return
        self.log_line(self.line(trainer), trainer)

    def line(self, trainer) -> str:
        values = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        splits = []
        for split in ("train", "val"):
            names = [k.removeprefix(split + "_") for k in values if k.startswith(split + "_")]
            ordered = [m for m in self.metrics if m in names] + [m for m in names if m not in self.metrics]
            if ordered:
                best = " *" if split == "val" and self._improved(values) else ""
                splits.append(f"{split} " + " ".join(f"{m} {_metric(values[f'{split}_{m}'])}" for m in ordered) + best)
        tail = [f"{time.perf_counter() - self._start:.1f} s"]
        if trainer.optimizers:
            tail.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.3g}")
        if self.guard is not None and self.guard.skipped:
            tail.append(f"skipped {self.guard.skipped} non-finite step{'s' if self.guard.skipped != 1 else ''}")
        return "  ".join([f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}", " | ".join(splits), *tail])

    def _improved(self, values: dict) -> bool:
        current = values.get(self.monitor)
        if current is None or current != current:
            return False
        before = getattr(self.best, "best_model_score", None)  # not yet updated for this epoch
        if before is None:
            return True
        before = float(before)
        return current < before if self.mode == "min" else current > before

    @staticmethod
    def log_line(text: str, trainer) -> None:
        from lightning.pytorch.callbacks import RichProgressBar

        bar = next((cb for cb in trainer.callbacks if isinstance(cb, RichProgressBar)), None)
        if bar is not None and bar.progress is not None:  # above the live bar, which stays at the bottom
            bar.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, flush=True)


def progress_bar(enabled: bool) -> Optional[L.Callback]:
    """Lightning's Rich bar for the running epoch (in a terminal), or None."""
    if not (enabled and interactive()):
        return None
    from lightning.pytorch.callbacks import RichProgressBar

    class ProgressBar(RichProgressBar):
        def get_metrics(self, trainer, pl_module):  # no logger version number among the metrics
            metrics = super().get_metrics(trainer, pl_module)
            metrics.pop("v_num", None)
            return metrics

        def _get_train_description(self, current_epoch: int) -> str:  # "Epoch 1/2", not "Epoch 0/1"
            return f"Epoch {current_epoch + 1}/{self.trainer.max_epochs}"

    return ProgressBar(leave=False)


__all__ = ["RunLog", "EpochLines", "progress_bar", "rank", "interactive"]
