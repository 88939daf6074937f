"""The evaluation of word vectors: gensim's copy of Mikolov's ``questions-words.txt`` (a:b :: c:d,
3CosAdd as in gensim's ``evaluate_word_analogies``) and nearest neighbours by cosine similarity."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from . import DataError
from .sources import existing_file, packaged_file
from .text import Vocabulary

QUESTIONS_FILE = "test/test_data/questions-words.txt"

Question = tuple[str, str, str, str]


def analogy_questions(vocab: Vocabulary | Iterable[str] | None = None, path: str | Path | None = None,
                      sections: Iterable[str] | None = None) -> list[Question]:
    """The analogy questions a:b :: c:d of questions-words.txt (gensim's copy unless ``path``).

    Words are lower-cased (as :func:`tokenize` does); only questions whose four words are all in
    ``vocab`` are kept (all of them with ``vocab=None``).  ``sections`` keeps only those sections
    (e.g. ``["capital-common-countries", "family"]``).
    """
    file = existing_file(path, "analogy questions file") if path else packaged_file("gensim", QUESTIONS_FILE, "lee")
    known = None if vocab is None else set(vocab.words if isinstance(vocab, Vocabulary) else vocab)
    wanted = None if sections is None else set(sections)
    questions: list[Question] = []
    section = ""
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(":"):
            section = line[1:].strip()
            continue
        words = line.lower().split()
        if len(words) != 4:
            raise DataError(f"{file}:{number}: an analogy question has four words, got {line!r}")
        if wanted is not None and section not in wanted:
            continue
        if known is None or all(w in known for w in words):
            questions.append(tuple(words))  # type: ignore[arg-type]
    return questions


def _unit_rows(embeddings) -> np.ndarray:
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().float().cpu().numpy()
    matrix = np.asarray(embeddings, dtype=np.float64)
    if matrix.ndim != 2:
        raise DataError(f"embeddings must be a [vocab, dim] matrix, got shape {list(matrix.shape)}")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _check_rows(unit: np.ndarray, vocab: Vocabulary) -> None:
    if unit.shape[0] != len(vocab):
        raise DataError(f"embeddings have {unit.shape[0]} rows but the vocabulary has {len(vocab)} words")


def nearest_neighbours(embeddings, vocab: Vocabulary, word: str, k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` words most cosine-similar to ``word`` (the word itself excluded), most similar first."""
    unit = _unit_rows(embeddings)
    _check_rows(unit, vocab)
    index = vocab.index
    if word not in index:
        raise DataError(f"'{word}' is not in the vocabulary ({len(vocab)} words)")
    sims = unit @ unit[index[word]]
    sims[index[word]] = -np.inf
    k = min(k, len(vocab) - 1)
    order = np.argsort(-sims, kind="stable")[:k]
    return [(vocab.words[i], float(sims[i])) for i in order]


def analogy_accuracy(embeddings, vocab: Vocabulary, questions: Sequence[Question]) -> float:
    """Fraction of questions a:b :: c:d whose answer d is the word nearest (cosine) to b - a + c,
    with a, b and c themselves excluded (3CosAdd on unit vectors, as gensim).  NaN with no
    questions.  Questions with a word outside the vocabulary are skipped."""
    unit = _unit_rows(embeddings)
    _check_rows(unit, vocab)
    index = vocab.index
    rows = [[index[w] for w in q] for q in questions if all(w in index for w in q)]
    if not rows:
        return float("nan")
    ids = np.array(rows, dtype=np.int64)
    correct = 0
    for start in range(0, len(ids), 1024):
        chunk = ids[start:start + 1024]
        target = unit[chunk[:, 1]] - unit[chunk[:, 0]] + unit[chunk[:, 2]]
        # through torch, which keeps to the run's thread count: numpy's OpenBLAS took both cores for
        # this product and its idle thread then spun, ~0.1 s of CPU after every epoch's metric
        sims = (torch.from_numpy(target) @ torch.from_numpy(unit).T).numpy()
        np.put_along_axis(sims, chunk[:, :3], -np.inf, axis=1)
        correct += int((sims.argmax(axis=1) == chunk[:, 3]).sum())
    return correct / len(ids)


__all__ = ["analogy_questions", "nearest_neighbours", "analogy_accuracy", "QUESTIONS_FILE"]
