"""Filtered datasets made offline: a random set with Zipf-distributed tags, and Fashion-MNIST filtered by class.

``random-filtered-s-32-euclidean``: 100,000 gaussian-blob points (32-d) and 1,000 queries. Tag t (of
5,000) is carried by each point independently with probability ``0.5 / (t + 1)`` (Zipf, exponent 1: tag
0 by half the points, tag 4,999 by 0.01 %; 4.6 tags a point on average); each point has a value
uniform in [0, 1). Queries, so that selectivities span 0.01 % to 50 % as YFCC's do: 60 % ask for one
tag whose rank is log-uniform in [1, 5000] (selectivity log-uniform in [0.01 %, 50 %]); 25 % for two
tags, each log-uniform among the 100 most frequent (down to ~0.005 %); 15 % for one such tag and a
value range ``[low, low + w)`` with ``w`` log-uniform in [0.01, 1].

``fashion-mnist-by-class-784-euclidean``: Fashion-MNIST (built from the same upstream files as
``fashion-mnist-784-euclidean``) with each train image tagged with its class; each query asks for one
class, its own for even query numbers and another (seeded) for odd ones: "the nearest sneakers to this
shirt". Every query's selectivity is its class's share, 10 %.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from annbench.datasets.spec import DatasetSpec, Inputs, RawData
from annbench.datasets.upstream import UPSTREAM_SPECS

SEED = 1
ZIPF_TAGS = 5000
ZIPF_TOP = 0.5


def zipf_tags(n: int, n_tags: int, rng: np.random.Generator) -> sp.csr_matrix:
    """Tag t carried by each of ``n`` points independently with probability ``ZIPF_TOP / (t + 1)``."""
    rows, cols = [], []
    for t in range(n_tags):
        count = rng.binomial(n, ZIPF_TOP / (t + 1))
        rows.append(rng.choice(n, size=count, replace=False))
        cols.append(np.full(count, t))
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(r), dtype=bool), (r, c)), shape=(n, n_tags))


def _log_rank(rng: np.random.Generator, top: int, size: int) -> np.ndarray:
    """Tag ranks (0-based) log-uniform in [1, top]."""
    return np.minimum(top, np.exp(rng.uniform(0, np.log(top), size)).astype(np.int64)) - 1


def random_filtered(n_train: int = 100_000, n_test: int = 1_000, d: int = 32) -> RawData:
    from sklearn.datasets import make_blobs

    x, _ = make_blobs(n_samples=n_train + n_test, n_features=d, centers=100, random_state=SEED)
    x = x.astype(np.float32)
    train, test = x[:n_train], x[n_train:]
    rng = np.random.default_rng(SEED)
    tags = zipf_tags(n_train, ZIPF_TAGS, rng)
    values = rng.random(n_train)
    kind = rng.choice(3, size=n_test, p=[0.6, 0.25, 0.15])
    first = np.where(kind == 0, _log_rank(rng, ZIPF_TAGS, n_test), _log_rank(rng, 100, n_test))
    second = _log_rank(rng, 100, n_test)
    pairs = [(i, int(first[i])) for i in range(n_test)] + [(i, int(second[i])) for i in np.flatnonzero(kind == 1)]
    q_rows, q_cols = np.array(pairs).T
    test_tags = sp.csr_matrix((np.ones(len(q_rows), dtype=bool), (q_rows, q_cols)), shape=(n_test, ZIPF_TAGS))
    ranges = np.tile([-np.inf, np.inf], (n_test, 1))  # [-inf, inf): no range
    ranged = np.flatnonzero(kind == 2)
    width = np.exp(rng.uniform(np.log(0.01), 0.0, len(ranged)))
    low = rng.uniform(0, 1 - width)
    ranges[ranged] = np.stack([low, low + width], axis=1)
    return RawData(train=train, test=test, distance="euclidean", train_tags=tags, test_tags=test_tags,
                   train_values=values, test_ranges=ranges,
                   attrs={"source": f"sklearn.datasets.make_blobs(n_samples={n_train + n_test}, n_features={d}, "
                                    f"centers=100, random_state={SEED}); first {n_train} train, the rest queries; "
                                    f"Zipf tags (P(tag t) = {ZIPF_TOP}/(t+1), {ZIPF_TAGS} tags), values U[0,1), "
                                    f"seed {SEED} (annbench.datasets.filtered_sets)"})


def by_class(raw: RawData) -> RawData:
    """``raw`` (with labels) with each train point tagged with its class and each query asking for one
    class: its own for even query numbers, another (seeded) for odd ones."""
    assert raw.train_labels is not None and raw.test_labels is not None
    classes = int(max(raw.train_labels.max(), raw.test_labels.max())) + 1
    other = (raw.test_labels + np.random.default_rng(SEED).integers(1, classes, len(raw.test_labels))) % classes
    asked = np.where(np.arange(len(raw.test_labels)) % 2 == 0, raw.test_labels, other)
    raw.train_tags, raw.test_tags = raw.train_labels.astype(np.int64), asked.astype(np.int64)
    raw.attrs = {**raw.attrs, "source": f"{raw.attrs.get('source', '')}; train tags = class labels; query i asks "
                                        f"for its own class (even i) or another (odd i, seed {SEED})"}
    return raw


def _by_class_spec(base: DatasetSpec) -> DatasetSpec:
    def build(inputs: Inputs) -> RawData:
        return by_class(base.build(inputs))

    return DatasetSpec(
        name=base.name.replace("-784-", "-by-class-784-"), distance=base.distance, dimension=base.dimension,
        n_train=base.n_train, n_test=base.n_test, labels=True, upstream=base.upstream,
        origin=f"{base.origin}; filtered by class", build=build)


FILTERED_SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec(name="random-filtered-s-32-euclidean", distance="euclidean", dimension=32, n_train=100_000,
                n_test=1_000, origin="generated (make_blobs, Zipf tags), no download",
                build=lambda inputs: random_filtered()),
    _by_class_spec(next(s for s in UPSTREAM_SPECS if s.name == "fashion-mnist-784-euclidean")),
)
