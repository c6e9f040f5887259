"""Is A really faster than B at recall r? Intervals and rankings of the operating points.

For each recall level of the operating-point table, every pair of operating points (fastest run with
recall ≥ r) measured in at least two processes is compared by
:func:`annbench.analyse.processes.process_ratio` (the one rule annbench compares QPS by), the p-values
of one level Holm–Bonferroni corrected over its pairs; each point's QPS interval is the process interval
stored with the run (``qps_ci95_low`` .. ``qps_ci95_high``). A run measured in one process has no
process noise to test against: "n/a". Recall gets a 95 % bootstrap interval (``scipy.stats.bootstrap``,
queries resampled, 1,000 resamples, percentile method, seeded): the answers do not vary by process.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Hashable, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from annbench.analyse.processes import process_ratio, process_values

log = logging.getLogger(__name__)

ALPHA = 0.05
RESAMPLES = 1000
CONFIDENCE = 0.95
SEED = 0
NOT_APPLICABLE = "n/a"


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (scipy has no Holm; its ``false_discovery_control`` is BH/BY):
    with ``p_(1) ≤ … ≤ p_(m)`` sorted, ``adj_(i) = min(1, max_{j ≤ i} (m − j + 1) · p_(j))``.
    Reject hypothesis i at level α iff ``adj_i ≤ α``."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    out = np.empty_like(p)
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def bootstrap_interval(values: np.ndarray, statistic, seed: int = SEED) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of ``statistic(sample)`` over resamples of ``values``
    (``scipy.stats.bootstrap``, 1,000 resamples, ``rng`` seeded); a constant sample gives
    ``(v, v)``."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    if np.all(values == values[0]):
        v = float(statistic(values[None, :], axis=-1)[0])
        return v, v
    res = stats.bootstrap((values,), statistic, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                          method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def recall_interval(recall: np.ndarray, seed: int = SEED) -> tuple[float, float]:
    """Interval of the mean of the per-query recalls."""
    return bootstrap_interval(recall, np.mean, seed)


def process_points(qps: float, per: np.ndarray) -> np.ndarray:
    """A point's per-process QPS at its ``qps``: a run's stored ``qps_processes`` scaled by ``qps / their mean``
    (the same where the point is the run; a difficulty subset's or a filter band's QPS is apportioned from the
    run's by latency, and its process values with it). Empty where fewer than 2 values or ``qps`` is not finite:
    such a point cannot be tested against any other."""
    per = np.asarray(per, dtype=np.float64)
    if len(per) < 2 or not np.isfinite(qps) or not (np.isfinite(per) & (per > 0)).all():
        return np.empty(0)
    return per * (float(qps) / float(per.mean()))


def pair_tests(values: Mapping[Hashable, np.ndarray]) -> dict[tuple[Hashable, Hashable], tuple[float, float]]:
    """Every pair ``(a, b)`` of points with at least 2 process values each (in ``values``' order) compared by
    :func:`annbench.analyse.processes.process_ratio`: its ratio (b's QPS over a's) and its p-value
    Holm-adjusted over all the pairs tested."""
    names = [n for n, v in values.items() if len(v) >= 2]
    pairs = list(itertools.combinations(names, 2))
    if not pairs:
        return {}
    tests = [process_ratio(values[a], values[b]) for a, b in pairs]
    adjusted = holm(np.array([t.p_value for t in tests]))
    return {pair: (t.ratio, float(p)) for pair, t, p in zip(pairs, tests, adjusted)}


def faster(values: Mapping[Hashable, np.ndarray], alpha: float = ALPHA) -> set[tuple[Hashable, Hashable]]:
    """``(a, b)`` for every pair where a's QPS is significantly higher than b's by the one rule
    (:func:`pair_tests`: ``process_ratio`` on their per-process QPS, Holm-adjusted ``p ≤ alpha``). A point
    with fewer than 2 process values is in no pair: measured in one process, it cannot be told apart from
    any other."""
    return {(b, a) if ratio > 1 else (a, b) for (a, b), (ratio, p) in pair_tests(values).items() if p <= alpha}


def ranking(names: list[str], qps: list[float], p_adjusted: dict[frozenset, float], alpha: float = ALPHA) -> str:
    """``A > B ≈ C``: the algorithms by QPS, fastest first; ``>`` between neighbours only where their
    Holm-adjusted p-value is at most ``alpha``, otherwise ``≈``."""
    order = sorted(range(len(names)), key=lambda i: (-qps[i], names[i]))
    text = names[order[0]] if order else ""
    for prev, cur in zip(order, order[1:]):
        sign = ">" if p_adjusted.get(frozenset((names[prev], names[cur])), 1.0) <= alpha else "≈"
        text += f" {sign} {names[cur]}"
    return text


def significance_columns(points: pd.DataFrame, per_query: pd.DataFrame, runs: pd.DataFrame | None = None,
                         level_col: str = "min_recall", alpha: float = ALPHA, seed: int = SEED) -> pd.DataFrame:
    """``points`` (an operating-point table with each row's run ``path``) with ``qps_low`` / ``qps_high`` (the
    run's process interval), ``recall_low`` / ``recall_high`` (bootstrap interval) and ``ranking`` (per level
    and mode, the same on each of its rows; "n/a" for a run measured in one process). ``runs`` holds the runs
    by ``path`` with ``qps_processes``, ``qps_ci95_low``, ``qps_ci95_high`` (default: ``points``); where a
    point's ``qps`` differs from its run's process mean (a difficulty subset's QPS, apportioned by latency),
    the process values and interval are scaled by the same factor. ``per_query`` holds the rows of those
    runs (``path``, ``query``, ``recall``), already restricted to the queries compared."""
    out = points.copy()
    for c in ("qps_low", "qps_high", "recall_low", "recall_high"):
        out[c] = np.nan
    out["ranking"] = NOT_APPLICABLE
    by_path = {p: g.sort_values("query") for p, g in per_query.groupby("path", sort=False)}
    source = (runs if runs is not None else points).drop_duplicates("path").set_index("path")
    per_point: dict[object, np.ndarray] = {}
    for i, row in out.iterrows():
        part = by_path.get(row.get("path"))
        if part is not None:
            out.loc[i, ["recall_low", "recall_high"]] = recall_interval(part["recall"].to_numpy(), seed)
        run = source.loc[row["path"]] if row.get("path") in source.index else None
        per = process_values(run.get("qps_processes")) if run is not None else np.empty(0)
        if not len(at := process_points(float(row["qps"]), per)):
            continue
        per_point[i] = at
        scale = float(row["qps"]) / float(per.mean())
        out.loc[i, ["qps_low", "qps_high"]] = [float(run["qps_ci95_low"]) * scale, float(run["qps_ci95_high"]) * scale]
    group_cols = [c for c in ("dataset", "k", "host", "batch", level_col) if c in out]
    for _, level in out.groupby(group_cols, sort=False):
        tested = level[level.index.isin(list(per_point))]
        if tested.empty:
            continue
        names = [str(a) for a in tested["algorithm"]]
        values = dict(zip(names, (per_point[i] for i in tested.index)))
        adjusted = {frozenset(pair): p for pair, (_, p) in pair_tests(values).items()}
        out.loc[tested.index, "ranking"] = ranking(names, [float(q) for q in tested["qps"]], adjusted, alpha)
    return out
