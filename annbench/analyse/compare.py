"""A raw dataset and its encodings side by side: one operating point per dataset and algorithm.

The operating point of an algorithm on a dataset is its fastest stored run that reaches
``recall >= min_recall`` (:func:`annbench.analyse.frames.operating_points`); the table reports that
run's QPS, build time, index size and kNN accuracy, next to the best recall the algorithm
reached at all (so a missing point says how far it fell short), the dataset's dimension,
its exact kNN accuracy and, for an encoding, the network's own test accuracy. Where the runs were measured in
several processes (``run --processes``), each point has its process interval (``qps_low`` .. ``qps_high``) and,
beside the raw dataset's point of the same algorithm (the first dataset of the same subset), ``qps_vs_raw`` and
its p-value ``qps_vs_raw_p`` by :func:`annbench.analyse.processes.process_ratio` (the ratio of the processes'
geometric means; a difference counts only where it exceeds the process noise).
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from annbench.analyse.frames import OPERATING_COLUMNS, operating_points
from annbench.analyse.processes import process_ratio, process_values
from annbench.apps.encode import encoded_prefix
from annbench.core.results import Status
from annbench.datasets.registry import SUBSET

#: Columns of the comparison table, in order.
COLUMNS = ["dataset", "dimension", "net_accuracy", "algorithm", "qps_at_recall", "qps_low", "qps_high", "qps_vs_raw",
           "qps_vs_raw_p", "recall", "build_s", "index_bytes", "knn_accuracy", "knn_accuracy_exact", "best_recall",
           "build_params", "query_params"]
#: Columns of the operating points' runs the process comparison needs (absent where no run has processes).
PROCESS_COLUMNS = ["qps_processes", "qps_ci95_low", "qps_ci95_high"]


def _natural(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def split_subset(name: str) -> tuple[str, str]:
    """``fashion-mnist-784-euclidean-test500`` → ``("fashion-mnist-784-euclidean", "-test500")``: a
    dataset's name and its subset suffix (``-train<N>``, ``-test<M>``, both, or ``""``: see ``run --max-test``)."""
    base = SUBSET.fullmatch(name).group("base")  # type: ignore[union-attr] - the pattern matches every name
    return base, name[len(base):]


def belongs_to(name: str, dataset: str) -> bool:
    """Whether ``name``'s runs belong to ``dataset``: the dataset itself, or a subset of it."""
    return name == dataset or split_subset(name)[0] == dataset


def related_datasets(raw: str, available: list[str]) -> list[str]:
    """``raw`` first, then its raw baselines among ``available`` (``<raw>-ngram-*``, e.g. the surnames'
    character n-gram counts), then its encodings (names starting with its encoded prefix), each group
    in natural order (``mlp-8`` before ``mlp-32``).

    Subsets belong to their dataset and pair with the same subset of the others: for a subset
    ``raw`` (``<base>-test500``) the baselines and encodings of ``<base>`` with the suffix ``-test500``;
    for a whole ``raw``, each subset of it found in ``available`` follows, with its own."""
    base, suffix = split_subset(raw)
    subsets = {split_subset(d)[1] for d in available if belongs_to(d, base)} - {""}
    suffixes = [suffix] if suffix else ["", *sorted(subsets, key=_natural)]
    groups = [f"{base}-ngram-", encoded_prefix(base)]
    out = []
    for s in suffixes:
        out.append(base + s)
        for prefix in groups:
            out += sorted((d for d in available if d.startswith(prefix) and split_subset(d)[1] == s), key=_natural)
    return out


def dataset_facts(name: str, data_dir: Path | None, recorded: list[str] | None = None) -> dict[str, float]:
    """Dimension and (for encodings, binary ones too) the network's test accuracy, read from the dataset file's
    attrs: the file where the runs recorded it (``recorded``), else ``<data_dir>/<name>.hdf5``; NaN where neither
    exists. A subset (``run --max-test``) has its parent's network: its accuracy is read from the parent's file
    (:func:`parent_file`)."""
    candidates = [Path(p) for p in recorded or []] + ([Path(data_dir) / f"{name}.hdf5"] if data_dir else [])
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return {"dimension": np.nan, "net_accuracy": np.nan}
    with h5py.File(path, "r") as f:
        dimension = float(f.attrs.get("dimension", f["train"].shape[1]))
        accuracy = float(f.attrs.get("encoder_test_accuracy", np.nan))
        parent = parent_file(path, dict(f.attrs))
    if np.isnan(accuracy) and parent is not None:
        with h5py.File(parent, "r") as f:
            accuracy = float(f.attrs.get("encoder_test_accuracy", np.nan))
    return {"dimension": dimension, "net_accuracy": accuracy}


def parent_file(path: Path, attrs: dict[str, object]) -> Path | None:
    """The file a subset (``attrs["parent"]``) was cut from: ``attrs["parent_path"]``, else the parent's name
    beside the subset (subsets are written to the parent's data folder); None where neither is a file."""
    if "parent" not in attrs:
        return None
    candidates = [Path(str(attrs["parent_path"]))] if "parent_path" in attrs else []
    candidates.append(path.with_name(f"{attrs['parent']}.hdf5"))
    return next((p for p in candidates if p.is_file()), None)


def side_by_side(frame: pd.DataFrame, datasets: list[str], min_recall: float = 0.9,
                 data_dir: Path | None = None) -> pd.DataFrame:
    """One row per (dataset, algorithm) of ``frame`` (a :func:`annbench.analyse.frames.results_frame`
    of one k and one mode), datasets in the given order, at the operating point ``min_recall``
    (NaN columns where no run reaches it)."""
    ok = frame[frame["status"] == Status.OK]
    extra = [c for c in PROCESS_COLUMNS if c in ok]
    parts = []
    for name in datasets:
        runs = ok[ok["dataset"] == name]
        if runs.empty:
            continue
        points = operating_points(runs, (min_recall,), columns=[*OPERATING_COLUMNS, "knn_accuracy", *extra])
        by_algorithm = runs.groupby("algorithm")
        points["best_recall"] = points["algorithm"].map(by_algorithm["recall"].max())
        exact = by_algorithm["knn_accuracy_exact"].first() if "knn_accuracy_exact" in runs else None
        points["knn_accuracy_exact"] = points["algorithm"].map(exact) if exact is not None else np.nan
        recorded = list(runs["dataset_path"].dropna().astype(str).unique()) if "dataset_path" in runs else []
        facts = dataset_facts(name, data_dir, recorded)
        parts.append(points.rename(columns={"qps": "qps_at_recall"}).assign(dataset=name, **facts))
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.concat(parts, ignore_index=True)
    return versus_raw(table, datasets)[COLUMNS]


def versus_raw(table: pd.DataFrame, datasets: list[str]) -> pd.DataFrame:
    """``table`` with ``qps_low`` / ``qps_high`` (each point's process interval) and ``qps_vs_raw`` /
    ``qps_vs_raw_p``: each point against the same algorithm's point on the raw dataset of its subset (the first
    of ``datasets`` with the same subset suffix), NaN where either was measured in fewer than two processes."""
    table = table.assign(qps_low=table.get("qps_ci95_low", np.nan), qps_high=table.get("qps_ci95_high", np.nan),
                         qps_vs_raw=np.nan, qps_vs_raw_p=np.nan)
    if "qps_processes" not in table:
        return table
    raw_of = {}
    for name in datasets:
        raw_of.setdefault(split_subset(name)[1], name)
    per = {(r["dataset"], r["algorithm"]): process_values(r["qps_processes"]) for _, r in table.iterrows()}
    for i, row in table.iterrows():
        raw = raw_of.get(split_subset(str(row["dataset"]))[1])
        then, now = per.get((raw, row["algorithm"]), np.empty(0)), per[(row["dataset"], row["algorithm"])]
        if raw != row["dataset"] and len(then) >= 2 and len(now) >= 2:
            change = process_ratio(then, now)
            table.loc[i, ["qps_vs_raw", "qps_vs_raw_p"]] = [change.ratio, change.p_value]
    return table
