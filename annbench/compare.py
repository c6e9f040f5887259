"""A raw dataset and its encodings side by side: one operating point per dataset and algorithm.

The operating point of an algorithm on a dataset is its fastest stored run that reaches
``recall >= min_recall``; the table reports that run's QPS, build time, index size and
kNN accuracy, next to the best recall the algorithm reached at all (so a missing point
says how far it fell short) and the dataset's exact kNN accuracy.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from annbench.encode import encoded_prefix

#: Columns of the comparison table, in order.
COLUMNS = ["dataset", "dimension", "net_accuracy", "algorithm", "qps_at_recall", "recall", "build_s", "index_bytes",
           "knn_accuracy", "knn_accuracy_exact", "best_recall", "build_params", "query_params"]


def _natural(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def related_datasets(raw: str, available: list[str]) -> list[str]:
    """``raw`` first, then its encodings among ``available`` (names starting with its encoded prefix),
    in natural order (``mlp-8`` before ``mlp-32``)."""
    prefix = encoded_prefix(raw)
    return [raw, *sorted((d for d in available if d.startswith(prefix)), key=_natural)]


def dataset_facts(name: str, data_dir: Path | None) -> dict[str, float]:
    """Dimension and (for encodings) the network's test accuracy, read from the dataset file's attrs if present."""
    path = Path(data_dir) / f"{name}.hdf5" if data_dir else None
    if path is None or not path.is_file():
        return {"dimension": np.nan, "net_accuracy": np.nan}
    with h5py.File(path, "r") as f:
        return {"dimension": float(f.attrs.get("dimension", f["train"].shape[1])),
                "net_accuracy": float(f.attrs.get("encoder_test_accuracy", np.nan))}


def operating_points(frame: pd.DataFrame, datasets: list[str], min_recall: float = 0.9,
                     data_dir: Path | None = None) -> pd.DataFrame:
    """One row per (dataset, algorithm) of ``frame`` (a :func:`annbench.analyse.results_frame`,
    one k and mode), datasets in the given order: the run with the highest QPS among those with
    ``recall >= min_recall`` (NaN columns when none reaches it)."""
    ok = frame[frame["status"] == "ok"]
    rows = []
    for name in datasets:
        facts = dataset_facts(name, data_dir)
        for algorithm, runs in ok[ok["dataset"] == name].groupby("algorithm", sort=True):
            good = runs[runs["recall"] >= min_recall]
            best = good.loc[good["qps"].idxmax()] if len(good) else None
            row = {"dataset": name, **facts, "algorithm": algorithm, "best_recall": runs["recall"].max(),
                   "knn_accuracy_exact": runs.get("knn_accuracy_exact", pd.Series([np.nan])).iloc[0]}
            for column, source in (("qps_at_recall", "qps"), ("recall", "recall"), ("build_s", "build_s"),
                                   ("index_bytes", "index_bytes"), ("knn_accuracy", "knn_accuracy"),
                                   ("build_params", "build_params"), ("query_params", "query_params")):
                row[column] = best[source] if best is not None and source in best else np.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
