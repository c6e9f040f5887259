"""Distance functions shared by ground truth and evaluation.

Every metric is expressed as a distance where smaller is nearer:

* ``euclidean``: ``||q - x||``
* ``angular``:   ``1 - <q, x> / (||q|| ||x||)`` (cosine distance, as ann-benchmarks stores it)
* ``ip``:        ``-<q, x>`` (the largest inner product is the nearest)
* ``hamming``:   ``popcount(q XOR x)`` over packed bits; ``jaccard``: ``1 - |A ∩ B| / |A ∪ B|`` over sets
  (both in :mod:`annbench.quality.bitset`)

Integer vectors (uint8, int8) and float16 are widened to float32, where their values are exact
(products and squares of 8-bit values too), and summed in float64: never in their own type.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

METRICS = ("euclidean", "angular", "ip", "hamming", "jaccard")

#: Gathered candidate values per block (~4 MB of float32): small blocks stay in cache.
_GATHER_VALUES = 1_000_000


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"unknown distance {metric!r}; valid: {', '.join(METRICS)}")
    return metric


def normalized(x: np.ndarray) -> np.ndarray:
    """A unit-norm float32 copy of ``x`` (rows of norm 0 stay 0); ``x`` is not modified."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _sum64(a: np.ndarray) -> np.ndarray:
    """Sum over the last axis in float64 (pairwise summation of float32 terms)."""
    return a.sum(axis=-1, dtype=np.float64)


def _block_distances(queries: np.ndarray, train: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    valid = rows >= 0
    points = train[np.where(valid, rows, 0)].astype(np.float32, copy=False)  # (b, k, d), 8-bit values exact
    q = np.asarray(queries, dtype=np.float32)[:, None, :]
    if metric == "euclidean":
        diff = points - q
        d = np.sqrt(_sum64(np.square(diff, out=diff)))
    elif metric == "ip":
        d = -_sum64(points * q)
    else:
        dots = _sum64(points * q)
        norms = np.sqrt(_sum64(np.square(points)) * _sum64(np.square(q)))
        d = 1.0 - np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return np.where(valid, d, np.inf)


def distances_to_ids(queries: np.ndarray, train: np.ndarray, ids: np.ndarray, metric: str,
                     threads: int = 1) -> np.ndarray:
    """Distances (float64) from each query to the train points it lists.

    ``ids`` is ``(nq, k)``; entries ``< 0`` are padding and get ``+inf``. Computed from
    element-wise differences / products of the float32 vectors summed in float64, never
    from the ``|q|^2 - 2<q,x> + |x|^2`` expansion, so near-zero distances are exact and
    the result agrees with a float64 computation to ~1e-7 relative. Blocks are cache-sized;
    ``threads > 1`` computes them in that many threads (numpy releases the GIL).
    """
    check_metric(metric)
    if metric in ("hamming", "jaccard"):
        from annbench.quality import bitset

        return (bitset.hamming_to_ids if metric == "hamming" else bitset.jaccard_to_ids)(queries, train, ids)
    ids = np.asarray(ids)
    out = np.empty(ids.shape, dtype=np.float64)
    block = max(1, _GATHER_VALUES // max(1, ids.shape[1] * train.shape[1]))

    def fill(start: int) -> None:
        end = start + block
        out[start:end] = _block_distances(queries[start:end], train, ids[start:end], metric)

    in_blocks(fill, range(0, len(ids), block), threads)
    return out


def in_blocks(fill: Callable[[int], None], starts: range, threads: int = 1) -> None:
    """Call ``fill(start)`` for every block start, ``threads`` blocks at a time (numpy releases the GIL)."""
    if threads > 1 and len(starts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fill, starts))
    else:
        for start in starts:
            fill(start)
