"""Shared by the scikit-learn KD-tree and Ball-tree adapters."""

from __future__ import annotations

import pickle

import numpy as np
import sklearn.neighbors  # here, not in fit: a fresh child would otherwise time the import as build time

from annbench.backends.adapter import Adapter, at_least


class SklearnTree(Adapter):
    """Exact search in a scikit-learn ``KDTree`` / ``BallTree``; angular: euclidean on unit-norm rows and queries.

    Parameters:
        leaf_size: points per leaf, where the tree switches to a linear scan (build time and memory vs query speed)
    """

    native_metrics = {"euclidean": "euclidean", "angular": "euclidean"}
    normalize_for = ("angular",)
    normalize_queries = True  # euclidean ranking on unit-norm rows depends on the query's norm
    exact = True
    libraries = ("scikit-learn",)
    tree_class_name = ""

    def __init__(self, metric: str, leaf_size: int = 40, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, leaf_size=leaf_size)
        self.leaf_size = leaf_size

    def fit(self, X: np.ndarray) -> None:
        self._tree = getattr(sklearn.neighbors, self.tree_class_name)(X, leaf_size=self.leaf_size,
                                                                        metric=self.metric_name)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self._tree.query(q[None, :], k=k, return_distance=False)[0]

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        return self._tree.query(Q, k=k, return_distance=False)

    def index_size_bytes(self) -> int:
        return len(pickle.dumps(self._tree, protocol=pickle.HIGHEST_PROTOCOL))
