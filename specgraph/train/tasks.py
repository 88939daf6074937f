"""Tasks: the loss and metrics of a kind of data, and whether a spec's output fits it.

A task turns the model's prediction and a batch's targets into a training loss, and into
*sums* (e.g. correct predictions and examples seen) that are added over an epoch, across
processes, before :meth:`Task.finish` turns them into metrics — so accuracy, Dice, IoU and
perplexity are exact over the whole split, not means of batch means.

| task             | prediction            | target         | loss                   | metrics        |
|------------------|-----------------------|----------------|------------------------|----------------|
| classification   | [N, classes]          | [N] class ids  | cross-entropy          | acc            |
| segmentation     | [N, classes, H, W]    | [N, H, W]      | cross-entropy          | dice, iou      |
| regression       | [N, ...]              | same shape     | MSE                    | mse, mae       |
| language_model   | [N, T, vocab]         | [N, T]         | cross-entropy          | ppl, acc       |
| word2vec         | [N, 1 + k] scores     | (unused)       | negative sampling      | acc (pos. top) |
| word2vec softmax | [N, vocab] logits     | [N] word ids   | cross-entropy          | acc            |

Dice and IoU average the foreground classes (1 .. classes-1; class 0 is the background).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from ..ir.tensor_type import TensorType

TASKS = ("classification", "segmentation", "regression", "language_model", "word2vec")
Sums = dict[str, torch.Tensor]


def _shape(t: TensorType) -> str:
    return str(t)


class Task:
    """Base class; subclasses set ``name`` and ``metrics`` (the first is the headline metric)."""

    name = ""
    metrics: tuple[str, ...] = ()

    def __init__(self, num_classes: Optional[int] = None, vocab: Optional[int] = None, meta: Optional[dict] = None):
        self.num_classes, self.vocab, self.meta = num_classes, vocab, dict(meta or {})

    def fit_error(self, out: TensorType, target: Optional[torch.Tensor]) -> Optional[str]:
        """Why an output of type ``out`` cannot be trained on this data (None when it can)."""
        return None

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sums(self, pred: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> Sums:
        n = torch.tensor(float(pred.shape[0]), device=pred.device)
        return {"loss": loss.detach() * n, "n": n}

    def finish(self, s: Sums) -> dict[str, float]:
        return {"loss": float(s["loss"] / s["n"].clamp(min=1))}


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

    def sums(self, pred, target, loss):
        s = super().sums(pred, target, loss)
        s["correct"] = (pred.argmax(dim=1) == target).sum().float()
        return s

    def finish(self, s):
        return {**super().finish(s), "acc": float(s["correct"] / s["n"].clamp(min=1))}


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

    def sums(self, pred, target, loss):
        s = Task.sums(self, pred, target, loss)
        classes, hard = pred.shape[1], pred.argmax(dim=1)

        def count(ids: torch.Tensor) -> torch.Tensor:
            return torch.bincount(ids.flatten(), minlength=classes)[:classes].float()

        s.update(inter=count(target[hard == target]), pred=count(hard), true=count(target))
        return s

    def finish(self, s):
        inter, total = s["inter"], s["pred"] + s["true"]
        fg = slice(1, None) if len(inter) > 1 else slice(None)
        present = total[fg] > 0
        dice = (2 * inter[fg] / total[fg].clamp(min=1))[present]
        iou = (inter[fg] / (total[fg] - inter[fg]).clamp(min=1))[present]
        return {**Task.finish(self, s), "dice": float(dice.mean()) if len(dice) else 0.0,
                "iou": float(iou.mean()) if len(iou) else 0.0}


class Regression(Task):
    name, metrics = "regression", ("mae", "mse")

    def fit_error(self, out, target):
        if target is not None and (out.rank != target.dim() + 1
                                   or not all(_dim_is(d, int(n)) for d, n in zip(out.shape[1:], target.shape))):
            return f"the targets are [N, {', '.join(map(str, target.shape))}]; the spec's output is {_shape(out)}"
        return None

    def loss(self, pred, target):
        return F.mse_loss(pred.float(), target.float())

    def sums(self, pred, target, loss):
        s = super().sums(pred, target, loss)
        err = pred.detach().float() - target.float()
        s.update(se=(err ** 2).sum(), ae=err.abs().sum(), elems=torch.tensor(float(err.numel()), device=err.device))
        return s

    def finish(self, s):
        e = s["elems"].clamp(min=1)
        return {**super().finish(s), "mse": float(s["se"] / e), "mae": float(s["ae"] / e)}


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

    def sums(self, pred, target, loss):
        tokens = torch.tensor(float(target.numel()), device=pred.device)
        return {"loss": loss.detach() * tokens, "n": tokens, "correct": (pred.argmax(-1) == target).sum().float()}

    def finish(self, s):
        loss = float(s["loss"] / s["n"].clamp(min=1))
        return {"loss": loss, "ppl": math.exp(min(loss, 50.0)), "acc": float(s["correct"] / s["n"].clamp(min=1))}


def negative_sampling_loss(scores: torch.Tensor) -> torch.Tensor:
    """Mikolov et al.'s objective on scores [N, 1 + k]: column 0 the true pair, the rest negatives.

    -(log σ(s_0) + Σ_k log σ(-s_k)), averaged over the rows.
    """
    scores = scores.float()
    return -(F.logsigmoid(scores[:, 0]) + F.logsigmoid(-scores[:, 1:]).sum(dim=1)).mean()


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

    def sums(self, pred, target, loss):
        s = super().sums(pred, target, loss)
        s["correct"] = ((pred.argmax(dim=1) == target) if self.softmax else (pred.argmax(dim=1) == 0)).sum().float()
        return s

    def finish(self, s):
        return {**super().finish(s), "acc": float(s["correct"] / s["n"].clamp(min=1))}


TASK_CLASSES: dict[str, type[Task]] = {c.name: c for c in (Classification, Segmentation, Regression, LanguageModel,
                                                             Word2Vec)}


def make_task(name: str, num_classes: Optional[int] = None, vocab: Optional[int] = None,
              meta: Optional[dict] = None) -> Task:
    return TASK_CLASSES[name](num_classes=num_classes, vocab=vocab, meta=meta)
