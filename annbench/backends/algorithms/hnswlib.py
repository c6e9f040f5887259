"""hnswlib: the reference implementation of HNSW graphs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import hnswlib
import numpy as np

from annbench.backends.adapter import Adapter, at_least
from annbench.quality.predicates import AttributeIndex, Attributes, Predicate


class Hnswlib(Adapter):
    """``hnswlib.Index``: the reference implementation of HNSW graphs.

    Parameters:
        M: links per node (memory, build time, recall ceiling)
        ef_construction: build beam (build time vs graph quality)
        random_seed: seed of the levels drawn for inserted points
        ef: query beam, at least k (recall vs speed)
    """

    #: hnswlib's spaces; ``cosine`` normalises internal copies of the vectors and queries.
    native_metrics = {"euclidean": "l2", "angular": "cosine", "ip": "ip"}
    libraries = ("hnswlib",)
    filters = ("tags", "range")
    changes = ("insert", "delete", "replace")

    def __init__(self, metric: str, M: int = 16, ef_construction: int = 200, random_seed: int = 100,
                 threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(2, M=M)
        at_least(1, ef_construction=ef_construction)
        self.M, self.ef_construction, self.random_seed = M, ef_construction, random_seed

    def fit(self, X: np.ndarray) -> None:
        self._index = hnswlib.Index(space=self.metric_name, dim=X.shape[1])
        self._index.init_index(max_elements=len(X), ef_construction=self.ef_construction, M=self.M,
                               random_seed=self.random_seed)
        self._index.set_num_threads(self.threads)
        self._index.add_items(X, np.arange(len(X)), num_threads=self.threads)

    # Changes: mark_deleted; new labels take deleted slots (replace_deleted, allow_replace_deleted), a
    # label deleted earlier whose slot was not taken is unmarked and updated in place; replace updates live ones.
    def insert(self, X: np.ndarray, ids: np.ndarray) -> None:
        if not hasattr(self, "_index"):
            self._index = hnswlib.Index(space=self.metric_name, dim=X.shape[1])
            self._index.init_index(max_elements=len(X), ef_construction=self.ef_construction, M=self.M,
                                   random_seed=self.random_seed, allow_replace_deleted=True)
            self._index.set_num_threads(self.threads)
            self._marked: set[int] = set()  # labels deleted, whose slot may still be theirs
            self._deleted_slots = 0  # slots marked deleted, not yet taken again
        back = np.zeros(len(ids), dtype=bool)
        for i, label in enumerate(ids.tolist()):
            if label in self._marked:
                self._marked.discard(label)
                try:  # its slot is still its own (no new label took it): use it again
                    self._index.unmark_deleted(label)
                    back[i] = True
                    self._deleted_slots -= 1
                except RuntimeError:
                    pass
        if back.any():
            self._index.add_items(X[back], ids[back], num_threads=self.threads)
        fresh = ~back
        n = int(fresh.sum())
        free = self._index.get_max_elements() - self._index.get_current_count()
        if n > free + self._deleted_slots:
            self._index.resize_index(max(2 * self._index.get_max_elements(), self._index.get_current_count() + n))
        self._index.add_items(X[fresh], ids[fresh], num_threads=self.threads, replace_deleted=True)
        self._deleted_slots -= min(n, self._deleted_slots)

    def delete(self, ids: np.ndarray) -> None:
        for label in ids.tolist():
            self._index.mark_deleted(label)
        self._marked.update(ids.tolist())
        self._deleted_slots += len(ids)

    def replace(self, X: np.ndarray, ids: np.ndarray) -> None:
        self._index.add_items(X, ids, num_threads=self.threads)  # existing labels: updated in place

    def set_query_params(self, ef: int = 10) -> None:
        """``ef``: size of the dynamic candidate list (hnswlib searches with max(ef, k))."""
        at_least(1, ef=ef)
        self._index.set_ef(ef)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        # knn_query called with positional arguments only, no frame between: the binding's argument handling
        # holds the GIL, in which no other concurrent thread client can enter a search (README: Concurrent clients)
        try:
            return self._index.knn_query(q, k)[0]  # the index runs on self.threads
        except RuntimeError:  # fewer than k found
            return self._found(q, k // 2)

    def _found(self, q: np.ndarray, k: int, **kwargs: object) -> np.ndarray:
        """``knn_query``'s labels; where the search finds fewer than k points (a filter, or k near the
        index's size, as the post-filter's last round asks) hnswlib raises, so ask for half as many."""
        while k > 0:
            try:
                return self._index.knn_query(q, k, **kwargs)[0]
            except RuntimeError:
                k //= 2
        return np.empty(0, dtype=np.int64)

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        return self._index.knn_query(Q, k, num_threads=self.threads)[0]

    def fit_attributes(self, attrs: Attributes) -> None:
        self._attrs = AttributeIndex(attrs)

    def filtered_query(self, q: np.ndarray, k: int, predicate: Predicate) -> np.ndarray:
        """hnswlib's ``filter``: a Python callable called for each point the search would keep (its cost is
        in the README); here the C-level ``__getitem__`` of a bytes mask of the matching ids, one thread."""
        rows = self._attrs.rows(predicate)
        mask = np.zeros(self._attrs.n, dtype=np.uint8)
        mask[rows] = 1
        allowed = mask.tobytes().__getitem__
        return self._found(q, min(k, len(rows)), num_threads=1, filter=allowed)

    def index_size_bytes(self) -> int:
        with tempfile.TemporaryDirectory(prefix="annbench-hnswlib-") as d:
            path = os.path.join(d, "index.bin")
            self._index.save_index(path)
            return os.path.getsize(path)

    # Saved index (dataset.py index): hnswlib's own file, read into memory on load.
    def save(self, folder: Path) -> None:
        self._index.save_index(str(Path(folder) / "index.bin"))

    def load(self, folder: Path, dimension: int) -> None:
        self._index = hnswlib.Index(space=self.metric_name, dim=dimension)
        self._index.load_index(str(Path(folder) / "index.bin"))
        self._index.set_num_threads(self.threads)
