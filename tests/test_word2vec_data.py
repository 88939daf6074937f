"""The vectorised skip-gram data path against plain reference implementations written here.

The pair generation, subsampling and vocabulary lookups of specgraph/train/datasets/text.py
were rewritten with numpy for speed (issue 18); the data the model sees must not change: these
tests compare them, exactly (same seed: same arrays, same order), with the loops they replaced.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from specgraph.train.datasets.corpus_word2vec import word2vec_dataset
from specgraph.train.datasets.text import Vocabulary, negative_table, skipgram_pairs, subsample, with_negatives


def reference_pairs(ids, window):
    """Every (centre, context) pair within ``window`` each side, centre by centre, in text order."""
    return np.array([(ids[i], ids[j]) for i in range(len(ids))
                     for j in range(max(0, i - window), min(len(ids), i + window + 1)) if j != i],
                    dtype=np.int64).reshape(-1, 2)


def reference_subsample(ids, counts, threshold, rng):
    """Mikolov et al.'s subsampling, one draw per token in text order (the loop it replaced)."""
    total = float(sum(counts))
    keep = {}
    for w, c in enumerate(counts):
        f = c / total
        keep[w] = min(1.0, (threshold / f) ** 0.5 + threshold / f)
    draws = rng.random(len(ids))
    return [w for w, r in zip(ids, draws) if r < keep[w]]


@pytest.mark.parametrize("window", [1, 2, 5, 9])
def test_skipgram_pairs_equal_the_reference_loop(window):
    rng = np.random.default_rng(window)
    for length in [0, 1, 2, window, window + 1, 2 * window + 3, 57]:
        ids = rng.integers(0, 30, size=length).tolist()
        got = skipgram_pairs(ids, window)
        want = reference_pairs(ids, window)
        assert got.dtype == np.int64 and got.shape == want.shape == (len(want), 2)
        np.testing.assert_array_equal(got, want)  # same pairs, same order
    assert skipgram_pairs([4, 7, 9], 1).tolist() == [[4, 7], [7, 4], [7, 9], [9, 7]]


def test_subsample_equals_the_reference_loop():
    rng = np.random.default_rng(0)
    counts = [5000, 900, 300, 40, 7, 5, 5, 1]
    ids = rng.choice(len(counts), size=4000, p=np.array(counts) / sum(counts)).tolist()
    for t in (1e-3, 1e-2, 1e-5):
        got = subsample(ids, counts, t, np.random.default_rng(3))
        want = reference_subsample(ids, counts, t, np.random.default_rng(3))
        assert got == want and all(isinstance(w, int) for w in got)
        assert 0 < len(got) < len(ids)
    assert subsample([], counts, 1e-3, np.random.default_rng(0)) == []


def test_vocabulary_index_follows_its_words():
    vocab = Vocabulary(["a", "b", "c"], [3, 2, 1])
    assert vocab.encode(["c", "x", "a"]) == [2, 0]
    vocab.words.append("x")  # changed in place: the cached index must not go stale
    assert vocab.encode(["c", "x", "a"]) == [2, 3, 0]
    vocab.words[0] = "z"
    assert vocab.index == {"z": 0, "b": 1, "c": 2, "x": 3}
    vocab.words = ["q"]
    assert vocab.encode(["q", "z"]) == [0]


def reference_dataset(docs, window, negatives, subsample_t, seed):
    """word2vec_dataset's skip-gram tensors by the loops above (vocabulary by its own rule)."""
    vocab = Vocabulary.build((t for d in docs for t in d), min_count=5)
    index = {w: i for i, w in enumerate(vocab.words)}
    rng = np.random.default_rng(seed)
    encoded = [[index[t] for t in d if t in index] for d in docs]
    encoded = [reference_subsample(ids, vocab.counts, subsample_t, rng) for ids in encoded]
    pairs = np.concatenate([reference_pairs(ids, window) for ids in encoded])
    words = with_negatives(pairs, negative_table(vocab.counts), negatives, rng)
    return pairs[:, 0], words


@pytest.mark.skipif(importlib.util.find_spec("gensim") is None, reason="the lee corpus ships with gensim")
def test_lee_skipgram_examples_equal_the_reference():
    """The whole lee corpus, subsampled, seed 4: the same centres, context words and negatives."""
    from specgraph.train.datasets.corpus import lee_corpus

    docs = lee_corpus()
    ds, vocab = word2vec_dataset(docs, window=5, min_count=5, negatives=5, subsample_t=1e-3, seed=4)
    centre, words = reference_dataset(docs, 5, 5, 1e-3, 4)
    assert len(centre) > 300_000
    np.testing.assert_array_equal(ds.tensors[0].numpy(), centre)
    assert torch.equal(ds.tensors[1], torch.from_numpy(words))


@pytest.mark.skipif(importlib.util.find_spec("gensim") is None, reason="the lee corpus ships with gensim")
def test_lee_bundle_train_split_is_the_reference_pairs_with_fresh_negatives():
    """The lee bundle draws no negatives for its training split (they are drawn per batch):
    its pairs are still the reference's, subsampled with the same draws."""
    import specgraph
    from specgraph.train.datasets import load_dataset
    from specgraph.train.datasets.corpus_word2vec import _split_documents
    from specgraph.train.datasets.corpus import lee_corpus

    graph = specgraph.check(Path(__file__).parent.parent / "specs" / "skipgram_ns.yaml")
    bundle = load_dataset("lee", graph.inputs, 2)
    train_docs = _split_documents(lee_corpus(), 2)["train"]
    centre, words = reference_dataset(train_docs, 5, 5, 1e-3, 2)
    np.testing.assert_array_equal(bundle.train.query.numpy(), centre)
    np.testing.assert_array_equal(bundle.train.words[:, 0].numpy(), words[:, 0])
    assert bundle.train.words.shape == (len(centre), 6) and bool((bundle.train.words[:, 1:] == -1).all())


def _alias_probabilities(keep: torch.Tensor, alias: torch.Tensor) -> np.ndarray:
    """The distribution an alias table draws from, worked out from the table itself."""
    keep, alias = keep.numpy(), alias.numpy()
    out = keep.copy()
    np.add.at(out, alias, 1.0 - keep)
    return out / len(keep)


@pytest.mark.parametrize("case", ["lee-like", "one-dominant", "with-zeros", "uniform", "two"])
def test_alias_table_is_exactly_the_distribution(case):
    """Walker's alias table (the fresh negatives' sampler) gives every word its probability
    exactly (to rounding), for skewed, degenerate and zero-probability distributions."""
    from specgraph.train.datasets.corpus_batches import alias_table

    rng = np.random.default_rng(3)
    probs = {"lee-like": negative_table(np.sort(rng.zipf(1.3, 1663))[::-1].clip(max=10**6)),
             "one-dominant": np.array([0.97, 0.01, 0.01, 0.01]),
             "with-zeros": np.array([0.0, 0.5, 0.0, 0.25, 0.25, 0.0]),
             "uniform": np.full(10, 0.1), "two": np.array([0.3, 0.7])}[case]
    keep, alias = alias_table(probs)
    np.testing.assert_allclose(_alias_probabilities(keep, alias), probs, rtol=0, atol=1e-12)
    assert bool(((keep >= 0) & (keep <= 1 + 1e-12)).all())


def test_fresh_negatives_draw_the_unigram_distribution():
    """FreshNegatives' draws follow ``probs`` as torch.multinomial's do: 2,000,000 draws over
    lee's negative table, every word's frequency within 5 standard errors of its probability,
    never a word of probability 0, and the -1 entries (only) filled."""
    from specgraph.train.datasets.corpus_batches import FreshNegatives, Stacked

    counts = np.sort(np.random.default_rng(5).zipf(1.5, 1663))[::-1].clip(max=10**5)
    probs = negative_table(counts)
    probs[7] = 0.0
    probs /= probs.sum()
    sampler = FreshNegatives(probs)
    torch.manual_seed(0)
    n = 2_000_000
    freq = np.bincount(sampler.draw(n).numpy(), minlength=len(probs)) / n
    assert freq[7] == 0
    se = np.sqrt(probs * (1 - probs) / n)
    assert np.all(np.abs(freq - probs) <= 5 * se + 1e-12), np.max(np.abs(freq - probs) / (se + 1e-12))
    words = torch.tensor([[3, -1, -1], [4, -1, -1]])
    (q, filled), _ = sampler(Stacked(((torch.tensor([1, 2]), words), torch.zeros(2, dtype=torch.int64))))
    assert filled[:, 0].tolist() == [3, 4] and bool((filled[:, 1:] >= 0).all()) and bool((words[:, 1:] == -1).all())
    torch.manual_seed(1)
    again = sampler.draw(1000)
    torch.manual_seed(1)
    assert torch.equal(again, sampler.draw(1000))  # from torch's global generator: a run repeats with its seed


def test_batches_gathered_from_a_list_of_indices_are_the_indexed_examples():
    """NegativeSamplingPairs and TensorPairs turn the sampler's list of indices into a tensor
    themselves (through numpy): the batch is the examples at those indices, in that order."""
    from specgraph.train.datasets.corpus_batches import NegativeSamplingPairs, TensorPairs

    g = torch.Generator().manual_seed(0)
    query, words = torch.randint(0, 50, (300,), generator=g), torch.randint(0, 50, (300, 4), generator=g)
    order = torch.randperm(300, generator=g)[:64].tolist()
    (q, w), y = NegativeSamplingPairs(query, words).__getitems__(order).batch
    assert torch.equal(q, query[order]) and torch.equal(w, words[order]) and q.dtype == torch.int64
    assert y.shape == (64,)
    x, t = TensorPairs(query, words[:, 0]).__getitems__(order).batch
    assert torch.equal(x, query[order]) and torch.equal(t, words[order, 0])


def test_fresh_negatives_fast_layout_fills_as_the_masked_fill_does():
    """The training split's layout (true word, then k placeholders) is filled by one
    concatenation: the same words, in the same order, as filling every -1 entry in row-major
    order from the same generator state; other layouts still take the masked fill."""
    from specgraph.train.datasets.corpus_batches import FreshNegatives, Stacked

    sampler = FreshNegatives(negative_table(np.arange(1, 41)))
    true = torch.randint(0, 40, (33, 1))
    words = torch.cat([true, torch.full((33, 5), -1)], dim=1)
    query, target = torch.arange(33), torch.zeros(33, dtype=torch.int64)
    torch.manual_seed(7)
    (_, fast), _ = sampler(Stacked(((query, words), target)))
    torch.manual_seed(7)
    reference = words.clone()
    reference[reference < 0] = sampler.draw(int((reference < 0).sum()))
    assert torch.equal(fast, reference) and bool((words[:, 1:] == -1).all())
    partial = words.clone()
    partial[::2, 1:] = 3  # some rows drawn already: only the -1 entries are filled
    (_, filled), _ = sampler(Stacked(((query, partial), target)))
    assert torch.equal(filled[::2], partial[::2]) and bool((filled >= 0).all())
    assert torch.equal(filled[:, 0], true[:, 0])


def test_training_split_batches_gather_the_true_word_and_draw_the_rest():
    """A dataset whose negatives are all placeholders (the training split) gathers only the true
    words and leaves FreshNegatives k columns to draw: the batch is the one the masked fill of
    the whole rows gives from the same generator state; items (``ds[i]``) keep their -1 entries."""
    from specgraph.train.datasets.corpus_batches import FreshNegatives, NegativeSamplingPairs, Stacked

    g = torch.Generator().manual_seed(2)
    query, true = torch.randint(0, 40, (200,), generator=g), torch.randint(0, 40, (200, 1), generator=g)
    words = torch.cat([true, torch.full((200, 5), -1)], dim=1)
    ds, sampler = NegativeSamplingPairs(query, words), FreshNegatives(negative_table(np.arange(1, 41)))
    order = torch.randperm(200, generator=g)[:64].tolist()
    batch = ds.__getitems__(order)
    assert batch.fresh == 5 and batch.batch[0][1].shape == (64, 1)
    torch.manual_seed(11)
    (q, filled), y = sampler(batch)
    torch.manual_seed(11)
    reference = words[order].clone()
    reference[reference < 0] = sampler.draw(int((reference < 0).sum()))
    assert torch.equal(q, query[order]) and torch.equal(filled, reference) and y.shape == (64,)
    assert ds[3][0][1].tolist() == [int(true[3])] + [-1] * 5
    drawn = words.clone()
    drawn[:, 1:] = 7  # negatives drawn already (validation and test): gathered whole, nothing drawn
    whole = NegativeSamplingPairs(query, drawn).__getitems__(order)
    assert whole.fresh == 0 and torch.equal(sampler(whole)[0][1], drawn[order])


def test_negative_sampling_loss_and_its_gradient_are_mikolovs():
    """The loss on scores [N, 1 + k] is -(log σ(s_0) + Σ log σ(-s_k)) averaged over the rows,
    its value and its gradient as the formula written part by part gives them."""
    from specgraph.train.tasks import negative_sampling_loss

    scores = torch.randn(37, 6, generator=torch.Generator().manual_seed(4)) * 4
    ours, theirs = scores.clone().requires_grad_(), scores.clone().requires_grad_()
    loss = negative_sampling_loss(ours)
    reference = -(F.logsigmoid(theirs[:, 0]) + F.logsigmoid(-theirs[:, 1:]).sum(dim=1)).mean()
    loss.backward()
    reference.backward()
    assert float(loss.detach()) == pytest.approx(float(reference.detach()), rel=1e-6)
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-7)


def test_stop_words_are_scikit_learns_without_importing_it():
    """The probe words' stop list is scikit-learn's ENGLISH_STOP_WORDS, read from its file in a
    process that does not import scikit-learn."""
    import subprocess
    import sys

    code = ("import sys; from specgraph.train.wordvecs import english_stop_words as s; w = s(); "
            "print(len(w), 'sklearn' in sys.modules, sorted(w)[:3])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    assert out[:2] == [str(len(ENGLISH_STOP_WORDS)), "False"]
    from specgraph.train.wordvecs import english_stop_words

    assert english_stop_words() == ENGLISH_STOP_WORDS
