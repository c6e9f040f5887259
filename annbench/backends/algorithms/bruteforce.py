"""Exact search with numpy BLAS: one matrix product per query (or per block of queries)."""

from __future__ import annotations

import io

import numpy as np

from annbench.backends.adapter import Adapter


class BruteForce(Adapter):
    """Exact scan: one BLAS matrix product per query or block of queries."""

    #: Scores (larger = nearer): ``<q,x> - |x|^2/2`` for l2, ``<q,x>`` for dot (angular: on unit-norm rows).
    native_metrics = {"euclidean": "l2", "angular": "dot", "ip": "dot"}
    normalize_for = ("angular",)
    exact = True
    libraries = ("numpy",)

    def __init__(self, metric: str, threads: int = 1) -> None:
        super().__init__(metric, threads)

    def fit(self, X: np.ndarray) -> None:
        self._x = X
        self._half_sq = 0.5 * np.einsum("ij,ij->i", X, X) if self.metric_name == "l2" else None

    def _scores(self, Q: np.ndarray) -> np.ndarray:
        s = Q @ self._x.T
        return s - self._half_sq if self._half_sq is not None else s

    def _top(self, scores: np.ndarray, k: int) -> np.ndarray:
        k = min(k, scores.shape[-1])
        part = np.argpartition(-scores, k - 1, axis=-1)[..., :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=-1), axis=-1, kind="stable")
        return np.take_along_axis(part, order, axis=-1)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self._top(self._scores(q), k)

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        block = max(1, 50_000_000 // len(self._x))
        return np.concatenate([self._top(self._scores(Q[s:s + block]), k) for s in range(0, len(Q), block)])

    def index_size_bytes(self) -> int:
        buf = io.BytesIO()
        np.save(buf, self._x)
        return buf.tell()
