"""Qdrant's local mode (``QdrantClient(path=...)``): an exact scan in Python, not Qdrant's server engine."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client.models import Batch, Distance, VectorParams

from annbench.backends.adapter import Adapter
from annbench.backends.workspace import Workspace

log = logging.getLogger("annbench.backends.qdrant")

#: Points per upsert call.
BATCH_ROWS = 1000


class QdrantLocal(Adapter):
    """Qdrant local mode: ``client.query_points(collection, query=q, limit=k)``, a numpy scan inside the client.

    Local mode is the client's own pure-Python store (every query scans every point with numpy): no
    HNSW, none of Qdrant's server engine, whatever the collection's index settings say.

    Parameters:
        storage: ``memory`` (``QdrantClient(':memory:')``) or ``path`` (``QdrantClient(path=...)``: every point
            is also committed to SQLite one by one, an fsync each; the same search)
    """

    native_metrics = {"euclidean": "EUCLID", "angular": "COSINE", "ip": "DOT"}
    libraries = ("qdrant-client",)
    exact = True

    def __init__(self, metric: str, storage: Literal["memory", "path"] = "memory", threads: int = 1) -> None:
        super().__init__(metric, threads)
        self.storage = storage

    def fit(self, X: np.ndarray) -> None:
        self.workspace = Workspace("qdrant") if self.storage == "path" else None
        self.client = QdrantClient(path=str(self.workspace.path)) if self.workspace else QdrantClient(":memory:")
        params = VectorParams(size=X.shape[1], distance=Distance[self.metric_name])
        log.debug("create_collection('items', vectors_config=%r)", params)
        self.client.create_collection("items", vectors_config=params)
        log.debug("upsert('items', points=Batch(ids, vectors)) in batches of %d", BATCH_ROWS)
        for i in range(0, len(X), BATCH_ROWS):
            rows = X[i:i + BATCH_ROWS]
            self.client.upsert("items", points=Batch(ids=list(range(i, i + len(rows))), vectors=rows.tolist()))

    def set_query_params(self) -> None:
        log.debug("query_points('items', query=q, limit=k) (each query)")

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        points = self.client.query_points("items", query=q.tolist(), limit=k).points
        return np.array([p.id for p in points], dtype=np.int64)

    def index_size_bytes(self) -> int | None:
        return self.workspace.size_bytes() if self.workspace else None
