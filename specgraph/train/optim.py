"""The optimiser of a run and its learning-rate schedule.

The schedule multiplies ``lr`` by a factor of the optimiser steps taken so far, k, out of the
run's total, T (epochs × batches per epoch, as Lightning estimates it):

* ``constant``: 1 (no scheduler at all);
* ``linear``: 1 − k/T, down to 0 at the end of the run, as word2vec.c and gensim decay theirs;
* ``cosine``: (1 + cos(π k/T)) / 2.

It is a ``torch.optim.lr_scheduler.LambdaLR`` stepped after every optimiser step; Lightning keeps
its state (k) in the checkpoints, so ``--resume`` continues it exactly. T is not saved: a run
resumed with more ``--epochs`` spreads the rest of the decay over the longer run.

Sparse gradients (an ``embedding`` with ``sparse: true``) are taken by ``sgd`` alone, without
weight decay: torch's Adam and AdamW refuse them, and SGD cannot add weight decay to them, so
those combinations are refused before the run starts (E705). Under momentum the buffer of a
sparse gradient starts dense (zeros): torch would start it as a sparse copy of the first
gradient, which then grows by a batch's rows every step. Gradient clipping and the non-finite
guard read sparse gradients as they are.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import nn

from ..diagnostics import Diagnostic, SpecError


def lr_factor(schedule: str, total_steps: int) -> Callable[[int], float]:
    """The factor of ``lr`` after ``k`` optimiser steps of ``total_steps``."""
    total = max(1, int(total_steps))
    if schedule == "linear":
        return lambda k: max(0.0, 1.0 - k / total)
    if schedule == "cosine":
        return lambda k: 0.5 * (1.0 + math.cos(math.pi * min(k, total) / total))
    return lambda k: 1.0


def make_optimizer(model: nn.Module, config) -> torch.optim.Optimizer:
    """The optimiser ``config.optimizer`` names, over the parameters of ``model`` that train."""
    c = config
    params = [p for p in model.parameters() if p.requires_grad]
    if c.optimizer == "sgd":
        sgd = torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        if c.momentum:  # torch would start the momentum of a sparse gradient as a sparse copy of it, which then
            for name in sparse_gradient_modules(model):  # grows by a batch's rows every step: start it dense
                weight = model.get_submodule(name).weight
                sgd.state[weight]["momentum_buffer"] = torch.zeros_like(weight, memory_format=torch.preserve_format)
        return sgd
    cls = torch.optim.AdamW if c.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=c.lr, weight_decay=c.weight_decay, fused=_fused_adam(params, c.precision))


def with_schedule(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int):
    """What ``configure_optimizers`` returns: the optimiser, with its scheduler stepped per step."""
    if schedule == "constant":
        return optimizer
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(schedule, total_steps))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}


def sparse_gradient_modules(model: nn.Module) -> list[str]:
    """Names of the modules whose weights get sparse gradients (``embedding`` with ``sparse: true``)."""
    return [name for name, m in model.named_modules()
            if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.sparse and m.weight.requires_grad]


def check_sparse_gradients(model: nn.Module, config) -> None:
    """Refuse (E705) an optimiser that cannot take the sparse gradients the model makes."""
    sparse = sparse_gradient_modules(model)
    if not sparse:
        return
    quoted = [f"'{n}'" for n in sparse]
    names = (f"embedding {quoted[0]}" if len(quoted) == 1
             else f"embeddings {', '.join(quoted[:-1])} and {quoted[-1]}")
    if config.optimizer != "sgd":
        where, detail = config.setting_place("optimizer")
        raise SpecError(Diagnostic(
            "E705", f"training settings refused: optimizer {config.optimizer} cannot take sparse gradients, and "
                    f"the {names} {'makes' if len(sparse) == 1 else 'make'} them (sparse: true)",
            location=where, details=detail,
            hint="train with --optimizer sgd (word2vec's recipe: --optimizer sgd --momentum 0 --lr-schedule "
                 "linear), or drop `sparse: true` from the embedding"))
    if config.weight_decay:
        where, detail = config.setting_place("weight_decay")
        raise SpecError(Diagnostic(
            "E705", f"training settings refused: weight_decay {config.weight_decay:g} cannot be added to the sparse "
                    f"gradients of the {names} (sparse: true): torch's SGD adds it to dense ones only",
            location=where, details=detail,
            hint="drop weight_decay, or `sparse: true` from the embedding"))


def _fused_adam(params: list[torch.Tensor], precision: str) -> Optional[bool]:
    """Adam's fused kernel (one pass over each tensor, the same update) where torch has it for
    every parameter: on the CPU it took 0.6 ms a step for skipgram_ns's two 1,663 x 100 tables
    against 1.6 ms for the default per-tensor loop. Not under 16-mixed, whose gradient scaler
    Lightning will not let clip the gradients of a fused optimiser; None: torch's default."""
    if precision == "16-mixed" or not params:
        return None
    fusable = all(p.is_floating_point() and not p.is_sparse and p.device.type in ("cpu", "cuda") for p in params)
    return True if fusable and len({p.device for p in params}) == 1 else None


__all__ = ["lr_factor", "make_optimizer", "with_schedule", "sparse_gradient_modules", "check_sparse_gradients"]
