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
    DatasetSpec(name="digits-64-euclidean", distance="euclidean", dimension=64, n_train=1617, n_test=180,
                origin="scikit-learn's bundled digits, no download", labels=True,
                build=lambda inputs: digits()),
)
