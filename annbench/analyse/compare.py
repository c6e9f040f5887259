"""A raw dataset and its encodings side by side: one operating point per dataset and algorithm.

The operating point of an algorithm on a dataset is its fastest stored run that reaches
``recall >= min_recall`` (:func:`annbench.analyse.frames.operating_points`); the table reports that
run's QPS, build time, index size and kNN accuracy, next to the best recall the algorithm
reached at all (so a missing point says how far it fell short), the dataset's dimension,
its exact kNN accuracy and, for an encoding, the network's own test accuracy.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from annbench.analyse.frames import OPERATING_COLUMNS, operating_points
from annbench.apps.encode import encoded_prefix
from annbench.core.results import Status

#: Columns of the comparison table, in order.
COLUMNS = ["dataset", "dimension", "net_accuracy", "algorithm", "qps_at_recall", "recall", "build_s", "index_bytes",
           "knn_accuracy", "knn_accuracy_exact", "best_recall", "build_params", "query_params"]


def _natural(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def related_datasets(raw: str, available: list[str]) -> list[str]:
    """``raw`` first, then its raw baselines among ``available`` (``<raw>-ngram-*``, e.g. the surnames'
    character n-gram counts), then its encodings (names starting with its encoded prefix), each group
    in natural order (``mlp-8`` before ``mlp-32``)."""
    groups = [f"{raw}-ngram-", encoded_prefix(raw)]
    return [raw, *(d for prefix in groups
                   for d in sorted((d for d in available if d.startswith(prefix)), key=_natural))]


def dataset_facts(name: str, data_dir: Path | None) -> dict[str, float]:
    """Dimension and (for encodings) the network's test accuracy, read from the dataset file's attrs if present."""
    path = Path(data_dir) / f"{name}.hdf5" if data_dir else None
    if path is None or not path.is_file():
        return {"dimension": np.nan, "net_accuracy": np.nan}
    with h5py.File(path, "r") as f:
        return {"dimension": float(f.attrs.get("dimension", f["train"].shape[1])),
                "net_accuracy": float(f.attrs.get("encoder_test_accuracy", np.nan))}


def side_by_side(frame: pd.DataFrame, datasets: list[str], min_recall: float = 0.9,
                 data_dir: Path | None = None) -> pd.DataFrame:
    """One row per (dataset, algorithm) of ``frame`` (a :func:`annbench.analyse.frames.results_frame`
    of one k and one mode), datasets in the given order, at the operating point ``min_recall``
    (NaN columns where no run reaches it)."""
    ok = frame[frame["status"] == Status.OK]
    parts = []
    for name in datasets:
        runs = ok[ok["dataset"] == name]
        if runs.empty:
            continue
        points = operating_points(runs, (min_recall,), columns=[*OPERATING_COLUMNS, "knn_accuracy"])
        by_algorithm = runs.groupby("algorithm")
        points["best_recall"] = points["algorithm"].map(by_algorithm["recall"].max())
        exact = by_algorithm["knn_accuracy_exact"].first() if "knn_accuracy_exact" in runs else None
        points["knn_accuracy_exact"] = points["algorithm"].map(exact) if exact is not None else np.nan
        parts.append(points.rename(columns={"qps": "qps_at_recall"})
                     .assign(dataset=name, **dataset_facts(name, data_dir)))
    return pd.concat(parts, ignore_index=True)[COLUMNS] if parts else pd.DataFrame(columns=COLUMNS)
