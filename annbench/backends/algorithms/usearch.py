"""USearch: an HNSW implementation with optional f16 / i8 storage of the vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from usearch.index import Index

from annbench.backends.adapter import Adapter, at_least


class Usearch(Adapter):
    """``usearch.index.Index``: an HNSW graph with optional f16 / bf16 / i8 storage of the vectors.

    Parameters:
        connectivity: links per node (memory, build time, recall ceiling)
        expansion_add: build beam (build time vs graph quality)
        dtype: bytes per stored coordinate, i8 < f16 = bf16 < f32 (memory and speed vs precision)
        expansion_search: query beam (recall vs speed)
    """

    native_metrics = {"euclidean": "l2sq", "angular": "cos", "ip": "ip"}
    #: USearch takes float16 and int8 rows as they are (stored as ``dtype``; i8 storage of int8 rows is exact).
    point_types = ("float32", "float16", "int8")
    libraries = ("usearch",)
    changes = ("insert", "delete", "replace")

    def __init__(self, metric: str, connectivity: int = 16, expansion_add: int = 128,
                 dtype: Literal["f32", "f16", "bf16", "i8"] = "f32", threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(2, connectivity=connectivity)
        at_least(1, expansion_add=expansion_add)
        if dtype not in ("f32", "f16", "bf16", "i8"):
            raise ValueError(f"dtype={dtype!r}; valid: 'f32', 'f16', 'bf16', 'i8'")
        self.connectivity, self.expansion_add, self.dtype = connectivity, expansion_add, dtype
        self._stats: dict[str, float] = {}

    def fit(self, X: np.ndarray) -> None:
        self._index = Index(ndim=X.shape[1], metric=self.metric_name, dtype=self.dtype,
                            connectivity=self.connectivity, expansion_add=self.expansion_add)
        self._index.add(np.arange(len(X), dtype=np.uint64), X, threads=self.threads)

    # Changes: USearch's own add and remove (a replace is remove then add: USearch has no update call).
    def insert(self, X: np.ndarray, ids: np.ndarray) -> None:
        if not hasattr(self, "_index"):
            self._index = Index(ndim=X.shape[1], metric=self.metric_name, dtype=self.dtype,
                                connectivity=self.connectivity, expansion_add=self.expansion_add)
        self._index.add(np.asarray(ids, dtype=np.uint64), X, threads=self.threads)

    def delete(self, ids: np.ndarray) -> None:
        self._index.remove(np.asarray(ids, dtype=np.uint64))

    def set_query_params(self, expansion_search: int = 64) -> None:
        """``expansion_search``: size of the candidate list kept while walking the graph."""
        at_least(1, expansion_search=expansion_search)
        self._index.expansion_search = expansion_search
        self._stats = {}

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self._index.search(q, k, threads=1).keys.astype(np.int64)

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        matches = self._index.search(Q, k, threads=self.threads)
        self._stats = {"ndis_per_query": matches.computed_distances / len(Q),
                       "visited_per_query": matches.visited_members / len(Q)}
        ids = matches.keys.astype(np.int64)
        ids[np.arange(k)[None, :] >= matches.counts[:, None]] = -1
        return ids

    def stats(self) -> dict[str, float]:
        """Distance computations and visited graph nodes per query of the last batch (batch mode only)."""
        return dict(self._stats)

    def index_size_bytes(self) -> int:
        return len(self._index.save())

    # Saved index (dataset.py index): USearch's own file, memory-mapped (a view) on load.
    def save(self, folder: Path) -> None:
        self._index.save(str(Path(folder) / "index.usearch"))

    def load(self, folder: Path, dimension: int) -> None:
        self._index = Index.restore(str(Path(folder) / "index.usearch"), view=True)
