"""Datasets generated on this machine, with no download: deterministic for a given version."""

from __future__ import annotations

import numpy as np

from annbench.datasets.spec import DatasetSpec, RawData


def blobs(n_samples: int, n_dims: int, centers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train, test, train blob labels, test blob labels)`` of a ``random-*`` set."""
    from sklearn.datasets import make_blobs
    from sklearn.model_selection import train_test_split

    x, y = make_blobs(n_samples=n_samples, n_features=n_dims, centers=centers, random_state=1)
    return tuple(train_test_split(x.astype(np.float32), y, test_size=0.1, random_state=1))  # type: ignore[return-value]


def random_blobs(n_samples: int, n_dims: int, centers: int, distance: str, clustered: bool = False) -> RawData:
    """Gaussian clusters as ann-benchmarks' ``random-*`` sets; 10 % held out as queries. ``clustered``: the
    same train rows sorted by their blob (stable), so a runbook can insert them cluster by cluster."""
    train, test, labels, _ = blobs(n_samples, n_dims, centers)
    source = (f"sklearn.datasets.make_blobs(n_samples={n_samples}, n_features={n_dims}, centers={centers}, "
              f"random_state=1); train_test_split(test_size=0.1, random_state=1)")
    if clustered:
        train = train[np.argsort(labels, kind="stable")]
        source += "; train rows sorted by blob (stable)"
    return RawData(train=train, test=test, distance=distance, attrs={"source": source})


def digits() -> RawData:
    """scikit-learn's bundled 8×8 digits (1,797 images, 10 classes); 10 % stratified queries."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    train, test, y_train, y_test = train_test_split(
        d.data.astype(np.float32), d.target.astype(np.int64), test_size=0.1, random_state=1, stratify=d.target)
    return RawData(train=train, test=test, distance="euclidean", train_labels=y_train, test_labels=y_test,
                   attrs={"source": "sklearn.datasets.load_digits(); train_test_split(test_size=0.1, "
                                    "random_state=1, stratify=target)"})


def random_bitstring(n_dims: int, n_samples: int, n_queries: int) -> RawData:
    """ann-benchmarks' ``random_bitstring``: the signs of make_blobs points (``n_queries`` centres), split
    with ``train_test_split(test_size=n_queries, random_state=1)``; packed 8 bits a byte."""
    from sklearn.datasets import make_blobs
    from sklearn.model_selection import train_test_split

    from annbench.quality.points import pack_bits

    y, _ = make_blobs(n_samples=n_samples, n_features=n_dims, centers=n_queries, random_state=1)
    train, test = train_test_split(y > 0, test_size=n_queries, random_state=1)
    return RawData(train=pack_bits(train), test=pack_bits(test), distance="hamming", bits=n_dims,
                   attrs={"source": f"ann-benchmarks random_bitstring: make_blobs(n_samples={n_samples}, n_features="
                                    f"{n_dims}, centers={n_queries}, random_state=1) > 0; train_test_split(test_size="
                                    f"{n_queries}, random_state=1)"})


def random_jaccard(n: int, size: int, universe: int) -> RawData:
    """ann-benchmarks' ``random_jaccard``: ``random.seed(1)``, ``n`` sets of ``size`` items drawn with
    ``random.sample`` from ``range(universe)``, split with ``train_test_split(test_size=100, random_state=1)``."""
    import random

    from sklearn.model_selection import train_test_split

    from annbench.quality.points import sets_from_lists

    random.seed(1)
    items = list(range(universe))
    x = np.array([random.sample(items, size) for _ in range(n)])
    train, test = train_test_split(x, test_size=100, random_state=1)
    return RawData(train=sets_from_lists(list(train), universe), test=sets_from_lists(list(test), universe),
                   distance="jaccard",
                   attrs={"source": f"ann-benchmarks random_jaccard(n={n}, size={size}, universe={universe}): "
                                    f"random.seed(1), random.sample; train_test_split(test_size=100, random_state=1)"})


def _random_spec(size: str, n: int, d: int, centers: int, distance: str, clustered: bool = False) -> DatasetSpec:
    return DatasetSpec(
        name=f"random-{size}-{d}-{distance}{'-clustered' if clustered else ''}", distance=distance, dimension=d,
        n_train=n - n // 10, n_test=n // 10,
        origin=f"generated (make_blobs{', rows by blob' if clustered else ''}), no download",
        build=lambda inputs: random_blobs(n, d, centers, distance, clustered))


#: ``random-*`` sets: size, points, dimension, blobs.
RANDOM_SETS = (("xs", 10_000, 20, 100), ("s", 100_000, 100, 1_000))

BUILTIN_SPECS: tuple[DatasetSpec, ...] = (
    *(_random_spec(size, n, d, c, distance) for size, n, d, c in RANDOM_SETS for distance in ("euclidean", "angular")),
    *(_random_spec(size, n, d, c, "euclidean", clustered=True) for size, n, d, c in RANDOM_SETS),
    DatasetSpec(name="random-xs-16-hamming", distance="hamming", dimension=16, n_train=9_900, n_test=100,
                origin="generated (ann-benchmarks' random_bitstring), no download",
                build=lambda inputs: random_bitstring(16, 10_000, 100)),
    DatasetSpec(name="random-s-128-hamming", distance="hamming", dimension=128, n_train=49_000, n_test=1_000,
                origin="generated (ann-benchmarks' random_bitstring), no download",
                build=lambda inputs: random_bitstring(128, 50_000, 1_000)),
    DatasetSpec(name="random-s-jaccard", distance="jaccard", dimension=40, n_train=9_900, n_test=100,
                origin="generated (ann-benchmarks' random_jaccard, 20 of 40 items), no download",
                build=lambda inputs: random_jaccard(10_000, 20, 40)),
    DatasetSpec(name="digits-64-euclidean", distance="euclidean", dimension=64, n_train=1617, n_test=180,
                origin="scikit-learn's bundled digits, no download", labels=True,
                build=lambda inputs: digits()),
)
