"""word2vec examples of a text: skip-gram or CBOW, with negative sampling or a full softmax.

The recipe is word2vec's: a vocabulary of the words seen ``min_count`` times or more,
subsampling of frequent words, negatives drawn from the unigram counts to the 3/4 power
(fresh every training batch: :class:`~.corpus_batches.FreshNegatives`). Which variant a spec
trains is read from its inputs (:func:`word2vec_variant`, see corpus.py).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import TensorDataset

from . import DataBundle, DataError, DataRequest, option_conflict, option_unused
from .corpus_batches import FreshNegatives, NegativeSamplingPairs, TensorPairs, collate_stacked
from .corpus_options import LM_OPTIONS, MIN_COUNT, SKIPGRAM_WINDOW, SUBSAMPLE, TEXT_SPLIT, check_int, fixed, misfit
from .text import (Documents, Vocabulary, cbow_examples, negative_table, skipgram_pairs, subsample,
                   with_negatives)


def _as_documents(tokens: Sequence[str] | Sequence[Sequence[str]]) -> Documents:
    """A flat token list is one document; a list of token lists is kept."""
    if len(tokens) and isinstance(tokens[0], str):
        return [list(tokens)]  # type: ignore[arg-type]
    return [list(doc) for doc in tokens]


def word2vec_dataset(tokens: Sequence[str] | Sequence[Sequence[str]], window: int = 5, min_count: int = 5,
                     negatives: int = 5, subsample_t: float | None = 1e-3, seed: int = 0,
                     mode: str = "skipgram", power: float = 0.75,
                     vocab: Vocabulary | None = None) -> tuple[TensorDataset, Vocabulary]:
    """word2vec negative-sampling examples and the vocabulary.

    ``tokens``: token lists (documents; windows never cross a document boundary) or one flat list.
    The vocabulary keeps words seen ``min_count`` times or more, most frequent first; other words
    are dropped from the text before windowing (as word2vec does).  A given ``vocab`` (e.g. the
    training split's, for validation examples) is used instead, and ``min_count`` is ignored.  With ``subsample_t`` (e.g.
    1e-3; None or 0 for none) each occurrence of a word of frequency f is kept with probability
    sqrt(t/f) + t/f.  Then, for ``mode``:

    - ``"skipgram"``: one example per (centre, context) pair within ``window`` each side:
      tensors (center [P] int64, words [P, 1 + negatives] int64);
    - ``"cbow"``: one example per position with a full window each side:
      tensors (context [P, 2 * window] int64, words [P, 1 + negatives] int64).

    ``words[:, 0]`` is the true word (context word / centre word), ``words[:, 1:]`` the negatives,
    drawn with replacement from the whole vocabulary with probability count**power / sum (no word
    is excluded, not even the true one, as in most implementations of the loss).  The draws are
    made once, here, from ``seed``; call again with another seed for fresh negatives.
    """
    if mode not in ("skipgram", "cbow"):
        raise DataError(f"mode must be 'skipgram' or 'cbow', got {mode!r}")
    for name, value, low in (("window", window, 1), ("min_count", min_count, 1), ("negatives", negatives, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise DataError(f"{name} must be an integer >= {low}, got {value!r}")
    docs = _as_documents(tokens)
    vocab = vocab if vocab is not None else Vocabulary.build((t for doc in docs for t in doc), min_count=min_count)
    if len(vocab) == 0:
        raise DataError(f"no word occurs min_count={min_count} times; lower min_count or use a larger corpus")
    rng = np.random.default_rng(seed)
    encoded = [vocab.encode(doc) for doc in docs]
    if subsample_t:
        encoded = [subsample(ids, vocab.counts, subsample_t, rng) for ids in encoded]
    probs = negative_table(vocab.counts, power)

    if mode == "skipgram":
        pairs = np.concatenate([skipgram_pairs(ids, window) for ids in encoded] or [np.zeros((0, 2), np.int64)])
        if len(pairs) == 0:
            raise DataError("the corpus gives no skip-gram pairs (documents too short after min_count)")
        words = with_negatives(pairs, probs, negatives, rng)
        return TensorDataset(torch.from_numpy(pairs[:, 0].copy()), torch.from_numpy(words)), vocab

    parts = [cbow_examples(ids, window) for ids in encoded]
    contexts = np.concatenate([c for c, _ in parts] or [np.zeros((0, 2 * window), np.int64)])
    centres = np.concatenate([c for _, c in parts] or [np.zeros(0, np.int64)])
    if len(centres) == 0:
        raise DataError(f"the corpus gives no CBOW examples (no document has 2*window+1 = {2 * window + 1} "
                        "words after min_count)")
    words = with_negatives(np.stack([centres, centres], axis=1), probs, negatives, rng)
    return TensorDataset(torch.from_numpy(contexts), torch.from_numpy(words)), vocab


def _split_documents(docs: list[list[str]], seed: int, split=TEXT_SPLIT) -> dict[str, list[list[str]]]:
    if len(docs) < 20:
        words = [w for d in docs for w in d]
        cuts = [int(round(len(words) * f)) for f in (split[0], split[0] + split[1])]
        return {"train": [words[:cuts[0]]], "val": [words[cuts[0]:cuts[1]]], "test": [words[cuts[1]:]]}
    order = np.random.default_rng(seed).permutation(len(docs))
    n_val, n_test = (max(1, int(round(len(docs) * f))) if f > 0 else 0 for f in split[1:])
    pick = lambda idx: [docs[i] for i in sorted(idx)]  # noqa: E731
    return {"val": pick(order[:n_val]), "test": pick(order[n_val:n_val + n_test]),
            "train": pick(order[n_val + n_test:])}


def word2vec_variant(req: DataRequest) -> tuple[str, int, Optional[int]]:
    """(mode "skipgram" | "cbow", window, negatives or None for a full softmax) from the inputs."""
    inputs = list(req.inputs.items())
    if not inputs or len(inputs) > 2:
        raise misfit(req, "word2vec takes one input (full softmax) or two (negative sampling)")
    for name, t in inputs:
        check_int(req, t, name)
    first = inputs[0][1]
    wanted = req.options.get("window")
    if first.rank == 1:
        mode, window = "skipgram", wanted or SKIPGRAM_WINDOW
    elif first.rank == 2 and (fixed(first.shape[1]) or 0) >= 2 and fixed(first.shape[1]) % 2 == 0:
        mode, window = "cbow", fixed(first.shape[1]) // 2
        if wanted is not None and wanted != window:
            raise option_conflict("window", wanted, window, "CBOW window (context width / 2)")
    else:
        raise misfit(req, f"word2vec's first input is a centre word [N] or a context [N, 2·window] "
                           f"with a fixed even width; '{inputs[0][0]}' is {first}")
    if len(inputs) == 1:
        return mode, window, None
    second = inputs[1][1]
    if second.rank != 2 or (fixed(second.shape[1]) or 0) < 2:
        raise misfit(req, f"negative sampling's second input is words [N, 1 + k] with a fixed k >= 1; "
                           f"'{inputs[1][0]}' is {second}")
    return mode, window, fixed(second.shape[1]) - 1


def word2vec(req: DataRequest, docs: list[list[str]], name: str) -> DataBundle:
    """The bundle of a spec whose inputs are word ids (see corpus.py)."""
    mode, window, negatives = word2vec_variant(req)
    option_unused(req, LM_OPTIONS, "word2vec")
    min_count = req.options.get("min_count") or MIN_COUNT
    sub = req.options.get("subsample")
    sub = SUBSAMPLE if sub is None else sub
    split = req.options.get("split") or list(TEXT_SPLIT)
    parts = _split_documents(docs, req.seed, split)
    vocab = Vocabulary.build((w for d in parts["train"] for w in d), min_count=min_count)
    if len(vocab) < 2:
        raise DataError(f"{len(vocab)} words occur {min_count} times or more in the training split",
                        hint="word2vec needs a larger text" + (" or a lower min_count" if min_count > 1 else ""),
                        option="min_count" if "min_count" in req.given else None)
    sets = {}
    for part, split_docs in parts.items():
        fresh = part == "train" and negatives is not None  # negatives drawn per batch: none drawn here
        try:
            ds, _ = word2vec_dataset(split_docs, window=window, negatives=0 if fresh else negatives or 0,
                                     subsample_t=(sub or None) if part == "train" else None, seed=req.seed,
                                     mode=mode, vocab=vocab)
        except DataError as e:
            raise DataError(f"the {part} split: {e.message}", hint="word2vec needs a larger text") from None
        query, words = ds.tensors
        if negatives is None:
            sets[part] = TensorPairs(query, words[:, 0].clone())
        else:
            if fresh:  # -1: a fresh negative every batch (FreshNegatives)
                words = torch.cat([words[:, :1], torch.full((len(words), negatives), -1, dtype=torch.int64)], 1)
            sets[part] = NegativeSamplingPairs(query, words)
    probs = negative_table(vocab.counts)
    meta = {"objective": "softmax" if negatives is None else "negative_sampling", "mode": mode, "window": window,
            "negatives": negatives or 0, "min_count": min_count, "subsample": sub, "words": vocab.words,
            "counts": vocab.counts, "split": {k: len(v) for k, v in parts.items()}, "split_by": "document"}
    return DataBundle(sets["train"], sets["val"], sets["test"], task="word2vec", vocab=len(vocab),
                      spec_params={"vocab": len(vocab)}, meta=meta, name=name,
                      collate=collate_stacked if negatives is None else FreshNegatives(probs),
                      options={"min_count": min_count, "subsample": sub, "window": window, "split": list(split)})


__all__ = ["word2vec_dataset", "word2vec_variant", "word2vec"]
