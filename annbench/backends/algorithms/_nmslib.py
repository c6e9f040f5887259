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

    #: NMSLIB spaces: cosine and negative dot product are native, no normalised copies needed; bits and
    #: sets are NMSLIB strings (``"0 1 1 0"``, ``"3 17 40"``), made inside the timed calls.
    native_metrics = {"euclidean": "l2", "angular": "cosinesimil", "ip": "negdotprod", "hamming": "bit_hamming",
                      "jaccard": "jaccard_sparse"}
    point_types = ("float32", "bit", "set")
    libraries = ("nmslib-metabrainz",)
    method = ""
    #: Whether saveIndex must also write the vectors (HNSW's optimised index already holds them).
    save_data = True

    def _build_options(self) -> dict[str, Any]:
        raise NotImplementedError

    def _init(self) -> Any:
        if self.metric == "hamming":
            return nmslib.init(method=self.method, space=self.metric_name, data_type=nmslib.DataType.OBJECT_AS_STRING,
                               dtype=nmslib.DistType.INT)
        if self.metric == "jaccard":
            return nmslib.init(method=self.method, space=self.metric_name, data_type=nmslib.DataType.OBJECT_AS_STRING)
        return nmslib.init(method=self.method, space=self.metric_name)

    def _points(self, X: Any) -> Any:
        """Rows as NMSLIB takes them: arrays, or a list of strings for bits (padding bits are 0 on both
        sides: same distances) and sets."""
        if self.metric == "hamming":
            return [" ".join(map(str, row)) for row in np.unpackbits(np.atleast_2d(X), axis=1)]
        if self.metric == "jaccard":
            return [" ".join(map(str, X.indices[X.indptr[i]:X.indptr[i + 1]])) for i in range(X.shape[0])]
        return X

    def fit(self, X: np.ndarray) -> None:
        self._index = self._init()
        self._index.addDataPointBatch(self._points(X))
        self._index.createIndex({**self._build_options(), "indexThreadQty": self.threads}, print_progress=False)

    def set_query_params(self, efSearch: int = 10) -> None:
        """``efSearch``: size of the candidate list kept while walking the graph."""
        at_least(1, efSearch=efSearch)
        self._index.setQueryTimeParams({"efSearch": efSearch})

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self._index.knnQuery(q if self.metric not in ("hamming", "jaccard") else self._points(q)[0], k)[0]

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        out = np.full((len(Q), k), -1, dtype=np.int64)
        for i, (ids, _) in enumerate(self._index.knnQueryBatch(self._points(Q), k, num_threads=self.threads)):
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
        self._index = self._init()
        self._index.loadIndex(str(Path(folder) / "index"), load_data=self.save_data)
