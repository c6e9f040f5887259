"""Shared by the LanceDB adapters: a Lance table in the build's folder, an index built with
``create_index``, searched with the client's query builder (``search(q).nprobes(..).limit(k)``)."""

from __future__ import annotations

import logging
import time

import lancedb
import numpy as np
import pyarrow as pa

from annbench.backends.adapter import Adapter
from annbench.backends.workspace import Workspace

log = logging.getLogger("annbench.backends.lancedb")


class LanceDBAdapter(Adapter):
    """Base of the LanceDB adapters: subclasses give ``create_index``'s arguments and the query's settings."""

    native_metrics = {"euclidean": "l2", "angular": "cosine", "ip": "dot"}
    libraries = ("lancedb",)

    def index_config(self) -> object:
        """The ``lancedb.index`` configuration of ``create_index`` (``IvfPq(...)``, ...)."""
        raise NotImplementedError

    def fit(self, X: np.ndarray) -> None:
        self.workspace = Workspace("lancedb")
        start = time.perf_counter()
        db = lancedb.connect(str(self.workspace.path))
        data = pa.table({"id": pa.array(np.arange(len(X), dtype=np.int32)),
                         "vector": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1])})
        log.debug("create_table('items', %d rows)", len(X))
        self.table = db.create_table("items", data=data)
        self.load_s = time.perf_counter() - start
        start = time.perf_counter()
        config = self.index_config()
        log.debug("create_index('vector', config=%r)", config)
        self.table.create_index("vector", config=config)
        self.index_s = time.perf_counter() - start

    def build_stats(self) -> dict[str, float]:
        """``load_s`` (connect, create_table) and ``index_s`` (create_index)."""
        return {"load_s": self.load_s, "index_s": self.index_s}

    def search(self, q: np.ndarray, k: int):
        """The query as the client builds it: subclasses add their settings."""
        return self.table.search(q).distance_type(self.metric_name).limit(k).select(["id", "_distance"])

    def log_query(self, settings: str) -> None:
        log.debug("search(q).distance_type(%r).limit(k).select(['id', '_distance'])%s.to_arrow() (each query)",
                  self.metric_name, settings)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return self.search(q, k).to_arrow()["id"].to_numpy().astype(np.int64)

    def index_size_bytes(self) -> int:
        return self.workspace.size_bytes()
