"""Pareto filter and operating points on hand-made point sets."""

from __future__ import annotations

import numpy as np
import pandas as pd

from annbench.analyse.frames import operating_points, pareto_frame, pareto_mask


def test_pareto_single_point() -> None:
    assert pareto_mask(np.array([0.5]), np.array([10.0])).tolist() == [True]


def test_pareto_dominated_and_frontier() -> None:
    x = np.array([0.9, 0.5, 0.8, 0.95, 0.7])
    y = np.array([100.0, 1000.0, 50.0, 10.0, 900.0])
    # (0.8, 50) is dominated by (0.9, 100); (0.7, 900) by nothing: 0.5 has 1000 but lower recall
    assert pareto_mask(x, y).tolist() == [True, True, False, True, True]


def test_pareto_ties_on_one_axis() -> None:
    # same recall: only the faster survives; same qps: only the more accurate survives
    x = np.array([0.9, 0.9, 0.8, 0.7])
    y = np.array([100.0, 200.0, 300.0, 300.0])
    assert pareto_mask(x, y).tolist() == [False, True, True, False]


def test_pareto_exact_duplicates_keep_one() -> None:
    x = np.array([0.9, 0.9, 0.5, 0.9])
    y = np.array([100.0, 100.0, 500.0, 100.0])
    mask = pareto_mask(x, y)
    assert mask.tolist() == [True, False, True, False]


def test_pareto_nan_never_optimal_and_lower_is_better() -> None:
    x = np.array([0.9, np.nan, 0.5])
    y = np.array([10.0, 1.0, 20.0])  # e.g. build seconds: smaller is better
    assert pareto_mask(x, y, y_higher=False).tolist() == [True, False, False]
    assert pareto_mask(x, y, y_higher=True).tolist() == [True, False, True]


def _frame(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame({
        "algorithm": [r[0] for r in rows], "batch": False, "status": "ok",
        "recall": [r[1] for r in rows], "qps": [r[2] for r in rows],
        "build_params": [f'{{"n":{i}}}' for i in range(len(rows))], "query_params": "{}",
        "build_s": [float(i) for i in range(len(rows))], "index_bytes": [100 * i for i in range(len(rows))],
    })


def test_pareto_frame_per_algorithm_skips_failed_runs() -> None:
    f = _frame([("a", 0.9, 100), ("a", 0.8, 50), ("b", 0.99, 10), ("b", 0.5, 20)])
    f.loc[3, "status"] = "error"
    front = pareto_frame(f, "recall", "qps")
    assert sorted(zip(front["algorithm"], front["recall"])) == [("a", 0.9), ("b", 0.99)]


def test_operating_points_best_qps_per_level() -> None:
    f = _frame([("a", 0.55, 900), ("a", 0.85, 400), ("a", 0.92, 100), ("a", 0.96, 30), ("a", 0.6, 1000),
                ("b", 0.999, 5)])
    ops = operating_points(f).set_index(["algorithm", "min_recall"])
    assert ops.loc[("a", 0.5), "qps"] == 1000 and ops.loc[("a", 0.5), "build_params"] == '{"n":4}'
    assert ops.loc[("a", 0.8), "qps"] == 400 and ops.loc[("a", 0.8), "index_bytes"] == 100
    assert ops.loc[("a", 0.9), "qps"] == 100
    assert ops.loc[("a", 0.95), "qps"] == 30 and ops.loc[("a", 0.95), "build_s"] == 3.0
    assert np.isnan(ops.loc[("a", 0.99), "qps"])  # never reached: an empty row, not a made-up one
    assert (ops.loc["b", "qps"] == 5).all()
