"""QPS compared across processes: the one rule by which annbench decides that one QPS differs from another.

Which process measures moves QPS on a VM by more than the passes of one process vary (README: What is
measured, ``--processes``), so a QPS difference counts only where it exceeds the process-to-process
noise. :func:`process_ratio` is that rule, written once: Welch's t on the logarithms of per-process
values. ``plot --operating-points --significance`` and the report's rankings apply it to the operating
points' ``qps_processes`` (:mod:`annbench.analyse.significance`), as do the operating-point table's bold and
the ``--ranks`` table (:mod:`annbench.report.summaries`: a best not significantly faster is a tie), and the
regression gate to its rounds, each the mean of its processes' QPS over the reference measured beside them in
the same process (:mod:`annbench.gate.verdicts`: the processes of a round share its build, so the rounds are
the independent values there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Default two-sided level of the interval and of significance (``p ≤ 1 − CONFIDENCE``).
CONFIDENCE = 0.95


@dataclass(frozen=True)
class ProcessRatio:
    """How ``now`` compares with ``then``, each a sample of per-process values (QPS or normalised QPS)."""

    ratio: float    # exp(mean ln now − mean ln then): > 1 faster now
    low: float      # its confidence interval
    high: float
    p_value: float  # two-sided, of "no difference"
    df: float       # Welch–Satterthwaite degrees of freedom

    def significant(self, alpha: float = 1 - CONFIDENCE) -> bool:
        return self.p_value <= alpha


def process_ratio(then: np.ndarray, now: np.ndarray, confidence: float = CONFIDENCE) -> ProcessRatio:
    """Welch's t on the logs of per-process values, ``x_i = ln then_i`` (n values), ``y_j = ln now_j`` (m):

    ``d = ȳ − x̄``, ``s² = var(x)/n + var(y)/m`` (ddof 1), Welch–Satterthwaite
    ``ν = s⁴ / ((var(x)/n)²/(n−1) + (var(y)/m)²/(m−1))``; ``ratio = exp(d)`` (the ratio of geometric means),
    interval ``exp(d ∓ t(½ + confidence/2, ν)·s)``, ``p = 2·(1 − T_ν(|d|/s))``
    (``scipy.stats.ttest_ind(equal_var=False)``). Logs, since a slowdown is a factor and process noise is
    multiplicative. Where both samples are constant (``s = 0``) the interval is the ratio itself and p is
    1 if they are equal, else 0. Each side needs at least two positive values (ValueError otherwise).
    """
    a, b = np.asarray(then, dtype=np.float64), np.asarray(now, dtype=np.float64)
    if len(a) < 2 or len(b) < 2 or not (np.isfinite(a) & (a > 0)).all() or not (np.isfinite(b) & (b > 0)).all():
        raise ValueError(f"process_ratio needs at least 2 positive values on each side, got {a.tolist()} and "
                         f"{b.tolist()}")
    x, y = np.log(a), np.log(b)
    d = float(y.mean() - x.mean())
    if x.var() == 0 and y.var() == 0:
        return ProcessRatio(float(np.exp(d)), float(np.exp(d)), float(np.exp(d)), 1.0 if d == 0 else 0.0,
                            float(len(x) + len(y) - 2))
    res = stats.ttest_ind(y, x, equal_var=False)
    ci = res.confidence_interval(confidence)
    return ProcessRatio(float(np.exp(d)), float(np.exp(ci.low)), float(np.exp(ci.high)), float(res.pvalue),
                        float(res.df))


def process_values(value: object) -> np.ndarray:
    """A run's stored ``qps_processes`` (a JSON list, or a list) as an array; empty where absent."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return np.empty(0)
    if not isinstance(value, (list, tuple, np.ndarray)):
        return np.empty(0)
    return np.asarray(value, dtype=np.float64)
