"""What the two text tasks (corpus.py) share: their options and defaults, and the error for
spec inputs that fit neither (E704, listing the shapes each task takes)."""

from __future__ import annotations

from typing import Optional

from ...ir.tensor_type import TensorType
from . import DataError, DataOption, DataRequest

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


def fixed(dim) -> Optional[int]:
    return int(dim) if isinstance(dim, int) else None


def misfit(req: DataRequest, why: str) -> DataError:
    shown = ", ".join(f"{k} {v} {v.dtype}" for k, v in req.inputs.items()) or "none"
    return DataError(f"{why} (the spec's inputs: {shown})", code="E704",
                     hint="text data trains a " + "; a ".join(TASK_SHAPES))


def check_int(req: DataRequest, t: TensorType, name: str) -> None:
    if not t.dtype.startswith(("int", "uint")):
        raise misfit(req, f"input '{name}' must hold token ids (int64), not {t.dtype}")
