"""Text batches cut from the tensors in one step, for both text tasks (corpus_lm, corpus_word2vec).

The DataLoader's fetcher hands a dataset that has ``__getitems__`` the whole batch of indices
its sampler chose (the run's shuffle, a function of seed and epoch, as for any dataset), and
the dataset answers with the batch already stacked, wrapped in :class:`Stacked` so that the
collate function (:func:`collate_stacked`, or :class:`FreshNegatives`) passes it through
instead of stacking items one by one. Indexing an item (``ds[i]``) and collating a list of
items still work as for any dataset.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset, default_collate


class Stacked:
    """A batch a dataset's ``__getitems__`` stacked already (see :func:`collate_stacked`)."""

    __slots__ = ("batch",)

    def __init__(self, batch):
        self.batch = batch


def collate_stacked(items):
    """The collate_fn of the text datasets: a :class:`Stacked` batch as it is; a list of items
    (a dataset without ``__getitems__``, or a caller's own list) through ``default_collate``."""
    return items.batch if isinstance(items, Stacked) else default_collate(items)


def _index(indices) -> torch.Tensor:
    return indices if isinstance(indices, torch.Tensor) else torch.as_tensor(indices, dtype=torch.int64)


class TensorPairs(TensorDataset):
    """A TensorDataset of (inputs, target) whose batches are one gather per tensor."""

    def __getitems__(self, indices) -> Stacked:
        idx = _index(indices)
        return Stacked(tuple(t[idx] for t in self.tensors))


class NegativeSamplingPairs(Dataset):
    """((query, words [1 + k]), 0) items; ``words[0]`` the true word, the rest negatives (-1:
    drawn per batch by :class:`FreshNegatives`). Batches are gathered whole (``__getitems__``)."""

    def __init__(self, query: torch.Tensor, words: torch.Tensor):
        self.query, self.words = query, words
        self.placeholder = torch.zeros((), dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.query)

    def __getitem__(self, i):
        return (self.query[i], self.words[i]), self.placeholder

    def __getitems__(self, indices) -> Stacked:
        idx = _index(indices)
        return Stacked(((self.query[idx], self.words[idx]), torch.zeros(len(idx), dtype=torch.int64)))


class FreshNegatives:
    """A collate_fn that fills the -1 entries of ``words`` with draws from ``probs``.

    Drawn from torch's global generator, which the training module reseeds from (seed, epoch)
    every epoch, so a run is repeatable with its seed. Takes a :class:`Stacked` batch or a
    list of items."""

    def __init__(self, probs: np.ndarray):
        self.probs = torch.as_tensor(probs, dtype=torch.float64)

    def __call__(self, items):
        (query, words), target = collate_stacked(items)
        empty = words < 0
        if bool(empty.any()):
            words = words.clone()
            words[empty] = torch.multinomial(self.probs, int(empty.sum()), replacement=True)
        return (query, words), target


__all__ = ["Stacked", "collate_stacked", "TensorPairs", "NegativeSamplingPairs", "FreshNegatives"]
