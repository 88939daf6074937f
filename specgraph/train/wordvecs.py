"""Evaluation of the word vectors of a word2vec run: nearest neighbours and analogy accuracy.

The word vectors are the weight of the spec's *input embedding*: the first ``embedding`` node
that reads the spec's first input directly (``embed.weight`` in skipgram, skipgram_ns, cbow
and cbow_ns — the centre/context vectors, as gensim's ``wv``; the output vectors of
negative sampling or the softmax layer are not used).

* after every validation check: ``val_analogy``, the accuracy on gensim's questions-words.txt
  restricted to questions whose four words are in the vocabulary (3CosAdd, as gensim), logged
  with the other metrics when at least one question is left;
* at the end of the run (best weights): the 8 nearest neighbours (cosine) of the 5 most
  frequent words that are not stop words, and the analogy accuracy, printed and kept in
  ``TrainResult.evaluation``.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any, Optional

import lightning as L
from torch import nn

from ..ir.graph import Graph
from ..ir.traits import Trait
from .datasets import DataBundle
from .lean import skip_idle_step_hooks

PROBES = 5
NEIGHBOURS = 8


def embedding_parameter(graph: Graph) -> Optional[str]:
    """The name of the input embedding's weight (see the module doc), or None."""
    first = next(iter(graph.inputs), None)
    for node in graph.op_nodes():
        if Trait.EMBEDDING in node.traits and node.inputs and node.inputs[0].node == first:
            return f"{node.path}.weight"
    return None


@functools.lru_cache(maxsize=1)
def english_stop_words() -> frozenset[str]:
    """scikit-learn's English stop words (its ``ENGLISH_STOP_WORDS``, the Glasgow list), read from
    the one module file that holds them: importing ``sklearn.feature_extraction`` for them took
    0.7-1.2 s (scipy and the rest of scikit-learn), the largest cost of a word2vec run's set-up.
    The import is kept for a scikit-learn whose files are laid out otherwise."""
    found = importlib.util.find_spec("sklearn")  # finds the package without importing it
    for folder in (found.submodule_search_locations or []) if found is not None else []:
        path = Path(folder) / "feature_extraction" / "_stop_words.py"
        spec = importlib.util.spec_from_file_location("_specgraph_sklearn_stop_words", path)
        if path.is_file() and spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            words = getattr(module, "ENGLISH_STOP_WORDS", None)
            if isinstance(words, frozenset):
                return words
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return ENGLISH_STOP_WORDS


def probe_words(words: list[str], k: int = PROBES) -> list[str]:
    """The ``k`` most frequent words (``words`` is sorted by count) that are not stop words."""
    stop = english_stop_words()
    return [w for w in words if w.isalpha() and len(w) > 2 and w not in stop][:k]


class WordVectors:
    """The vocabulary and analogy questions of a word2vec bundle, and what to measure."""

    def __init__(self, bundle: DataBundle, parameter: str):
        from .datasets.corpus_analogies import analogy_questions
        from .datasets.text import Vocabulary

        self.parameter = parameter
        self.vocab = Vocabulary(list(bundle.meta["words"]), list(bundle.meta["counts"]))
        try:
            self.questions = analogy_questions(self.vocab)
        except Exception:  # gensim's file missing: neighbours are still worth reporting
            self.questions = []
        self.probes = probe_words(self.vocab.words)

    def vectors(self, model: nn.Module):
        return model.get_parameter(self.parameter).detach()

    def analogy(self, model: nn.Module) -> Optional[float]:
        from .datasets.corpus_analogies import analogy_accuracy

        return analogy_accuracy(self.vectors(model), self.vocab, self.questions) if self.questions else None

    def evaluate(self, model: nn.Module) -> dict[str, Any]:
        from .datasets.corpus_analogies import nearest_neighbours

        vectors = self.vectors(model)
        return {"embedding": self.parameter, "analogy_accuracy": self.analogy(model),
                "analogy_questions": len(self.questions),
                "neighbours": {w: nearest_neighbours(vectors, self.vocab, w, NEIGHBOURS) for w in self.probes}}


def format_evaluation(ev: dict[str, Any]) -> str:
    lines = [f"word vectors ({ev['embedding']}): nearest neighbours by cosine"]
    for word, near in ev["neighbours"].items():
        lines.append(f"  {word}: " + ", ".join(f"{w} {s:.2f}" for w, s in near))
    if ev["analogy_accuracy"] is None:
        lines.append("  analogies: no question of questions-words.txt has all four words in the vocabulary")
    else:
        lines.append(f"  analogy accuracy {ev['analogy_accuracy']:.4f} on the {ev['analogy_questions']} questions of "
                     "questions-words.txt within the vocabulary")
    return "\n".join(lines)


class AnalogyMetric(L.Callback):
    """Logs ``val_analogy`` after every validation check."""

    def __init__(self, wv: WordVectors):
        self.wv = wv
        skip_idle_step_hooks(self, L.Callback)  # nothing to do per step

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        acc = self.wv.analogy(pl_module.model)
        if acc is not None:
            pl_module.log("val_analogy", acc, on_epoch=True)


__all__ = ["embedding_parameter", "english_stop_words", "probe_words", "WordVectors", "format_evaluation", "AnalogyMetric"]
