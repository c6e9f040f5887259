"""Shared by the Milvus Lite adapters: ``MilvusClient`` on a local ``.db`` file (Milvus Lite serves it
with an in-process gRPC server on a free 127.0.0.1 port), an index made with ``create_index``, searched
with ``client.search``."""

from __future__ import annotations

import atexit
import logging
import time

import numpy as np
from milvus_lite.server_manager import server_manager_instance
from pymilvus import MilvusClient

from annbench.backends.adapter import Adapter
from annbench.backends.workspace import Workspace

log = logging.getLogger("annbench.backends.milvus")

#: Rows per insert call.
BATCH_ROWS = 5000


class MilvusAdapter(Adapter):
    """Base of the Milvus Lite adapters: subclasses give the index type, its build and search parameters."""

    native_metrics = {"euclidean": "L2", "angular": "COSINE", "ip": "IP"}
    libraries = ("pymilvus", "milvus-lite")
    index_type = ""

    def build_params(self) -> dict[str, int]:
        raise NotImplementedError

    def fit(self, X: np.ndarray) -> None:
        self.workspace = Workspace("milvus")
        start = time.perf_counter()
        path = str(self.workspace.path / "items.db")
        self.client = MilvusClient(path)
        # at exit the server flushes its files: stop it before the workspace's folder is removed (LIFO)
        atexit.register(server_manager_instance.release_server, path)
        log.debug("create_collection('items', dimension=%d, metric_type=%r)", X.shape[1], self.metric_name)
        self.client.create_collection("items", dimension=X.shape[1], metric_type=self.metric_name, auto_id=False,
                                      id_type="int", primary_field_name="id", vector_field_name="vector")
        self.client.release_collection("items")
        self.client.drop_index("items", "vector")  # the quick setup's default index: ours replaces it
        log.debug("insert('items', rows) in batches of %d", BATCH_ROWS)
        for i in range(0, len(X), BATCH_ROWS):
            self.client.insert("items", [{"id": i + j, "vector": row} for j, row in enumerate(X[i:i + BATCH_ROWS])])
        self.load_s = time.perf_counter() - start
        start = time.perf_counter()
        index = self.client.prepare_index_params()
        index.add_index(field_name="vector", index_type=self.index_type, metric_type=self.metric_name,
                        params=self.build_params())
        log.debug("create_index('items', %s %s)", self.index_type, self.build_params())
        self.client.create_index("items", index)
        self.client.load_collection("items")
        self.index_s = time.perf_counter() - start

    def build_stats(self) -> dict[str, float]:
        """``load_s`` (client, collection, inserts) and ``index_s`` (create_index, load_collection)."""
        return {"load_s": self.load_s, "index_s": self.index_s}

    def search_params(self, params: dict[str, int]) -> None:
        self.search = {"metric_type": self.metric_name, "params": params}
        log.debug("search('items', data=[q], limit=k, search_params=%r) (each query)", self.search)

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        hits = self.client.search("items", data=[q], limit=k, search_params=self.search)[0]
        return np.array([h["id"] for h in hits], dtype=np.int64)

    def index_size_bytes(self) -> int:
        return self.workspace.size_bytes()
