"""Text for training: ``lee`` (gensim's Lee background corpus) and ``text:PATH`` (any UTF-8 file).

One text serves two tasks; the spec says which (an explicit ``:lm`` or ``:word2vec`` after the
name wins: ``lee:lm``, ``text:notes.txt:word2vec``):

1. a prediction [N, T, vocab] (char_lstm) -> **character language model**: inputs [T] and
   targets [T] (the next character) cut from the text, ``T`` the spec's fixed sequence length
   or 64; the vocabulary is every character of the text (sets ``vocab``). Splits: the text cut
   in order, train the first 90% of the characters, validation the next 5%, test the last 5%.
2. otherwise -> **word2vec**, the variant read from the inputs:
   first input [N] -> skip-gram (context window 5 each side), [N, 2·w] -> CBOW with window w;
   a second input [N, 1 + k] -> negative sampling with k negatives (column 0 the true word,
   fresh negatives drawn every batch from the unigram counts to the 3/4 power), no second
   input -> a full softmax over the vocabulary (skipgram.yaml, cbow.yaml).
   Text is tokenised (lower-case words), one document per line; the vocabulary keeps the
   training documents' words seen 5 times or more (sets ``vocab``); frequent words are
   subsampled (t = 1e-3) in the training split. Splits by document, shuffled with the seed:
   validation 5%, test 5%, train the rest (a text of fewer than 20 lines is cut in order
   90/5/5 by words instead).

Inputs that fit neither task are an E704 error that lists the shapes each task takes.

Options (``data_options`` / ``--data-option``): the language model's ``seq_len`` (when the
spec's T is symbolic; a different fixed T is error E709); word2vec's ``min_count``,
``subsample`` (0: off) and ``window`` (skip-gram; CBOW's window is its input width, and a
different value is E709); both: ``split`` (train, val, test fractions; word2vec: of the
documents). An option of the other task is E709. The number of negatives is the spec's
(its second input [N, 1 + k]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset, default_collate

from ..data import DataError as CorpusError
from ..ir.tensor_type import TensorType
from .datasets import DataBundle, DataError, DataOption, DataRequest, option_conflict, option_unused, register_dataset

MODES = ("lm", "word2vec")
SEQ_LEN = 64  # characters per language-model example when the spec's T is symbolic
SKIPGRAM_WINDOW = 5
MIN_COUNT = 5
SUBSAMPLE = 1e-3
TEXT_SPLIT = (0.9, 0.05, 0.05)
LM_OPTIONS = ("seq_len",)
WORD2VEC_OPTIONS = ("min_count", "subsample", "window")
TEXT_OPTIONS = {
    "seq_len": DataOption("int", None, f"language model: characters per example (default: the spec's T when "
                                       f"fixed, else {SEQ_LEN})", min=1),
    "min_count": DataOption("int", MIN_COUNT, "word2vec: keep words seen this many times or more in the "
                                              "training split", min=1),
    "subsample": DataOption("float", SUBSAMPLE, "word2vec: subsampling threshold t of frequent words "
                                                "(0: no subsampling)", min=0),
    "window": DataOption("int", None, f"word2vec: skip-gram context words each side (default {SKIPGRAM_WINDOW}; "
                                      "CBOW: the spec's input width / 2)", min=1),
    "split": DataOption("split", TEXT_SPLIT, "train, val, test fractions (LM: of the characters, in order; "
                                             "word2vec: of the documents)"),
}
TASK_SHAPES = ("language model: tokens [N, T] int64 -> [N, T, vocab]",
               "skip-gram: center [N] int64 (+ words [N, 1 + k] for negative sampling)",
               "CBOW: context [N, 2·window] int64 (+ words [N, 1 + k] for negative sampling)")


def _fixed(dim) -> Optional[int]:
    return int(dim) if isinstance(dim, int) else None


def choose_task(req: DataRequest, mode: Optional[str]) -> str:
    """"lm" or "word2vec" (the rule of the module doc)."""
    if mode:
        return mode
    prediction = next(iter(req.outputs.values()), None)
    if prediction is not None:
        return "lm" if prediction.rank == 3 else "word2vec"
    inputs = list(req.inputs.values())
    if len(inputs) == 1 and inputs[0].rank == 2 and _fixed(inputs[0].shape[1]) is None:
        return "lm"
    return "word2vec"


def _misfit(req: DataRequest, why: str) -> DataError:
    shown = ", ".join(f"{k} {v} {v.dtype}" for k, v in req.inputs.items()) or "none"
    return DataError(f"{why} (the spec's inputs: {shown})", code="E704",
                     hint="text data trains a " + "; a ".join(TASK_SHAPES))


def _check_int(req: DataRequest, t: TensorType, name: str) -> None:
    if not t.dtype.startswith(("int", "uint")):
        raise _misfit(req, f"input '{name}' must hold token ids (int64), not {t.dtype}")


# ---------------------------------------------------------------- language model

def language_model(req: DataRequest, text: str, name: str) -> DataBundle:
    from ..data.corpus import char_lm_splits

    inputs = list(req.inputs.items())
    if len(inputs) != 1 or inputs[0][1].rank != 2:
        raise _misfit(req, "a language model takes one input of tokens [N, T]")
    _check_int(req, inputs[0][1], inputs[0][0])
    option_unused(req, WORD2VEC_OPTIONS, "a character language model")
    fixed, wanted = _fixed(inputs[0][1].shape[1]), req.options.get("seq_len")
    if wanted is not None and fixed is not None and wanted != fixed:
        raise option_conflict("seq_len", wanted, fixed, "sequence length T")
    seq_len = fixed or wanted or SEQ_LEN
    split = req.options.get("split") or list(TEXT_SPLIT)
    try:
        splits, vocab = char_lm_splits(text, seq_len, split)
    except CorpusError as e:
        raise DataError(f"{e}", hint=f"a character language model with T = {seq_len} needs a longer text") from None
    meta = {**splits.info, "tokens": vocab.words, "unit": "character"}
    train, val, test = (TensorPairs(*part.tensors) for part in (splits.train, splits.val, splits.test))
    return DataBundle(train, val, test, task="language_model", vocab=len(vocab),
                      spec_params={"vocab": len(vocab)}, meta=meta, name=name, collate=collate_stacked,
                      options={"seq_len": seq_len, "split": list(split)})


# ---------------------------------------------------------------- word2vec

# Batches are cut from the tensors in one step: the DataLoader's fetcher hands a dataset that has
# ``__getitems__`` the whole batch of indices its sampler chose (the run's shuffle, a function of
# seed and epoch, as for any dataset), and the dataset answers with the batch already stacked,
# wrapped in :class:`Stacked` so that the collate function (:func:`collate_stacked`, or
# :class:`FreshNegatives`) passes it through instead of stacking items one by one. Indexing an
# item (``ds[i]``) and collating a list of items still work as for any dataset.

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
        raise _misfit(req, "word2vec takes one input (full softmax) or two (negative sampling)")
    for name, t in inputs:
        _check_int(req, t, name)
    first = inputs[0][1]
    wanted = req.options.get("window")
    if first.rank == 1:
        mode, window = "skipgram", wanted or SKIPGRAM_WINDOW
    elif first.rank == 2 and (_fixed(first.shape[1]) or 0) >= 2 and _fixed(first.shape[1]) % 2 == 0:
        mode, window = "cbow", _fixed(first.shape[1]) // 2
        if wanted is not None and wanted != window:
            raise option_conflict("window", wanted, window, "CBOW window (context width / 2)")
    else:
        raise _misfit(req, f"word2vec's first input is a centre word [N] or a context [N, 2·window] "
                           f"with a fixed even width; '{inputs[0][0]}' is {first}")
    if len(inputs) == 1:
        return mode, window, None
    second = inputs[1][1]
    if second.rank != 2 or (_fixed(second.shape[1]) or 0) < 2:
        raise _misfit(req, f"negative sampling's second input is words [N, 1 + k] with a fixed k >= 1; "
                           f"'{inputs[1][0]}' is {second}")
    return mode, window, _fixed(second.shape[1]) - 1


def word2vec(req: DataRequest, docs: list[list[str]], name: str) -> DataBundle:
    from ..data.corpus import word2vec_dataset
    from ..data.text import Vocabulary, negative_table

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
        try:
            ds, _ = word2vec_dataset(split_docs, window=window, negatives=negatives or 0,
                                     subsample_t=(sub or None) if part == "train" else None, seed=req.seed,
                                     mode=mode, vocab=vocab)
        except CorpusError as e:
            raise DataError(f"the {part} split: {e}", hint="word2vec needs a larger text") from None
        query, words = ds.tensors
        if negatives is None:
            sets[part] = TensorPairs(query, words[:, 0].clone())
        else:
            if part == "train":
                words = words.clone()
                words[:, 1:] = -1  # fresh negatives every batch (FreshNegatives)
            sets[part] = NegativeSamplingPairs(query, words)
    probs = negative_table(vocab.counts)
    meta = {"objective": "softmax" if negatives is None else "negative_sampling", "mode": mode, "window": window,
            "negatives": negatives or 0, "min_count": min_count, "subsample": sub, "words": vocab.words,
            "counts": vocab.counts, "split": {k: len(v) for k, v in parts.items()}, "split_by": "document"}
    return DataBundle(sets["train"], sets["val"], sets["test"], task="word2vec", vocab=len(vocab),
                      spec_params={"vocab": len(vocab)}, meta=meta, name=name,
                      collate=collate_stacked if negatives is None else FreshNegatives(probs),
                      options={"min_count": min_count, "subsample": sub, "window": window, "split": list(split)})


# ---------------------------------------------------------------- the datasets

def _text_bundle(req: DataRequest, text: str, name: str, mode: Optional[str]) -> DataBundle:
    from ..data.corpus import documents

    if not text.strip():
        raise DataError(f"{name}: the text is empty")
    if choose_task(req, mode) == "lm":
        return language_model(req, text, name)
    docs = documents(text, "line")
    if not docs:
        raise DataError(f"{name}: no words in the text")
    return word2vec(req, docs, name)


def _mode(text: Optional[str], usage: str) -> Optional[str]:
    if text is None or text == "":
        return None
    if text not in MODES:
        raise DataError(f"unknown task '{text}'", hint=f"{usage} (lm: character language model, word2vec)")
    return text


@register_dataset("lee", help="gensim's Lee corpus (300 news stories): word2vec or a char LM, chosen by the "
                              "spec (or lee:lm, lee:word2vec)", options=TEXT_OPTIONS)
def load_lee(req: DataRequest) -> DataBundle:
    from ..data.corpus import lee_text

    mode = _mode(req.arg, "write lee, lee:lm or lee:word2vec")
    try:
        text = lee_text()
    except CorpusError as e:
        raise DataError(str(e)) from None
    return _text_bundle(req, text, "lee" + (f":{mode}" if mode else ""), mode)


@register_dataset("text", help="text:PATH[:lm|:word2vec] — any UTF-8 text file: word2vec or a char LM, chosen "
                               "by the spec", options=TEXT_OPTIONS)
def load_text(req: DataRequest) -> DataBundle:
    from ..data.corpus import read_text

    if not req.arg:
        raise DataError("needs a file: --data text:PATH")
    path, mode = req.arg, None
    head, sep, tail = req.arg.rpartition(":")
    if sep and tail in MODES and not Path(req.arg).expanduser().is_file():
        path, mode = head, tail
    try:
        text = read_text(path)
    except CorpusError as e:
        raise DataError(str(e), hint="give a UTF-8 text file: --data text:PATH") from None
    return _text_bundle(req, text, f"text:{path}", mode)


__all__ = ["choose_task", "word2vec_variant", "NegativeSamplingPairs", "FreshNegatives", "TensorPairs",
           "Stacked", "collate_stacked", "MODES"]
