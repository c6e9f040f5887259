"""The real datasets, built from their upstream files exactly as ann-benchmarks builds them.

Same names, shapes, train/test splits and distances as ann-benchmarks' ``datasets.py``:

* Fashion-MNIST, MNIST: train = the 60,000 ``train-images``, test = the 10,000 ``t10k-images``,
  raw pixel values as float32 (we also keep the labels).
* SIFT1M, GIST1M, ANN_SIFT10K: texmex ``*_base.fvecs`` / ``*_query.fvecs`` as published.
* GloVe (twitter 27B, 25/50/100/200-d): every line of ``glove.twitter.27B.<d>d.txt``, split by
  ``sklearn.model_selection.train_test_split(test_size=10000, random_state=1)``; angular
  (we also keep the words as keys).
* deep-image-96: ``deep10M.fvecs`` split the same way; angular.
* NYTimes: tf-idf of the UCI bag of words, Gaussian random projection to 256-d, the same split.
  ann-benchmarks does not seed its projection, so a local build differs from its published
  file; the prebuilt HDF5 is the comparable one.
"""

from __future__ import annotations

import numpy as np

from annbench.core.errors import UserError
from annbench.datasets.readers import read_idx, read_text_vectors, read_vecs
from annbench.datasets.spec import DatasetSpec, Inputs, RawData, Upstream

TEXMEX = "ftp://ftp.irisa.fr/local/texmex/corpus"
PREBUILT = "https://ann-benchmarks.com/{name}.hdf5"
#: ann-benchmarks' query count for the datasets it splits itself.
SPLIT_TEST_SIZE = 10_000
SPLIT_RANDOM_STATE = 1
FASHION_MIRRORS = ("https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
                   "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")


def split(*arrays, test_size: int = SPLIT_TEST_SIZE):  # noqa: ANN002, ANN201 - as sklearn's
    """ann-benchmarks' split: ``train_test_split(test_size=10000, random_state=1)``."""
    from sklearn.model_selection import train_test_split

    return train_test_split(*arrays, test_size=test_size, random_state=SPLIT_RANDOM_STATE)


def _images(path, dtype: type = np.float32) -> np.ndarray:  # noqa: ANN001
    a = read_idx(path)
    return a.reshape(len(a), -1).astype(dtype)


def build_idx(inputs: Inputs, source: str, dtype: type = np.float32) -> RawData:
    return RawData(
        train=_images(inputs["train-images-idx3-ubyte.gz"], dtype),
        test=_images(inputs["t10k-images-idx3-ubyte.gz"], dtype),
        distance="euclidean",
        train_labels=read_idx(inputs["train-labels-idx1-ubyte.gz"]).astype(np.int64),
        test_labels=read_idx(inputs["t10k-labels-idx1-ubyte.gz"]).astype(np.int64),
        attrs={"source": source})


def build_texmex(inputs: Inputs, base: str, query: str, source: str, dtype: type = np.float32) -> RawData:
    return RawData(train=_exactly(read_vecs(inputs[base]), dtype, inputs[base]),
                   test=_exactly(read_vecs(inputs[query]), dtype, inputs[query]),
                   distance="euclidean", attrs={"source": source})


def _exactly(a: np.ndarray, dtype: type, origin: object) -> np.ndarray:
    """``a`` as ``dtype``; a UserError where a value would change (SIFT's float descriptors are the
    integers 0-255, so they are uint8 exactly)."""
    out = np.asarray(a).astype(dtype)
    if not np.array_equal(out, a):
        raise UserError(f"file {origin}: its values are not all {np.dtype(dtype).name} values")
    return out


def build_glove(inputs: Inputs, name: str) -> RawData:
    vectors = read_text_vectors(inputs[name])
    train, test, keys, test_keys = split(vectors.data, vectors.keys)
    return RawData(train=train, test=test, distance="angular", keys=keys, test_keys=test_keys,
                   attrs={"source": f"{name}; train_test_split(test_size={SPLIT_TEST_SIZE}, "
                                    f"random_state={SPLIT_RANDOM_STATE})"})


def build_deep(inputs: Inputs) -> RawData:
    train, test = split(np.asarray(read_vecs(inputs["deep10M.fvecs"]), dtype=np.float32))
    return RawData(train=train, test=test, distance="angular",
                   attrs={"source": f"deep10M.fvecs; train_test_split(test_size={SPLIT_TEST_SIZE}, random_state=1)"})


def build_nytimes(inputs: Inputs, dimension: int = 256) -> RawData:
    import scipy.sparse
    from sklearn import random_projection
    from sklearn.feature_extraction.text import TfidfTransformer

    from annbench.datasets.readers import read_bytes

    text = read_bytes(inputs["docword.nytimes.txt.gz"])
    head = text.split(b"\n", 3)
    docs, words = int(head[0]), int(head[1])
    triples = np.fromstring(head[3], dtype=np.int64, sep=" ").reshape(-1, 3)  # noqa: NPY201 - text mode
    counts = scipy.sparse.csr_matrix((triples[:, 2].astype(np.float64), (triples[:, 0] - 1, triples[:, 1] - 1)),
                                     shape=(docs, words))
    tfidf = TfidfTransformer().fit_transform(counts)
    x = random_projection.GaussianRandomProjection(n_components=dimension, random_state=1).fit_transform(tfidf)
    train, test = split(np.asarray(x, dtype=np.float32))
    return RawData(train=train, test=test, distance="angular",
                   attrs={"source": f"docword.nytimes.txt.gz; tf-idf; GaussianRandomProjection({dimension}, "
                                    f"random_state=1); train_test_split(test_size={SPLIT_TEST_SIZE}, random_state=1)"})


IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _idx_spec(name: str, folder: str, mirrors: tuple[str, ...], what: str, dtype: type = np.float32) -> DatasetSpec:
    """The idx images as float32 (ann-benchmarks' name) or, ``dtype=np.uint8``, the raw pixels (``-uint8-``)."""
    raw = dtype is np.uint8
    return DatasetSpec(
        name=name, distance="euclidean", dimension=784, n_train=60_000, n_test=10_000, labels=True,
        origin=f"{what} idx files (train-images / t10k-images){', raw uint8 pixels' if raw else ''}",
        prebuilt_url=None if raw else PREBUILT.format(name=name),
        upstream=tuple(Upstream(folder, f, urls=tuple(m + f for m in mirrors)) for f in IDX_FILES),
        build=lambda inputs: build_idx(inputs, f"{what}: {', '.join(IDX_FILES)}", dtype))


def _texmex_spec(name: str, folder: str, n_train: int, n_test: int, d: int, prebuilt: bool = True,
                 dtype: type = np.float32) -> DatasetSpec:
    base, query = f"{folder}_base.fvecs", f"{folder}_query.fvecs"
    return DatasetSpec(
        name=name, distance="euclidean", dimension=d, n_train=n_train, n_test=n_test,
        origin=f"texmex {folder}.tar.gz ({base}, {query}){', as uint8 (its integers 0-255)' if dtype is np.uint8 else ''}",
        prebuilt_url=PREBUILT.format(name=name) if prebuilt else None,
        upstream=(Upstream(folder, f"{folder}.tar.gz", urls=(f"{TEXMEX}/{folder}.tar.gz",),
                           members=(f"{folder}/{base}", f"{folder}/{query}")),),
        build=lambda inputs: build_texmex(inputs, base, query, f"texmex {folder}.tar.gz: {base}, {query}", dtype))


def _glove_spec(d: int) -> DatasetSpec:
    member = f"glove.twitter.27B.{d}d.txt"
    name = f"glove-{d}-angular"
    return DatasetSpec(
        name=name, distance="angular", dimension=d, n_train=1_183_514, n_test=10_000, keys=True,
        origin=f"Stanford GloVe glove.twitter.27B.zip ({member}), split as ann-benchmarks",
        prebuilt_url=PREBUILT.format(name=name),
        upstream=(Upstream("glove", "glove.twitter.27B.zip", urls=("https://nlp.stanford.edu/data/glove.twitter.27B.zip",),
                           members=(member,)),),
        build=lambda inputs: build_glove(inputs, member))


UPSTREAM_SPECS: tuple[DatasetSpec, ...] = (
    _idx_spec("fashion-mnist-784-euclidean", "fashion-mnist", FASHION_MIRRORS, "Fashion-MNIST"),
    _idx_spec("mnist-784-euclidean", "mnist",
              ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"), "MNIST"),
    _texmex_spec("siftsmall-128-euclidean", "siftsmall", 10_000, 100, 128, prebuilt=False),
    _idx_spec("fashion-mnist-784-uint8-euclidean", "fashion-mnist", FASHION_MIRRORS, "Fashion-MNIST", np.uint8),
    _texmex_spec("siftsmall-128-uint8-euclidean", "siftsmall", 10_000, 100, 128, prebuilt=False, dtype=np.uint8),
    _texmex_spec("sift-128-euclidean", "sift", 1_000_000, 10_000, 128),
    _texmex_spec("gist-960-euclidean", "gist", 1_000_000, 1_000, 960),
    *(_glove_spec(d) for d in (25, 50, 100, 200)),
    DatasetSpec(
        name="nytimes-256-angular", distance="angular", dimension=256, n_train=290_000, n_test=10_000,
        origin="UCI bag-of-words docword.nytimes.txt.gz, tf-idf, random projection (local build differs: "
               "ann-benchmarks' projection is unseeded)",
        prebuilt_url=PREBUILT.format(name="nytimes-256-angular"),
        upstream=(Upstream("nytimes", "docword.nytimes.txt.gz", urls=(
            "https://archive.ics.uci.edu/ml/machine-learning-databases/bag-of-words/docword.nytimes.txt.gz",)),),
        build=lambda inputs: build_nytimes(inputs)),
    DatasetSpec(
        name="deep-image-96-angular", distance="angular", dimension=96, n_train=9_990_000, n_test=10_000,
        origin="deep10M.fvecs (Yandex Deep1B sample), split as ann-benchmarks",
        prebuilt_url=PREBUILT.format(name="deep-image-96-angular"),
        upstream=(Upstream("deep-image", "deep10M.fvecs", note="no direct URL: fetch deep10M.fvecs from "
                           "https://yadi.sk/d/11eDCm7Dsn9GA (Deep1B, Babenko & Lempitsky) and use --source-dir"),),
        build=lambda inputs: build_deep(inputs)),
)
