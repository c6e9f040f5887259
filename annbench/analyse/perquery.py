"""Stored runs → per-query quality and latency, and run tables recomputed on a subset of queries.

The per-query frame has one row per (run, query). Its quality columns are computed exactly as
:func:`annbench.execute.evaluate.quality` computes the run's means (distances recomputed from the stored
ids in float64 by :func:`annbench.quality.distances.distances_to_ids`, the same metric functions), so
the mean of a run's per-query ``recall`` is its stored ``recall``, bit for bit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from annbench.analyse.difficulty import Measure, load_or_compute, subset_mask
from annbench.core.errors import UserError
from annbench.core.results import Status
from annbench.datasets.format import Dataset
from annbench.execute.evaluate import EPSILONS, filtered_per_query
from annbench.quality import metrics as M
from annbench.quality.distances import distances_to_ids
from annbench.store.folder import read_arrays

log = logging.getLogger(__name__)

#: Run identifiers copied onto every per-query row.
RUN_COLUMNS = ["dataset", "k", "algorithm", "batch", "threads", "build_params", "query_params", "host", "path"]
#: Per-query quality columns (``knn_correct`` only for labelled datasets).
QUALITY_COLUMNS = ["recall", "id_recall", *(f"eps_recall_{e:g}" for e in EPSILONS)]


def dataset_file(name: str, data_dir: str | Path, runs: pd.DataFrame) -> Dataset:
    """The dataset file the runs were measured on: first where the runs recorded it (attr ``dataset_path``),
    then ``<data_dir>/<name>.hdf5``; the first of these that exists and has the runs' checksum. A
    :class:`UserError` says where it looked and what it found there."""
    from annbench.datasets.format import load_dataset
    from annbench.datasets.registry import dataset_path

    recorded = runs["dataset_path"].dropna().astype(str).unique() if "dataset_path" in runs else []
    candidates = list(dict.fromkeys([*(Path(p) for p in recorded), dataset_path(name, Path(data_dir))]))
    stored = set(runs["dataset_checksum"].dropna()) if "dataset_checksum" in runs else set()
    found = []
    for path in candidates:
        if not path.is_file():
            continue
        dataset = load_dataset(path, name=name)
        if not stored or stored == {dataset.checksum}:
            return dataset
        found.append(f"{path} has checksum {dataset.checksum}")
    where = ", ".join(str(p) for p in candidates)
    if found:
        raise UserError(f"dataset {name}: the runs were made on checksum {', '.join(sorted(stored))} but "
                        f"{'; '.join(found)}; valid: the file the runs were measured on (--data-dir DIR)")
    raise UserError(f"per-query analysis of {name} needs its dataset file: none of {where} exists; "
                    f"valid: --data-dir DIR holding {name}.hdf5")


def run_queries(dataset: Dataset, path: str | Path, k: int, batch: bool) -> pd.DataFrame:
    """Per-query metrics of one stored run: ``query``, the quality columns, ``knn_correct``
    (labelled datasets), ``found_sum`` / ``true_sum`` (``Σ_{j<k}`` of the found and true distances,
    for the relative error of any subset) and ``latency_ns`` (single-query mode; NaN in batch mode)."""
    arrays = read_arrays(path)
    ids = arrays["neighbors"]
    if ids.shape != (len(dataset.test), k):
        raise ValueError(f"neighbors has shape {ids.shape}, expected {(len(dataset.test), k)}")
    found_d = distances_to_ids(dataset.test, dataset.train, ids, dataset.distance)
    if dataset.filters is not None:  # filtered: over the neighbours each query can have; its selectivity
        out = {"query": np.arange(len(ids)), **filtered_per_query(dataset, ids, found_d, k),
               "selectivity": dataset.filters.selectivity,
               "latency_ns": query_latencies(arrays.get("latencies_ns"), len(ids), batch)}
        return pd.DataFrame(out)
    true_d, true_ids = dataset.distances, dataset.neighbors
    out = {"query": np.arange(len(ids)),
           "recall": M.recall(found_d, true_d, k),
           "id_recall": M.id_recall(ids, true_ids, true_d, k),
           **{f"eps_recall_{e:g}": M.epsilon_recall(found_d, true_d, k, e) for e in EPSILONS},
           "found_sum": found_d[:, :k].sum(axis=1), "true_sum": true_d[:, :k].sum(axis=1)}
    if dataset.train_labels is not None and dataset.test_labels is not None:
        out["knn_correct"] = M.knn_correct(ids, dataset.train_labels, dataset.test_labels, k)
    out["latency_ns"] = query_latencies(arrays.get("latencies_ns"), len(ids), batch)
    return pd.DataFrame(out)


def query_latencies(latencies_ns: np.ndarray | None, n_queries: int, batch: bool) -> np.ndarray:
    """Each query's latency (ns) in a stored run: the mean over the repetitions of the kept pass
    (a calibrated pass stores ``repeats · n_queries`` latencies, repetition after repetition); NaN
    in batch mode or where the run stored none."""
    if batch or latencies_ns is None or len(latencies_ns) == 0 or len(latencies_ns) % n_queries:
        return np.full(n_queries, np.nan)
    return np.asarray(latencies_ns, dtype=np.float64).reshape(-1, n_queries).mean(axis=0)


def difficulty_columns(dataset: Dataset) -> pd.DataFrame | None:
    """The dataset's query difficulty (one row per query), or None where it is not defined (ip)."""
    if dataset.distance not in ("euclidean", "angular"):
        log.info("%s uses %s: no query difficulty (defined for euclidean and angular)", dataset.name,
                 dataset.distance)
        return None
    if dataset.filters is not None:  # its ground truth is filtered: selectivity is the per-query measure
        log.info("%s is filtered: no query difficulty (its selectivity bands instead)", dataset.name)
        return None
    return load_or_compute(dataset).frame()


def per_query_frame(dataset: Dataset | str, runs: pd.DataFrame, data_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per (successful run, query): :data:`RUN_COLUMNS`, ``query``, the per-query metrics
    of :func:`run_queries`, ``latency_ms`` and the query's difficulty measures (``rc@10``, ...).

    ``dataset`` is a loaded :class:`Dataset` or a name whose file is looked up in ``data_dir``
    (default ``$ANNBENCH_DATA_DIR`` or ``./datasets``); ``runs``: rows of
    :func:`annbench.analyse.frames.results_frame` (:func:`annbench.analyse.frames.per_query_frame`
    reads them from a results folder).
    """
    name = dataset.name if isinstance(dataset, Dataset) else dataset
    runs = runs[(runs["dataset"] == name) & (runs["status"] == Status.OK)] if len(runs) else runs
    if isinstance(dataset, str):
        from annbench.core import paths

        dataset = dataset_file(name, data_dir or paths.default_data_dir(), runs)
    parts = []
    for _, run in runs.iterrows():
        try:
            part = run_queries(dataset, run["path"], int(run["k"]), bool(run["batch"]))
        except (OSError, KeyError, ValueError) as e:
            log.warning("skipping run %s in the per-query frame (%s)", run["path"], e)
            continue
        for c in reversed(RUN_COLUMNS):
            part.insert(0, c, run.get(c, np.nan))
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[*RUN_COLUMNS, "query", *QUALITY_COLUMNS, "latency_ms"])
    frame = pd.concat(parts, ignore_index=True)
    frame["latency_ms"] = frame["latency_ns"] * 1e-6
    difficulty = difficulty_columns(dataset)
    if difficulty is not None:
        frame = frame.merge(difficulty, on="query", how="left")
    return frame


def subset_runs(runs: pd.DataFrame, per_query: pd.DataFrame, queries: np.ndarray) -> pd.DataFrame:
    """``runs`` with every per-query metric recomputed on the queries where ``queries`` (a boolean
    mask over the test set) is true: quality = the mean over those queries (``rel`` = their
    ``Σ found / Σ true``); in single-query mode the run's pass-time QPS (``qps``, ``qps_median``,
    ``qps_slowest``, and the process interval ``qps_ci95_low`` / ``qps_ci95_high``) are apportioned by
    latency, ``qps_S = qps · (|S| / n) · Σ_all latency / Σ_S latency`` (the subset's share of the pass time
    taken as its share of the summed latencies; ``S`` = all gives the stored QPS), and the latency
    percentiles come from the subset's latencies. Batch mode has no per-query latencies: its QPS stays the
    whole batch's. Runs missing from ``per_query``
    are dropped. Adds ``n_subset`` (|S|)."""
    queries = np.asarray(queries, dtype=bool)
    ok = runs[runs["status"] == Status.OK] if "status" in runs else runs
    rows = []
    by_path = dict(tuple(per_query.groupby("path", sort=False)))
    for _, run in ok.iterrows():
        part = by_path.get(run["path"])
        if part is None:
            continue
        part = part.sort_values("query")
        chosen = part[queries[part["query"].to_numpy()]]
        row = run.copy()
        row["n_subset"] = len(chosen)
        for c in QUALITY_COLUMNS:
            row[c] = float(chosen[c].to_numpy().mean()) if len(chosen) else np.nan
        row["rel"] = M.relative_error(chosen[["found_sum"]].to_numpy(), chosen[["true_sum"]].to_numpy(), 1)
        if "knn_correct" in chosen:
            row["knn_accuracy"] = float(chosen["knn_correct"].to_numpy().mean()) if len(chosen) else np.nan
        latency = chosen["latency_ns"].to_numpy()
        if not bool(run["batch"]) and len(chosen) and not np.isnan(latency).any():
            factor = len(chosen) / len(part) * part["latency_ns"].to_numpy().sum() / latency.sum()
            for c in ("qps", "qps_median", "qps_slowest", "qps_ci95_low", "qps_ci95_high"):  # the interval with it
                if c in row:
                    row[c] = row[c] * factor
            row.update(pd.Series(M.latency_percentiles_ms(latency)))
        rows.append(row)
    return pd.DataFrame(rows, columns=[*ok.columns, "n_subset"]).reset_index(drop=True)


def query_mask(per_query: pd.DataFrame, measure: Measure, subset: str, quantile: float) -> np.ndarray:
    """The subset of the test set (a boolean mask by query index) from the difficulty in ``per_query``."""
    if measure.name not in per_query:
        raise UserError(f"--difficulty {measure.name}: not available for these results (defined for euclidean "
                        f"and angular datasets whose ground truth holds {measure.depth} neighbours)")
    values = per_query.drop_duplicates("query").sort_values("query")[measure.name].to_numpy()
    return subset_mask(values, measure, subset, quantile)


def recall_by_difficulty(points: pd.DataFrame, per_query: pd.DataFrame, measure: Measure,
                         bins: int = 10) -> pd.DataFrame:
    """Mean recall per difficulty bin (1 = easiest tenth … ``bins`` = hardest, see
    :func:`annbench.analyse.difficulty.deciles`) of each run of ``points`` (rows with a ``path``):
    columns ``algorithm``, ``batch``, ``bin``, ``recall``, ``queries``, ``low`` / ``high`` (the
    measure's range in the bin)."""
    from annbench.analyse.difficulty import deciles

    queries = per_query.drop_duplicates("query").sort_values("query")
    values = queries[measure.name].to_numpy()
    bin_of = deciles(values, measure, bins)
    rows = []
    for _, point in points.iterrows():
        part = per_query[per_query["path"] == point["path"]].sort_values("query")
        which = bin_of[part["query"].to_numpy()]
        recall = part["recall"].to_numpy()
        for b in range(1, bins + 1):
            sel = which == b
            rows.append({"algorithm": point["algorithm"], "batch": bool(point["batch"]), "bin": b,
                         "recall": float(recall[sel].mean()) if sel.any() else np.nan, "queries": int(sel.sum()),
                         "low": float(values[bin_of == b].min()) if (bin_of == b).any() else np.nan,
                         "high": float(values[bin_of == b].max()) if (bin_of == b).any() else np.nan})
    return pd.DataFrame(rows, columns=["algorithm", "batch", "bin", "recall", "queries", "low", "high"])


def operating_extras(points: pd.DataFrame, runs: pd.DataFrame, per_query: pd.DataFrame, measure: Measure,
                     quantile: float, significance: bool, queries: np.ndarray | None = None) -> pd.DataFrame:
    """Operating points (rows with their run's ``path``) with ``recall_hard<Q>%_<measure>``, the recall
    of each point's run on the hardest ``quantile`` of the queries (``runs``: those runs on all
    queries), and with ``significance`` the columns of
    :func:`annbench.analyse.significance.significance_columns` (recall over the queries of the mask ``queries``,
    default all; QPS over the processes of each point's run in ``runs``)."""
    points = points.copy()
    if measure.name in per_query:
        hard = subset_runs(runs, per_query, query_mask(per_query, measure, "hard", quantile))
        points[f"recall_hard{quantile * 100:g}%_{measure.name}"] = points["path"].map(
            dict(zip(hard["path"], hard["recall"])))
    if significance:
        from annbench.analyse.significance import significance_columns

        chosen = per_query[per_query["path"].isin(set(points["path"].dropna()))]
        if queries is not None:
            chosen = chosen[np.asarray(queries, dtype=bool)[chosen["query"].to_numpy()]]
        points = significance_columns(points, chosen, runs)
    return points
