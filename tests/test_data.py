"""The raw data of specgraph.train.datasets: time series, corpora and word vectors, segmentation crops.

The packaged data sets need the ``data`` extra (statsmodels, gensim, stardist); their tests are
skipped where a package is missing.  Everything else runs on small crafted data.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter

import numpy as np
import pytest
import torch

from specgraph.train.datasets import DataError
from specgraph.train.datasets.corpus import text_corpus
from specgraph.train.datasets.corpus_analogies import analogy_accuracy, analogy_questions, nearest_neighbours
from specgraph.train.datasets.corpus_lm import char_lm_dataset, char_lm_splits
from specgraph.train.datasets.corpus_word2vec import word2vec_dataset
from specgraph.train.datasets.crops import image_folder_crops
from specgraph.train.datasets.nuclei import load_segmentation
from specgraph.train.datasets.series import interpolate_missing, load_series, windowed
from specgraph.train.datasets.text import Vocabulary, cbow_examples, negative_table, skipgram_pairs, tokenize


def needs(package: str):
    return pytest.mark.skipif(importlib.util.find_spec(package) is None,
                              reason=f"needs {package} (pip install 'specgraph[data]')")


# ---------------------------------------------------------------- series

def test_windowed_shapes_alignment_and_chronological_splits():
    values = np.arange(100, dtype=np.float64) ** 1.5
    w = windowed(values, window=8, horizon=3, split=(0.6, 0.2, 0.2))
    assert w.bounds == (60, 80)
    for name, ds in zip(("train", "val", "test"), w):
        x, y = ds.tensors
        assert x.shape[1:] == (8, 1) and y.shape[1:] == (3,) and x.dtype == y.dtype == torch.float32
        starts = w.starts[name]
        assert len(starts) == len(ds)
        # y follows x: the window is values[t-8:t], the target values[t:t+3]
        raw_x, raw_y = w.denormalise(x[:, :, 0]).double(), w.denormalise(y).double()
        expected_x = np.stack([values[t - 8:t] for t in starts])
        expected_y = np.stack([values[t:t + 3] for t in starts])
        np.testing.assert_allclose(raw_x.numpy(), expected_x, rtol=1e-5)
        np.testing.assert_allclose(raw_y.numpy(), expected_y, rtol=1e-5)
    # targets lie inside their own split, so the splits are disjoint and in time order
    regions = {"train": (0, 60), "val": (60, 80), "test": (80, 100)}
    for name, (lo, hi) in regions.items():
        assert w.starts[name].min() >= lo and w.starts[name].max() + 3 <= hi
    assert w.starts["train"].max() < w.starts["val"].min() <= w.starts["val"].max() < w.starts["test"].min()
    assert len(w.train) == 60 - 8 - 3 + 1 and len(w.val) == 20 - 3 + 1 and len(w.test) == 20 - 3 + 1


def test_windowed_normalisation_fitted_on_train_only():
    values = np.random.default_rng(0).normal(5.0, 2.0, 200)
    w = windowed(values, window=4)
    assert w.mean == pytest.approx(values[:140].mean()) and w.std == pytest.approx(values[:140].std())
    changed = values.copy()
    changed[140:] *= 100  # val and test change; the statistics must not
    w2 = windowed(changed, window=4)
    assert (w2.mean, w2.std) == (w.mean, w.std)
    torch.testing.assert_close(w2.train.tensors[0], w.train.tensors[0])
    x, _ = w.train.tensors
    assert abs(float(x.mean())) < 0.2 and abs(float(x.std()) - 1) < 0.2


def test_windowed_errors():
    with pytest.raises(DataError, match="too short"):
        windowed(np.arange(20.0), window=15)
    with pytest.raises(DataError, match="sum to 1"):
        windowed(np.arange(100.0), window=4, split=(0.5, 0.2, 0.2))
    with pytest.raises(DataError, match="window"):
        windowed(np.arange(100.0), window=0)
    with pytest.raises(DataError, match="unknown series"):
        load_series("sunspot")


def test_interpolate_missing():
    values, filled = interpolate_missing(np.array([np.nan, 1.0, np.nan, 3.0, np.nan, np.nan]))
    assert filled == 4
    np.testing.assert_allclose(values, [1, 1, 2, 3, 3, 3])


@needs("statsmodels")
def test_sunspots_and_co2():
    sunspots = load_series("sunspots")
    assert len(sunspots) == 309 and sunspots.time[0] == 1700 and not np.isnan(sunspots.values).any()
    w = windowed(sunspots, window=24, horizon=1)
    assert w.train.tensors[0].shape[1:] == (24, 1) and len(w.train) + len(w.val) + len(w.test) == 309 - 24

    co2 = load_series("co2")
    from statsmodels.datasets import co2 as raw_module
    raw = raw_module.load_pandas().data["co2"].to_numpy()
    assert len(co2) == len(raw) == 2284 and co2.filled == int(np.isnan(raw).sum()) == 59
    assert not np.isnan(co2.values).any()
    np.testing.assert_array_equal(co2.values[~np.isnan(raw)], raw[~np.isnan(raw)])
    lone = [i for i in range(1, len(raw) - 1) if np.isnan(raw[i]) and not np.isnan(raw[i - 1] + raw[i + 1])]
    assert lone
    for i in lone:  # a single missing week: the mean of its neighbours
        assert co2.values[i] == pytest.approx((raw[i - 1] + raw[i + 1]) / 2)


def test_csv_column(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_text("day,label,value\n1,a,10\n2,b,\n3,c,30\n4,d,NA\n5,e,50\n")
    series = load_series(f"csv:{path}:value")
    np.testing.assert_allclose(series.values, [10, 20, 30, 40, 50])
    assert series.filled == 2
    np.testing.assert_allclose(load_series(f"csv:{path}:0").values, [1, 2, 3, 4, 5])
    with pytest.raises(DataError, match="name the column"):  # two numeric columns
        load_series(f"csv:{path}")
    single = tmp_path / "one.csv"
    single.write_text("name,y\na,1.5\nb,2.5\n")
    np.testing.assert_allclose(load_series(f"csv:{single}").values, [1.5, 2.5])
    with pytest.raises(DataError, match="no column 'price'.*day, label, value"):
        load_series(f"csv:{path}:price")
    with pytest.raises(DataError, match="'a' is not a number"):
        load_series(f"csv:{path}:label")
    with pytest.raises(DataError, match="CSV file not found: .*missing.csv"):
        load_series(f"csv:{tmp_path / 'missing.csv'}:value")


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "statsmodels.datasets.sunspots", None)  # import fails
    with pytest.raises(DataError, match=r"needs the Python package 'statsmodels'.*specgraph\[data\]"):
        load_series("sunspots")

    original = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("gensim", "stardist") else original(name, *a))
    from specgraph.train.datasets.corpus import lee_corpus
    with pytest.raises(DataError, match=r"'lee' needs the Python package 'gensim'.*specgraph\[data\]"):
        lee_corpus()
    with pytest.raises(DataError, match="'nuclei' needs the Python package 'stardist'"):
        load_segmentation("nuclei")


# ---------------------------------------------------------------- corpora and word2vec

TOY = ["the quick brown fox jumps over the lazy dog", "the dog sleeps", "a fox"]


@needs("gensim")
def test_lee_corpus_and_vocabulary():
    from specgraph.train.datasets.corpus import lee_corpus, lee_text
    docs = lee_corpus()
    assert len(docs) == 300
    assert 59_000 < sum(map(len, docs)) < 62_000
    assert docs[0][:5] == ["hundreds", "of", "people", "have", "been"]
    counts = Counter(t for doc in docs for t in doc)
    dataset, vocab = word2vec_dataset(docs, window=2, min_count=5, negatives=3)
    assert len(vocab) == sum(1 for c in counts.values() if c >= 5)
    assert min(vocab.counts) >= 5 and vocab.words[0] == "the"
    assert vocab.counts == sorted(vocab.counts, reverse=True)
    center, words = dataset.tensors
    assert words.shape == (len(center), 4) and int(words.max()) < len(vocab)
    assert lee_text().count("\n") >= 299


def test_text_corpus_units_and_errors(tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("One two, three.\nFour!\n\nFive six\n")
    assert text_corpus(path) == [["one", "two", "three"], ["four"], ["five", "six"]]
    assert text_corpus(path, unit="paragraph") == [["one", "two", "three", "four"], ["five", "six"]]
    assert text_corpus(path, unit="file") == [["one", "two", "three", "four", "five", "six"]]
    with pytest.raises(DataError, match="text file not found"):
        text_corpus(tmp_path / "nope.txt")
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(DataError, match="not UTF-8"):
        text_corpus(tmp_path / "latin.txt")


def test_skipgram_and_cbow_examples_reuse_text_helpers():
    docs = [tokenize(line) for line in TOY]
    dataset, vocab = word2vec_dataset(docs, window=2, min_count=1, negatives=2, subsample_t=None)
    expected = np.concatenate([skipgram_pairs(vocab.encode(d), 2) for d in docs])
    center, words = dataset.tensors
    np.testing.assert_array_equal(center.numpy(), expected[:, 0])
    np.testing.assert_array_equal(words[:, 0].numpy(), expected[:, 1])
    # windows stop at a document's end: "dog" (end of line 1) never pairs with "the" of line 2 ...
    the, dog, sleeps = vocab.index["the"], vocab.index["dog"], vocab.index["sleeps"]
    assert not ((center == vocab.index["lazy"]) & (words[:, 0] == sleeps)).any()
    assert ((center == the) & (words[:, 0] == dog)).any()

    cbow, vocab2 = word2vec_dataset(docs, window=1, min_count=1, negatives=2, subsample_t=None, mode="cbow")
    contexts, centres = zip(*(cbow_examples(vocab2.encode(d), 1) for d in docs))
    context, words = cbow.tensors
    np.testing.assert_array_equal(context.numpy(), np.concatenate(contexts))
    np.testing.assert_array_equal(words[:, 0].numpy(), np.concatenate(centres))
    assert words.shape[1] == 3

    small, vocab3 = word2vec_dataset(docs, window=1, min_count=2, negatives=1, subsample_t=None)
    assert set(vocab3.words) == {"the", "fox", "dog"}  # the words seen twice or more
    with pytest.raises(DataError, match="min_count"):
        word2vec_dataset(docs, min_count=50)


def test_negatives_follow_the_three_quarter_power_table():
    counts = {"a": 800, "b": 100, "c": 40, "d": 10, "e": 2}
    tokens = [w for w, c in counts.items() for _ in range(c)]
    tokens = list(np.random.default_rng(1).permutation(tokens))
    dataset, vocab = word2vec_dataset(tokens, window=5, min_count=1, negatives=20, subsample_t=None, seed=3)
    _, words = dataset.tensors
    negatives = words[:, 1:].reshape(-1).numpy()
    observed = np.bincount(negatives, minlength=len(vocab)) / len(negatives)
    probs = negative_table(vocab.counts)
    unigram = np.array(vocab.counts) / sum(vocab.counts)
    assert len(negatives) > 100_000
    np.testing.assert_allclose(observed, probs, atol=0.005)  # the 3/4-power table ...
    assert np.abs(observed - unigram).max() > 0.05  # ... not the plain unigram distribution
    assert set(negatives.tolist()) == set(range(len(vocab)))  # every word can be drawn
    # nothing is excluded: the true word itself is sometimes drawn as a negative
    assert (words[:, 1:] == words[:, :1]).any()
    same, _ = word2vec_dataset(tokens, window=5, min_count=1, negatives=20, subsample_t=None, seed=3)
    other, _ = word2vec_dataset(tokens, window=5, min_count=1, negatives=20, subsample_t=None, seed=4)
    assert torch.equal(same.tensors[1], words) and not torch.equal(other.tensors[1], words)


def test_subsampling_drops_frequent_words():
    tokens = ["the"] * 5000 + [f"w{i}" for i in range(500)]
    tokens = list(np.random.default_rng(0).permutation(tokens))
    full, vocab = word2vec_dataset(tokens, window=1, min_count=1, negatives=1, subsample_t=None)
    thinned, _ = word2vec_dataset(tokens, window=1, min_count=1, negatives=1, subsample_t=1e-3)
    the = vocab.index["the"]
    assert (thinned.tensors[0] == the).sum() < 0.2 * (full.tensors[0] == the).sum()


def crafted_embeddings():
    vocab = Vocabulary(["king", "queen", "man", "woman", "apple"], [5, 4, 3, 2, 1])
    vectors = torch.tensor([[1.0, 1, 0, 0],   # king  = royal + male
                            [1.0, 0, 1, 0],   # queen = royal + female
                            [0.0, 2, 0, 0],   # man   = male (longer: cosine ignores the length)
                            [0.0, 0, 1, 0],   # woman = female
                            [0.0, 0, 0, 1]])  # apple
    return vectors, vocab


def test_nearest_neighbours_by_cosine():
    vectors, vocab = crafted_embeddings()
    neighbours = nearest_neighbours(vectors, vocab, "king", k=3)
    assert [w for w, _ in neighbours] == ["man", "queen", "woman"]
    assert neighbours[0] == ("man", pytest.approx(2 ** -0.5))
    assert neighbours[1] == ("queen", pytest.approx(0.5))
    assert dict(nearest_neighbours(vectors.numpy(), vocab, "apple", k=10))["king"] == pytest.approx(0.0)
    assert len(nearest_neighbours(vectors, vocab, "apple", k=10)) == 4  # every other word, not itself
    with pytest.raises(DataError, match="'prince' is not in the vocabulary"):
        nearest_neighbours(vectors, vocab, "prince")
    with pytest.raises(DataError, match="rows"):
        nearest_neighbours(vectors[:3], vocab, "king")


def test_analogy_accuracy():
    vectors, vocab = crafted_embeddings()
    right = ("man", "king", "woman", "queen")  # king - man + woman = queen
    wrong = ("man", "woman", "king", "apple")  # the answer is queen, not apple
    assert analogy_accuracy(vectors, vocab, [right]) == 1.0
    assert analogy_accuracy(vectors, vocab, [right, wrong]) == 0.5
    assert analogy_accuracy(vectors, vocab, [right, ("man", "king", "woman", "prince")]) == 1.0  # skipped
    assert np.isnan(analogy_accuracy(vectors, vocab, []))


@needs("gensim")
def test_analogy_questions_file(tmp_path):
    everything = analogy_questions()
    assert len(everything) == 19544 and everything[0] == ("athens", "greece", "baghdad", "iraq")
    vocab = Vocabulary(["athens", "greece", "baghdad", "iraq", "berlin", "germany"], [1] * 6)
    kept = analogy_questions(vocab)
    assert set(kept) == {(a, b, c, d) for a, b, c, d in everything
                         if {a, b, c, d} <= set(vocab.words)}
    assert len(analogy_questions(vocab, sections=["capital-common-countries"])) == 6  # 3 capitals, ordered pairs
    assert analogy_questions(vocab, sections=["family"]) == []
    own = tmp_path / "q.txt"
    own.write_text(": mine\nA B C D\nbad line\n")
    with pytest.raises(DataError, match="q.txt:3: an analogy question has four words"):
        analogy_questions(path=own)


def test_char_lm_dataset_and_splits():
    text = "hello world, hello specgraph"
    dataset, vocab = char_lm_dataset(text, seq_len=5)
    inputs, targets = dataset.tensors
    assert inputs.shape == targets.shape == (len(range(0, len(text) - 5, 5)), 5)
    assert torch.equal(targets[:, :-1], inputs[:, 1:])
    assert vocab.decode(inputs[1], sep="") == text[5:10] and vocab.decode(targets[1], sep="") == text[6:11]
    assert vocab.words == sorted(set(text))
    overlapping, _ = char_lm_dataset(text, seq_len=5, stride=1)
    assert len(overlapping) == len(text) - 5
    splits, vocab = char_lm_splits(text * 20, seq_len=8, split=(0.8, 0.1, 0.1))
    assert all(len(ds) > 0 for ds in splits) and splits.info["cuts"] == [448, 504]
    with pytest.raises(DataError, match="at least seq_len"):
        char_lm_dataset("abc", seq_len=5)


# ---------------------------------------------------------------- segmentation crops

@needs("stardist")
def test_nuclei_crops():
    from specgraph.train.datasets.crops import _percentiles
    from specgraph.train.datasets.nuclei import nuclei_crops, nuclei_image
    splits = nuclei_crops(size=128, stride=64)
    assert splits.sizes() == {"train": 21, "val": 7, "test": 7}
    assert (splits.num_classes, splits.in_channels) == (2, 1)
    image, instances = nuclei_image()
    bands = {"train": (0, 256), "val": (256, 384), "test": (384, 512)}
    lo, hi = _percentiles(image[:256])
    for name, ds in zip(bands, splits):
        x, y = ds.tensors
        assert x.shape[1:] == (1, 128, 128) and x.dtype == torch.float32
        assert y.shape[1:] == (128, 128) and y.dtype == torch.int64
        assert set(y.unique().tolist()) == {0, 1}
        rows = splits.positions[name][:, 1]
        assert rows.min() >= bands[name][0] and rows.max() + 128 <= bands[name][1]  # inside its band
        for (_, r, c), crop, mask in zip(splits.positions[name], x, y):
            np.testing.assert_allclose(crop[0].numpy(), (image[r:r + 128, c:c + 128] - lo) / (hi - lo), rtol=1e-5)
            assert torch.equal(mask, torch.from_numpy((instances[r:r + 128, c:c + 128] > 0).astype(np.int64)))
    covered = {name: set() for name in bands}  # no pixel row is shared between splits
    for name in bands:
        for _, r, _ in splits.positions[name]:
            covered[name].update(range(r, r + 128))
    assert not (covered["train"] & covered["val"]) and not (covered["val"] & covered["test"])
    with pytest.raises(DataError, match="val band .* smaller than the crop size 256"):
        nuclei_crops(size=256)


def write_pair(folder, name, rng, size=(48, 40), mask_name=None, rgb=False):
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if rgb else (size[1], size[0])
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(folder / f"{name}.png")
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[5:20, 5:20] = 255
    Image.fromarray(mask).save(folder / f"{mask_name or name + '_mask'}.png")


def test_image_folder_pairs(tmp_path):
    pytest.importorskip("PIL")
    rng = np.random.default_rng(0)
    flat = tmp_path / "flat"
    for i in range(5):
        write_pair(flat, f"cell{i}", rng)
    splits = image_folder_crops(flat, size=32, stride=16, split=(0.6, 0.2, 0.2))
    assert splits.info["split_by"] == "file"
    assert [len(splits.info["files"][k]) for k in ("train", "val", "test")] == [3, 1, 1]
    assert sum(map(len, splits.info["files"].values())) == len(set().union(*map(set, splits.info["files"].values())))
    crops_per_image = 2 * 2  # rows 0, 8 (flush) x columns 0, 16
    assert splits.sizes() == {"train": 3 * crops_per_image, "val": crops_per_image, "test": crops_per_image}
    x, y = splits.train.tensors
    assert x.shape[1:] == (1, 32, 32) and y.shape[1:] == (32, 32) and set(y.unique().tolist()) == {0, 1}
    assert load_segmentation(f"images:{flat}", 32, 16).sizes() == splits.sizes()

    from PIL import Image
    sub = tmp_path / "sub"  # images/ and masks/ subfolders; one RGB pair: split by bands
    (sub / "images").mkdir(parents=True)
    (sub / "masks").mkdir()
    Image.fromarray(rng.integers(0, 255, (120, 40, 3), dtype=np.uint8)).save(sub / "images" / "a.png")
    mask = np.zeros((120, 40), np.uint8)
    mask[60:80] = 1
    Image.fromarray(mask).save(sub / "masks" / "a.png")
    one = image_folder_crops(sub, size=32, stride=32, split=(0.4, 0.3, 0.3))
    assert one.info["split_by"].startswith("horizontal bands") and one.in_channels == 3
    assert one.train.tensors[0].shape[1:] == (3, 32, 32)
    for name, (lo, hi) in zip(("train", "val", "test"), ((0, 48), (48, 84), (84, 120))):
        rows = one.positions[name][:, 1]
        assert rows.min() >= lo and rows.max() + 32 <= hi


def test_image_folder_errors(tmp_path):
    pytest.importorskip("PIL")
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="image folder not found"):
        image_folder_crops(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image/mask pairs .*NAME_mask.png"):
        image_folder_crops(tmp_path / "empty")
    write_pair(tmp_path / "lonely", "x", rng)
    (tmp_path / "lonely" / "x_mask.png").unlink()
    with pytest.raises(DataError, match="no mask in .* for: x.png"):
        image_folder_crops(tmp_path / "lonely")
    write_pair(tmp_path / "tiny", "t", rng, size=(20, 20))
    with pytest.raises(DataError, match="smaller than the crop size 32"):
        image_folder_crops(tmp_path / "tiny", size=32)
    with pytest.raises(DataError, match="unknown segmentation data"):
        load_segmentation("nucleus")
