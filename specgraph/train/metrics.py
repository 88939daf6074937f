"""The epoch metrics that torchmetrics does not have in exactly the form the tasks report.

Both keep sums (``dist_reduce_fx="sum"``), so torchmetrics adds them across processes before
:meth:`compute` divides: the values are exact over the whole split, not means of batch means.
The tasks (tasks.py) use torchmetrics' own metrics wherever one computes the same quantity
(accuracy, MSE, MAE).
"""

from __future__ import annotations

from typing import Optional

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


class ForegroundOverlap(Metric):
    """Dice and IoU of a segmentation, averaged over the foreground classes that occur.

    Per class c it counts the pixels predicted c (argmax over dim 1 of the scores [N, C, H, W]),
    the pixels labelled c, and those that are both; at the end, per foreground class (1 .. C-1;
    all classes when there is only one) that was predicted or labelled at least once:
    Dice = 2·|P∩T| / (|P| + |T|), IoU = |P∩T| / |P∪T|, and their means over those classes
    (0 when there is none). ``compute`` gives ``{"dice": ..., "iou": ...}``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    inter: torch.Tensor
    pred: torch.Tensor
    true: torch.Tensor

    def __init__(self, num_classes: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        for name in ("inter", "pred", "true"):  # sized by the first batch when num_classes is not known
            self.add_state(name, torch.zeros(num_classes or 0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, scores: torch.Tensor, target: torch.Tensor) -> None:
        classes, hard = scores.shape[1], scores.argmax(dim=1)
        if self.inter.numel() == 0:
            self.inter, self.pred, self.true = (torch.zeros(classes, dtype=torch.long, device=scores.device)
                                                for _ in range(3))

        def count(ids: torch.Tensor) -> torch.Tensor:
            return torch.bincount(ids.flatten(), minlength=classes)[:classes]

        self.inter += count(target[hard == target])
        self.pred += count(hard)
        self.true += count(target)

    def compute(self) -> dict[str, torch.Tensor]:
        inter, total = self.inter.float(), (self.pred + self.true).float()
        fg = slice(1, None) if len(inter) > 1 else slice(None)
        present = total[fg] > 0
        dice = (2 * inter[fg] / total[fg].clamp(min=1))[present]
        iou = (inter[fg] / (total[fg] - inter[fg]).clamp(min=1))[present]
        zero = torch.tensor(0.0, device=inter.device)
        return {"dice": dice.mean() if len(dice) else zero, "iou": iou.mean() if len(iou) else zero}


__all__ = ["WeightedMean", "ForegroundOverlap"]
