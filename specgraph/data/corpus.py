"""Text corpora for word2vec and language models, and the evaluation of word vectors.

- ``lee_corpus()`` -- gensim's Lee background corpus (``gensim/test/test_data/lee_background.cor``:
  300 Australian news stories, one per line, about 60 000 words), each story tokenised with
  :func:`specgraph.data.text.tokenize`; ``lee_text()`` is the same file as raw text (for
  character language models);
- ``text_corpus(path)`` -- any UTF-8 text file, one document per line (or per paragraph, or the
  whole file);
- ``word2vec_dataset`` -- skip-gram or CBOW examples with negative samples (the word2vec recipe:
  vocabulary with a min count, subsampling of frequent words, negatives from the unigram
  distribution to the 3/4 power);
- ``analogy_questions`` / ``analogy_accuracy`` -- gensim's copy of Mikolov's
  ``questions-words.txt`` (a:b :: c:d, 3CosAdd as in gensim's ``evaluate_word_analogies``) and
  ``nearest_neighbours`` by cosine similarity;
- ``char_lm_dataset`` / ``char_lm_splits`` -- (inputs [T], targets [T]) character sequences,
  the targets shifted by one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import TensorDataset

from specgraph.data import DataError, Splits, check_split, existing_file, packaged_file
from specgraph.data.text import (Vocabulary, cbow_examples, negative_table, skipgram_pairs, subsample,
                                 tokenize, with_negatives)

LEE_FILE = "test/test_data/lee_background.cor"
QUESTIONS_FILE = "test/test_data/questions-words.txt"

Documents = list[list[str]]


# ---------------------------------------------------------------- corpora

def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file; a DataError if it is missing or not UTF-8."""
    file = existing_file(path, "text file")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{file} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def lee_text() -> str:
    """gensim's lee_background.cor as raw text (needs gensim installed; nothing downloads)."""
    return read_text(packaged_file("gensim", LEE_FILE, "lee"))


def lee_corpus() -> Documents:
    """gensim's Lee background corpus: one token list per story (300 stories)."""
    return _documents(lee_text(), "line")


def text_corpus(path: str | Path, unit: str = "line") -> Documents:
    """Token lists of a text file: one per non-empty line (``unit="line"``), per blank-line
    separated paragraph (``"paragraph"``) or one for the whole file (``"file"``)."""
    docs = _documents(read_text(path), unit)
    if not docs:
        raise DataError(f"{path}: no words found in the file")
    return docs


def documents(text: str, unit: str = "line") -> Documents:
    """Token lists of ``text``, cut as :func:`text_corpus` does (empty documents dropped)."""
    return _documents(text, unit)


def _documents(text: str, unit: str) -> Documents:
    if unit == "line":
        parts = text.splitlines()
    elif unit == "paragraph":
        parts = [p for p in text.replace("\r\n", "\n").split("\n\n")]
    elif unit == "file":
        parts = [text]
    else:
        raise DataError(f"unit must be 'line', 'paragraph' or 'file', got {unit!r}")
    return [tokens for tokens in (tokenize(p) for p in parts) if tokens]


def _as_documents(tokens: Sequence[str] | Sequence[Sequence[str]]) -> Documents:
    """A flat token list is one document; a list of token lists is kept."""
    if len(tokens) and isinstance(tokens[0], str):
        return [list(tokens)]  # type: ignore[arg-type]
    return [list(doc) for doc in tokens]


# ---------------------------------------------------------------- word2vec

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


# ---------------------------------------------------------------- evaluation of word vectors

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
        sims = target @ unit.T
        np.put_along_axis(sims, chunk[:, :3], -np.inf, axis=1)
        correct += int((sims.argmax(axis=1) == chunk[:, 3]).sum())
    return correct / len(ids)


# ---------------------------------------------------------------- character language models

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


__all__ = ["read_text", "lee_text", "lee_corpus", "text_corpus", "documents", "word2vec_dataset", "analogy_questions",
           "nearest_neighbours", "analogy_accuracy", "char_vocabulary", "char_lm_dataset", "char_lm_splits"]
