"""Tables that compare at a glance, built from result frames (:func:`annbench.analyse.frames.results_frame`).

Each builder is a pure function from runs to a :class:`annbench.report.tables.Table` (values, bold marks,
notes); :func:`annbench.report.tables.render_tables` writes them in any table format and the HTML report
shows them with the notes on hover. A builder is one concern; add new ones beside these.

- :func:`operating_pivot`: one row per algorithm, one column per recall level, the cell the best
  QPS among runs with recall >= r (empty where no run reaches r), the column's best in bold with every
  cell not significantly slower (a tie); the notes are the parameters of the run behind each cell.
- :func:`dataset_ranks`: per recall level, each algorithm's rank on each dataset by that best QPS (1 + the
  algorithms significantly faster), its QPS relative to the best algorithm there, and its mean rank.

"Significantly" is the one rule for a QPS difference (:func:`annbench.analyse.significance.faster`, on the
runs' per-process QPS), as in ``plot --significance`` and the gate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from annbench.analyse.frames import (
    OPERATING_COLUMNS,
    OPERATING_RECALLS,
    higher_is_better,
    note_algorithms,
    operating_points,
)
from annbench.analyse.processes import process_values
from annbench.analyse.significance import faster, process_points
from annbench.report.plotting import params_label
from annbench.report.tables import Table


def level_column(quality: str, level: float) -> str:
    """The column name of one level: ``recall>=0.9``."""
    return f"{quality}>={level:g}"


def curve_label(algorithm: str, batch: bool) -> str:
    """An algorithm's row label: its name, `` (batch)`` added for batch-mode runs."""
    return f"{algorithm}{' (batch)' if batch else ''}"


#: What the tables' captions say of the QPS comparisons (see :func:`_best_marks`, :func:`_ranks`).
TIE_RULE = (" and every cell not significantly slower than it by the processes' QPS (Welch's t on their logs, "
            "Holm-corrected, p > 0.05): several bold cells are a tie; a run measured in one process ties")
RANK_RULE = "; rank = 1 + the algorithms significantly faster by the processes' QPS, so ties share a rank"


def _processes(points: pd.DataFrame, speed: str) -> list[np.ndarray] | None:
    """Each point's per-process QPS at its cell's value (:func:`process_points`); None where ``speed`` is not
    QPS (a latency or build time has no process values to test: compared as measured)."""
    if speed != "qps":
        return None
    per = points["qps_processes"] if "qps_processes" in points else pd.Series(None, index=points.index)
    return [process_points(float(q), process_values(v)) for q, v in zip(points[speed], per)]


def _best_marks(values: pd.Series, processes: list[np.ndarray] | None, higher: bool) -> pd.Series:
    """True for the best cell and every cell not significantly worse than it: a tie (empty cells never).
    With ``processes`` (QPS), "significantly" is the one rule, :func:`annbench.analyse.significance.faster`
    (a cell measured in one process cannot be told apart from the best, so it ties); without, a cell ties
    only where it equals the best."""
    col = pd.to_numeric(values, errors="coerce").reset_index(drop=True)
    marks = pd.Series(False, index=values.index)
    if not col.notna().any():
        return marks
    best = int(col.idxmax() if higher else col.idxmin())
    if processes is None:
        tied = col == col[best]
    else:
        beaten = {loser for winner, loser in faster({i: processes[i] for i in col.index[col.notna()]})
                  if winner == best}
        tied = col.notna() & ~col.index.isin(list(beaten))
    marks[:] = tied.to_numpy(bool)
    return marks


def _ranks(values: pd.Series, processes: list[np.ndarray] | None, higher: bool) -> pd.Series:
    """1 + the number of cells significantly better (the one rule, as :func:`_best_marks`), so a cell not
    significantly worse than the best shares rank 1 and ties share the better rank; without ``processes``,
    the rank by value (``method="min"``). NaN for an empty cell."""
    col = pd.to_numeric(values, errors="coerce")
    if processes is None:
        return col.rank(ascending=not higher, method="min")
    present = [i for i, v in enumerate(col) if np.isfinite(v)]
    wins = faster({i: processes[i] for i in present})
    return pd.Series([1.0 + sum((j, i) in wins for j in present) if i in present else np.nan
                      for i in range(len(col))], index=values.index)


def conversion_labels(frame: pd.DataFrame) -> dict[str, str]:
    """Per algorithm whose points the harness converted, what its label adds: `` (from uint8)`` where it was
    given float32, `` (uint8 as int8)`` where another type (``converted_to``)."""
    if "converted_from" not in frame:
        return {}
    first = frame.dropna(subset=["converted_from"]).groupby("algorithm").first()
    to = first["converted_to"] if "converted_to" in first else pd.Series(dtype=object)
    return {a: f" (from {source})" if pd.isna(to.get(a)) or to.get(a) == "float32" else f" ({source} as {to[a]})"
            for a, source in first["converted_from"].items()}


def _best_runs(frame: pd.DataFrame, levels: tuple[float, ...], quality: str, speed: str) -> pd.DataFrame:
    """:func:`operating_points` with a ``label`` column and the parameters as one text."""
    columns = [*OPERATING_COLUMNS, *(["qps_processes"] if "qps_processes" in frame else [])]
    points = operating_points(frame, levels, quality, speed, columns)
    converted = conversion_labels(frame)
    points["label"] = [curve_label(a, b) + converted.get(a, "") for a, b in zip(points["algorithm"], points["batch"])]
    points["params"] = ["" if pd.isna(q) else params_label(b, q)
                        for b, q in zip(points["build_params"], points["query_params"])]
    return points


def operating_pivot(frame: pd.DataFrame, levels: tuple[float, ...] = OPERATING_RECALLS, quality: str = "recall",
                    speed: str = "qps", caption: str = "") -> Table:
    """Best ``speed`` per algorithm (row) at ``quality >= r`` for each level r (column).

    Cell = max ``speed`` over the successful runs with ``quality >= r``; empty (NaN) when none
    reaches r. Bold: the column's best and every cell not significantly worse (:func:`_best_marks`: for QPS
    the one rule on the runs' process values; several bold cells in a column are a tie). Notes: that run's
    build | query parameters. ``frame`` holds one dataset, one k (the caller filters)."""
    points = _best_runs(frame, levels, quality, speed)
    cols = [level_column(quality, r) for r in levels]
    labels = list(dict.fromkeys(points["label"]))
    level_col = f"min_{quality}"
    values = pd.DataFrame({"algorithm": labels})
    notes = pd.DataFrame({"algorithm": labels})
    bold = pd.DataFrame(False, index=values.index, columns=["algorithm", *cols])
    for r, c in zip(levels, cols):
        at = points[points[level_col] == r].set_index("label").reindex(labels)
        values[c] = pd.to_numeric(at[speed], errors="coerce").to_numpy(float)
        notes[c] = at["params"].fillna("").to_numpy(object)
        bold[c] = _best_marks(values[c], _processes(at, speed), higher_is_better(speed)).to_numpy(bool)
    values = note_algorithms(values, frame)  # exact methods that missed recall 1
    if "note" in values:
        bold, notes = bold.assign(note=False), notes.assign(note="")
    return Table(values, bold=bold, notes=notes, keys=("algorithm",),
                 caption=f"{caption or f'best {speed} at {quality} >= r'} (bold: the best of each column"
                         f"{TIE_RULE if speed == 'qps' else ''}; empty: never reached)",
                 notes_caption="parameters (build | query) of each cell above", notes_suffix="params")


def dataset_ranks(frame: pd.DataFrame, levels: tuple[float, ...] = OPERATING_RECALLS, quality: str = "recall",
                  speed: str = "qps", caption: str = "") -> Table:
    """Per level r and algorithm: its rank on each dataset, its ``speed`` relative to the best
    there, and its mean rank over the datasets (the ranking summary of VIBE).

    On one dataset, the algorithms reaching ``quality >= r`` are ranked by their best ``speed``
    at that level (1 = fastest; ties share the better rank); ``rel`` = best speed / the fastest
    algorithm's. An algorithm that never reaches r there has no rank and no ``rel``; for its mean
    rank it counts as one place behind the last algorithm that does (so missing a level is never
    better than reaching it), and ``reached`` says on how many datasets it got there. Rows are
    sorted by level, then mean rank. ``frame`` holds several datasets, one k and mode each."""
    datasets = sorted(frame["dataset"].astype(str).unique())
    higher = higher_is_better(speed)
    per = {d: _best_runs(frame[frame["dataset"] == d], levels, quality, speed) for d in datasets}
    labels = sorted({label for p in per.values() for label in p["label"]})
    level_col = f"min_{quality}"
    parts, marks = [], []
    for r in levels:
        rows = pd.DataFrame({level_col: r, "algorithm": labels})
        penalised = pd.DataFrame(index=labels)
        for d in datasets:
            points = per[d][per[d][level_col] == r].set_index("label").reindex(labels)
            at = pd.to_numeric(points[speed], errors="coerce")
            rank = _ranks(at, _processes(points, speed), higher)
            best = at.max() if higher else at.min()
            rows[f"{d} rank"] = rank.to_numpy(float)
            rows[f"{d} rel"] = (at / best if higher else best / at).to_numpy(float) if at.notna().any() \
                else np.full(len(labels), np.nan)
            present = per[d]["label"].unique()
            fill = rank.notna().sum() + 1
            penalised[d] = rank.where(rank.notna(), np.where(np.isin(labels, present), fill, np.nan))
        rows.insert(2, "mean rank", penalised.mean(axis=1, skipna=True).to_numpy(float))
        reached = [f"{int(n)}/{int(m)}" for n, m in zip(rows[[f"{d} rank" for d in datasets]].notna().sum(axis=1),
                                                         penalised.notna().sum(axis=1))]
        rows.insert(3, "reached", reached)
        rows = rows.sort_values(["mean rank", "algorithm"], kind="stable", ignore_index=True)
        mark = pd.DataFrame(False, index=rows.index, columns=rows.columns)
        mark["mean rank"] = _best_marks(rows["mean rank"], None, higher=False)
        for d in datasets:
            mark[f"{d} rank"] = rows[f"{d} rank"] == 1
        parts.append(rows)
        marks.append(mark)
    values = pd.concat(parts, ignore_index=True)
    return Table(values, bold=pd.concat(marks, ignore_index=True),
                 caption=caption or f"rank per dataset by best {speed} at {quality} >= r (1 = fastest"
                                    f"{RANK_RULE if speed == 'qps' else ''}), "
                                    f"{speed} relative to the fastest there (rel), mean rank over "
                                    f"{len(datasets)} datasets (never reaching r counts as last + 1)")


def seed_summary(frame: pd.DataFrame, at_recall: float = 0.9, quality: str = "recall", speed: str = "qps") -> Table:
    """Per algorithm (row) at its operating point (the run with the best ``speed`` among those with
    ``quality >= at_recall``): the search time of the whole query set (``search_s = n_queries / qps``),
    ``1-R@1``, the index size and the build time, as faiss's wiki lays out its Flat/HNSW/IVF table.
    An algorithm that never reaches ``at_recall`` has a row with empty values. Notes: the parameters.
    ``frame`` holds one dataset, one k (the caller filters)."""
    columns = ["build_params", "query_params", "n_queries", "1-R@1", "index_bytes", "build_s"]
    points = operating_points(frame, (at_recall,), quality, speed, [c for c in columns if c in frame])
    params = ["" if pd.isna(q) else params_label(b, q) for b, q in zip(points["build_params"], points["query_params"])]

    def number(column: str) -> np.ndarray:
        return pd.to_numeric(points.get(column, pd.Series(np.nan, index=points.index)), errors="coerce").to_numpy(float)

    values = pd.DataFrame({
        "algorithm": [curve_label(a, b) for a, b in zip(points["algorithm"], points["batch"])],
        quality: number(quality), "search_s": number("n_queries") / number(speed), "1-R@1": number("1-R@1"),
        "index_bytes": number("index_bytes"), "build_s": number("build_s")})
    notes = pd.DataFrame({"algorithm": values["algorithm"], "search_s": params})
    values = note_algorithms(values, frame)
    return Table(values, notes=notes, keys=("algorithm",),
                 caption=f"each algorithm at its operating point (best {speed} at {quality} >= {at_recall:g}; "
                         f"empty: never reached): search_s = time for the whole query set, 1-R@1 = fraction of "
                         f"queries whose nearest neighbour is the first answer, index size, build time",
                 notes_caption="parameters (build | query) of each operating point", notes_suffix="params")
