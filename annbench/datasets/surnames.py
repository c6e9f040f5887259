"""Surnames and their nationality: a sequence dataset, and character n-gram count vectors of it.

``surnames.csv`` (the PyTorch NLP tutorial's data, see ``../shared/data/README.md``) holds
20,074 ``split,surname,nationality`` rows: the tutorial's own split of 16,059 train and
4,015 test rows, 18 nationalities. Every row is kept (repeated surnames are real rows), in
file order. The surnames are the ``keys`` / ``test_keys``, the nationalities the labels
(``train_labels`` / ``test_labels`` are indices into the attr ``label_names``, sorted).

* ``surnames``: the sequences themselves. A surname has no natural vector, so ``train`` /
  ``test`` hold its characters' Unicode code points, zero-padded to the longest surname
  (:data:`MAX_LENGTH`): the raw, lossless form (as raw pixels are for images), read by the
  sequence encoder (``encode.py --from surnames --model gru``) through the keys.
* ``surnames-ngram-<dim>-angular``: a fair raw baseline for nearest-neighbour search on
  strings: counts of the ``dim`` most frequent character 1- to 3-grams of the train split
  (scikit-learn ``CountVectorizer(analyzer="char_wb", ngram_range=(1, 3))``, words padded
  with a space on each side, so first and last letters have their own n-grams; case kept).
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from annbench.core.errors import UserError
from annbench.datasets.readers import read_bytes
from annbench.datasets.spec import DatasetSpec, Inputs, RawData, Upstream

FILE = "surnames.csv"
COLUMNS = ("split", "surname", "nationality")
#: The longest surname of the published file (characters).
MAX_LENGTH = 20
N_TRAIN, N_TEST = 16_059, 4_015
#: Widths of the registered n-gram datasets.
NGRAM_DIMS = (64, 128, 256, 512)
NGRAM_RANGE = (1, 3)
UPSTREAM = Upstream("surnames", FILE, note="surnames.csv of the PyTorch NLP tutorial joosthub/pytorch-nlp-tutorial-"
                                            "eu2018 (republished as data/surnames.csv in abdzrahim/PyTorch_for_NLP); "
                                            "no verified direct URL: use --source-dir")


def read_surnames(path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:  # noqa: ANN001
    """``({split: surnames}, {split: nationalities})`` for the splits ``train`` and ``test``, in file order."""
    text = read_bytes(path).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise UserError(f"file {path}: header is {rows[0] if rows else 'missing'}; valid: {','.join(COLUMNS)}")
    names: dict[str, list[str]] = {"train": [], "test": []}
    labels: dict[str, list[str]] = {"train": [], "test": []}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 3 or row[0] not in names or not row[1]:
            raise UserError(f"file {path}: line {line} is {row!r}; valid: train|test,<surname>,<nationality>")
        names[row[0]].append(row[1])
        labels[row[0]].append(row[2])
    return names, labels


def code_points(texts: list[str], width: int = MAX_LENGTH) -> np.ndarray:
    """``(n, width)`` float32: each string's Unicode code points, zero-padded (longer strings are an error)."""
    out = np.zeros((len(texts), width), dtype=np.float32)
    for i, t in enumerate(texts):
        if len(t) > width:
            raise UserError(f"surname {t!r} has {len(t)} characters; valid: at most {width}")
        out[i, :len(t)] = [ord(c) for c in t]
    return out


def _common(inputs: Inputs) -> tuple[dict[str, list[str]], RawData]:
    names, labels = read_surnames(inputs[FILE])
    classes = sorted(set(labels["train"]) | set(labels["test"]))
    code = {c: i for i, c in enumerate(classes)}
    raw = RawData(train=np.empty(0), test=np.empty(0), distance="euclidean",
                  train_labels=np.array([code[c] for c in labels["train"]], dtype=np.int64),
                  test_labels=np.array([code[c] for c in labels["test"]], dtype=np.int64),
                  keys=np.array(names["train"], dtype=object), test_keys=np.array(names["test"], dtype=object),
                  attrs={"label_names": json.dumps(classes)})
    return names, raw


def build_sequences(inputs: Inputs) -> RawData:
    names, raw = _common(inputs)
    raw.train, raw.test = code_points(names["train"]), code_points(names["test"])
    raw.attrs["source"] = (f"{FILE}: the given train/test split, every row; train/test = Unicode code points "
                           f"zero-padded to {MAX_LENGTH}; keys = surnames, labels = nationalities (label_names)")
    return raw


def ngram_vectors(train: list[str], test: list[str], dim: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Counts of the ``dim`` most frequent character n-grams of ``train``, for ``train`` and ``test``,
    and those n-grams (column order)."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(analyzer="char_wb", ngram_range=NGRAM_RANGE, max_features=dim, lowercase=False,
                                 dtype=np.float32)
    x_train = vectorizer.fit_transform(train).toarray()
    x_test = vectorizer.transform(test).toarray()
    return x_train, x_test, list(vectorizer.get_feature_names_out())


def build_ngrams(inputs: Inputs, dim: int) -> RawData:
    names, raw = _common(inputs)
    raw.train, raw.test, grams = ngram_vectors(names["train"], names["test"], dim)
    raw.distance = "angular"
    empty = int((raw.train.sum(axis=1) == 0).sum() + (raw.test.sum(axis=1) == 0).sum())
    raw.attrs.update(source=f"{FILE}: the given train/test split, every row; counts of the {dim} most frequent "
                            f"character {NGRAM_RANGE[0]}-{NGRAM_RANGE[1]}-grams of the train split (sklearn "
                            f"CountVectorizer analyzer=char_wb, case kept); {empty} rows have none of them",
                     ngrams=json.dumps(grams))
    return raw


SURNAMES_SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec(name="surnames", distance="euclidean", dimension=MAX_LENGTH, n_train=N_TRAIN, n_test=N_TEST,
                labels=True, keys=True, upstream=(UPSTREAM,), build=build_sequences,
                origin="surnames.csv (PyTorch NLP tutorial): sequences as code points; keys = surnames"),
    *(DatasetSpec(name=f"surnames-ngram-{d}-angular", distance="angular", dimension=d, n_train=N_TRAIN,
                  n_test=N_TEST, labels=True, keys=True, upstream=(UPSTREAM,),
                  build=lambda inputs, d=d: build_ngrams(inputs, d),
                  origin=f"surnames.csv: counts of the {d} most frequent character 1-3-grams")
      for d in NGRAM_DIMS),
)
