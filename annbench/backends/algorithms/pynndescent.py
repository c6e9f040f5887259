"""PyNNDescent: a k-NN graph built by nearest-neighbour descent, pruned and searched from tree leaves."""

from __future__ import annotations

import pickle

import numpy as np
from pynndescent import NNDescent

from annbench.backends.adapter import Adapter, at_least


class Pynndescent(Adapter):
    """``NNDescent``: a k-NN graph built by nearest-neighbour descent, pruned, searched from tree leaves.

    Parameters:
        n_neighbors: k of the NN-descent graph (build time, memory, recall)
        pruning_degree_multiplier: edges kept per node as a multiple of n_neighbors (memory and recall vs speed)
        diversify_prob: probability of pruning redundant edges (lower = denser graph, slower, higher recall)
        leaf_size: points per leaf of the RP trees that seed the search (null = PyNNDescent's default)
        random_state: seed of the RP trees and the descent's initial graph
        epsilon: how far past the k-th distance the search explores (recall vs speed)
    """

    #: PyNNDescent's dense ``cosine`` works on unit-normalised internal copies. Its ``dot``
    #: normalises too (it is cosine, not inner product), so ``ip`` is not offered.
    #: ``hamming`` counts differing coordinates of 0/1 rows (bits arrive unpacked, converted); ``jaccard``
    #: takes the sets as a sparse matrix natively.
    native_metrics = {"euclidean": "euclidean", "angular": "cosine", "hamming": "hamming", "jaccard": "jaccard"}
    point_types = ("float32", "set")
    libraries = ("pynndescent", "numba")

    def __init__(self, metric: str, n_neighbors: int = 30, pruning_degree_multiplier: float = 1.5,
                 diversify_prob: float = 1.0, leaf_size: int | None = None, random_state: int = 42,
                 threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(2, n_neighbors=n_neighbors)
        if pruning_degree_multiplier <= 0:
            raise ValueError(f"pruning_degree_multiplier={pruning_degree_multiplier}; valid: a float > 0")
        if not 0.0 <= diversify_prob <= 1.0:
            raise ValueError(f"diversify_prob={diversify_prob}; valid: a float in [0, 1]")
        if leaf_size is not None and leaf_size < 1:
            raise ValueError(f"leaf_size={leaf_size}; valid: null (PyNNDescent's default) or an int >= 1")
        self.n_neighbors, self.pruning_degree_multiplier = n_neighbors, pruning_degree_multiplier
        self.diversify_prob, self.leaf_size, self.random_state = diversify_prob, leaf_size, random_state
        self.epsilon = 0.1

    def _build(self, X: np.ndarray) -> NNDescent:
        index = NNDescent(X, metric=self.metric_name, n_neighbors=min(self.n_neighbors, len(X) - 1),
                          pruning_degree_multiplier=self.pruning_degree_multiplier,
                          diversify_prob=self.diversify_prob, leaf_size=self.leaf_size,
                          random_state=self.random_state, n_jobs=self.threads,
                          parallel_batch_queries=self.threads > 1)
        index.prepare()  # builds the search graph and compiles the search now, not on query 1
        return index

    def warm_up(self, X: np.ndarray) -> None:
        """numba compiles PyNNDescent's code on its first use in a process (tens of seconds):
        build and query a throw-away index of a few hundred points so that no build time counts it."""
        small = X[:min(len(X), 400)]
        self._build(small).query(small[:2], k=2)

    def fit(self, X: np.ndarray) -> None:
        self._index = self._build(X)

    def set_query_params(self, epsilon: float = 0.1) -> None:
        """``epsilon``: how far past the current k-th distance the search keeps exploring."""
        if epsilon < 0:
            raise ValueError(f"epsilon={epsilon}; valid: a float >= 0")
        self.epsilon = epsilon

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        q = q if self.metric == "jaccard" else q[None, :]  # a set query is a one-row CSR matrix already
        return self._index.query(q, k=k, epsilon=self.epsilon, return_distances=False)[0]

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        return self._index.query(Q, k=k, epsilon=self.epsilon, return_distances=False)

    def index_size_bytes(self) -> int:
        return len(pickle.dumps(self._index, protocol=pickle.HIGHEST_PROTOCOL))
