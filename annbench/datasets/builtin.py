"""Datasets generated on this machine, with no download: deterministic for a given version."""

from __future__ import annotations

import numpy as np

from annbench.datasets.spec import DatasetSpec, RawData


def random_blobs(n_samples: int, n_dims: int, centers: int, distance: str) -> RawData:
    """Gaussian clusters as ann-benchmarks' ``random-*`` sets; 10 % held out as queries."""
    from sklearn.datasets import make_blobs
    from sklearn.model_selection import train_test_split

    x, _ = make_blobs(n_samples=n_samples, n_features=n_dims, centers=centers, random_state=1)
    train, test = train_test_split(x.astype(np.float32), test_size=0.1, random_state=1)
    return RawData(train=train, test=test, distance=distance,
                   attrs={"source": f"sklearn.datasets.make_blobs(n_samples={n_samples}, n_features={n_dims}, "
                                    f"centers={centers}, random_state=1); train_test_split(test_size=0.1, random_state=1)"})


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


def _random_spec(size: str, n: int, d: int, centers: int, distance: str) -> DatasetSpec:
    return DatasetSpec(
        name=f"random-{size}-{d}-{distance}", distance=distance, dimension=d,
        n_train=n - n // 10, n_test=n // 10, origin="generated (make_blobs), no download",
        build=lambda inputs: random_blobs(n, d, centers, distance))


BUILTIN_SPECS: tuple[DatasetSpec, ...] = (
    _random_spec("xs", 10_000, 20, 100, "euclidean"),
    _random_spec("xs", 10_000, 20, 100, "angular"),
    _random_spec("s", 100_000, 100, 1_000, "euclidean"),
    _random_spec("s", 100_000, 100, 1_000, "angular"),
    DatasetSpec(name="digits-64-euclidean", distance="euclidean", dimension=64, n_train=1617, n_test=180,
                origin="scikit-learn's bundled digits, no download", labels=True,
                build=lambda inputs: digits()),
)
