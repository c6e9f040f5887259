"""ScaNN: a k-means tree of ``num_leaves`` partitions, anisotropic-quantized (AH) scoring, exact re-ranking.

Parameters are ScaNN's own (``scann.scann_ops_pybind.builder``):
``num_leaves`` partitions (``tree``); ``training_sample_size`` points to train them on (None: all);
``dimensions_per_block`` dimensions per 4-bit AH code (``score_ah``; fewer = finer codes, more memory);
``anisotropic_quantization_threshold`` (``score_ah``; None = off; ScaNN applies it to dot-product
scoring, i.e. angular and ip, and ignores it for euclidean); at query time ``num_leaves_to_search``
partitions are scored and the best ``reorder`` candidates (at least k) re-ranked exactly.
Angular: unit-norm copies, dot product, spherical partitions. ScaNN takes no seed; its default random
centre initialisation differs between builds, so k-means++ initialisation (``random_init=False``)
is used, which makes builds deterministic.
"""

from __future__ import annotations

import os
import tempfile
from typing import Literal

import numpy as np
import scann

from annbench.backends.adapter import Adapter, at_least


class Scann(Adapter):
    """``scann_ops_pybind.builder``: k-means tree partitions, anisotropic-quantized scores, exact re-ranking.

    Parameters:
        num_leaves: partitions (finer = faster per leaf, more training)
        dimensions_per_block: dimensions per 4-bit AH code (fewer = more accurate scores, bigger index)
        anisotropic_quantization_threshold: AVQ loss for dot-product scoring (angular, ip; ScaNN ignores it
            for euclidean; null = off)
        training_sample_size: points the partitioner trains on (null = all)
        scoring: ah = anisotropic 4-bit codes (score_ah), int8 = int8-quantized brute-force scoring of the
            searched leaves (score_brute_force(quantize=True); dimensions_per_block unused)
        num_leaves_to_search: partitions scored per query (recall vs speed)
        reorder: candidates re-ranked exactly, at least k (recall vs speed)
    """

    #: Angular: dot product on unit-norm rows, spherical partitions. Queries are passed as given: for one
    #: query, the ranking by dot product does not depend on its norm.
    native_metrics = {"euclidean": "squared_l2", "angular": "dot_product", "ip": "dot_product"}
    normalize_for = ("angular",)
    libraries = ("scann",)

    def __init__(self, metric: str, num_leaves: int = 1000, dimensions_per_block: int = 2,
                 anisotropic_quantization_threshold: float | None = None, training_sample_size: int | None = None,
                 scoring: Literal["ah", "int8"] = "ah", threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(1, num_leaves=num_leaves, dimensions_per_block=dimensions_per_block,
                 training_sample_size=training_sample_size or 1)  # None (or 0): every point
        self.num_leaves, self.dimensions_per_block = num_leaves, dimensions_per_block
        self.avq = np.nan if anisotropic_quantization_threshold is None else anisotropic_quantization_threshold
        self.training_sample_size = training_sample_size
        if scoring not in ("ah", "int8"):
            raise ValueError(f"scoring={scoring!r}; valid: 'ah', 'int8'")
        self.scoring = scoring

    def fit(self, X: np.ndarray) -> None:
        sample = min(len(X), self.training_sample_size or len(X))
        tree = (scann.scann_ops_pybind.builder(X, 10, self.metric_name)
                .tree(self.num_leaves, 1, training_sample_size=sample, spherical=self.metric == "angular",
                      quantize_centroids=True, random_init=False))
        scored = (tree.score_brute_force(True) if self.scoring == "int8" else
                  tree.score_ah(self.dimensions_per_block, anisotropic_quantization_threshold=self.avq))
        builder = scored.reorder(100)
        self.searcher = builder.set_n_training_threads(self.threads).build()
        self.searcher.set_num_threads(self.threads)

    def set_query_params(self, num_leaves_to_search: int = 1, reorder: int = 100) -> None:
        if num_leaves_to_search < 1 or reorder < 1:
            raise ValueError(f"num_leaves_to_search={num_leaves_to_search}, reorder={reorder}; valid: ints >= 1")
        self.leaves, self.reorder = num_leaves_to_search, reorder

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self.searcher.search(q, k, max(k, self.reorder), self.leaves)[0]

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        search = self.searcher.search_batched if self.threads == 1 else self.searcher.search_batched_parallel
        return search(Q, k, max(k, self.reorder), self.leaves)[0]

    def index_size_bytes(self) -> int:
        with tempfile.TemporaryDirectory() as d:
            self.searcher.serialize(d)
            return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
