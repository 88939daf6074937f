"""The epoch metrics that torchmetrics does not have in the form the tasks report, or not at the
cost a small model's training step can carry: the loss averaged over examples (or tokens), and
accuracy.

Both keep sums (``dist_reduce_fx="sum"``), so torchmetrics adds them across processes before
:meth:`compute` divides: the value is exact over the whole split, not a mean of batch means.
The tasks (tasks.py) use torchmetrics' own metrics for everything else (Dice, IoU/Jaccard, MSE,
MAE; perplexity is the exponential of this mean loss, which is what torchmetrics' ``Perplexity``
computes, without a second softmax over the vocabulary).

They are updated on every training step, so each update is a few in-place tensor operations
(:class:`SumsMetric`): torchmetrics' ``MulticlassAccuracy`` counted the four stat scores of
every class (some fifteen operations, 70 µs a LeNet step on the CPU) for a micro accuracy that
is hits / examples, and torchmetrics' update wrapper goes through ``nn.Module.__setattr__`` twice
a call.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torchmetrics import Metric


class SumsMetric(Metric):
    """A metric whose states are sums that its ``update`` adds to in place.

    torchmetrics wraps ``update`` to count the calls and drop the cached result of ``compute``
    (and to run the update under the metric's grad mode; these updates read detached tensors);
    this wrapper does the same two things without ``nn.Module.__setattr__``."""

    is_differentiable = False
    full_state_update = False

    def _wrap_update(self, update: Callable) -> Callable:
        attrs = self.__dict__  # where nn.Module keeps plain attributes such as these two

        def counted_update(*args: Any, **kwargs: Any) -> None:
            attrs["_computed"] = None
            attrs["_update_count"] += 1
            update(*args, **kwargs)

        return counted_update


class WeightedMean(SumsMetric):
    """Σ value·weight / Σ weight: a loss averaged over examples (or tokens) rather than batches.

    Not torchmetrics' ``MeanMetric``: it drops NaN values (a diverging run's loss would look
    finite, and early stopping would not see it), and with ``nan_strategy="disable"`` it ignores
    the weights (torchmetrics 1.9). Here a NaN stays a NaN.
    """

    total: torch.Tensor
    weight: torch.Tensor

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("weight", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, weight: float) -> None:
        self.total.add_(value.detach().float(), alpha=weight)
        self.weight.add_(weight)

    def compute(self) -> torch.Tensor:
        return self.total / self.weight.clamp(min=1)


class Accuracy(SumsMetric):
    """Hits / examples, a hit being a prediction whose highest score (dim 1) is the target: the
    micro accuracy of torchmetrics' ``MulticlassAccuracy(average="micro")`` (which also takes the
    argmax over dim 1 and counts every position of a [N, C, ...] prediction), 0 with no examples.

    ``pred``: scores [N, C, ...]; ``target``: class ids [N, ...]."""

    hits: torch.Tensor
    seen: torch.Tensor

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("hits", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("seen", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.hits.add_(torch.eq(pred.detach().argmax(dim=1), target).sum())
        self.seen.add_(target.numel())

    def compute(self) -> torch.Tensor:
        return self.hits / self.seen.clamp(min=1)


__all__ = ["SumsMetric", "WeightedMean", "Accuracy"]
