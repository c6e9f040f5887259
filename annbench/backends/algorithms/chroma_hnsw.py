"""Chroma: a persistent collection with its HNSW index, queried through the client."""

from __future__ import annotations

import logging
from typing import Any

import chromadb
import numpy as np
from chromadb.config import Settings

from annbench.backends.adapter import Adapter, at_least, handle_copy
from annbench.backends.workspace import Workspace
from annbench.quality.predicates import Attributes, Predicate

log = logging.getLogger("annbench.backends.chroma")


def where(predicate: Predicate) -> dict[str, Any] | None:
    """The predicate as a Chroma ``where``: ``{'$and': [{'tags': {'$contains': 3}}, {'value': {'$gte': 0.1}}, ..]}``
    (one condition on its own; None for a predicate every point matches)."""
    conditions: list[dict[str, Any]] = [{"tags": {"$contains": t}} for t in predicate.tags]
    for op, value in zip(("$gte", "$lt"), predicate.bounds()):
        if value is not None:
            conditions.append({"value": {op: value}})
    return None if not conditions else conditions[0] if len(conditions) == 1 else {"$and": conditions}


class ChromaHNSW(Adapter):
    """Chroma ``PersistentClient`` collection: ``collection.query(query_embeddings=[q], n_results=k)`` on HNSW.

    Parameters:
        M: links per node, Chroma's ``max_neighbors`` (memory, build time, recall ceiling)
        construction_ef: build beam (build time vs graph quality)
        search_ef: query beam, set with ``collection.modify`` (recall vs speed)
    """

    native_metrics = {"euclidean": "l2", "angular": "cosine", "ip": "ip"}
    libraries = ("chromadb",)
    # Filters: metadata {'tags': [..], 'value': ..} added with each row; a predicate is the query's `where`.
    filters = ("tags", "range")
    attributes_first = True
    # Changes: collection.add, collection.delete(ids), collection.upsert (replace).
    changes = ("insert", "delete", "replace")
    fork_clients = False
    fork_clients_reason = "Chroma's Rust bindings run an async runtime whose threads a forked process lacks"
    _attrs: Attributes | None = None
    collection = None

    def __init__(self, metric: str, M: int = 16, construction_ef: int = 100, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(2, M=M)
        at_least(1, construction_ef=construction_ef)
        self.M, self.construction_ef = M, construction_ef

    def fit_attributes(self, attrs: Attributes) -> None:
        self._attrs = attrs  # each row's metadata, added with its vector (attributes_first)

    def _metadata(self, i: int) -> dict[str, Any] | None:
        """Row ``i``'s metadata: its tags (a list; none when it has none) and value; None when it has neither."""
        attrs = self._attrs
        assert attrs is not None
        tags = attrs.tags.indices[attrs.tags.indptr[i]:attrs.tags.indptr[i + 1]].tolist()
        meta: dict[str, Any] = {"tags": tags} if tags else {}
        if attrs.values is not None:
            meta["value"] = float(attrs.values[i])
        return meta or None

    def _client(self) -> chromadb.ClientAPI:
        return chromadb.PersistentClient(path=str(self.workspace.path),
                                         settings=Settings(anonymized_telemetry=False))  # no network

    def fit(self, X: np.ndarray) -> None:
        self._write(X, np.arange(len(X), dtype=np.int64), "add")

    def _write(self, X: np.ndarray, ids: np.ndarray, call: str) -> None:
        """``collection.add`` (or ``upsert``) of the rows in batches of the client's maximum; the first
        call makes the folder, the client and the collection."""
        if self.collection is None:
            self.workspace = Workspace("chroma")
            self.db = self._client()
            config = {"hnsw": {"space": self.metric_name, "max_neighbors": self.M,
                               "ef_construction": self.construction_ef, "num_threads": self.threads}}
            log.debug("create_collection('items', configuration=%r)", config)
            self.collection = self.db.create_collection("items", configuration=config, embedding_function=None)
        batch = self.db.get_max_batch_size()
        with_meta = self._attrs is not None and call == "add" and len(ids) == self._attrs.n
        log.debug("collection.%s(ids, embeddings%s) in batches of %d", call, ", metadatas" if with_meta else "", batch)
        write = getattr(self.collection, call)
        for i in range(0, len(X), batch):
            part = ids[i:i + batch]
            meta = {"metadatas": [self._metadata(j) for j in part.tolist()]} if with_meta else {}
            write(ids=[str(j) for j in part.tolist()], embeddings=X[i:i + batch], **meta)

    def insert(self, X: np.ndarray, ids: np.ndarray) -> None:
        self._write(X, ids, "add")

    def delete(self, ids: np.ndarray) -> None:
        batch = self.db.get_max_batch_size()
        log.debug("collection.delete(ids) in batches of %d", batch)
        for i in range(0, len(ids), batch):
            self.collection.delete(ids=[str(j) for j in ids[i:i + batch].tolist()])

    def replace(self, X: np.ndarray, ids: np.ndarray) -> None:
        self._write(X, ids, "upsert")

    def set_query_params(self, search_ef: int = 10) -> None:
        at_least(1, search_ef=search_ef)
        log.debug("collection.modify(configuration={'hnsw': {'ef_search': %d}})", search_ef)
        self.collection.modify(configuration={"hnsw": {"ef_search": search_ef}})
        log.debug("collection.query(query_embeddings=[q], n_results=k, include=[]) (each query)")
        if self._attrs is not None:
            log.debug("collection.query(query_embeddings=[q], n_results=k, where={'$and': [{'tags': {'$contains': "
                      "..}}, {'value': {'$gte': ..}}, {'value': {'$lt': ..}}]}, include=[]) (each filtered query)")

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        ids = self.collection.query(query_embeddings=[q], n_results=k, include=[])["ids"][0]
        return np.array([int(i) for i in ids], dtype=np.int64)

    def filtered_query(self, q: np.ndarray, k: int, predicate: Predicate) -> np.ndarray:
        ids = self.collection.query(query_embeddings=[q], n_results=k, where=where(predicate), include=[])["ids"][0]
        return np.array([int(i) for i in ids], dtype=np.int64)

    def client(self) -> ChromaHNSW:
        """Its own ``PersistentClient`` on the folder and the collection fetched through it (Chroma shares
        one system per path within a process, as a second user in the process would)."""
        handle = handle_copy(self)
        handle.db = self._client()
        handle.collection = handle.db.get_collection("items", embedding_function=None)
        return handle

    def close_client(self) -> None:
        self.db.close()  # the handle's client: Chroma counts the clients of a path's system and stops it with the last

    def index_size_bytes(self) -> int:
        return self.workspace.size_bytes()
