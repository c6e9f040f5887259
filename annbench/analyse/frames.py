"""Stored results → tables: one row per run, Pareto frontiers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from annbench.core.results import Status, from_canonical
from annbench.quality.metrics import ONE_RECALL_RS, one_recall_column
from annbench.store.folder import ResultStore, read_arrays, read_attrs

log = logging.getLogger(__name__)

#: Metrics where a larger value is better; every other numeric metric is better smaller.
HIGHER_IS_BETTER = frozenset({"recall", "id_recall", "eps_recall_0.01", "eps_recall_0.1", "qps", "qps_median",
                              "knn_accuracy", "knn_accuracy_exact", *map(one_recall_column, ONE_RECALL_RS)})

#: Recall levels of the operating-point table.
OPERATING_RECALLS = (0.5, 0.8, 0.9, 0.95, 0.99)

#: Columns of the operating-point table after ``algorithm, batch, min_<quality>``.
OPERATING_COLUMNS = ["build_params", "query_params", "build_s", "index_bytes"]

#: Mapping attrs spread into one column per entry: ``library_versions`` → ``version.<lib>``, ``stats`` →
#: ``stats.<name>``, the key's parameters → ``build.<name>`` / ``query.<name>``.
_SPREAD = {"library_versions": "version", "stats": "stats", "build_params": "build", "query_params": "query"}

#: The summary columns, in order (more columns follow them in the DataFrame).
SUMMARY_COLUMNS = ["algorithm", "build_params", "query_params", "k", "batch", "status", "recall", "id_recall",
                   "qps", "p50_ms", "p99_ms", "build_s", "index_bytes"]


def higher_is_better(metric: str) -> bool:
    return metric in HIGHER_IS_BETTER


def measured(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows that are measurements (status ``ok``): failed and skipped runs have no metrics to
    draw or rank. A frame without a ``status`` column is taken as all measurements."""
    return frame[frame["status"] == Status.OK] if "status" in frame else frame


#: ``results_frame(..., runbook=ANY_RUNBOOK)``: the runs of every runbook.
ANY_RUNBOOK = "*"


def results_frame(results_dir: str | Path, dataset: str | None = None, runbook: str | None = None) -> pd.DataFrame:
    """One row per stored run (``dataset=None``: every dataset) of a static index (``runbook=None``), of the
    runbook named ``runbook`` (``<file stem>:<entry>``) or of every runbook (:data:`ANY_RUNBOOK`), every
    metric, parameter and
    provenance field as a column; each build/query parameter also as ``build.<name>`` /
    ``query.<name>``, each library version as ``version.<lib>``, each adapter statistic as
    ``stats.<name>``; ``qps_slowest`` = queries answered per pass / slowest kept pass time (the lower
    end of the QPS spread, ``qps`` being the fastest pass); ``note`` (only when some run is flagged
    ``exact_violation``). Unreadable files are skipped with a warning."""
    rows = []
    for path in ResultStore(results_dir).paths(dataset):
        try:
            attrs = read_attrs(path)
        except (OSError, KeyError, ValueError) as e:
            log.warning("skipping unreadable result %s (%s)", path, e)
            continue
        followed = attrs.get("runbook") or ""
        if (followed != (runbook or "")) if runbook != ANY_RUNBOOK else not followed:
            continue  # the runs of a runbook are not among a static index's, nor those of another runbook
        attrs["path"] = str(path)
        for attr, prefix in _SPREAD.items():
            spread = attrs.get(attr)
            if isinstance(spread, str):  # the key's parameters: canonical text
                try:
                    spread = from_canonical(spread)
                except ValueError:
                    spread = {}
            for name, value in (spread.items() if isinstance(spread, dict) else ()):
                attrs[f"{prefix}.{name}"] = value
        # a table's cells hold text: mappings and lists as the JSON they were stored as (pandas can neither
        # group nor de-duplicate dicts)
        attrs.update({n: json.dumps(v, sort_keys=True) for n, v in attrs.items() if isinstance(v, (dict, list))})
        if attrs.get("pass_time_max_s") and attrs.get("n_queries"):
            answered = attrs["n_queries"] * int(attrs.get("repeats", 1))  # per pass (see measure.py)
            attrs["qps_slowest"] = answered / attrs["pass_time_max_s"]
        rows.append(attrs)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    frame = add_notes(frame)
    # the client level of each run (README: Concurrent clients); runs stored before levels existed are level 1
    frame["clients"] = frame["clients"].fillna(1).astype(int) if "clients" in frame else 1
    rest = [c for c in frame.columns if c not in SUMMARY_COLUMNS]
    for c in SUMMARY_COLUMNS:
        if c not in frame:
            frame[c] = np.nan
    return frame[SUMMARY_COLUMNS + rest].sort_values(["algorithm", "build_params", "query_params"],
                                                    ignore_index=True)


def pareto_mask(x: np.ndarray, y: np.ndarray, x_higher: bool = True, y_higher: bool = True) -> np.ndarray:
    """Points no other point dominates (at least as good on both axes, better on one).

    Of exact duplicates on the frontier, the first is kept. NaN points are never optimal.
    """
    xs = np.asarray(x, dtype=float) * (1 if x_higher else -1)
    ys = np.asarray(y, dtype=float) * (1 if y_higher else -1)
    keep = np.zeros(len(xs), dtype=bool)
    valid = np.flatnonzero(~(np.isnan(xs) | np.isnan(ys)))
    order = valid[np.lexsort((-ys[valid], -xs[valid]))]  # best x first, then best y
    best_y = -np.inf
    for i in order:
        if ys[i] > best_y:
            keep[i] = True
            best_y = ys[i]
    return keep


def pareto_frame(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per algorithm (and batch mode), its Pareto-optimal rows for ``x`` against ``y``, sorted by ``x``."""
    ok = measured(frame)
    parts = []
    for _, group in ok.groupby(["algorithm", "batch"], sort=True):
        mask = pareto_mask(group[x].to_numpy(float), group[y].to_numpy(float), higher_is_better(x),
                           higher_is_better(y))
        parts.append(group[mask].sort_values(x))
    return pd.concat(parts, ignore_index=True) if parts else ok.iloc[0:0]


def hosts_per_curve(frame: pd.DataFrame) -> dict[tuple[str, bool], list[str]]:
    """Per curve (algorithm and batch mode), the hosts its successful runs were measured on, sorted.
    Results without a ``host`` column give no entry."""
    ok = measured(frame)
    if "host" not in ok or ok.empty:
        return {}
    return {(str(a), bool(b)): sorted(str(h) for h in group["host"].dropna().unique())
            for (a, b), group in ok.groupby(["algorithm", "batch"], sort=True)}


#: The ``note`` of a run whose adapter says ``exact = True`` but which scored recall < 1.0.
EXACT_VIOLATION_NOTE = "exact method, recall < 1"


#: The ``note`` of a run measured on cores another sweep had claimed (``--share-cores``).
SHARED_CORES_NOTE = "measured on another sweep's cores"


def _beside_note(n: object) -> str:
    """The ``note`` of a run built or measured while ``n`` other measuring processes ran ('' for none)."""
    count = 0 if pd.isna(n) else int(n)  # type: ignore[call-overload]
    return "" if count == 0 else f"{count} other child{'ren' * (count > 1)} ran beside it"


def add_notes(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` whose ``note`` column (a skipped run's stored note) also marks each run flagged
    ``exact_violation``, measured on another sweep's cores (``cores_shared``) or beside other
    children (``concurrent_children``); unchanged when no run is marked."""
    marks = pd.DataFrame(index=frame.index)
    if "exact_violation" in frame:
        marks["exact"] = np.where(_flagged(frame), EXACT_VIOLATION_NOTE, "")
    if "cores_shared" in frame:
        marks["shared"] = np.where(frame["cores_shared"].map(lambda v: v is True or v == 1), SHARED_CORES_NOTE, "")
    if "concurrent_children" in frame:
        marks["beside"] = frame["concurrent_children"].map(_beside_note)
    if marks.empty or not (marks != "").to_numpy().any():
        return frame
    stored = frame["note"].fillna("").astype(str) if "note" in frame else pd.Series("", index=frame.index)
    return frame.assign(note=[
        "; ".join(n for n in (s, *row) if n) for s, row in zip(stored, marks.itertuples(index=False))])


def has_notes(frame: pd.DataFrame) -> bool:
    """Whether any run in ``frame`` has a non-empty ``note`` (so a table should show that column)."""
    return "note" in frame and bool((frame["note"].fillna("") != "").any())


def _flagged(frame: pd.DataFrame) -> pd.Series:
    return frame["exact_violation"].map(lambda v: v is True).astype(bool)  # missing (NaN) = not flagged


def exact_violations(frame: pd.DataFrame) -> dict[str, int]:
    """Per algorithm, how many of its runs in ``frame`` are flagged ``exact_violation``."""
    if "exact_violation" not in frame:
        return {}
    return {str(a): int(n) for a, n in frame[_flagged(frame)].groupby("algorithm").size().items()}


def note_algorithms(table: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """A per-algorithm ``table`` (operating points, summaries) with a ``note`` column marking the
    algorithms with a flagged run in ``frame`` (unchanged when none is)."""
    flagged = exact_violations(frame)
    if not flagged or "algorithm" not in table:
        return table
    return table.assign(note=[EXACT_VIOLATION_NOTE if str(a) in flagged else "" for a in table["algorithm"]])


def mixed_checksums(frame: pd.DataFrame) -> dict[str, dict[str, list[str]]]:
    """Per dataset whose successful runs were measured on more than one version of its file (content
    checksum): checksum → the algorithms with runs on it. Datasets measured on one file give no entry."""
    ok = frame[frame["status"] == Status.OK] if "status" in frame else frame
    if "dataset_checksum" not in ok or ok.empty:
        return {}
    out = {}
    for dataset, runs in ok.dropna(subset=["dataset_checksum"]).groupby("dataset", sort=True):
        if runs["dataset_checksum"].nunique() > 1:
            out[str(dataset)] = {str(c): sorted(str(a) for a in part["algorithm"].unique())
                                 for c, part in runs.groupby("dataset_checksum", sort=True)}
    return out


def mixed_checksum_messages(frame: pd.DataFrame) -> list[str]:
    """One sentence per dataset whose runs in ``frame`` were measured on different contents of its
    file (:func:`mixed_checksums`): their numbers are not comparable in one curve or table."""
    messages = []
    for dataset, by_checksum in mixed_checksums(frame).items():
        versions = "; ".join(f"{c[:13]}… ({', '.join(a)})" for c, a in by_checksum.items())
        messages.append(f"dataset {dataset}: these runs were measured on {len(by_checksum)} different contents of its "
                        f"file ({versions}), so their numbers are not comparable; run.py --dataset {dataset} re-runs "
                        f"every run not measured on the file as it is now")
    return messages


def trust_warnings(frame: pd.DataFrame) -> list[str]:
    """What makes the numbers in ``frame`` suspect, one sentence each: an exact method (adapter with
    ``exact = True``) that scored recall < 1.0, per dataset and algorithm; runs of one dataset
    measured on different contents of its file (:func:`mixed_checksum_messages`)."""
    lines = []
    for dataset, runs in frame.groupby("dataset", sort=True) if "dataset" in frame else ():
        for algorithm, n in exact_violations(runs).items():
            lines.append(f"{algorithm} says it is exact (exact = True) but scored recall < 1.0 in {n} run"
                         f"{'s' * (n > 1)} on {dataset} (note: {EXACT_VIOLATION_NOTE!r}): its library or adapter "
                         f"returned wrong neighbours, or the ground truth is wrong (check: dataset.py verify "
                         f"{dataset} --all)")
    return lines + filter_violation_messages(frame) + mixed_checksum_messages(frame)


def filter_violation_messages(frame: pd.DataFrame) -> list[str]:
    """One sentence per dataset and algorithm whose runs returned ids failing their query's predicate
    (``filter_violations`` > 0 on a filtered dataset): they are never hits, but such an index answers
    what was not asked."""
    if "filter_violations" not in frame:
        return []
    bad = measured(frame)[measured(frame)["filter_violations"].fillna(0) > 0]
    return [f"{algorithm} returned {int(runs['filter_violations'].sum())} ids failing their query's filter in "
            f"{len(runs)} run{'s' * (len(runs) > 1)} on {dataset} (filter_violations; never counted as hits)"
            for (dataset, algorithm), runs in bad.groupby(["dataset", "algorithm"], sort=True)]


def warn_mixed_checksums(frame: pd.DataFrame) -> None:
    """Log :func:`mixed_checksum_messages` as warnings (as a curve mixing hosts is warned about)."""
    for message in mixed_checksum_messages(frame):
        log.warning("%s", message)


def operating_points(frame: pd.DataFrame, levels: tuple[float, ...] = OPERATING_RECALLS, quality: str = "recall",
                     speed: str = "qps",
                     columns: tuple[str, ...] | list[str] = tuple(OPERATING_COLUMNS)) -> pd.DataFrame:
    """Per algorithm (and batch mode) and level r: the successful run with the best ``speed`` among
    those with ``quality >= r``, with its ``columns`` (default: parameters, build time and index size).

    A level no run of the algorithm reaches gives a row with empty values. ``frame`` should
    hold one dataset and one k (as :func:`results_frame` filtered by the caller).
    """
    level_col = f"min_{quality}"
    cols = ["algorithm", "batch", level_col, quality, speed, *columns]
    ok = measured(frame)
    rows = []
    for (algorithm, batch), group in ok.groupby(["algorithm", "batch"], sort=True):
        for r in levels:
            reached = group[group[quality] >= r]
            best = reached.loc[reached[speed].idxmax()] if len(reached) else None
            row = {"algorithm": algorithm, "batch": bool(batch), level_col: r}
            for c in cols[3:]:
                row[c] = best[c] if best is not None and c in best else np.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def pass_qps(path: str | Path, n_queries: int) -> np.ndarray:
    """QPS of every kept timed pass of one stored run (``repeats · n_queries / pass time``), in pass order."""
    times = read_arrays(path).get("pass_times_ns")
    if times is None or len(times) == 0:
        return np.empty(0)
    answered = n_queries * int(read_attrs(path).get("repeats", 1))
    return answered / (np.asarray(times, dtype=np.float64) * 1e-9)


def per_query_frame(results_dir: str | Path | None, dataset, data_dir: str | Path | None = None,
                    runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (run, query): run identifiers, per-query recall, id_recall, latency (single-query
    mode) and the query's difficulty measures; see :func:`annbench.analyse.perquery.per_query_frame`."""
    from annbench.analyse.perquery import per_query_frame as frame_of

    if runs is None:
        runs = results_frame(results_dir, getattr(dataset, "name", dataset))
    return frame_of(dataset, runs, data_dir)
