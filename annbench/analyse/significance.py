"""Is A really faster than B at recall r? Paired tests on per-query latencies and bootstrap intervals.

For each recall level of the operating-point table, every pair of algorithms whose operating
points (fastest run with recall ≥ r) were measured in single-query mode is compared with the
Wilcoxon signed-rank test on their per-query latencies, queries as pairs (``scipy.stats.wilcoxon``,
two-sided), the p-values of one level Holm–Bonferroni corrected over its pairs. Each operating
point's QPS and recall get a 95 % bootstrap interval (``scipy.stats.bootstrap``, queries resampled,
1,000 resamples, percentile method, seeded). Batch-mode rows have no per-query latencies: "n/a".
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd
from scipy import stats

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


def paired_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the paired samples ``a``, ``b`` (one pair per query);
    1.0 when every difference is zero (nothing tells them apart)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not np.any(a != b):
        return 1.0
    return float(stats.wilcoxon(a, b, alternative="two-sided").pvalue)


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


def qps_interval(qps: float, latency_ns: np.ndarray, seed: int = SEED) -> tuple[float, float]:
    """Interval of an operating point's QPS: resampling queries, ``qps* = qps · mean(latency) /
    mean(latency*)`` (the pass-time QPS scaled as the resampled latencies scale)."""
    latency = np.asarray(latency_ns, dtype=np.float64)
    mean = latency.mean()
    return bootstrap_interval(latency, lambda s, axis=-1: qps * mean / np.mean(s, axis=axis), seed)


def recall_interval(recall: np.ndarray, seed: int = SEED) -> tuple[float, float]:
    """Interval of the mean of the per-query recalls."""
    return bootstrap_interval(recall, np.mean, seed)


def ranking(names: list[str], qps: list[float], p_adjusted: dict[frozenset, float], alpha: float = ALPHA) -> str:
    """``A > B ≈ C``: the algorithms by QPS, fastest first; ``>`` between neighbours only where their
    Holm-adjusted p-value is at most ``alpha``, otherwise ``≈``."""
    order = sorted(range(len(names)), key=lambda i: (-qps[i], names[i]))
    text = names[order[0]] if order else ""
    for prev, cur in zip(order, order[1:]):
        sign = ">" if p_adjusted.get(frozenset((names[prev], names[cur])), 1.0) <= alpha else "≈"
        text += f" {sign} {names[cur]}"
    return text


def significance_columns(points: pd.DataFrame, per_query: pd.DataFrame, level_col: str = "min_recall",
                         alpha: float = ALPHA, seed: int = SEED) -> pd.DataFrame:
    """``points`` (an operating-point table with each row's run ``path``) with ``qps_low`` /
    ``qps_high``, ``recall_low`` / ``recall_high`` (bootstrap intervals) and ``ranking`` (per level,
    the same on each of its rows; "n/a" for batch rows). ``per_query`` holds the rows of those runs
    (``path``, ``query``, ``recall``, ``latency_ns``), already restricted to the queries compared."""
    out = points.copy()
    for c in ("qps_low", "qps_high", "recall_low", "recall_high"):
        out[c] = np.nan
    out["ranking"] = NOT_APPLICABLE
    by_path = {p: g.sort_values("query") for p, g in per_query.groupby("path", sort=False)}
    for i, row in out.iterrows():
        part = by_path.get(row.get("path"))
        if part is None:
            continue
        out.loc[i, ["recall_low", "recall_high"]] = recall_interval(part["recall"].to_numpy(), seed)
        latency = part["latency_ns"].to_numpy()
        if not bool(row["batch"]) and len(latency) and not np.isnan(latency).any():
            out.loc[i, ["qps_low", "qps_high"]] = qps_interval(float(row["qps"]), latency, seed)
    group_cols = [c for c in ("dataset", "k", "host", level_col) if c in out]
    for _, level in out.groupby(group_cols, sort=False):
        timed = level[(~level["batch"].astype(bool)) & level["qps_low"].notna()]
        if timed.empty:
            continue
        names = [str(a) for a in timed["algorithm"]]
        latencies = {n: by_path[p]["latency_ns"].to_numpy() for n, p in zip(names, timed["path"])}
        pairs = list(itertools.combinations(names, 2))
        raw = np.array([paired_p_value(latencies[a], latencies[b]) for a, b in pairs])
        adjusted = dict(zip((frozenset(p) for p in pairs), holm(raw))) if pairs else {}
        text = ranking(names, [float(q) for q in timed["qps"]], adjusted, alpha)
        out.loc[timed.index, "ranking"] = text
    return out
