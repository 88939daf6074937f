"""Tasks: the loss and metrics of a kind of data, and whether a spec's output fits it.

A task turns the model's prediction and a batch's targets into a training loss, and makes the
epoch metrics of a stage: a ``torchmetrics.MetricCollection`` (:meth:`Task.make_metrics`) that
:meth:`Task.update` feeds every batch and :meth:`Task.compute` reads at the end of the epoch.
The metrics keep sums (correct predictions and examples seen, squared errors, pixel counts)
that torchmetrics adds across processes before dividing — so accuracy, Dice, IoU and
perplexity are exact over the whole split, not means of batch means. The loss is weighted by
the examples of each batch (tokens, for a language model).

| task             | prediction            | target         | loss                   | metrics        |
|------------------|-----------------------|----------------|------------------------|----------------|
| classification   | [N, classes]          | [N] class ids  | cross-entropy          | acc            |
| segmentation     | [N, classes, H, W]    | [N, H, W]      | cross-entropy          | dice, iou      |
| regression       | [N, ...]              | same shape     | MSE                    | mse, mae       |
| language_model   | [N, T, vocab]         | [N, T]         | cross-entropy          | ppl, acc       |
| word2vec         | [N, 1 + k] scores     | (unused)       | negative sampling      | acc (pos. top) |
| word2vec softmax | [N, vocab] logits     | [N] word ids   | cross-entropy          | acc            |

Dice and IoU (torchmetrics' ``DiceScore`` and ``MulticlassJaccardIndex``) are counted over the
whole split and averaged over the foreground classes (1 .. classes-1; class 0 is the background)
that are predicted or labelled at least once.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.regression import MeanAbsoluteError, MeanSquaredError
from torchmetrics.segmentation import DiceScore

from ..ir.tensor_type import TensorType
from .metrics import Accuracy, WeightedMean

TASKS = ("classification", "segmentation", "regression", "language_model", "word2vec")


def _shape(t: TensorType) -> str:
    return str(t)


class Task:
    """Base class; subclasses set ``name`` and ``metrics`` (the first is the headline metric).

    The epoch metrics of a stage: ``metrics = task.make_metrics()``, then ``task.update(metrics,
    pred, target, loss)`` per batch and ``task.compute(metrics)`` (names -> floats, ``loss``
    first, in the order they are logged) per epoch; ``metrics.reset()`` starts the next one.
    """

    name = ""
    metrics: tuple[str, ...] = ()

    def __init__(self, num_classes: Optional[int] = None, vocab: Optional[int] = None, meta: Optional[dict] = None):
        self.num_classes, self.vocab, self.meta = num_classes, vocab, dict(meta or {})

    def fit_error(self, out: TensorType, target: Optional[torch.Tensor]) -> Optional[str]:
        """Why an output of type ``out`` cannot be trained on this data (None when it can)."""
        return None

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def make_metrics(self) -> MetricCollection:
        return MetricCollection(self._metrics(), compute_groups=False)

    def _metrics(self) -> dict[str, Metric]:
        return {"loss": WeightedMean()}

    def update(self, metrics: MetricCollection, pred: torch.Tensor, target: torch.Tensor,
               loss: torch.Tensor) -> None:
        metrics["loss"].update(loss, pred.shape[0])

    def compute(self, metrics: MetricCollection) -> dict[str, float]:
        values = metrics.compute()  # torchmetrics sorts the names; the order logged (loss first) is ours
        return {k: float(values[k]) for k in ("loss", *self.metrics)}


def _dim_is(d, n: Optional[int]) -> bool:
    return n is None or not isinstance(d, int) or d == n


class Classification(Task):
    name, metrics = "classification", ("acc",)

    def fit_error(self, out, target):
        if out.rank != 2:
            return f"classification needs an output [N, classes]; the spec's output is {_shape(out)} (rank {out.rank})"
        if not _dim_is(out.shape[1], self.num_classes):
            return f"the data has {self.num_classes} classes; the spec's output is {_shape(out)}"
        return None

    def loss(self, pred, target):
        return F.cross_entropy(pred.float(), target)

    def _metrics(self):
        return {**super()._metrics(), "acc": Accuracy()}

    def update(self, metrics, pred, target, loss):
        super().update(metrics, pred, target, loss)
        metrics["acc"].update(pred, target)


class Segmentation(Task):
    name, metrics = "segmentation", ("dice", "iou")

    def fit_error(self, out, target):
        if out.rank != 4:
            return f"segmentation needs an output [N, classes, H, W]; the spec's output is {_shape(out)}"
        if not _dim_is(out.shape[1], self.num_classes):
            return f"the data has {self.num_classes} classes; the spec's output is {_shape(out)}"
        if target is not None and target.dim() == 2 and not all(
                _dim_is(d, int(n)) for d, n in zip(out.shape[2:], target.shape)):
            return f"the masks are {list(target.shape)}; the spec's output is {_shape(out)}"
        return None

    def loss(self, pred, target):
        return F.cross_entropy(pred.float(), target)

    def _metrics(self):
        # Over the whole split (global, not per image), per foreground class (1 .. classes-1), then the
        # mean over the classes predicted or labelled at least once: a class absent from both is NaN
        # for both metrics, and left out of the mean
        c = self.num_classes
        return {**super()._metrics(),
                "dice": DiceScore(num_classes=c, include_background=False, average="macro",
                                  aggregation_level="global", input_format="index"),
                "iou": MulticlassJaccardIndex(num_classes=c, average="none", zero_division=math.nan,
                                              validate_args=False)}

    def update(self, metrics, pred, target, loss):
        super().update(metrics, pred, target, loss)
        hard = pred.argmax(dim=1)
        metrics["dice"].update(hard, target)
        metrics["iou"].update(hard, target)

    def compute(self, metrics):
        values = metrics.compute()
        per_class = values["iou"][1:]
        present = per_class[~per_class.isnan()]
        dice, iou = float(values["dice"]), float(present.mean()) if len(present) else 0.0
        return {"loss": float(values["loss"]), "dice": 0.0 if math.isnan(dice) else dice, "iou": iou}


class Regression(Task):
    name, metrics = "regression", ("mae", "mse")

    def fit_error(self, out, target):
        if target is not None and (out.rank != target.dim() + 1
                                   or not all(_dim_is(d, int(n)) for d, n in zip(out.shape[1:], target.shape))):
            return f"the targets are [N, {', '.join(map(str, target.shape))}]; the spec's output is {_shape(out)}"
        return None

    def loss(self, pred, target):
        return F.mse_loss(pred.float(), target.float())

    def _metrics(self):  # over every value predicted
        return {**super()._metrics(), "mse": MeanSquaredError(), "mae": MeanAbsoluteError()}

    def update(self, metrics, pred, target, loss):
        super().update(metrics, pred, target, loss)
        flat_pred, flat_target = pred.detach().float().reshape(-1), target.float().reshape(-1)
        metrics["mse"].update(flat_pred, flat_target)
        metrics["mae"].update(flat_pred, flat_target)

    def compute(self, metrics):
        values = metrics.compute()
        return {k: float(values[k]) for k in ("loss", "mse", "mae")}


class LanguageModel(Task):
    name, metrics = "language_model", ("ppl", "acc")

    def fit_error(self, out, target):
        if out.rank != 3:
            return f"a language model needs an output [N, T, vocab]; the spec's output is {_shape(out)}"
        if not _dim_is(out.shape[2], self.vocab):
            return f"the vocabulary has {self.vocab} tokens; the spec's output is {_shape(out)}"
        return None

    def loss(self, pred, target):
        return F.cross_entropy(pred.float().flatten(0, 1), target.flatten())

    def _metrics(self):  # per token
        return {**super()._metrics(), "acc": Accuracy()}

    def update(self, metrics, pred, target, loss):
        metrics["loss"].update(loss, target.numel())
        metrics["acc"].update(pred.flatten(0, 1), target.flatten())

    def compute(self, metrics):
        values = metrics.compute()
        loss = float(values["loss"])
        return {"loss": loss, "ppl": math.exp(min(loss, 50.0)), "acc": float(values["acc"])}


def negative_sampling_loss(scores: torch.Tensor) -> torch.Tensor:
    """Mikolov et al.'s objective on scores [N, 1 + k]: column 0 the true pair, the rest negatives.

    -(log σ(s_0) + Σ_k log σ(-s_k)), averaged over the rows: one log-sigmoid over the scores with
    the negatives' signs flipped, then one sum (a third less time, forward and backward, than a
    log-sigmoid per part, their sums and the mean: 0.22 against 0.31 ms at 2,048 × 6 scores).
    """
    scores = scores.float()
    sign = torch.full((scores.shape[1],), -1.0, dtype=scores.dtype, device=scores.device)
    sign[0] = 1.0
    return F.logsigmoid(scores * sign).sum().div(-scores.shape[0])


class Word2Vec(Task):
    """Negative sampling (scores [N, 1 + k]), or a full softmax over the vocabulary when the
    bundle's ``meta["objective"]`` is "softmax" (logits [N, vocab], target: the context word)."""

    name, metrics = "word2vec", ("acc",)

    @property
    def softmax(self) -> bool:
        return self.meta.get("objective") == "softmax"

    def fit_error(self, out, target):
        if out.rank != 2:
            return f"word2vec needs scores [N, 1 + negatives] or logits [N, vocab]; the spec's output is {_shape(out)}"
        if self.softmax and not _dim_is(out.shape[1], self.vocab):
            return f"the vocabulary has {self.vocab} words; the spec's output is {_shape(out)}"
        return None

    def loss(self, pred, target):
        return F.cross_entropy(pred.float(), target) if self.softmax else negative_sampling_loss(pred)

    def _metrics(self):  # softmax: the context word ranked first; negative sampling: the true word (column 0)
        return {**super()._metrics(), "acc": Accuracy()}

    def update(self, metrics, pred, target, loss):
        super().update(metrics, pred, target, loss)
        metrics["acc"].update(pred, target if self.softmax else torch.zeros_like(pred[:, 0], dtype=torch.long))


TASK_CLASSES: dict[str, type[Task]] = {c.name: c for c in (Classification, Segmentation, Regression, LanguageModel,
                                                             Word2Vec)}


def make_task(name: str, num_classes: Optional[int] = None, vocab: Optional[int] = None,
              meta: Optional[dict] = None) -> Task:
    return TASK_CLASSES[name](num_classes=num_classes, vocab=vocab, meta=meta)
