"""The run's checkpoints: ``last.ckpt`` after every epoch, ``best.ckpt`` when the monitored
metric improves, each written atomically.

Lightning's ``ModelCheckpoint(save_last=True)`` rewrites ``last.ckpt`` only when it also saves a
top-k checkpoint, so a run that stopped improving resumed from its last *improvement*. Here two
callbacks do the two jobs, both at the end of the training epoch (after validation, after the
epoch's metrics are logged, so a checkpoint holds the whole epoch): ``best`` first, so the state
of ``best`` that ``last.ckpt`` records already counts this epoch, then ``last``, unconditionally.

Lightning's own "atomic" save writes through an fsspec transaction whose temporary file is in
the system's temp folder: across file systems the final move is a copy, which a kill can cut.
:class:`AtomicCheckpointIO` writes a temporary file next to the target, flushes it to disk and
renames it over the target, so a checkpoint is always the old one or the new one, whole; and it
holds Ctrl-C until the file is complete.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .lean import StateKeyOnce

TEMP_MARK = ".tmp-"


@contextmanager
def sigint_held() -> Iterator[None]:
    """Ctrl-C during the block takes effect when it ends (main thread only; elsewhere, no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):
        yield
        return
    received: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if previous is signal.SIG_DFL:
                signal.raise_signal(signal.SIGINT)
            elif callable(previous):
                previous(signal.SIGINT, None)


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` that never leaves a partial file at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")
    with sigint_held():
        try:
            with open(temp, "wb") as fh:
                torch.save(obj, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        try:  # the rename itself survives a power cut once the folder's entry is on disk
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass


def remove_partial(folder: Path) -> None:
    """Temporary files of saves that a killed process left (never a whole checkpoint)."""
    if folder.is_dir():
        for p in folder.glob(f".*{TEMP_MARK}*"):
            p.unlink(missing_ok=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O with :func:`atomic_save` (local paths)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_save(checkpoint, path)


class RunCheckpoint(StateKeyOnce, ModelCheckpoint):
    """ModelCheckpoint, with its state key worked out once and, when it saves at epoch ends only
    (as the run's two do), without the per-step hook that looks for a step to save at (lean.py)."""

    key_class = "ModelCheckpoint"

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        if self._every_n_train_steps < 1 and self._train_time_interval is None:
            self.on_train_batch_end = None  # Lightning skips a hook that is not callable


def run_checkpoints(folder: Path, monitor: str, mode: str) -> tuple[ModelCheckpoint, ModelCheckpoint]:
    """(best, last): in this order in the Trainer's callbacks (see the module docstring)."""
    common = dict(dirpath=folder, save_top_k=1, save_on_train_epoch_end=True, auto_insert_metric_name=False,
                  enable_version_counter=False)
    best = RunCheckpoint(filename="best", monitor=monitor, mode=mode, **common)
    last = RunCheckpoint(filename="last", monitor=None, **common)
    return best, last


__all__ = ["AtomicCheckpointIO", "RunCheckpoint", "atomic_save", "run_checkpoints", "remove_partial",
           "sigint_held"]
