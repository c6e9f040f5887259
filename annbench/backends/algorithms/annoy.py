"""Annoy (Spotify): a forest of random-projection trees, searched together."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from annoy import AnnoyIndex

from annbench.backends.adapter import Adapter, at_least


class Annoy(Adapter):
    """``AnnoyIndex``: a forest of random-projection trees, searched together.

    Parameters:
        n_trees: random-projection trees (build time, memory; higher recall at a given search_k)
        seed: seed of the trees' random projections (``set_seed``)
        search_k: tree nodes inspected per query, -1 = n_trees·k (recall vs speed)
    """

    #: hamming: Annoy packs 0/1 coordinates into 64-bit words itself (bits arrive unpacked, converted).
    native_metrics = {"euclidean": "euclidean", "angular": "angular", "ip": "dot", "hamming": "hamming"}
    libraries = ("annoy",)

    def __init__(self, metric: str, n_trees: int = 100, seed: int = 1, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, n_trees=n_trees)
        self.n_trees, self.seed = n_trees, seed
        self.search_k = -1

    def fit(self, X: np.ndarray) -> None:
        self._index = AnnoyIndex(X.shape[1], self.metric_name)
        self._index.set_seed(self.seed)
        for i, x in enumerate(X):
            self._index.add_item(i, x)
        self._index.build(self.n_trees, n_jobs=self.threads)

    def set_query_params(self, search_k: int = -1) -> None:
        """``search_k``: nodes inspected per query; -1 means Annoy's default, n_trees * k."""
        if search_k < 1 and search_k != -1:
            raise ValueError(f"search_k={search_k}; valid: -1 (n_trees * k) or an int >= 1")
        self.search_k = search_k

    def query(self, q: np.ndarray, k: int) -> list[int]:
        return self._index.get_nns_by_vector(q, k, self.search_k)

    # No batch API in Annoy: batch_query is the base class's loop over query().

    def index_size_bytes(self) -> int:
        # Annoy memory-maps the file it saved, so the folder lives as long as the adapter.
        self._dir = tempfile.TemporaryDirectory(prefix="annbench-annoy-")
        path = os.path.join(self._dir.name, "index.ann")
        self._index.save(path, prefault=False)
        return os.path.getsize(path)

    # Saved index (dataset.py index): Annoy's own file, memory-mapped on load.
    def save(self, folder: Path) -> None:
        self._index.save(str(Path(folder) / "index.ann"), prefault=False)

    def load(self, folder: Path, dimension: int) -> None:
        self._index = AnnoyIndex(dimension, self.metric_name)
        self._index.load(str(Path(folder) / "index.ann"), prefault=False)
