"""The character language model of a text: (inputs [T], targets [T]) int64 examples, the
targets the next characters, cut from consecutive parts of the text (train first, then val,
then test); the vocabulary is every character of the text, sorted by code point.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import TensorDataset

from . import DataBundle, DataError, DataRequest, option_conflict, option_unused
from .corpus_batches import TensorPairs, collate_stacked
from .corpus_options import SEQ_LEN, TEXT_SPLIT, WORD2VEC_OPTIONS, check_int, fixed, misfit
from .sources import Splits, check_split
from .text import Vocabulary


def char_vocabulary(text: str) -> Vocabulary:
    """Every character of ``text``, sorted by code point, with its count."""
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    chars = sorted(counts)
    return Vocabulary(chars, [counts[c] for c in chars])


def char_lm_dataset(text: str, seq_len: int, stride: int | None = None,
                    vocab: Vocabulary | None = None) -> tuple[TensorDataset, Vocabulary]:
    """Character sequences for next-character prediction: (inputs [N, T], targets [N, T]) int64.

    ``targets[i, t] == inputs[i, t + 1]`` and the last target is the character after the chunk.
    Chunks start every ``stride`` characters (default ``seq_len``: no overlap).  The vocabulary
    is built from ``text`` unless given (characters outside a given vocabulary are dropped).
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
        raise DataError(f"seq_len must be a positive integer, got {seq_len!r}")
    stride = seq_len if stride is None else stride
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise DataError(f"stride must be a positive integer, got {stride!r}")
    vocab = vocab or char_vocabulary(text)
    ids = np.array(vocab.encode(text), dtype=np.int64)
    if len(ids) < seq_len + 1:
        raise DataError(f"the text has {len(ids)} characters; at least seq_len + 1 = {seq_len + 1} are needed")
    starts = np.arange(0, len(ids) - seq_len, stride)
    offsets = np.arange(seq_len)
    inputs = ids[starts[:, None] + offsets]
    targets = ids[starts[:, None] + offsets + 1]
    return TensorDataset(torch.from_numpy(inputs), torch.from_numpy(targets)), vocab


def char_lm_splits(text: str, seq_len: int, split: Sequence[float] = (0.9, 0.05, 0.05),
                   stride: int | None = None) -> tuple[Splits, Vocabulary]:
    """``char_lm_dataset`` on consecutive parts of ``text`` (train first, then val, then test;
    cut by character count); one vocabulary for all three, built from the whole text."""
    fractions = check_split(split)
    vocab = char_vocabulary(text)
    n = len(text)
    cuts = [0, int(round(n * fractions[0])), int(round(n * (fractions[0] + fractions[1]))), n]
    datasets = []
    for name, lo, hi in zip(("train", "val", "test"), cuts[:-1], cuts[1:]):
        try:
            datasets.append(char_lm_dataset(text[lo:hi], seq_len, stride, vocab)[0])
        except DataError as exc:
            raise DataError(f"the {name} part of the text (characters {lo}..{hi}): {exc}") from None
    info = {"seq_len": seq_len, "stride": stride or seq_len, "split": list(fractions), "characters": n,
            "vocabulary": len(vocab), "cuts": cuts[1:3]}
    return Splits(*datasets, info=info), vocab


def language_model(req: DataRequest, text: str, name: str) -> DataBundle:
    """The bundle of a spec whose prediction is [N, T, vocab] (see corpus.py)."""
    inputs = list(req.inputs.items())
    if len(inputs) != 1 or inputs[0][1].rank != 2:
        raise misfit(req, "a language model takes one input of tokens [N, T]")
    check_int(req, inputs[0][1], inputs[0][0])
    option_unused(req, WORD2VEC_OPTIONS, "a character language model")
    fixed_len, wanted = fixed(inputs[0][1].shape[1]), req.options.get("seq_len")
    if wanted is not None and fixed_len is not None and wanted != fixed_len:
        raise option_conflict("seq_len", wanted, fixed_len, "sequence length T")
    seq_len = fixed_len or wanted or SEQ_LEN
    split = req.options.get("split") or list(TEXT_SPLIT)
    try:
        splits, vocab = char_lm_splits(text, seq_len, split)
    except DataError as e:
        raise DataError(e.message, hint=f"a character language model with T = {seq_len} needs a longer text") from None
    meta = {**splits.info, "tokens": vocab.words, "unit": "character"}
    train, val, test = (TensorPairs(*part.tensors) for part in (splits.train, splits.val, splits.test))
    return DataBundle(train, val, test, task="language_model", vocab=len(vocab),
                      spec_params={"vocab": len(vocab)}, meta=meta, name=name, collate=collate_stacked,
                      options={"seq_len": seq_len, "split": list(split)})


__all__ = ["char_vocabulary", "char_lm_dataset", "char_lm_splits", "language_model"]
