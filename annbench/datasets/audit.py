"""Ground-truth audit: is a dataset file's stored ``neighbors``/``distances`` the exact top-k?

For each audited query the exact top-``K`` (``K`` = the stored depth) is recomputed against
``train`` with :func:`annbench.quality.groundtruth.exact_knn`, then three checks, none of which trusts a
stored id where distances tie:

1. the stored distances are the true top-``K`` distances (within :func:`tolerance`);
2. every stored id really is at its stored distance (recomputed by
   :func:`annbench.quality.distances.distances_to_ids`): with 1, ids may differ from the recomputed
   ones only where distances tie;
3. no id appears twice in a row.

:func:`audit_queries` picks the few seeded queries every load checks; :func:`first_mismatch`
audits any set of queries (``dataset.py verify --all``: all of them, in blocks).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from annbench.quality.distances import distances_to_ids
from annbench.quality.groundtruth import exact_knn

#: Queries audited on every load, and the seed that picks them.
AUDIT_QUERIES = 8
AUDIT_SEED = 0
#: Distances agree when ``|a - b| <= RTOL · (largest |true distance| of the row) + ATOL``.
RTOL = 1e-4
ATOL = 1e-6
#: Queries per block of a full audit (bounds the memory of one exact search).
BLOCK = 2048


@dataclass(frozen=True)
class Mismatch:
    """The first audited query whose stored ground truth is wrong, and how."""

    query: int
    what: str
    bad_queries: int = 1

    def __str__(self) -> str:
        return f"query {self.query}: {self.what}"


def audit_queries(n_queries: int, count: int = AUDIT_QUERIES, seed: int = AUDIT_SEED) -> np.ndarray:
    """The sorted indices of the ``count`` queries (seeded, without replacement) that a load audits."""
    count = min(count, n_queries)
    return np.sort(np.random.default_rng(seed).choice(n_queries, size=count, replace=False))


def tolerance(true_d: np.ndarray) -> np.ndarray:
    """Per row: ``RTOL · max_j |true_d[row, j]| + ATOL`` (float32 storage and summation order)."""
    return RTOL * np.abs(true_d).max(axis=1, keepdims=True) + ATOL


def _check(train: np.ndarray, test: np.ndarray, neighbors: np.ndarray, distances: np.ndarray, metric: str,
           queries: np.ndarray, backend: str, threads: int) -> list[tuple[int, str]]:
    """``(query, what is wrong)`` for every bad query among ``queries``, in order."""
    depth = neighbors.shape[1]
    q = test[queries] if sp.issparse(test) else np.ascontiguousarray(test[queries])  # sets: CSR rows
    _, true_d = exact_knn(train, q, metric, depth, threads=threads, backend=backend)
    true_d = true_d.astype(np.float64)
    stored_ids = np.asarray(neighbors[queries], dtype=np.int64)
    stored_d = np.asarray(distances[queries], dtype=np.float64)
    tol = tolerance(true_d)
    wrong_d = np.abs(stored_d - true_d) > tol
    actual = distances_to_ids(q, train, stored_ids, metric, threads=threads)
    wrong_id = np.abs(actual - stored_d) > tol
    ordered = np.sort(stored_ids, axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
    bad = []
    for row in np.flatnonzero(wrong_d.any(axis=1) | wrong_id.any(axis=1) | repeated):
        query = int(queries[row])
        if wrong_d[row].any():
            j = int(np.argmax(wrong_d[row]))
            what = (f"stored distance {j} is {stored_d[row, j]:.6g}, the true {j + 1}-th nearest distance is "
                    f"{true_d[row, j]:.6g}")
        elif wrong_id[row].any():
            j = int(np.argmax(wrong_id[row]))
            what = (f"stored neighbour {j} (id {stored_ids[row, j]}) is at distance {actual[row, j]:.6g}, not the "
                    f"stored {stored_d[row, j]:.6g}")
        else:
            what = "an id is listed twice among its neighbours"
        bad.append((query, what))
    return bad


def _blocks(queries: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(queries), size):
        yield queries[start:start + size]


def first_mismatch(train: np.ndarray, test: np.ndarray, neighbors: np.ndarray, distances: np.ndarray, metric: str,
                   queries: np.ndarray | None = None, *, backend: str = "numpy", threads: int = 1,
                   stop_at_first: bool = True) -> Mismatch | None:
    """The first of ``queries`` (default: every query) whose stored ground truth is wrong, or None.

    ``backend`` as :func:`annbench.quality.groundtruth.exact_knn` (``numpy`` is fastest for a handful of
    queries, ``auto`` picks faiss for a full audit). With ``stop_at_first=False`` every block is
    audited and ``bad_queries`` counts all bad queries."""
    queries = np.arange(len(test)) if queries is None else np.asarray(queries, dtype=np.int64)
    first: tuple[int, str] | None = None
    count = 0
    for block in _blocks(queries, BLOCK):
        bad = _check(train, test, neighbors, distances, metric, block, backend, threads)
        if bad and first is None:
            first = bad[0]
        count += len(bad)
        if first is not None and stop_at_first:
            break
    return None if first is None else Mismatch(first[0], first[1], count)
