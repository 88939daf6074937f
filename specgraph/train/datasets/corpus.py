"""Text for training: ``lee`` (gensim's Lee background corpus) and ``text:PATH`` (any UTF-8 file).

- ``lee_text()`` -- gensim's Lee background corpus (``gensim/test/test_data/lee_background.cor``:
  300 Australian news stories, one per line, about 60 000 words), read from the installed
  package (nothing downloads); ``lee_corpus()`` -- each story tokenised with
  :func:`.text.tokenize`;
- ``read_text(path)``, ``text_corpus(path)`` -- any UTF-8 text file, one document per line
  (or per paragraph, or the whole file).

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

The language model is corpus_lm.py, word2vec corpus_word2vec.py (their batches:
corpus_batches.py; the evaluation of the word vectors: corpus_analogies.py). Inputs that fit
neither task are an E704 error that lists the shapes each task takes (corpus_options.py).

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

from . import DataBundle, DataError, DataRequest, register_dataset
from .corpus_lm import language_model
from .corpus_options import MODES, TEXT_OPTIONS, fixed
from .corpus_word2vec import word2vec
from .sources import existing_file, packaged_file
from .text import Documents, tokenize

LEE_FILE = "test/test_data/lee_background.cor"


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


# ---------------------------------------------------------------- the datasets

def choose_task(req: DataRequest, mode: Optional[str]) -> str:
    """"lm" or "word2vec" (the rule of the module doc)."""
    if mode:
        return mode
    prediction = next(iter(req.outputs.values()), None)
    if prediction is not None:
        return "lm" if prediction.rank == 3 else "word2vec"
    inputs = list(req.inputs.values())
    if len(inputs) == 1 and inputs[0].rank == 2 and fixed(inputs[0].shape[1]) is None:
        return "lm"
    return "word2vec"


def _text_bundle(req: DataRequest, text: str, name: str, mode: Optional[str]) -> DataBundle:
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
    mode = _mode(req.arg, "write lee, lee:lm or lee:word2vec")
    return _text_bundle(req, lee_text(), "lee" + (f":{mode}" if mode else ""), mode)


@register_dataset("text", help="text:PATH[:lm|:word2vec] — any UTF-8 text file: word2vec or a char LM, chosen "
                               "by the spec", options=TEXT_OPTIONS)
def load_text(req: DataRequest) -> DataBundle:
    if not req.arg:
        raise DataError("needs a file: --data text:PATH")
    path, mode = req.arg, None
    head, sep, tail = req.arg.rpartition(":")
    if sep and tail in MODES and not Path(req.arg).expanduser().is_file():
        path, mode = head, tail
    try:
        text = read_text(path)
    except DataError as e:
        raise DataError(e.message, hint="give a UTF-8 text file: --data text:PATH") from None
    return _text_bundle(req, text, f"text:{path}", mode)


__all__ = ["read_text", "lee_text", "lee_corpus", "text_corpus", "documents", "choose_task", "LEE_FILE"]
