"""Client levels in stored results: which levels there are, one level's runs, and the scaling table
(QPS and tail latency as clients are added, at a fixed recall, beside the ideal line)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from annbench.analyse.frames import measured, operating_points

log = logging.getLogger(__name__)

#: Columns of :func:`client_scaling`.
SCALING_COLUMNS = ["algorithm", "batch", "clients", "client_kind", "qps", "ideal_qps", "efficiency", "p50_ms",
                   "p99_ms", "client_latency_every", "client_fairness", "recall", "single_client_recall", "cores",
                   "build_params", "query_params"]


def levels(frame: pd.DataFrame) -> list[int]:
    """The client levels of the runs in ``frame``, ascending (results stored before levels existed are level 1)."""
    if "clients" not in frame or frame.empty:
        return [1] if len(frame) else []
    return sorted(int(c) for c in frame["clients"].fillna(1).unique())


def at_level(frame: pd.DataFrame, clients: int) -> pd.DataFrame:
    """The runs of one client level."""
    if "clients" not in frame:
        return frame if clients == 1 else frame.iloc[0:0]
    return frame[frame["clients"].fillna(1).astype(int) == clients]


def client_scaling(frame: pd.DataFrame, at_recall: float) -> pd.DataFrame:
    """Per algorithm (and mode, thread count): its single-client operating point at ``at_recall`` — the
    fastest level-1 run with recall ≥ ``at_recall`` — followed through every client level of the same
    build and query setting. ``ideal_qps`` = single-client QPS × min(clients, cores), ``cores`` being the
    cores the level's clients ran on (level 1: 1); ``efficiency`` = qps / ideal_qps; ``client_latency_every``:
    the percentiles are over one query in that many (1: every query; results of before it: 1)."""
    ok = measured(frame)
    rows = []
    for threads, part in ok.groupby(ok["threads"] if "threads" in ok else pd.Series(1, index=ok.index), sort=True):
        single = at_level(part, 1)
        points = operating_points(single, levels=(at_recall,), columns=["build_params", "query_params"])
        for _, point in points.dropna(subset=["qps"]).iterrows():
            same = part[(part["algorithm"] == point["algorithm"]) & (part["batch"] == point["batch"])
                        & (part["build_params"] == point["build_params"])
                        & (part["query_params"] == point["query_params"])]
            base = float(point["qps"])
            for _, run in same.iterrows():
                clients = int(run.get("clients", 1) if pd.notna(run.get("clients", 1)) else 1)
                cores = int(run["client_cores_available"]) if clients > 1 and pd.notna(
                    run.get("client_cores_available", np.nan)) else 1
                ideal = base * min(clients, cores) if clients > 1 else base
                rows.append({**{c: run.get(c, np.nan) for c in SCALING_COLUMNS}, "clients": clients,
                             "client_kind": run.get("client_kind", np.nan) if clients > 1 else "-",
                             "client_latency_every": _every(run) if clients > 1 else 1,
                             "ideal_qps": ideal, "efficiency": float(run["qps"]) / ideal, "cores": cores,
                             "single_client_recall": float(point["recall"])})
    if not rows:
        return pd.DataFrame(columns=SCALING_COLUMNS)
    table = pd.DataFrame(rows)[SCALING_COLUMNS]
    return table.sort_values(["algorithm", "batch", "clients"], ignore_index=True)


def _every(run: pd.Series) -> int:
    """One in how many queries a client level timed (1 for levels stored before it could be more)."""
    every = run.get("client_latency_every", np.nan)
    return int(every) if pd.notna(every) else 1


def serialising(table: pd.DataFrame, share: float = 0.5) -> list[str]:
    """Algorithms of a :func:`client_scaling` whose clients add less than ``share`` of a core's worth of
    throughput per extra core: at the highest level with more than one core, QPS below
    ``single · (1 + share · (min(clients, cores) − 1))``. Their clients effectively take turns."""
    out = []
    for algorithm, rows in table.groupby("algorithm", sort=True):
        many = rows[(rows["clients"] > 1) & (rows["cores"] > 1)]
        single = rows[rows["clients"] == 1]
        if many.empty or single.empty:
            continue
        top = many.iloc[-1]
        parallel = min(int(top["clients"]), int(top["cores"]))
        if float(top["qps"]) < float(single["qps"].iloc[0]) * (1 + share * (parallel - 1)):
            out.append(str(algorithm))
    return out
