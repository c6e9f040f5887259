"""Filtered runs by selectivity band: per-query selectivity, band metrics, the views, tables and report section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import call
from test_filtered import random_filtered

from annbench.analyse.filtered import band_labels, band_of, band_runs, parse_edges, qps_at_recall
from annbench.analyse.frames import results_frame
from annbench.analyse.perquery import per_query_frame
from annbench.cli.plot import main as plot_main
from annbench.cli.run import main as run_main
from annbench.core.errors import UserError
from annbench.datasets.attributes import Filters
from annbench.datasets.format import load_dataset, write_dataset
from annbench.quality.filtered import filtered_knn
from annbench.quality.predicates import AttributeIndex, Attributes, predicates

NAME = "filtered-views"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, Path]:
    """A filtered dataset in a data folder and the results of bruteforce (native) and annoy (post) on it."""
    root = tmp_path_factory.mktemp("views")
    train, test, tags, values, qt, ranges = random_filtered(n=2000, nq=80, seed=5)
    ids, d, sel = filtered_knn(train, test, "euclidean", predicates(qt, ranges),
                               AttributeIndex(Attributes(tags, values)), 100)
    write_dataset(root / "data" / f"{NAME}.hdf5", train=train, test=test, distance="euclidean", neighbors=ids,
                  distances=d, filters=Filters(tags, qt, sel, values, ranges))
    r = call(run_main, "--dataset", NAME, "--data-dir", root / "data", "--results", root / "results",
             "--algorithm", "bruteforce,annoy", "--runs", 1, "--min-pass-time", 0, "--warmup", "none", "--no-plot",
             "--executor", "inprocess")  # views of stored results: not about isolation
    assert r.code == 0, r.err
    return root / "data", root / "results"


def test_edges_and_labels() -> None:
    edges = parse_edges("0.1,1,10")
    assert edges == (0.001, 0.01, 0.1)
    assert band_labels(edges) == ["<0.1%", "0.1-1%", "1-10%", ">=10%"]
    assert band_of(np.array([0.0, 0.0009, 0.001, 0.05, 0.1, 1.0]), edges).tolist() == [0, 0, 1, 2, 3, 3]
    for bad in ("10,1", "0", "x", "50,100"):
        with pytest.raises(UserError, match="increasing percentages"):
            parse_edges(bad)


def test_per_query_selectivity_and_band_metrics(sweep) -> None:
    data, results = sweep
    runs = results_frame(results, NAME)
    ds = load_dataset(data / f"{NAME}.hdf5")
    pq = per_query_frame(ds, runs)
    assert {"selectivity", "filter_violations"} <= set(pq.columns)
    for path, part in pq.groupby("path"):
        run = runs[runs["path"] == path].iloc[0]
        assert part["recall"].mean() == pytest.approx(run["recall"], abs=1e-12)  # per-query means = the run's
        assert np.array_equal(part.sort_values("query")["selectivity"].to_numpy(), ds.filters.selectivity)
    banded = band_runs(runs, pq)
    which = band_of(ds.filters.selectivity, (0.001, 0.01, 0.1))
    for _, row in banded.iterrows():
        mine = pq[(pq["path"] == row["path"]) & (which[pq["query"]] == row["band_index"])]
        assert row["n_subset"] == len(mine) and row["recall"] == pytest.approx(mine["recall"].mean())
        total = pq[pq["path"] == row["path"]]["latency_ns"].sum()
        share = mine["latency_ns"].sum() / total
        run = runs[runs["path"] == row["path"]].iloc[0]
        assert row["qps"] == pytest.approx(run["qps"] * (len(mine) / len(ds.test)) / share)  # latency share
    table = qps_at_recall(banded, 0.9)
    brute = table[table["algorithm"] == "bruteforce"]
    assert (brute["recall"] == 1.0).all() and len(brute) == banded["band"].nunique()


def test_views_tables_and_report(sweep, tmp_path: Path) -> None:
    data, results = sweep
    r = call(plot_main, "--results", results, "--data-dir", data, "--view", "bands,selectivity",
             "--output", tmp_path / "f.png")
    assert r.code == 0, r.err
    assert (tmp_path / f"f-{NAME}-bands.png").stat().st_size > 0
    assert (tmp_path / f"f-{NAME}-selectivity.png").stat().st_size > 0
    r = call(plot_main, "--results", results, "--data-dir", data, "--operating-points", "text", "--by-band",
             "--selectivity-bands", "1,10")
    assert r.code == 0, r.err
    assert r.out.count("best qps at recall >= r on them") == 3  # <1%, 1-10%, >=10%
    assert "selectivity <1%" in r.out and "annoy+post" in r.out
    r = call(plot_main, "--results", results, "--table", "text")
    assert r.code == 0 and "strategy" in r.out and "filter_violations" in r.out and "annoy+post" in r.out
    r = call(plot_main, "--results", results, "--data-dir", data, "--report", tmp_path / "site")
    assert r.code == 0, r.err
    page = (tmp_path / "site" / NAME / "index.html").read_text()
    assert "Filtered search by selectivity" in page and "k10-single-bands.svg" in page
    assert (tmp_path / "site" / NAME / "k10-single-qps-by-selectivity.svg").is_file()


def test_bad_band_options_are_one_line_errors(sweep) -> None:
    data, results = sweep
    r = call(plot_main, "--results", results, "--data-dir", data, "--view", "bands", "--selectivity-bands", "10,1")
    assert r.code == 2 and "increasing percentages" in r.err and "Traceback" not in r.err
    r = call(plot_main, "--results", results, "--data-dir", data, "--by-band")
    assert r.code == 2 and "--by-band applies to --operating-points" in r.err
