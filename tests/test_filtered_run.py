"""Filtered search, run side: native filtering and the harness's post-filter strategy, through run.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import call, write_backend
from test_filtered import random_filtered

from annbench.analyse.frames import pareto_frame, results_frame
from annbench.backends.discovery import load_adapter
from annbench.backends.filtering import FilteredSearch, Strategy
from annbench.cli.run import main as run_main
from annbench.core import paths
from annbench.datasets.attributes import Filters
from annbench.datasets.format import load_dataset, write_dataset
from annbench.quality.filtered import filtered_knn
from annbench.quality.predicates import AttributeIndex, Attributes, predicates
from annbench.store.folder import read_arrays

ADAPTER = """import numpy as np
from annbench.backends.adapter import Adapter


class {cls}(Adapter):
    native_metrics = {{"euclidean": "l2"}}
    filters = {filters}

    def fit(self, X):
        self.x = np.array(X)

    def fit_attributes(self, attrs):
        self.attrs = attrs

    def query(self, q, k):
        return np.argsort(((self.x - q) ** 2).sum(axis=1), kind="stable")[:k]

    def filtered_query(self, q, k, predicate):
        return self.query(q, k)  # ignores the predicate: every non-matching id is a violation
"""


@pytest.fixture(scope="module")
def filtered_path(tmp_path_factory) -> Path:
    train, test, tags, values, qt, ranges = random_filtered(n=1500, nq=50)
    ids, d, sel = filtered_knn(train, test, "euclidean", predicates(qt, ranges),
                               AttributeIndex(Attributes(tags, values)), 100)
    return write_dataset(tmp_path_factory.mktemp("filtered") / "filtered-small.hdf5", train=train, test=test,
                         distance="euclidean", neighbors=ids, distances=d,
                         filters=Filters(tags, qt, sel, values, ranges))


def _run(path: Path, results: Path, *args: str):
    return call(run_main, "--dataset", path, "--runs", 1, "--min-pass-time", 0, "--warmup", "none", "--no-plot",
                "--results", results, *args)


def test_native_and_post_filtered_bruteforce_have_the_same_front(filtered_path: Path, results_dir: Path) -> None:
    assert _run(filtered_path, results_dir, "--algorithm", "bruteforce").code == 0
    r = _run(filtered_path, results_dir, "--algorithm", "bruteforce", "--filter-strategy", "post", "--table", "runs")
    assert r.code == 0, r.err
    assert "bruteforce+post" in r.out and "strategy" in r.out and "filter_violations" in r.out
    frame = results_frame(results_dir, "filtered-small")
    assert sorted(zip(frame["algorithm"], frame["strategy"])) == [("bruteforce", "native"), ("bruteforce+post", "post")]
    front = pareto_frame(frame, "recall", "qps")
    assert front["recall"].tolist() == [1.0, 1.0] and front["id_recall"].tolist() == [1.0, 1.0]
    assert (frame["filter_violations"] == 0).all()
    native, post = (read_arrays(p)["neighbors"] for p in frame.sort_values("algorithm")["path"])
    assert np.array_equal(native, post)


def test_post_filter_strategy_answers_exactly_over_an_exact_search(filtered_path: Path) -> None:
    ds = load_dataset(filtered_path)
    cls = load_adapter("bruteforce", paths.algorithm_dirs(None))
    calls = []
    inner = cls("euclidean")
    inner.fit(ds.train)
    plain = inner.query
    inner.query = lambda q, k: calls.append(k) or plain(q, k)  # type: ignore[method-assign]
    search = FilteredSearch(inner, Strategy.POST)
    search.fit_attributes(ds.filters.attributes)
    k, n = 10, len(ds.train)
    for i, (q, p) in enumerate(zip(ds.test, ds.filters.predicates)):
        calls.clear()
        got = search.query((q, p), k)
        m = int(round(ds.filters.selectivity[i] * n))
        want = ds.neighbors[i, :min(k, m)]
        assert np.array_equal(np.sort(got), np.sort(want)), (i, p)
        if m == 0 and ds.filters.index.estimate(p) == 0:
            assert calls == []  # the index shows no point can match: no search
        elif calls:
            est = ds.filters.index.estimate(p)
            assert calls[0] == min(n, max(k, int(np.ceil(k / est))))  # k' = ceil(k / s) first
            assert all(b == min(n, 2 * a) for a, b in zip(calls, calls[1:]))  # then doubled
            assert len(got) == min(k, m) and (len(calls) == 1 or calls[-1] == n or len(got) == k)


def test_violations_are_counted_and_warned(filtered_path: Path, results_dir: Path, tmp_path: Path) -> None:
    leaky = ADAPTER.format(cls="Leaky", filters=("tags", "range"))
    algos = configs = write_backend(tmp_path / "backends", "leaky", leaky, "  quick: {}")
    r = _run(filtered_path, results_dir, "--algorithm", "leaky", "--algorithms-dir", algos, "--configs-dir", configs)
    assert r.code == 0, r.err
    frame = results_frame(results_dir, "filtered-small")
    row = frame.iloc[0]
    ds = load_dataset(filtered_path)
    ids = read_arrays(row["path"])["neighbors"]
    expected = sum(int((~ds.filters.index.matches(p, ids[i][ids[i] >= 0])).sum())
                   for i, p in enumerate(ds.filters.predicates))
    assert row["filter_violations"] == expected > 0 and row["strategy"] == "native"
    assert f"warning: leaky returned {expected} ids failing their query's filter" in r.out
    assert row["recall"] < 1.0


def test_native_strategy_for_an_adapter_without_filters_is_a_user_error(filtered_path: Path, results_dir: Path) -> None:
    r = _run(filtered_path, results_dir, "--algorithm", "annoy", "--filter-strategy", "native")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert "--filter-strategy native with algorithm 'annoy': it does not filter natively" in r.err
    assert not list(results_dir.rglob("*.hdf5"))


def test_batch_mode_filters_each_query(filtered_path: Path, results_dir: Path) -> None:
    r = _run(filtered_path, results_dir, "--algorithm", "bruteforce", "--batch")
    assert r.code == 0, r.err
    frame = results_frame(results_dir, "filtered-small")
    assert frame["recall"].tolist() == [1.0] and frame["strategy"].tolist() == ["native"]
