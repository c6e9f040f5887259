"""Exact search with numpy BLAS: one matrix product per query (or per block of queries)."""

from __future__ import annotations

import io

import numpy as np

from annbench.backends.adapter import Adapter
from annbench.quality.predicates import AttributeIndex, Attributes, Predicate

#: A predicate matching at most this fraction of the points is scanned on its gathered rows; a broader
#: one by scoring every row and masking the others out (gathering most rows costs more than it saves).
GATHER_FRACTION = 0.25


class BruteForce(Adapter):
    """Exact scan: one BLAS matrix product per query or block of queries.

    Filtered (tags, range): the matching rows come from an inverted index of the tags built in
    ``fit_attributes``; a narrow predicate's rows are gathered and scanned, a broad one's masked in a
    scan of every row.
    """

    #: Scores (larger = nearer): ``<q,x> - |x|^2/2`` for l2, ``<q,x>`` for dot (angular: on unit-norm rows).
    native_metrics = {"euclidean": "l2", "angular": "dot", "ip": "dot"}
    normalize_for = ("angular",)
    exact = True
    libraries = ("numpy",)
    filters = ("tags", "range")

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

    def fit_attributes(self, attrs: Attributes) -> None:
        self._attrs = AttributeIndex(attrs)

    def filtered_query(self, q: np.ndarray, k: int, predicate: Predicate) -> np.ndarray:
        rows = self._attrs.rows(predicate)
        if not len(rows):
            return rows
        if len(rows) <= GATHER_FRACTION * len(self._x):
            s = self._x[rows] @ q
            if self._half_sq is not None:
                s -= self._half_sq[rows]
            return rows[self._top(s, k)]
        mask = np.zeros(len(self._x), dtype=bool)
        mask[rows] = True
        scores = np.where(mask, self._scores(q), -np.inf)
        return self._top(scores, min(k, len(rows)))

    def index_size_bytes(self) -> int:
        buf = io.BytesIO()
        np.save(buf, self._x)
        return buf.tell()
