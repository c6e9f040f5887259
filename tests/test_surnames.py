"""Surnames: the source dataset from ../shared/data, its n-gram baseline, the character GRU encoder.

These tests FAIL (never skip) without the shared surnames.csv or without torch (checked at the top; torch itself
is imported by the tests of the encoder, through the ``gru`` fixture: the fast tier's workers collect this module).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
from collections import Counter

import numpy as np
import pytest
from conftest import SHARED_DATA, call

from annbench.apps.encoders.base import EncoderSettings, TrainingData, encoder_path
from annbench.core.errors import UserError
from annbench.datasets.format import load_dataset
from annbench.datasets.registry import prepare
from annbench.quality.metrics import knn_accuracy

CSV = SHARED_DATA / "surnames" / "surnames.csv"
#: Rows of the small training subset used by the fast tests.
SUBSET = "surnames-train600-test150"

assert importlib.util.find_spec("torch"), "install the torch extra"  # fails (never skips) without it


@pytest.fixture(scope="module")
def gru():
    """The GRU encoder's module (it imports torch)."""
    from annbench.apps.encoders import gru

    return gru


@pytest.fixture(scope="module")
def surnames_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("surnames")
    prepare("surnames", d, SHARED_DATA)
    return d


@pytest.fixture(scope="module")
def surnames(surnames_dir):
    return load_dataset(surnames_dir / "surnames.hdf5")


@pytest.fixture(scope="module")
def rows():
    with open(CSV, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_surnames_keep_the_split_every_row_and_the_nationalities(surnames, rows) -> None:
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    assert (len(train), len(test)) == (16_059, 4_015)
    assert list(surnames.keys) == [r["surname"] for r in train]  # file order, repeats kept
    assert list(surnames.test_keys) == [r["surname"] for r in test]
    assert len(set(surnames.keys) | set(surnames.test_keys)) == 17_453
    names = json.loads(surnames.attrs["label_names"])
    assert len(names) == 18 and names == sorted(names)
    assert [names[i] for i in surnames.train_labels] == [r["nationality"] for r in train]
    assert [names[i] for i in surnames.test_labels] == [r["nationality"] for r in test]
    counts = Counter(names[i] for i in np.concatenate([surnames.train_labels, surnames.test_labels]))
    assert counts["russian"] == 9_408 and counts["vietnamese"] == 73
    # the raw vectors are the code points: they decode back to the surname
    decoded = ["".join(map(chr, v[v > 0].astype(int))) for v in surnames.train[:500]]
    assert decoded == list(surnames.keys[:500])
    assert surnames.distance == "euclidean" and surnames.train.shape == (16_059, 20)


def grams_of(text: str) -> Counter:
    """Character 1-, 2- and 3-grams of each whitespace-separated word padded with one space on each side."""
    out = Counter()
    for word in text.split():
        padded = f" {word} "
        out.update(padded[s:s + n] for n in (1, 2, 3) for s in range(len(padded) - n + 1))
    return out


def test_ngram_counts_match_an_independent_count(surnames_dir, surnames) -> None:
    path = prepare("surnames-ngram-128-angular", surnames_dir, SHARED_DATA).path
    ds = load_dataset(path)
    assert ds.train.shape == (16_059, 128) and ds.distance == "angular"
    assert list(ds.keys) == list(surnames.keys) and np.array_equal(ds.test_labels, surnames.test_labels)
    grams = json.loads(ds.attrs["ngrams"])
    column = {g: j for j, g in enumerate(grams)}
    multi = next(i for i, key in enumerate(ds.keys) if " " in key)
    for i in (0, 1, 77, 16_000, multi):  # counted here by hand: 1..3-grams of " word " for each word
        found = grams_of(ds.keys[i])
        expected = np.zeros(128, dtype=np.float32)
        for g, c in found.items():
            if g in column:
                expected[column[g]] = c
        np.testing.assert_array_equal(ds.train[i], expected)
    # the vocabulary is the train split's most frequent n-grams: none left out occurs more often
    every = Counter()
    for key in ds.keys:
        every.update(grams_of(key))
    np.testing.assert_array_equal(ds.train.sum(axis=0), [every[g] for g in grams])
    assert min(every[g] for g in grams) >= max(c for g, c in every.items() if g not in column)


def test_a_surnames_file_with_other_content_is_refused(tmp_path) -> None:
    src = tmp_path / "src" / "surnames"
    src.mkdir(parents=True)
    text = CSV.read_text(encoding="utf-8")
    (src / "surnames.csv").write_text(text.replace("Hadad", "Haddad", 1), encoding="utf-8")
    with pytest.raises(UserError, match=r"is not the upstream surnames/surnames.csv \(.*expected"):
        prepare("surnames", tmp_path / "data", tmp_path / "src")
    assert not (tmp_path / "data" / "surnames.hdf5").exists()


@pytest.fixture(scope="module")
def small(surnames_dir):
    ds = load_dataset(prepare(SUBSET, surnames_dir, SHARED_DATA).path)
    return TrainingData.from_arrays(ds.train, ds.train_labels, ds.test, ds.test_labels, ds.keys, ds.test_keys)


def _settings(seed: int = 0, **kw: int) -> EncoderSettings:
    return EncoderSettings("gru", kw.pop("dim", 16), epochs=kw.pop("epochs", 2), seed=seed, hidden=16, **kw)


def test_padding_does_not_change_a_sequence_vector(small, gru) -> None:
    trained = gru.train(small, _settings(), progress=False)
    texts = list(small.texts_train[:40])
    longest = max(texts, key=len)
    shortest = min(texts, key=len)
    together = trained.features([shortest, longest, *texts])
    alone = np.concatenate([trained.features([t]) for t in [shortest, longest, *texts]])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6)
    assert not np.allclose(together[0], together[1])  # and the vectors do differ between surnames


def test_padding_invariance_also_without_the_convolution(small, gru) -> None:
    trained = gru.train(small, _settings(conv_width=0), progress=False)
    assert trained.model.model.conv is None
    texts = ["Li", "Abramovich-Kovalenko", "Li"]
    np.testing.assert_allclose(trained.features(texts)[0], trained.features(["Li"])[0], rtol=0, atol=1e-6)


def test_same_seed_gives_identical_weights(small, gru) -> None:
    def weights(seed: int) -> dict[str, np.ndarray]:
        encoder = gru.train(small, _settings(seed), progress=False).model
        return {k: v.numpy().copy() for k, v in encoder.model.state_dict().items()}

    first, again, other = weights(5), weights(5), weights(6)
    assert first.keys() == again.keys()
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not all(np.array_equal(first[k], other[k]) for k in first)


def test_class_weights_balance_the_classes(gru) -> None:
    y = np.array([0, 0, 0, 0, 1, 2, 2, 0])
    w = gru.class_weights(y, 4)
    np.testing.assert_allclose(w, [8 / (4 * 5), 8 / 4, 8 / (4 * 2), 0.0])


def test_unknown_characters_map_to_the_reserved_index(gru) -> None:
    x, lengths = gru.codes(["ab", "a€"], "ab")
    assert x.tolist() == [[2, 3], [2, gru.UNKNOWN]] and lengths.tolist() == [2, 2]
    x, _ = gru.codes(["abb", "a"], "ab")
    assert x[1].tolist() == [2, gru.PAD, gru.PAD]
    with pytest.raises(UserError, match="empty string"):
        gru.codes(["a", ""], "ab")


@pytest.fixture(scope="module")
def encoded(surnames_dir):
    from annbench.cli.encode import main

    r = call(main, "--from", SUBSET, "--model", "gru", "--dim", "12", "--epochs", "2", "--data-dir", surnames_dir,
             "--no-progress", "-q")
    assert r.code == 0, r.err
    return surnames_dir / "surnames-train600-test150-encoded-gru-12-euclidean.hdf5"


def test_encoded_surnames_carry_keys_labels_and_a_saved_encoder(encoded, surnames_dir, gru) -> None:
    ds = load_dataset(encoded)
    source = load_dataset(surnames_dir / f"{SUBSET}.hdf5")
    assert ds.train.shape == (600, 12) and list(ds.keys) == list(source.keys)
    assert np.array_equal(ds.test_labels, source.test_labels)
    a = ds.attrs
    assert a["encoder_model"] == "gru" and a["encoder_conv_width"] == 3 and a["encoder_hidden"] == 64
    assert a["encoder_architecture"].startswith("char GRU: embedding(")
    for k in (5, 10):  # the stored exact k-NN accuracy is that of the stored ground truth
        assert a[f"knn_accuracy_exact_k{k}"] == pytest.approx(knn_accuracy(ds.neighbors, ds.train_labels,
                                                                           ds.test_labels, k))
    encoder, meta = gru.load(encoder_path(encoded))
    assert meta["dataset_checksum"] == ds.checksum
    # a train surname encoded by the loaded network reproduces its stored vector
    np.testing.assert_allclose(encoder.encode([ds.keys[7]])[0], ds.train[7], rtol=0, atol=1e-6)
    np.testing.assert_allclose(encoder.encode(list(ds.test_keys)), ds.test, rtol=0, atol=1e-6)


def test_the_encoder_file_holds_no_pickle(encoded) -> None:
    raw = encoder_path(encoded).read_bytes()
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    assert json.loads(header["__metadata__"]["architecture"])["dim"] == 12
    assert all(v["dtype"] == "F32" for k, v in header.items() if k != "__metadata__")


def test_gru_needs_keys(tmp_path, data_dir) -> None:
    from annbench.cli.encode import main

    shutil.copy(data_dir / "digits-64-euclidean.hdf5", tmp_path)
    r = call(main, "--from", "digits-64-euclidean", "--model", "gru", "--dim", "8", "--data-dir", tmp_path, "-q")
    assert r.code == 2 and "reads strings" in r.err and len(r.err.strip().splitlines()) == 1


def test_the_real_encoding_beats_the_majority_class_clearly(surnames, gru) -> None:
    """On the real split (16,059 train / 4,015 test), a 32-d GRU trained for 4 epochs: the majority class
    (russian) is 9,408 / 20,074 ≈ 0.47 of all rows. Bar: exact 10-NN accuracy ≥ 0.65 and the network's own
    accuracy ≥ 0.50 (the class-weighted loss trades plain accuracy for the small classes, so its accuracy
    stays lower than the k-NN's; the raw n-gram vectors reach ≈ 0.76 at k = 10)."""
    data = TrainingData.from_arrays(surnames.train, surnames.train_labels, surnames.test, surnames.test_labels,
                                    surnames.keys, surnames.test_keys)
    trained = gru.train(data, EncoderSettings("gru", 32, epochs=4, seed=0, hidden=64), progress=False)
    from annbench.quality.groundtruth import exact_knn

    train_x, test_x = trained.features(data.texts_train), trained.features(data.texts_test)
    ids = exact_knn(train_x, test_x, "euclidean", 10)[0]
    majority = np.bincount(surnames.test_labels).max() / len(surnames.test_labels)
    assert knn_accuracy(ids, surnames.train_labels, surnames.test_labels, 10) >= 0.65 > majority + 0.15
    assert trained.test_accuracy >= 0.50


def test_compare_lists_the_ngram_baselines_beside_raw_and_the_encodings() -> None:
    from annbench.analyse.compare import related_datasets

    available = ["surnames-encoded-gru-64-euclidean", "surnames-ngram-256-angular", "glove-small",
                 "surnames-encoded-gru-32-euclidean", "surnames-ngram-64-angular"]
    assert related_datasets("surnames", available) == [
        "surnames", "surnames-ngram-64-angular", "surnames-ngram-256-angular", "surnames-encoded-gru-32-euclidean",
        "surnames-encoded-gru-64-euclidean"]
