"""The one epoch metric that torchmetrics does not have in the form the tasks report: the loss
averaged over examples (or tokens).

It keeps sums (``dist_reduce_fx="sum"``), so torchmetrics adds them across processes before
:meth:`compute` divides: the value is exact over the whole split, not a mean of batch means.
The tasks (tasks.py) use torchmetrics' own metrics for everything else (accuracy, Dice,
IoU/Jaccard, MSE, MAE; perplexity is the exponential of this mean loss, which is what
torchmetrics' ``Perplexity`` computes, without a second softmax over the vocabulary).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class WeightedMean(Metric):
    """Σ value·weight / Σ weight: a loss averaged over examples (or tokens) rather than batches.

    Not torchmetrics' ``MeanMetric``: it drops NaN values (a diverging run's loss would look
    finite, and early stopping would not see it), and with ``nan_strategy="disable"`` it ignores
    the weights (torchmetrics 1.9). Here a NaN stays a NaN.
    """

    is_differentiable = False
    full_state_update = False
    total: torch.Tensor
    weight: torch.Tensor

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("weight", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, weight: float) -> None:
        self.total += value.detach().float() * weight
        self.weight += weight

    def compute(self) -> torch.Tensor:
        return self.total / self.weight.clamp(min=1)


__all__ = ["WeightedMean"]
