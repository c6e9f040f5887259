"""Exact search over every point type: BLAS for numbers, popcounts for bits, sparse products for sets."""

from __future__ import annotations

import io

import numpy as np
import scipy.sparse as sp

from annbench.backends.adapter import Adapter
from annbench.quality import bitset
from annbench.quality.predicates import AttributeIndex, Attributes, Predicate

#: A predicate matching at most this fraction of the points is scanned on its gathered rows; a broader
#: one by scoring every row and masking the others out (gathering most rows costs more than it saves).
GATHER_FRACTION = 0.25


class BruteForce(Adapter):
    """Exact scan: one BLAS matrix product per query or block of queries (numbers, widened to float32
    once at build); XOR and popcount of 64-bit words into small-int distances and a bounded select (bits);
    one sparse product per block of queries (sets): bits and sets by the ground truth's own exact search
    (:func:`annbench.quality.bitset.hamming_search`, :func:`~annbench.quality.bitset.jaccard_search`), so in
    bounded memory and with its tie rule (the smaller row first).

    Filtered (tags, range): the matching rows come from an inverted index of the tags built in
    ``fit_attributes``; a narrow predicate's rows are gathered and scanned, a broad one's masked in a
    scan of every row.
    """

    #: Scores (larger = nearer): ``<q,x> - |x|^2/2`` for l2, ``<q,x>`` for dot (angular: on unit-norm rows);
    #: hamming and jaccard rank by distance, ties by id.
    native_metrics = {"euclidean": "l2", "angular": "dot", "ip": "dot", "hamming": "hamming", "jaccard": "jaccard"}
    normalize_for = ("angular",)
    point_types = ("float32", "float16", "uint8", "int8", "bit", "set")
    exact = True
    libraries = ("numpy",)
    filters = ("tags", "range")
    changes = ("insert", "delete", "replace")

    def __init__(self, metric: str, threads: int = 1) -> None:
        super().__init__(metric, threads)
        self._ids: np.ndarray | None = None  # the id of each row of _x; None: the row numbers (fit)

    def fit(self, X: np.ndarray) -> None:
        self._x = X
        if self.metric == "hamming":
            self._xt = bitset.transposed_words(X)
        elif self.metric == "jaccard":
            self._xt, self._sizes = bitset.transposed_sets(X)
        else:
            self._xf = np.ascontiguousarray(X, dtype=np.float32)  # BLAS needs floats: 8-bit values are exact
            self._half_sq = 0.5 * np.einsum("ij,ij->i", self._xf, self._xf) if self.metric_name == "l2" else None

    # Changes: the rows and their ids as arrays, appended to, compacted on delete, overwritten on replace.
    def insert(self, X: np.ndarray, ids: np.ndarray) -> None:
        if self._ids is None and hasattr(self, "_x"):
            self._ids = np.arange(len(self._x))
        old_x = self._x if hasattr(self, "_x") else X[:0]
        self._ids = np.concatenate([self._ids if self._ids is not None else np.empty(0, np.int64), ids])
        self.fit(np.concatenate([old_x, X]))

    def delete(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self._rows_ids(), ids)
        self._ids = self._rows_ids()[keep]
        self.fit(self._x[keep])

    def replace(self, X: np.ndarray, ids: np.ndarray) -> None:
        order = np.argsort(self._rows_ids())
        rows = order[np.searchsorted(self._rows_ids(), ids, sorter=order)]
        x = self._x.copy()
        x[rows] = X
        self.fit(x)

    def _rows_ids(self) -> np.ndarray:
        return self._ids if self._ids is not None else np.arange(len(self._x))

    def _scores(self, Q: np.ndarray) -> np.ndarray:
        s = np.asarray(Q, dtype=np.float32) @ self._xf.T
        return s - self._half_sq if self._half_sq is not None else s

    def _block(self, Q: np.ndarray, k: int) -> np.ndarray:
        """Row numbers of the ``k`` nearest of each query of ``Q``, nearest first."""
        if self.metric == "hamming":
            return bitset.hamming_search(self._xt, bitset.words(Q), k, self.threads)[0]
        if self.metric == "jaccard":
            return bitset.jaccard_search(self._xt, self._sizes, Q, k)[0]
        return self._top(self._scores(Q), k)

    def _top(self, scores: np.ndarray, k: int) -> np.ndarray:
        k = min(k, scores.shape[-1])
        part = np.argpartition(-scores, k - 1, axis=-1)[..., :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=-1), axis=-1, kind="stable")
        return np.take_along_axis(part, order, axis=-1)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        if self.metric in ("hamming", "jaccard"):
            top = self._block(q, min(k, len(self._x)))[0]
        else:
            top = self._top(self._scores(q), k)
        return top if self._ids is None else self._ids[top]

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        # bits and sets: their searches block the queries themselves, in bounded memory
        bounded = self.metric in ("hamming", "jaccard")
        block = max(1, len(Q)) if bounded else max(1, 50_000_000 // max(1, len(self._x)))
        top = np.concatenate([self._block(Q[s:s + block], min(k, len(self._x))) for s in range(0, len(Q), block)])
        return top if self._ids is None else self._ids[top]

    def fit_attributes(self, attrs: Attributes) -> None:
        self._attrs = AttributeIndex(attrs)

    def filtered_query(self, q: np.ndarray, k: int, predicate: Predicate) -> np.ndarray:
        rows = self._attrs.rows(predicate)
        if not len(rows):
            return rows
        if len(rows) <= GATHER_FRACTION * len(self._x):
            s = self._xf[rows] @ q
            if self._half_sq is not None:
                s -= self._half_sq[rows]
            return rows[self._top(s, k)]
        mask = np.zeros(len(self._x), dtype=bool)
        mask[rows] = True
        scores = np.where(mask, self._scores(q), -np.inf)
        return self._top(scores, min(k, len(rows)))

    def index_size_bytes(self) -> int:
        if sp.issparse(self._x):
            return int(self._x.data.nbytes + self._x.indices.nbytes + self._x.indptr.nbytes)
        buf = io.BytesIO()
        np.save(buf, self._x if self.metric == "hamming" else self._xf)
        return buf.tell()
