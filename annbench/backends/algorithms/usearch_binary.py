"""USearch over packed bits (``b1``): hamming, and tanimoto for sets given as their indicator bits."""

from __future__ import annotations

import numpy as np
from usearch.index import Index

from .usearch import Usearch


class UsearchBinary(Usearch):
    """``usearch.index.Index`` with ``dtype="b1"``: an HNSW graph over packed bits (hamming; jaccard as
    tanimoto over the sets' indicator bits, which the harness packs)."""

    native_metrics = {"hamming": "hamming", "jaccard": "tanimoto"}
    point_types = ("bit",)

    def __init__(self, metric: str, connectivity: int = 16, expansion_add: int = 128, threads: int = 1) -> None:
        super().__init__(metric, connectivity, expansion_add, "f32", threads)
        self.dtype = "b1"

    def fit(self, X: np.ndarray) -> None:
        self._index = Index(ndim=X.shape[1] * 8, metric=self.metric_name, dtype=self.dtype,
                            connectivity=self.connectivity, expansion_add=self.expansion_add)
        self._index.add(np.arange(len(X), dtype=np.uint64), X, threads=self.threads)
