"""Filtered runs by selectivity band: where does each index break down as the filter narrows?

A **band** is a range of query selectivity (the fraction of train points matching the query's
predicate); the default edges 0.1 %, 1 % and 10 % give the bands < 0.1 %, 0.1–1 %, 1–10 % and ≥ 10 %.
Each run's metrics are recomputed on each band's queries with
:func:`annbench.analyse.perquery.subset_runs` (quality: the band's mean; single-query QPS: the run's QPS
apportioned by the band's share of the summed latencies; batch mode: the whole batch's QPS).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from annbench.analyse.frames import operating_points
from annbench.analyse.perquery import subset_runs
from annbench.core.errors import UserError

#: Band edges as fractions (< 0.1 %, 0.1–1 %, 1–10 %, ≥ 10 %).
DEFAULT_EDGES = (0.001, 0.01, 0.1)
#: Recall of the QPS-against-selectivity view.
DEFAULT_RECALL = 0.9


def parse_edges(text: str) -> tuple[float, ...]:
    """``--selectivity-bands 0.1,1,10``: increasing edges in percent (a ``%`` allowed), each in (0, 100)."""
    try:
        edges = tuple(float(t.strip().rstrip("%")) / 100 for t in text.split(",") if t.strip())
    except ValueError:
        edges = ()
    if not edges or any(not 0 < e < 1 for e in edges) or any(b <= a for a, b in zip(edges, edges[1:])):
        raise UserError(f"--selectivity-bands {text!r}; valid: increasing percentages between 0 and 100, "
                        "comma-separated (default 0.1,1,10)")
    return edges


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def band_labels(edges: tuple[float, ...]) -> list[str]:
    """``['<0.1%', '0.1-1%', '1-10%', '>=10%']`` for the default edges."""
    inner = [f"{_pct(a).rstrip('%')}-{_pct(b)}" for a, b in zip(edges, edges[1:])]
    return [f"<{_pct(edges[0])}", *inner, f">={_pct(edges[-1])}"]


def band_of(selectivity: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Each query's band index (0 = the narrowest)."""
    return np.searchsorted(np.asarray(edges), np.asarray(selectivity), side="right")


def band_runs(runs: pd.DataFrame, per_query: pd.DataFrame, edges: tuple[float, ...] = DEFAULT_EDGES) -> pd.DataFrame:
    """Every successful run of ``runs`` once per band with queries, its metrics recomputed on that band's
    queries; columns ``band`` (label), ``band_index``, ``n_subset`` (queries in it) and
    ``selectivity_median`` (of its queries) added. ``per_query``: the runs' per-query frame (filtered
    datasets carry ``selectivity``)."""
    if "selectivity" not in per_query:
        raise UserError("selectivity bands need a filtered dataset (its per-query frame has no selectivity)")
    selectivity = per_query.drop_duplicates("query").sort_values("query")["selectivity"].to_numpy()
    which = band_of(selectivity, edges)
    labels = band_labels(edges)
    parts = []
    for b, label in enumerate(labels):
        mask = which == b
        if not mask.any():
            continue
        part = subset_runs(runs, per_query, mask)
        part.insert(0, "band", label)
        part.insert(1, "band_index", b)
        part["selectivity_median"] = float(np.median(selectivity[mask]))
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def band_operating_points(banded: pd.DataFrame, levels: tuple[float, ...]) -> pd.DataFrame:
    """Per band, algorithm (and batch mode) and recall level, the best QPS (:func:`operating_points`)."""
    parts = []
    for (index, label), part in banded.groupby(["band_index", "band"], sort=True):
        points = operating_points(part, levels)
        points.insert(0, "band", label)
        points.insert(1, "queries", int(part["n_subset"].iloc[0]))
        parts.append(points)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def qps_at_recall(banded: pd.DataFrame, level: float = DEFAULT_RECALL) -> pd.DataFrame:
    """Per algorithm and band, the best QPS among runs with recall >= ``level`` on that band's queries
    (NaN where none reaches it): columns ``algorithm``, ``batch``, ``band``, ``band_index``,
    ``selectivity_median``, ``qps``, ``recall``."""
    rows = []
    for (algorithm, batch, index, label), part in banded.groupby(["algorithm", "batch", "band_index", "band"],
                                                                 sort=True):
        reached = part[part["recall"] >= level]
        best = reached.loc[reached["qps"].idxmax()] if len(reached) else None
        rows.append({"algorithm": algorithm, "batch": bool(batch), "band": label, "band_index": int(index),
                     "selectivity_median": float(part["selectivity_median"].iloc[0]),
                     "qps": np.nan if best is None else float(best["qps"]),
                     "recall": np.nan if best is None else float(best["recall"])})
    return pd.DataFrame(rows, columns=["algorithm", "batch", "band", "band_index", "selectivity_median", "qps",
                                       "recall"])
