"""Chroma: a persistent collection with its HNSW index, queried through the client."""

from __future__ import annotations

import logging

import chromadb
import numpy as np
from chromadb.config import Settings

from annbench.backends.adapter import Adapter, at_least
from annbench.backends.workspace import Workspace

log = logging.getLogger("annbench.backends.chroma")


class ChromaHNSW(Adapter):
    """Chroma ``PersistentClient`` collection: ``collection.query(query_embeddings=[q], n_results=k)`` on HNSW.

    Parameters:
        M: links per node, Chroma's ``max_neighbors`` (memory, build time, recall ceiling)
        construction_ef: build beam (build time vs graph quality)
        search_ef: query beam, set with ``collection.modify`` (recall vs speed)
    """

    native_metrics = {"euclidean": "l2", "angular": "cosine", "ip": "ip"}
    libraries = ("chromadb",)

    def __init__(self, metric: str, M: int = 16, construction_ef: int = 100, threads: int = 1) -> None:
        super().__init__(metric, threads)
        at_least(2, M=M)
        at_least(1, construction_ef=construction_ef)
        self.M, self.construction_ef = M, construction_ef

    def fit(self, X: np.ndarray) -> None:
        self.workspace = Workspace("chroma")
        client = chromadb.PersistentClient(path=str(self.workspace.path),
                                           settings=Settings(anonymized_telemetry=False))  # no network
        config = {"hnsw": {"space": self.metric_name, "max_neighbors": self.M, "ef_construction": self.construction_ef,
                           "num_threads": self.threads}}
        log.debug("create_collection('items', configuration=%r)", config)
        self.collection = client.create_collection("items", configuration=config, embedding_function=None)
        batch = client.get_max_batch_size()
        log.debug("collection.add(ids, embeddings) in batches of %d", batch)
        for i in range(0, len(X), batch):
            rows = X[i:i + batch]
            self.collection.add(ids=[str(j) for j in range(i, i + len(rows))], embeddings=rows)

    def set_query_params(self, search_ef: int = 10) -> None:
        at_least(1, search_ef=search_ef)
        log.debug("collection.modify(configuration={'hnsw': {'ef_search': %d}})", search_ef)
        self.collection.modify(configuration={"hnsw": {"ef_search": search_ef}})
        log.debug("collection.query(query_embeddings=[q], n_results=k, include=[]) (each query)")

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        ids = self.collection.query(query_embeddings=[q], n_results=k, include=[])["ids"][0]
        return np.array([int(i) for i in ids], dtype=np.int64)

    def index_size_bytes(self) -> int:
        return self.workspace.size_bytes()
