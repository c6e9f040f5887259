"""Distance functions shared by ground truth and evaluation.

Every metric is expressed as a distance where smaller is nearer:

* ``euclidean``: ``||q - x||``
* ``angular``:   ``1 - <q, x> / (||q|| ||x||)`` (cosine distance, as ann-benchmarks stores it)
* ``ip``:        ``-<q, x>`` (the largest inner product is the nearest)
"""

from __future__ import annotations

import numpy as np

METRICS = ("euclidean", "angular", "ip")

#: Rows gathered at once when recomputing distances (bounds memory to ~block*k*d*8 bytes).
_GATHER_BLOCK = 512


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"unknown distance {metric!r}; valid: {', '.join(METRICS)}")
    return metric


def normalized(x: np.ndarray) -> np.ndarray:
    """A unit-norm float32 copy of ``x`` (rows of norm 0 stay 0); ``x`` is not modified."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def distances_to_ids(queries: np.ndarray, train: np.ndarray, ids: np.ndarray, metric: str) -> np.ndarray:
    """Exact distances (float64) from each query to the train points it lists.

    ``ids`` is ``(nq, k)``; entries ``< 0`` are padding and get ``+inf``.
    Computed from differences, not from the ``|q|^2 - 2<q,x> + |x|^2`` expansion,
    so that near-zero distances are exact.
    """
    check_metric(metric)
    ids = np.asarray(ids)
    out = np.full(ids.shape, np.inf, dtype=np.float64)
    for start in range(0, len(ids), _GATHER_BLOCK):
        block = ids[start:start + _GATHER_BLOCK]
        valid = block >= 0
        points = np.asarray(train[np.where(valid, block, 0)], dtype=np.float64)  # (b, k, d)
        q = np.asarray(queries[start:start + _GATHER_BLOCK], dtype=np.float64)[:, None, :]
        if metric == "euclidean":
            d = np.sqrt(np.einsum("bkd,bkd->bk", points - q, points - q))
        elif metric == "ip":
            d = -np.einsum("bkd,bkd->bk", points, q)
        else:
            dots = np.einsum("bkd,bkd->bk", points, q)
            norms = np.linalg.norm(points, axis=-1) * np.linalg.norm(q, axis=-1)
            d = 1.0 - np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
        out[start:start + len(block)] = np.where(valid, d, np.inf)
    return out
