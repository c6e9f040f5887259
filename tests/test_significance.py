"""Significance at matched recall: Holm's correction, the paired Wilcoxon test on per-query latencies,
bootstrap intervals, and plot.py --operating-points --significance on stored runs."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pandas as pd
import pytest

from annbench.analyse import significance as S
from tests.conftest import call


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3·0.01 = 0.03, 2·0.03 = 0.06, max(0.06, 1·0.04) = 0.06
    assert np.allclose(S.holm(np.array([0.01, 0.04, 0.03])), [0.03, 0.06, 0.06])
    assert np.allclose(S.holm(np.array([0.5, 0.9])), [1.0, 1.0])  # capped at 1
    assert np.allclose(S.holm(np.array([0.02])), [0.02])


def _latencies(seed: int, n: int = 1000) -> tuple[np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    return rng.lognormal(np.log(100_000), 0.5, n), rng  # per-query cost in ns, varying across queries


def test_a_real_twofold_difference_is_found_and_identical_runs_are_not():
    base, rng = _latencies(0)
    a = base * rng.lognormal(0, 0.1, len(base))
    twice = 2 * base * rng.lognormal(0, 0.1, len(base))
    twin = base * rng.lognormal(0, 0.1, len(base))  # same cost, another measurement's noise
    assert S.paired_p_value(a, twice) < 1e-10
    assert S.paired_p_value(a, a) == 1.0
    assert S.paired_p_value(a, twin) > 0.05
    p = S.holm(np.array([S.paired_p_value(x, y) for x, y in ((a, twice), (a, twin), (twin, twice))]))
    assert p[0] <= S.ALPHA and p[2] <= S.ALPHA and p[1] > S.ALPHA


def test_bootstrap_intervals_are_seeded_and_cover_the_estimate():
    base, _ = _latencies(1)
    low, high = S.qps_interval(1e4, base)
    assert low < 1e4 < high and (low, high) == S.qps_interval(1e4, base)
    recall = np.r_[np.ones(900), np.full(100, 0.5)]
    low, high = S.recall_interval(recall)
    assert low < recall.mean() < high and high - low < 0.05
    assert S.recall_interval(np.ones(50)) == (1.0, 1.0)


def test_ranking_text():
    adjusted = {frozenset(("a", "b")): 0.001, frozenset(("b", "c")): 0.3, frozenset(("a", "c")): 0.001}
    assert S.ranking(["c", "a", "b"], [10.0, 30.0, 20.0], adjusted) == "a > b ≈ c"


# -- end to end: stored runs with known latencies ------------------------------------------------------------

@pytest.fixture
def timed_runs(data_dir, tmp_path):
    """Four runs on random-xs-20-euclidean, mostly exact answers: 'fast', 'twin' (the same measurement
    stored again), 'slow' (twice the cost, its own noise) and a batch run; stored as run.py stores them."""
    from annbench.core.results import RunKey, RunResult
    from annbench.datasets.registry import load
    from annbench.execute.evaluate import quality, speed
    from annbench.execute.measure import PassMeasurement
    from annbench.store.folder import ResultStore

    ds = load("random-xs-20-euclidean", data_dir)
    store = ResultStore(tmp_path / "results")
    base, rng = _latencies(2, len(ds.test))
    ids = np.ascontiguousarray(ds.neighbors[:, :10])
    ids[:100, 9] = ds.neighbors[:100, 50]  # some misses, so recall varies across queries
    fast = (base * rng.lognormal(0, 0.1, len(base))).astype(np.int64)
    slow = (2 * base * rng.lognormal(0, 0.1, len(base))).astype(np.int64)
    for name, lat, batch in (("fast", fast, False), ("twin", fast, False), ("slow", slow, False), ("fast", fast, True)):
        m = PassMeasurement(ids, None if batch else lat, np.array([lat.sum() + 50_000]), 0)
        metrics, found_d = quality(ds, ids, 10)
        metrics.update(speed(m))
        key = RunKey(ds.name, 10, name, batch, {}, {}, 1)
        store.write(RunResult(key, "ok", metrics=metrics, attrs={"dataset_checksum": ds.checksum,
                                                                 "n_queries": len(ds.test)},
                              neighbors=ids.astype(np.int32), distances=found_d.astype(np.float32),
                              latencies_ns=m.latencies_ns, pass_times_ns=m.pass_times_ns))
    return tmp_path / "results"


def test_operating_points_with_significance(timed_runs, data_dir):
    from annbench.cli.plot import main as plot

    r = call(plot, "--results", timed_runs, "--data-dir", data_dir, "--operating-points", "csv", "--significance")
    assert r.code == 0, r.err
    table = pd.read_csv(StringIO(r.out))
    single = table[~table["batch"]]
    assert set(single["ranking"]) == {"fast ≈ twin > slow"}
    assert ((single["qps_low"] < single["qps"]) & (single["qps"] < single["qps_high"])).all()
    assert ((single["recall_low"] < single["recall"]) & (single["recall"] < single["recall_high"])).all()
    r = call(plot, "--results", timed_runs, "--data-dir", data_dir, "--operating-points", "csv", "--significance",
             "--batch")
    batch = pd.read_csv(StringIO(r.out), keep_default_na=False, na_values=[""])  # "n/a" stays text
    assert (batch["ranking"] == "n/a").all() and batch["qps_low"].isna().all() and batch["recall_low"].notna().all()
    r = call(plot, "--results", timed_runs, "--data-dir", data_dir, "--significance")
    assert r.code == 2 and "--significance applies to --operating-points" in r.err


def test_significance_on_the_hard_subset(timed_runs, data_dir):
    from annbench.cli.plot import main as plot

    r = call(plot, "--results", timed_runs, "--data-dir", data_dir, "--operating-points", "md", "--significance",
             "--difficulty", "rc", "--subset", "hard", "--quantile", "0.3")
    assert r.code == 0, r.err
    assert "fast ≈ twin > slow" in r.out
