"""Every shipped adapter that filters natively, on a small filtered dataset: only matching ids, exact
methods exact, the others near-exact at their filtered grid's highest effort; and the post-filter over
every other kind of adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_database_workloads import SETTINGS as DATABASES  # their filtered queries are tested there
from test_filtered import random_filtered

from annbench.backends.discovery import load_adapter
from annbench.backends.filtering import FilteredSearch, Strategy
from annbench.core import paths
from annbench.datasets.attributes import Filters
from annbench.datasets.format import load_dataset, write_dataset
from annbench.execute.evaluate import quality
from annbench.plan.config import all_configs, load_config
from annbench.quality.filtered import filtered_knn
from annbench.quality.predicates import AttributeIndex, Attributes, predicates

#: The adapters that filter natively (README: "Filtered search"); usearch and ScaNN expose no filter in Python.
NATIVE = ["bruteforce", "chroma-hnsw", "duckdb-hnsw", "faiss-flat", "faiss-hnsw", "faiss-ivf", "hnswlib",
          "lancedb-ivf-flat", "lancedb-ivf-hnsw-sq", "lancedb-ivf-pq", "milvus-flat", "milvus-hnsw", "milvus-hnsw-sq",
          "milvus-ivf-flat", "milvus-ivf-sq8",
          "pgvector-hnsw", "pgvector-ivfflat", "qdrant-local", "sqlite-vec"]
K = 10


@pytest.fixture(scope="module", params=["euclidean", "angular"])
def dataset(request, tmp_path_factory):
    train, test, tags, values, qt, ranges = random_filtered(n=3000, nq=60, seed=3)
    ids, d, sel = filtered_knn(train, test, request.param, predicates(qt, ranges),
                               AttributeIndex(Attributes(tags, values)), 100)
    path = write_dataset(tmp_path_factory.mktemp("f") / "f.hdf5", train=train, test=test, distance=request.param,
                         neighbors=ids, distances=d, filters=Filters(tags, qt, sel, values, ranges))
    return load_dataset(path)


def _answers(search: FilteredSearch, ds) -> np.ndarray:
    return search.batch_query(list(zip(ds.test, ds.filters.predicates)), K)


def _highest_effort(algorithm: str, group: str) -> tuple[dict, dict]:
    config = load_config(all_configs(paths.config_dirs(None))[algorithm])
    g = config.groups[group]
    return list(g.build_settings())[-1], list(g.query_settings())[-1]


def test_the_native_adapters_are_the_documented_ones() -> None:
    dirs = paths.algorithm_dirs(None)
    native = sorted(name for name in all_configs(paths.config_dirs(None)) if load_adapter(name, dirs).filters)
    assert native == NATIVE
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for name in NATIVE:
        assert f"`{name}`" in readme.split("## Filtered search", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("algorithm", [a for a in NATIVE if a not in DATABASES])  # databases: their own module
def test_native_filtering(algorithm: str, dataset) -> None:
    cls = load_adapter(algorithm, paths.algorithm_dirs(None))
    build, query = _highest_effort(algorithm, "filtered")
    adapter = cls(dataset.distance, **build)
    search = FilteredSearch(adapter, Strategy.NATIVE)
    search.fit(dataset.train, dataset.filters.attributes)  # the attributes before or after fit, as declared
    adapter.set_query_params(**query)
    ids = _answers(search, dataset)
    scores, _ = quality(dataset, ids, K)
    assert scores["filter_violations"] == 0
    if cls.exact:
        assert scores["recall"] == 1.0 and scores["id_recall"] == 1.0
    else:
        assert scores["recall"] >= 0.9, scores


@pytest.mark.parametrize("algorithm", ["annoy", "usearch", "scann", "faiss-ivfpq"])
def test_post_filter_over_adapters_without_native_filtering(algorithm: str, dataset) -> None:
    cls = load_adapter(algorithm, paths.algorithm_dirs(None))
    assert not cls.filters
    build, query = _highest_effort(algorithm, "quick")
    if algorithm == "scann":
        build = {**build, "num_leaves": 20}  # a 3,000-point set
    adapter = cls(dataset.distance, **build)
    adapter.fit(dataset.train)
    adapter.set_query_params(**query)
    search = FilteredSearch(adapter, Strategy.POST)
    search.fit_attributes(dataset.filters.attributes)
    scores, _ = quality(dataset, _answers(search, dataset), K)
    assert scores["filter_violations"] == 0
    assert scores["recall"] >= 0.5, scores  # approximate indexes: only that the strategy delivers matches


def test_hnswlib_answers_a_query_for_the_whole_index(dataset) -> None:
    # the post-filter's last round asks for every point; hnswlib raises where it finds fewer than k
    cls = load_adapter("hnswlib", paths.algorithm_dirs(None))
    adapter = cls(dataset.distance, M=8, ef_construction=20)
    adapter.fit(dataset.train)
    adapter.set_query_params(ef=10)
    ids = np.asarray(adapter.query(dataset.test[0], len(dataset.train))).ravel()
    assert len(ids) >= len(dataset.train) // 2 and len(np.unique(ids)) == len(ids)
