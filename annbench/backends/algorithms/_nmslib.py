"""Shared by the NMSLIB adapters (``nmslib-hnsw``, ``nmslib-swgraph``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import nmslib
import numpy as np

from annbench.backends.adapter import Adapter, at_least


class NmslibAdapter(Adapter):
    """One NMSLIB method; subclasses name it and map their build parameters to its options.

    Parameters:
        efConstruction: build beam (build time vs graph quality)
        efSearch: query beam, candidates kept while walking the graph (recall vs speed)
    """

    #: NMSLIB spaces: cosine and negative dot product are native, no normalised copies needed.
    native_metrics = {"euclidean": "l2", "angular": "cosinesimil", "ip": "negdotprod"}
    libraries = ("nmslib-metabrainz",)
    method = ""
    #: Whether saveIndex must also write the vectors (HNSW's optimised index already holds them).
    save_data = True

    def _build_options(self) -> dict[str, Any]:
        raise NotImplementedError

    def fit(self, X: np.ndarray) -> None:
        self._index = nmslib.init(method=self.method, space=self.metric_name)
        self._index.addDataPointBatch(X)
        self._index.createIndex({**self._build_options(), "indexThreadQty": self.threads}, print_progress=False)

    def set_query_params(self, efSearch: int = 10) -> None:
        """``efSearch``: size of the candidate list kept while walking the graph."""
        at_least(1, efSearch=efSearch)
        self._index.setQueryTimeParams({"efSearch": efSearch})

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self._index.knnQuery(q, k)[0]

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        out = np.full((len(Q), k), -1, dtype=np.int64)
        for i, (ids, _) in enumerate(self._index.knnQueryBatch(Q, k, num_threads=self.threads)):
            out[i, :len(ids)] = ids
        return out

    def index_size_bytes(self) -> int:
        with tempfile.TemporaryDirectory(prefix="annbench-nmslib-") as d:
            self._index.saveIndex(os.path.join(d, "index"), save_data=self.save_data)
            return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))

    # Saved index (dataset.py index): NMSLIB's own files (the index, and its data where needed).
    def save(self, folder: Path) -> None:
        self._index.saveIndex(str(Path(folder) / "index"), save_data=self.save_data)

    def load(self, folder: Path, dimension: int) -> None:
        self._index = nmslib.init(method=self.method, space=self.metric_name)
        self._index.loadIndex(str(Path(folder) / "index"), load_data=self.save_data)
