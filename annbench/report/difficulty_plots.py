"""Figures of query difficulty and scaling: difficulty histograms, recall by difficulty decile, QPS at a
fixed recall against threads, and QPS or tail latency against concurrent clients (matplotlib, no display
needed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from annbench.analyse.difficulty import Difficulty
from annbench.core.results import Status
from annbench.report.plotting import plain_text, styles


def _figure(n: int, width: float = 4.5, height: float = 3.4):  # (Figure, axes)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, n)
    rows = math.ceil(n / cols)
    return plt, *plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, layout="constrained")


def _save(plt, fig, output: str | Path) -> Path:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(output, bbox_inches="tight",
                    metadata={".svg": {"Date": None}, ".pdf": {"CreationDate": None}}.get(output.suffix.lower(), {}))
    finally:
        plt.close(fig)
    return output


def plot_difficulty(difficulty: Difficulty, output: str | Path, title: str) -> Path:
    """One histogram per measure of the queries' values (finite ones; the count of others in the
    panel title), quartiles marked."""
    names = list(difficulty.values)
    plt, fig, axes = _figure(max(1, len(names)))
    for ax, name in zip(axes.flat, names):
        v = difficulty.values[name]
        finite = v[np.isfinite(v)]
        ax.hist(finite, bins=50, color="#4477aa")
        for q in np.percentile(finite, [25, 50, 75]) if len(finite) else ():
            ax.axvline(q, color="#cc3311", linewidth=0.8, linestyle="--")
        other = len(v) - len(finite)
        ax.set_title(f"{name}{f' ({other} not finite)' if other else ''}")
        ax.set_xlabel(name)
        ax.set_ylabel("queries")
        ax.grid(True, alpha=0.3)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    fig.suptitle(plain_text(f"{title}: query difficulty ({difficulty.n_queries} queries; dashed: quartiles)"))
    return _save(plt, fig, output)


def _lines(table: pd.DataFrame, x: str, y: str, output: str | Path, title: str, xlabel: str, ylabel: str,
           empty: str, log_y: bool = False, dashed: str | None = None) -> Path:
    """One line per algorithm (and batch mode) of ``table``'s ``y`` against ``x``, integer x ticks;
    ``dashed``: a column drawn as a dashed line of the same colour beside each (e.g. the ideal)."""
    plt, fig, axes = _figure(1, 7, 5)
    ax = axes[0, 0]
    palette = styles(table["algorithm"].astype(str))
    for (algorithm, batch), line in table.groupby(["algorithm", "batch"], sort=True):
        colour, marker = palette[str(algorithm)]
        line = line.sort_values(x)
        ax.plot(line[x], line[y], color=colour, marker=marker,
                label=plain_text(f"{algorithm}{' (batch)' if batch else ''}"))
        if dashed is not None:
            ax.plot(line[x], line[dashed], color=colour, linestyle="--", linewidth=0.9, alpha=0.8)
    ax.set_xticks(sorted(int(v) for v in table[x].unique()) if len(table) else [])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    if len(table):
        ax.legend(fontsize="small", loc="best")
    else:
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", color="grey")
    ax.set_title(plain_text(title))
    return _save(plt, fig, output)


def plot_recall_by_difficulty(table: pd.DataFrame, output: str | Path, title: str, measure: str) -> Path:
    """Mean recall per difficulty decile (:func:`annbench.analyse.perquery.recall_by_difficulty`), one line per
    algorithm."""
    bins = int(table["bin"].max()) if len(table) else 10
    return _lines(table, "bin", "recall", output, title, f"{measure} decile (1 = easiest, {bins} = hardest)",
                  "mean recall", "no operating points")


def scaling_table(frame: pd.DataFrame, at_recall: float) -> pd.DataFrame:
    """Per algorithm, mode and thread count: the best QPS among successful runs with recall ≥ ``at_recall``
    (columns ``algorithm``, ``batch``, ``threads``, ``qps``, ``recall``, ``build_params``, ``query_params``)."""
    from annbench.analyse.frames import operating_points

    rows = []
    ok = frame[frame["status"] == Status.OK]
    for threads, part in ok.groupby("threads", sort=True):
        points = operating_points(part, levels=(at_recall,))
        points.insert(2, "threads", int(threads))
        rows.append(points)
    cols = ["algorithm", "batch", "threads", "qps", "recall", "build_params", "query_params"]
    return pd.concat(rows, ignore_index=True)[cols].dropna(subset=["qps"]) if rows else pd.DataFrame(columns=cols)


def plot_scaling(table: pd.DataFrame, output: str | Path, title: str) -> Path:
    """QPS at a fixed recall against threads (:func:`scaling_table`), one line per algorithm."""
    return _lines(table, "threads", "qps", output, title, "threads", "QPS", "no run reaches this recall", log_y=True)


def plot_client_scaling(table: pd.DataFrame, y: str, output: str | Path, title: str) -> Path:
    """QPS (``y = "qps"``, with each algorithm's ideal line dashed: single-client QPS × min(clients, cores))
    or a latency percentile (``p99_ms`` ...) against concurrent clients, at a fixed recall
    (:func:`annbench.analyse.concurrency.client_scaling`), one line per algorithm."""
    qps = y == "qps"
    label = "total QPS (dashed: ideal)" if qps else f"{y.removesuffix('_ms')} latency (ms)"
    return _lines(table, "clients", y, output, title, "concurrent clients", label, "no run reaches this recall",
                  log_y=True, dashed="ideal_qps" if qps else None)
