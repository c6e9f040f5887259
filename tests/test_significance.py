"""Significance at matched recall: Holm's correction, the process-level test every QPS comparison uses
(hand-computed cases), bootstrap intervals of recall, and plot.py --operating-points --significance on stored
runs."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pandas as pd
import pytest
from conftest import call

from annbench.analyse import processes as P
from annbench.analyse import significance as S


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3·0.01 = 0.03, 2·0.03 = 0.06, max(0.06, 1·0.04) = 0.06
    assert np.allclose(S.holm(np.array([0.01, 0.04, 0.03])), [0.03, 0.06, 0.06])
    assert np.allclose(S.holm(np.array([0.5, 0.9])), [1.0, 1.0])  # capped at 1
    assert np.allclose(S.holm(np.array([0.02])), [0.02])


def test_process_ratio_by_hand():
    from scipy.stats import t

    # ln then = [0, 0.2], ln now = [0.1, 0.5]: means 0.1 and 0.3, variances 0.02 and 0.08 (ddof 1), n = m = 2:
    # d = 0.2, s² = 0.02/2 + 0.08/2 = 0.05, ν = 0.05² / (0.01²/1 + 0.04²/1) = 0.0025 / 0.0017 = 1.470588...,
    # t = d / s = 0.2 / 0.2236068 = 0.8944272
    r = P.process_ratio(np.exp([0.0, 0.2]), np.exp([0.1, 0.5]))
    nu = 0.0025 / 0.0017
    assert r.df == pytest.approx(nu) and r.ratio == pytest.approx(np.exp(0.2))
    assert r.p_value == pytest.approx(2 * t.sf(0.2 / np.sqrt(0.05), nu))
    half = t.ppf(0.975, nu) * np.sqrt(0.05)
    assert (r.low, r.high) == (pytest.approx(np.exp(0.2 - half)), pytest.approx(np.exp(0.2 + half)))
    assert not r.significant()
    # the sides swapped: the reciprocal ratio and interval, the same p
    back = P.process_ratio(np.exp([0.1, 0.5]), np.exp([0.0, 0.2]))
    assert back.ratio == pytest.approx(1 / r.ratio) and back.low == pytest.approx(1 / r.high)
    assert back.p_value == pytest.approx(r.p_value)


def test_process_ratio_needs_the_difference_to_exceed_the_process_noise():
    # the same 10 % drop: significant when the processes agree to 1 %, not when they spread by 15 %
    quiet = P.process_ratio([100.0, 101.0, 99.0, 100.5], [90.0, 91.0, 89.0, 90.5])
    assert quiet.ratio == pytest.approx(0.9, abs=0.001) and quiet.significant() and quiet.high < 1
    noisy = P.process_ratio([100.0, 118.0, 85.0, 100.0], [90.0, 106.0, 76.0, 90.0])
    assert noisy.ratio == pytest.approx(0.9, abs=0.005) and not noisy.significant() and noisy.high > 1
    # constant samples: no noise at all, the ratio is exact
    assert P.process_ratio([5.0, 5.0], [5.0, 5.0]) == P.ProcessRatio(1.0, 1.0, 1.0, 1.0, 2.0)
    assert P.process_ratio([5.0, 5.0], [10.0, 10.0]).p_value == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        P.process_ratio([5.0], [5.0, 6.0])
    with pytest.raises(ValueError, match="positive"):
        P.process_ratio([5.0, 0.0], [5.0, 6.0])


def test_recall_interval_is_seeded_and_covers_the_mean():
    recall = np.r_[np.ones(900), np.full(100, 0.5)]
    low, high = S.recall_interval(recall)
    assert low < recall.mean() < high and high - low < 0.05 and (low, high) == S.recall_interval(recall)
    assert S.recall_interval(np.ones(50)) == (1.0, 1.0)


def test_ranking_text():
    adjusted = {frozenset(("a", "b")): 0.001, frozenset(("b", "c")): 0.3, frozenset(("a", "c")): 0.001}
    assert S.ranking(["c", "a", "b"], [10.0, 30.0, 20.0], adjusted) == "a > b ≈ c"


# -- end to end: stored runs with known latencies ------------------------------------------------------------

@pytest.fixture
def timed_runs(data_dir, tmp_path):
    """Runs on random-xs-20-euclidean, mostly exact answers, each measured in 4 processes whose QPS spread by
    ~3 %: 'fast', 'twin' (the same cost, other processes), 'slow' (1.25× the cost); in batch mode 'fast' in
    4 processes and 'lone' in one (no process values); stored as run.py stores them."""
    from annbench.core.results import RunKey, RunResult
    from annbench.datasets.registry import load
    from annbench.execute.evaluate import process_speed, quality, speed
    from annbench.execute.measure import PassMeasurement
    from annbench.store.folder import ResultStore

    ds = load("random-xs-20-euclidean", data_dir)
    store = ResultStore(tmp_path / "results")
    rng = np.random.default_rng(2)
    ids = np.ascontiguousarray(ds.neighbors[:, :10])
    ids[:100, 9] = ds.neighbors[:100, 50]  # some misses, so recall varies across queries
    base = rng.lognormal(np.log(100_000), 0.5, len(ds.test))  # each query's cost in ns, the same in every run
    for name, cost, batch, processes in (("fast", 1.0, False, 4), ("twin", 1.0, False, 4), ("slow", 1.25, False, 4),
                                         ("fast", 1.0, True, 4), ("lone", 1.0, True, 1)):
        ms = []
        for _ in range(processes):
            lat = (cost * base * rng.lognormal(0, 0.03)).astype(np.int64)  # the process's speed: ±3 %
            ms.append(PassMeasurement(ids, None if batch else lat, np.array([lat.sum() + 50_000]), 0))
        metrics, found_d = quality(ds, ids, 10)
        attrs = {"dataset_checksum": ds.checksum, "n_queries": len(ds.test)}
        if processes > 1:
            speeds, more = process_speed(ms)
            attrs.update(more)
        else:
            speeds = speed(ms[0])
        metrics.update(speeds)
        key = RunKey(ds.name, 10, name, batch, {}, {}, 1)
        store.write(RunResult(key, "ok", metrics=metrics, attrs=attrs, neighbors=ids.astype(np.int32),
                              distances=found_d.astype(np.float32), latencies_ns=ms[0].latencies_ns,
                              pass_times_ns=np.concatenate([m.pass_times_ns for m in ms])))
    return tmp_path / "results"


def test_operating_points_with_significance(timed_runs, data_dir):
    from annbench.cli.plot import main as plot

    r = call(plot, "--results", timed_runs, "--data-dir", data_dir, "--operating-points", "csv", "--significance")
    assert r.code == 0, r.err
    table = pd.read_csv(StringIO(r.out))
    single = table[~table["batch"]]
    assert set(single["ranking"]) == {"fast ≈ twin > slow"} or set(single["ranking"]) == {"twin ≈ fast > slow"}
    # the QPS interval is the process interval stored with the run
    from annbench.analyse.frames import results_frame

    runs = results_frame(timed_runs).set_index("algorithm")
    stored = runs[~runs["batch"].astype(bool)]
    for _, row in single.iterrows():
        assert row["qps_low"] == pytest.approx(stored.loc[row["algorithm"], "qps_ci95_low"])
        assert row["qps_high"] == pytest.approx(stored.loc[row["algorithm"], "qps_ci95_high"])
    assert ((single["qps_low"] < single["qps"]) & (single["qps"] < single["qps_high"])).all()
    assert ((single["recall_low"] < single["recall"]) & (single["recall"] < single["recall_high"])).all()
    r = call(plot, "--results", timed_runs, "--data-dir", data_dir, "--operating-points", "csv", "--significance",
             "--batch")
    batch = pd.read_csv(StringIO(r.out), keep_default_na=False, na_values=[""]).set_index("algorithm")
    # batch mode is tested as single-query mode is; a run measured in one process has no process noise: n/a
    assert set(batch.loc["fast", "ranking"]) == {"fast"} and batch.loc["fast", "qps_low"].notna().all()
    assert (batch.loc["lone", "ranking"] == "n/a").all() and batch.loc["lone", "qps_low"].isna().all()
    assert batch["recall_low"].notna().all()
    r = call(plot, "--results", timed_runs, "--data-dir", data_dir, "--significance")
    assert r.code == 2 and "--significance applies to --operating-points" in r.err


def test_operating_point_table_and_ranks_use_the_process_rule(timed_runs):
    """The pivot's bold and --ranks read the stored runs' process values: fast and twin (the same cost, other
    processes) tie, both bold and both first; slow is neither; in batch mode the lone run (one process) cannot
    be told apart from fast, so it ties too. The long layout carries the process interval."""
    from annbench.cli.plot import main as plot

    def bold(*extra: str) -> dict[str, bool]:
        r = call(plot, "--results", timed_runs, "--operating-points", "md", *extra)
        assert r.code == 0, r.err
        rows = [line.split("|") for line in r.out.split("\n\n")[1].splitlines()[2:]]
        return {cells[1].strip(): "**" in cells[2] for cells in rows}  # recall>=0.5, reached by every run

    assert bold() == {"fast": True, "slow": False, "twin": True}
    assert bold("--batch") == {"fast (batch)": True, "lone (batch)": True}
    # the long layout shows each point's process interval (a run of one process has none)
    long = pd.read_csv(StringIO(call(plot, "--results", timed_runs, "--operating-points", "csv").out))
    assert ((long["qps_ci95_low"] < long["qps"]) & (long["qps"] < long["qps_ci95_high"])).all()
    lone = pd.read_csv(StringIO(call(plot, "--results", timed_runs, "--operating-points", "csv", "--batch").out))
    assert lone.set_index("algorithm").loc["lone", "qps_ci95_low"].isna().all()
    r = call(plot, "--results", timed_runs, "--ranks", "csv")
    ranks = pd.read_csv(StringIO(r.out))
    at = ranks[ranks["min_recall"] == 0.5].set_index("algorithm")["random-xs-20-euclidean rank"]
    assert at.to_dict() == {"fast": 1, "twin": 1, "slow": 3}


def test_significance_on_the_hard_subset(timed_runs, data_dir):
    from annbench.cli.plot import main as plot

    r = call(plot, "--results", timed_runs, "--data-dir", data_dir, "--operating-points", "md", "--significance",
             "--difficulty", "rc", "--subset", "hard", "--quantile", "0.3")
    assert r.code == 0, r.err
    assert "fast ≈ twin > slow" in r.out or "twin ≈ fast > slow" in r.out
