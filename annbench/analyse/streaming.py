"""Runbook runs → a per-step frame: one row per (run, step) of every stored runbook run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from annbench.analyse.frames import ANY_RUNBOOK, measured, results_frame
from annbench.store.folder import read_arrays

#: The run columns repeated on every step row.
RUN_COLUMNS = ["algorithm", "build_params", "query_params", "runbook", "k", "batch", "threads"]


def step_frame(results_dir: str | Path, dataset: str, runbook: str = ANY_RUNBOOK) -> pd.DataFrame:
    """One row per step of every successful run of ``runbook`` (default: every runbook) on ``dataset``: the
    run's identity (:data:`RUN_COLUMNS`), ``search`` (the search step's index, 0, 1, ...; -1 for a change) and
    every field of the stored step table (annbench.execute.streaming.STEP_FIELDS), ``operation`` as text."""
    runs = measured(results_frame(results_dir, dataset, runbook=runbook))
    parts = []
    for _, run in runs.iterrows():
        steps = read_arrays(run["path"]).get("steps")
        if steps is None:
            continue
        part = pd.DataFrame(steps)
        part["operation"] = part["operation"].str.decode("ascii")
        is_search = part["operation"] == "search"
        part["search"] = is_search.cumsum().where(is_search, 0) - 1
        for column in RUN_COLUMNS:
            part[column] = run[column]
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[*RUN_COLUMNS, "step", "operation", "search"])
    frame = pd.concat(parts, ignore_index=True)
    return frame[RUN_COLUMNS + [c for c in frame.columns if c not in RUN_COLUMNS]]
