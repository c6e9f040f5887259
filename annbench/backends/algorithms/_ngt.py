"""Shared by the NGT graph adapters (``ngt-panng``, ``ngt-onng``, ``ngt-qg``).

NGT builds on disk: an ANNG is created in a temporary folder, then NGT's own graph
optimizer rewrites it (path adjustment for PANNG; degree adjustment plus path adjustment
for ONNG and QG) into the index that is searched. The folder lives as long as the adapter.
"""

from __future__ import annotations

import os
import tempfile

import ngtpy
import numpy as np

from annbench.backends.adapter import Adapter


def check_epsilon(epsilon: float) -> float:
    """NGT's search-range coefficient: the range is (1 + epsilon) × the current k-th distance."""
    if not -1.0 < epsilon:
        raise ValueError(f"epsilon={epsilon}; valid: a float > -1")
    return epsilon


class NgtGraph(Adapter):
    """An NGT graph index, optimised by NGT's own graph optimizer.

    Parameters:
        edge_size_for_creation: edges per node of the initial ANNG (build time, memory, recall)
        edge_size_for_search: the index's default edges followed per node
        num_of_outgoings: outgoing edges kept per node by degree adjustment (memory and recall vs speed)
        num_of_incomings: incoming edges kept per node by degree adjustment (memory and recall vs speed)
        epsilon: search-range coefficient, ann-benchmarks' value minus 1 (recall vs speed)
        edge_size: edges followed per node, -1 = the index's edge_size_for_search, 0 = all
    """

    native_metrics = {"euclidean": "L2", "angular": "Normalized Cosine", "ip": "Inner Product"}
    libraries = ("ngt",)
    #: GNU OpenMP: a process forked after a parallel region ran hangs (README: Warm parents)
    fork_clients_threads = 1
    fork_clients_reason = ("GNU OpenMP does not survive a fork once its threads ran; the binding releases the GIL, "
                           "so thread clients query in parallel")
    #: (outgoing, incoming) edges for NGT's degree adjustment; (0, 0) skips it (PANNG).
    degrees = (0, 0)
    edge_size_for_creation = 10
    edge_size_for_search = 40

    def fit(self, X: np.ndarray) -> None:
        self._build_graph(X)
        self._index = ngtpy.Index(self._path, read_only=True, log_disabled=True)

    def _build_graph(self, X: np.ndarray) -> None:
        """Write the optimised graph index to ``self._path``."""
        self._dir = tempfile.TemporaryDirectory(prefix="annbench-ngt-")
        anng, self._path = os.path.join(self._dir.name, "anng"), os.path.join(self._dir.name, "index")
        ngtpy.create(anng, X.shape[1], edge_size_for_creation=self.edge_size_for_creation,
                     edge_size_for_search=self.edge_size_for_search, distance_type=self.metric_name)
        index = ngtpy.Index(anng, log_disabled=True)
        index.batch_insert(X, num_threads=self.threads)  # converts to its own float64 buffer first
        index.save()
        index.close()
        optimizer = ngtpy.Optimizer(num_of_outgoings=self.degrees[0], num_of_incomings=self.degrees[1],
                                    log_disabled=True)
        # Only the graph rewrite: the optional timing-based tuning steps take minutes and are not the method.
        optimizer.set_processing_modes(shortcut_reduction=True, search_parameter_optimization=False,
                                       prefetch_parameter_optimization=False, accuracy_table_generation=False)
        optimizer.execute(anng, self._path)

    def set_query_params(self, epsilon: float = 0.1, edge_size: int = -1) -> None:
        """``epsilon``: search-range coefficient (ann-benchmarks' value minus 1); ``edge_size``:
        edges followed per node, 0 = all, -1 = the index's edge_size_for_search."""
        if edge_size < -1:
            raise ValueError(f"edge_size={edge_size}; valid: -1 (index default), 0 (all edges) or an int >= 1")
        self._index.set(epsilon=check_epsilon(epsilon), edge_size=edge_size)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self._index.search(q, k, with_distance=False)

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        results = ngtpy.BatchResults()
        self._index.batch_search(Q, results, k, with_distance=False)
        return results.get_ids()

    def index_size_bytes(self) -> int:
        return sum(os.path.getsize(os.path.join(top, f)) for top, _, files in os.walk(self._path) for f in files)
