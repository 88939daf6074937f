"""Text for word2vec and language models: tokens, a vocabulary, and training examples.

tokenize("Hey, this is sample corpus using only one context word.")
  -> ['hey', 'this', 'is', 'sample', 'corpus', 'using', 'only', 'one', 'context', 'word']
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
Documents = list[list[str]]  # token lists; windows never cross a document boundary


def tokenize(text: str) -> list[str]:
    """Lower-case words and numbers; punctuation dropped."""
    return WORD_RE.findall(text.lower())


@dataclass
class Vocabulary:
    """Words kept (count >= min_count), most frequent first, and their counts."""

    words: list[str]
    counts: list[int]

    @classmethod
    def build(cls, tokens: Iterable[str], min_count: int = 1, order: str = "frequency") -> "Vocabulary":
        """``order``: "frequency" (most frequent first, ties by first appearance) or "appearance"."""
        counter = Counter(tokens)
        first_seen = {w: i for i, w in reversed(list(enumerate(counter)))}
        kept = [w for w in counter if counter[w] >= min_count]
        if order == "frequency":
            kept.sort(key=lambda w: (-counter[w], first_seen[w]))
        return cls(kept, [counter[w] for w in kept])

    def __len__(self) -> int:
        return len(self.words)

    @property
    def index(self) -> dict[str, int]:
        """Word -> id; made again only when the words changed (``encode`` runs once per document,
        and building the dict was most of the time of encoding the lee corpus)."""
        cached = self.__dict__.get("_index")
        if cached is None or cached[0] != self.words:  # a list comparison in C: far cheaper than the dict
            cached = self.__dict__["_index"] = (list(self.words), {w: i for i, w in enumerate(self.words)})
        return cached[1]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of the tokens in the vocabulary (unknown tokens are dropped, as word2vec does)."""
        index = self.index
        return [index[t] for t in tokens if t in index]

    def decode(self, ids: Iterable[int], sep: str = " ") -> str:
        """The words of ``ids`` joined by ``sep`` (``sep=""`` for a character vocabulary)."""
        return sep.join(self.words[int(i)] for i in ids)


def skipgram_pairs(ids: Sequence[int], window: int) -> np.ndarray:
    """(centre, context) id pairs for every context word within ``window``: [P, 2], centre by
    centre, each centre's context words in text order."""
    ids = np.asarray(ids, dtype=np.int64)
    offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])
    where = np.arange(len(ids))[:, None] + offsets[None, :]  # [L, 2w] context positions
    inside = (where >= 0) & (where < len(ids))
    centres = np.broadcast_to(ids[:, None], where.shape)[inside]
    return np.stack([centres, ids[where[inside]]], axis=1).reshape(-1, 2)


def cbow_examples(ids: Sequence[int], window: int) -> tuple[np.ndarray, np.ndarray]:
    """(context [P, 2·window], centre [P]) for every position with a full window each side."""
    contexts, centres = [], []
    for i in range(window, len(ids) - window):
        contexts.append(list(ids[i - window:i]) + list(ids[i + 1:i + window + 1]))
        centres.append(ids[i])
    return np.array(contexts, dtype=np.int64).reshape(-1, 2 * window), np.array(centres, dtype=np.int64)


def subsample(ids: Sequence[int], counts: Sequence[int], threshold: float = 1e-3,
              rng: np.random.Generator | None = None) -> list[int]:
    """Drop frequent words with Mikolov et al.'s probability 1 - sqrt(t / f(w))."""
    rng = rng or np.random.default_rng(0)
    total = float(sum(counts))
    freq = np.asarray(counts, dtype=np.float64) / total
    keep = np.minimum(1.0, np.sqrt(threshold / np.maximum(freq, 1e-12)) + threshold / np.maximum(freq, 1e-12))
    ids = np.asarray(ids, dtype=np.int64)
    draws = rng.random(len(ids))
    return ids[draws < keep[ids]].tolist()


def negative_table(counts: Sequence[int], power: float = 0.75) -> np.ndarray:
    """Sampling probabilities for negatives: unigram counts to the 3/4 power, normalised."""
    weights = np.asarray(counts, dtype=np.float64) ** power
    return weights / weights.sum()


def with_negatives(pairs: np.ndarray, probs: np.ndarray, k: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """[P, 1 + k] word ids per pair: the true context word, then k words drawn from ``probs``."""
    rng = rng or np.random.default_rng(0)
    negatives = rng.choice(len(probs), size=(len(pairs), k), p=probs)
    return np.concatenate([pairs[:, 1:2], negatives], axis=1).astype(np.int64)
