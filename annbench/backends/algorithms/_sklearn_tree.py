"""Shared by the scikit-learn KD-tree and Ball-tree adapters."""

from __future__ import annotations

import pickle

import numpy as np
import sklearn.neighbors  # here, not in fit: a fresh child would otherwise time the import as build time

from annbench.backends.adapter import Adapter, at_least
from annbench.quality.distances import normalized


class SklearnTree(Adapter):
    """Exact search in a scikit-learn ``KDTree`` / ``BallTree``; angular via unit-norm copies."""

    metrics = ("euclidean", "angular")
    exact = True
    libraries = ("scikit-learn",)
    tree_class_name = ""

    def __init__(self, metric: str, leaf_size: int = 40, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, leaf_size=leaf_size)
        self.leaf_size = leaf_size

    def fit(self, X: np.ndarray) -> None:
        data = normalized(X) if self.metric == "angular" else X
        self._tree = getattr(sklearn.neighbors, self.tree_class_name)(data, leaf_size=self.leaf_size)

    def _prepare(self, Q: np.ndarray) -> np.ndarray:
        return normalized(Q) if self.metric == "angular" else Q

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self._tree.query(self._prepare(q)[None, :], k=k, return_distance=False)[0]

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        return self._tree.query(self._prepare(Q), k=k, return_distance=False)

    def index_size_bytes(self) -> int:
        return len(pickle.dumps(self._tree, protocol=pickle.HIGHEST_PROTOCOL))
