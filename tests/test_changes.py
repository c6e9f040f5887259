"""Adapters that change: insert, delete and replace with each library's own calls."""

from __future__ import annotations

import numpy as np
import pytest

from annbench.backends.adapter import Adapter, replace_method
from annbench.backends.discovery import load_adapter
from annbench.core import paths
from annbench.quality.groundtruth import exact_neighbours

#: algorithm → (build params, query params, what it declares, how it replaces, recall it must reach).
CHANGING = {
    "bruteforce": ({}, {}, ("insert", "delete", "replace"), "native", 1.0),
    "hnswlib": ({"M": 16, "ef_construction": 100}, {"ef": 100}, ("insert", "delete", "replace"), "native", 0.95),
    "faiss-flat": ({}, {}, ("insert", "delete", "replace"), "delete+insert", 1.0),
    "faiss-ivf": ({"nlist": 16}, {"nprobe": 16}, ("insert", "delete", "replace"), "delete+insert", 1.0),
    "usearch": ({}, {"expansion_search": 100}, ("insert", "delete", "replace"), "delete+insert", 0.95),
    "faiss-hnsw": ({"M": 16}, {"efSearch": 100}, ("insert",), "delete+insert", 0.95),
    # the databases: INSERT / COPY, DELETE, an upsert (pgvector) in SQL
    "pgvector-hnsw": ({"m": 16, "ef_construction": 64}, {"ef_search": 100}, ("insert", "delete", "replace"), "native",
                      0.95),
    "pgvector-ivfflat": ({"lists": 8}, {"probes": 8}, ("insert", "delete", "replace"), "native", 1.0),
    "duckdb-hnsw": ({"M": 16, "ef_construction": 64}, {"ef_search": 100}, ("insert", "delete", "replace"),
                    "delete+insert", 0.95),
    "sqlite-vec": ({}, {}, ("insert", "delete", "replace"), "delete+insert", 1.0),
}


def adapter_class(name: str) -> type[Adapter]:
    return load_adapter(name, paths.algorithm_dirs(None))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((1500, 12)).astype(np.float32)
    x.flags.writeable = False
    return x, rng.standard_normal((40, 12)).astype(np.float32)


def recall_and_dead(adapter: Adapter, queries: np.ndarray, x: np.ndarray, metric: str, tags: np.ndarray,
                    rows: np.ndarray, dead: np.ndarray, k: int = 10) -> tuple[float, int]:
    truth = tags[exact_neighbours(x[rows], queries, metric, k, threads=1)[0]]
    one_by_one = np.stack([np.asarray(adapter.query(q, k)).ravel() for q in queries])
    for found in (adapter.batch_query(queries, k), one_by_one):
        assert found.shape == (len(queries), k)
        hits = np.mean([len(set(f) & set(t)) / k for f, t in zip(found.tolist(), truth.tolist())])
        returned_dead = int(np.isin(found, dead).sum())
    return float(hits), returned_dead


@pytest.mark.parametrize("metric", ["euclidean", "angular"])
@pytest.mark.parametrize("name", sorted(CHANGING))
def test_inserts_deletes_and_replaces(name: str, metric: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    build, query, changes, replaces, floor = CHANGING[name]
    cls = adapter_class(name)
    assert cls.changes == changes and replace_method(cls) == replaces
    x, queries = data
    adapter = cls(metric, **build)
    adapter.insert(x[:1000], np.arange(1000))  # an adapter with no index yet: the first insert builds it
    adapter.set_query_params(**query)
    recall, dead = recall_and_dead(adapter, queries, x, metric, np.arange(1000), np.arange(1000), np.arange(1000, 1500))
    assert recall >= floor and dead == 0
    adapter.insert(x[1000:1200], np.arange(1000, 1200))
    if "delete" not in changes:
        with pytest.raises(Exception):
            adapter.delete(np.arange(10))
        return
    adapter.delete(np.arange(0, 600))
    adapter.insert(x[:300], np.arange(300))  # deleted ids come back
    adapter.replace(x[1200:1500], np.arange(900, 1200))  # ids 900..1199 now hold rows 1200..1499
    adapter.set_query_params(**query)
    tags = np.r_[0:300, 600:1200]
    rows = np.r_[0:300, 600:900, 1200:1500]
    recall, dead = recall_and_dead(adapter, queries, x, metric, tags, rows, np.arange(300, 600))
    assert recall >= floor and dead == 0
    assert adapter.index_size_bytes() > 0


def test_an_adapter_declares_only_known_changes() -> None:
    with pytest.raises(TypeError, match="changes has 'upsert'; valid: 'insert', 'delete', 'replace'"):
        type("Bad", (Adapter,), {"changes": ("insert", "upsert"), "fit": lambda s, X: None,
                                 "query": lambda s, q, k: q})
