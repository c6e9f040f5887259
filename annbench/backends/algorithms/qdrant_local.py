"""Qdrant's local mode (``QdrantClient(path=...)``): an exact scan in Python, not Qdrant's server engine."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client.models import Batch, Distance, FieldCondition, Filter, MatchValue, PointIdsList, Range, VectorParams

from annbench.backends.adapter import Adapter
from annbench.backends.workspace import Workspace
from annbench.quality.predicates import Attributes, Predicate

log = logging.getLogger("annbench.backends.qdrant")

#: Points per upsert call.
BATCH_ROWS = 1000


def payload_filter(predicate: Predicate) -> Filter | None:
    """The predicate as a payload filter: a ``must`` of one ``MatchValue`` per tag (a list payload matches
    when any element does) and a ``Range(gte=low, lt=high)``; None for a predicate every point matches."""
    must = [FieldCondition(key="tags", match=MatchValue(value=t)) for t in predicate.tags]
    low, high = predicate.bounds()
    if low is not None or high is not None:
        must.append(FieldCondition(key="value", range=Range(gte=low, lt=high)))
    return Filter(must=must) if must else None


class QdrantLocal(Adapter):
    """Qdrant local mode: ``client.query_points(collection, query=q, limit=k)``, a numpy scan inside the client.

    Local mode is the client's own pure-Python store (every query scans every point with numpy): no
    HNSW, none of Qdrant's server engine, whatever the collection's index settings say.

    Parameters:
        storage: ``memory`` (``QdrantClient(':memory:')``) or ``path`` (``QdrantClient(path=...)``: the client
            also commits every point of a batch to SQLite in a transaction of its own; the same search)
    """

    native_metrics = {"euclidean": "EUCLID", "angular": "COSINE", "ip": "DOT"}
    libraries = ("qdrant-client",)
    exact = True
    # Filters: payload {'tags': [..], 'value': ..} upserted with each point; a predicate is the query's filter
    # (which local mode checks point by point in Python: see the README).
    filters = ("tags", "range")
    attributes_first = True
    # Changes: upsert (insert and replace), delete(PointIdsList).
    changes = ("insert", "delete", "replace")
    _attrs: Attributes | None = None
    db = None

    def __init__(self, metric: str, storage: Literal["memory", "path"] = "memory", threads: int = 1) -> None:
        super().__init__(metric, threads)
        self.storage = storage

    def fit_attributes(self, attrs: Attributes) -> None:
        self._attrs = attrs  # each point's payload, upserted with its vector (attributes_first)

    def _payloads(self, ids: list[int]) -> list[dict]:
        attrs = self._attrs
        assert attrs is not None
        indptr, indices = attrs.tags.indptr, attrs.tags.indices
        if attrs.values is None:
            return [{"tags": indices[indptr[i]:indptr[i + 1]].tolist()} for i in ids]
        return [{"tags": indices[indptr[i]:indptr[i + 1]].tolist(), "value": float(attrs.values[i])} for i in ids]

    def fit(self, X: np.ndarray) -> None:
        self._upsert(X, np.arange(len(X), dtype=np.int64))

    def _upsert(self, X: np.ndarray, ids: np.ndarray, first: bool = True) -> None:
        """``upsert`` of the points in batches; the first call makes the client and the collection."""
        if self.db is None:
            self.workspace = Workspace("qdrant") if self.storage == "path" else None
            self.db = QdrantClient(path=str(self.workspace.path)) if self.workspace else QdrantClient(":memory:")
            params = VectorParams(size=X.shape[1], distance=Distance[self.metric_name])
            log.debug("create_collection('items', vectors_config=%r)", params)
            self.db.create_collection("items", vectors_config=params)
        with_payload = self._attrs is not None and first and len(ids) == self._attrs.n
        log.debug("upsert('items', points=Batch(ids, vectors%s)) in batches of %d",
                  ", payloads" if with_payload else "", BATCH_ROWS)
        for i in range(0, len(X), BATCH_ROWS):
            part = ids[i:i + BATCH_ROWS].tolist()
            payloads = self._payloads(part) if with_payload else None
            self.db.upsert("items", points=Batch(ids=part, vectors=X[i:i + BATCH_ROWS].tolist(), payloads=payloads))

    def insert(self, X: np.ndarray, ids: np.ndarray) -> None:
        self._upsert(X, ids, first=False)

    def delete(self, ids: np.ndarray) -> None:
        log.debug("delete('items', points_selector=PointIdsList(%d ids))", len(ids))
        self.db.delete("items", points_selector=PointIdsList(points=ids.tolist()))

    def replace(self, X: np.ndarray, ids: np.ndarray) -> None:
        self._upsert(X, ids, first=False)

    def set_query_params(self) -> None:
        log.debug("query_points('items', query=q, limit=k) (each query)")
        if self._attrs is not None:
            log.debug("query_points('items', query=q, query_filter=Filter(must=[FieldCondition(key='tags', "
                      "match=MatchValue(value=..)), .., FieldCondition(key='value', range=Range(gte=.., lt=..))]), "
                      "limit=k) (each filtered query)")

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        points = self.db.query_points("items", query=q.tolist(), limit=k).points
        return np.array([p.id for p in points], dtype=np.int64)

    def filtered_query(self, q: np.ndarray, k: int, predicate: Predicate) -> np.ndarray:
        points = self.db.query_points("items", query=q.tolist(), query_filter=payload_filter(predicate),
                                      limit=k).points
        return np.array([p.id for p in points], dtype=np.int64)

    # client(): the default, the adapter itself. Local mode's store lives in this one client object (a
    # second QdrantClient on the same path is refused: the client locks its folder; ':memory:' would be
    # another, empty store), so concurrent users share it; forked client processes get its copy.

    def index_size_bytes(self) -> int | None:
        return self.workspace.size_bytes() if self.workspace else None
