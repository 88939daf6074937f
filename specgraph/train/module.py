"""The LightningModule around a built spec: which output is trained, the loss, the metrics.

Which outputs count (:class:`OutputPlan`, read from the graph):

* the *prediction* is the first output that is not training-only;
* a training-only output that feeds the prediction through a softmax (skipgram's ``logits``
  under ``probs``) is what the loss reads in training; in evaluation the loss reads the
  log of the probabilities, which gives the same cross-entropy;
* the other training-only outputs shaped like the prediction are auxiliary heads (GoogLeNet's
  aux1/aux2, FCN's aux): each adds ``aux_weight`` (0.3, as in the GoogLeNet paper) times its
  own loss to the training loss. Validation and test use the prediction alone.

Metrics are logged as ``{train,val,test}_{loss,<task metrics>}`` once per epoch, exact over
the split and across processes: each stage has its own ``torchmetrics.MetricCollection``
(made by the task, see tasks.py), updated every step, computed — torchmetrics adds the sums
of every process first — and reset at the end of the epoch. They hold no weights: they are
not in the state_dict. ``loss`` is the per-step training loss shown by the progress bar.
"""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass, field
from typing import Callable, Optional

import lightning as L
import numpy as np
import torch
from torch import nn

from ..ir.graph import Graph
from ..ir.traits import Trait
from .config import TrainConfig
from .lean import skip_idle_step_hooks
from .optim import make_optimizer, with_schedule
from .stepping import OptimiserStep
from .tasks import Task
from .transfer import Frozen, keep_frozen_in_eval


@dataclass
class OutputPlan:
    """Positions, in the model's train-mode and eval-mode result tuples, of what the loss reads."""

    main_train: int
    main_eval: int
    logits_train: Optional[int] = None  # training-only logits under a softmax prediction
    aux_train: list[int] = field(default_factory=list)
    eval_kind: str = "scores"  # "scores" (logits, or anything else) | "probs" | "log_probs"
    unread: list[int] = field(default_factory=list)  # outputs the training loss does not read

    @property
    def read_in_training(self) -> set[int]:
        return {self.main_train if self.logits_train is None else self.logits_train, *self.aux_train}


def plan_outputs(graph: Graph) -> OutputPlan:
    outs = graph.outputs
    eval_outs = [o for o in outs if not o.train_only]
    main = eval_outs[0] if eval_outs else outs[0]
    producer = graph.node(main.value.node) if main.value.node in graph else None
    traits = producer.traits if producer is not None else frozenset()
    kind = ("probs" if Trait.PROBABILITIES in traits else "log_probs" if Trait.LOG_PROBABILITIES in traits
            else "scores")
    plan = OutputPlan(outs.index(main), eval_outs.index(main) if main in eval_outs else 0, eval_kind=kind)
    for i, o in enumerate(outs):
        if not o.train_only or o is main:
            continue
        if kind != "scores" and producer is not None and producer.inputs and producer.inputs[0] == o.value:
            plan.logits_train = i
        elif o.value.type.shape == main.value.type.shape:
            plan.aux_train.append(i)
    plan.unread = [i for i in range(len(outs)) if i not in plan.read_in_training and i != plan.main_train]
    return plan


STAGES = ("train", "val", "test")


class EpochSampler(torch.utils.data.Sampler):
    """A shuffle that depends only on (seed, epoch), so a resumed run sees the same batches."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this before each epoch
        self.epoch = epoch

    def order(self) -> torch.Tensor:
        """This epoch's shuffle: the indices [n] int64."""
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self):
        return iter(self.order().tolist())

    def __len__(self) -> int:
        return self.n


class EpochBatches(torch.utils.data.BatchSampler):
    """The batches of an :class:`EpochSampler`'s shuffle as slices of its index tensor, for a
    dataset that gathers a batch whole from a tensor of indices (``__getitems__``: the text
    datasets). torch's BatchSampler builds every batch as a list, one Python int at a time,
    which such a dataset turns back into a tensor: about 0.1 µs an example either way, the same
    at any batch size (a skip-gram epoch on lee is 315,000 examples). The batches are the same
    indices in the same order. Another sampler (Lightning puts a DistributedSampler in under
    DDP, through this class's (sampler, batch_size, drop_last)) gets torch's batches."""

    def __iter__(self):
        if not isinstance(self.sampler, EpochSampler):
            yield from super().__iter__()
            return
        order = self.sampler.order()
        end = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, end, self.batch_size):
            yield order[start:start + self.batch_size]


class SpecModule(OptimiserStep, L.LightningModule):
    """Trains ``model`` (the built spec, kept as ``.model``) on ``task``; ``training_step`` steps the
    optimiser itself (Lightning's manual optimisation: stepping.py)."""

    def __init__(self, model: nn.Module, task: Task, plan: OutputPlan, config: TrainConfig,
                 frozen: Optional[Frozen] = None):
        super().__init__()
        self.model, self.task, self.plan, self.config = model, task, plan, config
        self.frozen = frozen or Frozen()
        self.step_loss: Optional[torch.Tensor] = None  # the last training step's loss, for the non-finite guard
        self.epoch_report: Optional[Callable[[L.Trainer], None]] = None  # called once the epoch's metrics are logged
        # submodules, so that they follow the model to its device; not a ModuleDict: "train" is taken
        self.train_metrics, self.val_metrics, self.test_metrics = (task.make_metrics() for _ in STAGES)
        skip_idle_step_hooks(self, L.LightningModule)  # Lightning's no-op step hooks, not called (lean.py)
        if not config.grad_clip:  # the hook clips and does nothing else: not called at all
            self.on_before_optimizer_step = None  # a hook that is not callable is skipped

    def __setattr__(self, name, value):
        if name == "_current_fx_name":  # Lightning sets and resets it around every hook, some twenty times a
            object.__setattr__(self, name, value)  # step: a name, never a tensor, so not nn.Module's slow path
        else:
            super().__setattr__(name, value)

    def forward(self, *inputs):
        return self.model(*inputs)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """Lightning's, for the batches the loaders give — (inputs, targets), inputs a tensor or a
        tuple of them — moved tensor by tensor as Lightning moves them; anything else goes to
        Lightning's, whose generic walk (an ABC isinstance check per item) cost 30 µs a step."""
        moved = _moved(batch, device)
        return moved if moved is not None else super().transfer_batch_to_device(batch, device, dataloader_idx)

    # ---- the loss -------------------------------------------------------------------------
    def _predictions(self, raw) -> tuple[torch.Tensor, list[torch.Tensor]]:
        outs = raw if isinstance(raw, tuple) else (raw,)
        if self.model.training:
            p = self.plan
            pred = outs[p.logits_train if p.logits_train is not None else p.main_train]
            if p.logits_train is None:
                pred = self._scores(pred)
            return pred, [outs[i] for i in p.aux_train]
        return self._scores(outs[self.plan.main_eval]), []

    def _scores(self, pred: torch.Tensor) -> torch.Tensor:
        if self.plan.eval_kind == "probs":  # log_softmax(log p) = log p: cross-entropy stays exact
            return torch.log(pred.float().clamp(min=1e-12))
        return pred

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        raw = self.model(*(x if isinstance(x, (tuple, list)) else (x,)))
        pred, aux = self._predictions(raw)
        loss = self.task.loss(pred, y)
        total = loss
        for a in aux:
            total = total + self.config.aux_weight * self.task.loss(a, y)
        if stage == "train":
            self.step_loss = total.detach()
            if self.config.nan_policy == "skip" and not bool(torch.isfinite(self.step_loss)):
                return total  # a skipped step does not count in the epoch's metrics either
        self.task.update(self._metrics(stage), pred.detach(), y, loss.detach())
        return total

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        if self._step_loss_is_read():
            self.log("loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=_batch_len(batch))
        self._optimise(loss)
        return loss

    def _step_loss_is_read(self) -> bool:
        """Whether this step's ``loss`` goes anywhere: to the progress bar (in a terminal), or to
        the CSV logs on the steps Lightning writes them (every ``log_every_n_steps``). ``self.log``
        costs more than a small model's step, so the other steps skip it."""
        trainer = self._trainer
        if trainer is None or trainer.progress_bar_callback is not None:
            return True
        return bool(getattr(getattr(trainer, "_logger_connector", None), "should_update_logs", True))

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    # ---- metrics: summed over the epoch and across processes (by torchmetrics) -------------
    def _metrics(self, stage: str):
        return getattr(self, f"{stage}_metrics")

    def _reset(self, stage: str) -> None:
        self._metrics(stage).reset()

    def _finish(self, stage: str) -> None:
        metrics = self._metrics(stage)
        if not any(m.update_called for m in metrics.values()):
            return
        values = self.task.compute(metrics)  # synchronised across processes: logged as they are
        metrics.reset()
        for k, v in values.items():
            self.log(f"{stage}_{k}", v, prog_bar=stage == "val", on_epoch=True, sync_dist=False, rank_zero_only=False)

    def on_train_start(self):
        keep_frozen_in_eval(self.model, self.frozen)  # Lightning keeps the modes it finds: set them once
        self._prepare_step(self.trainer)

    def on_train_end(self):
        self._forget_step()

    def on_train_epoch_start(self):
        self._reset("train")
        keep_frozen_in_eval(self.model, self.frozen)
        seed = self.config.seed * 100_003 + self.current_epoch * 1_009 + self.global_rank
        torch.manual_seed(seed)  # dropout and augmentation: a function of (seed, epoch), for --resume
        random.seed(seed)
        np.random.seed(seed % 2**32)

    def on_train_epoch_end(self):
        self._finish("train")
        if self.epoch_report is not None:
            self.epoch_report(self.trainer)

    def on_validation_epoch_start(self):
        self._reset("val")

    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            self._finish("val")
        self._reset("val")

    def on_test_epoch_start(self):
        self._reset("test")

    def on_test_epoch_end(self):
        self._finish("test")

    # ---- optimiser and frozen modules -----------------------------------------------------
    def configure_optimizers(self):
        c = self.config
        optimizer = make_optimizer(self.model, c)
        if c.lr_schedule == "constant":
            return optimizer
        return with_schedule(optimizer, c.lr_schedule, self.trainer.estimated_stepping_batches)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            keep_frozen_in_eval(self.model, self.frozen)
        return self


# Lightning reads training_step's signature on every step (does it take batch_idx?); a signature given
# is read as it is instead of being rebuilt from the code object: 10 µs a step less
SpecModule.training_step.__signature__ = inspect.signature(SpecModule.training_step)


def _moved(batch, device: torch.device):
    """``batch``, a tuple or list of tensors and tuples or lists of tensors, on ``device`` (non-blocking
    but to the CPU and MPS, as Lightning's move_data_to_device); None for any other batch."""
    if type(batch) not in (tuple, list):
        return None
    non_blocking = device.type not in ("cpu", "mps")
    out = []
    for item in batch:
        if isinstance(item, torch.Tensor):
            out.append(item.to(device, non_blocking=non_blocking))
        elif type(item) in (tuple, list) and all(isinstance(t, torch.Tensor) for t in item):
            out.append(type(item)(t.to(device, non_blocking=non_blocking) for t in item))
        else:
            return None
    return type(batch)(out)


def _batch_len(batch) -> int:
    y = batch[1]
    return int(y.shape[0]) if isinstance(y, torch.Tensor) and y.dim() > 0 else 1
