"""Figures from result tables (matplotlib, no display needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from annbench.analyse import pareto_frame

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
SCALES_X = ("linear", "log", "logit")
SCALES_Y = ("linear", "log")


def style(algorithm: str) -> tuple[tuple[float, float, float, float], str]:
    """The colour and marker of an algorithm: derived from its name, so stable across plots."""
    import matplotlib

    h = int(hashlib.md5(algorithm.encode()).hexdigest(), 16)
    return matplotlib.colormaps["tab20"](h % 20), MARKERS[(h // 20) % len(MARKERS)]


def _save(fig, output: str | Path) -> Path:  # noqa: ANN001 - a matplotlib Figure
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, bbox_inches="tight")
    return output


def plot_metric_pair(frame: pd.DataFrame, x: str, y: str, output: str | Path, title: str,
                     x_scale: str = "linear", y_scale: str = "log", all_points: bool = False) -> Path:
    """One line per algorithm through its Pareto-optimal points (all points with ``all_points``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = frame[frame["status"] == "ok"]
    front = pareto_frame(ok, x, y)
    fig, ax = plt.subplots(figsize=(8, 6))
    try:
        for (algorithm, batch), line in front.groupby(["algorithm", "batch"], sort=True):
            colour, marker = style(algorithm)
            label = f"{algorithm}{' (batch)' if batch else ''}"
            if all_points:
                pts = ok[(ok["algorithm"] == algorithm) & (ok["batch"] == batch)]
                ax.scatter(pts[x], pts[y], color=colour, marker=marker, alpha=0.3, s=14)
            ax.plot(line[x], line[y], color=colour, marker=marker, label=label, linewidth=1.5, markersize=5)
        ax.set_xscale(x_scale)
        ax.set_yscale(y_scale)
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if len(front):
            ax.legend(loc="best", fontsize="small")
        return _save(fig, output)
    finally:
        plt.close(fig)


#: Panels of the side-by-side comparison: (column, label, log scale).
COMPARISON_PANELS = (("qps_at_recall", "QPS at recall ≥ {r:g}", True), ("build_s", "build time (s)", True),
                     ("index_bytes", "index size (bytes)", True), ("knn_accuracy", "kNN accuracy", False))


def plot_comparison(table: pd.DataFrame, output: str | Path, title: str, min_recall: float) -> Path:
    """Grouped bars: one panel per metric, one group per algorithm, one bar per dataset (raw first)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    datasets = list(dict.fromkeys(table["dataset"]))
    algorithms = sorted(table["algorithm"].unique())
    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, max(1, len(datasets))))
    width = 0.8 / max(1, len(datasets))
    fig, axes = plt.subplots(1, len(COMPARISON_PANELS), figsize=(5 * len(COMPARISON_PANELS), 4.5))
    try:
        for ax, (column, label, log_scale) in zip(axes, COMPARISON_PANELS):
            for i, (name, colour) in enumerate(zip(datasets, colours)):
                part = table[table["dataset"] == name].set_index("algorithm").reindex(algorithms)
                ax.bar(np.arange(len(algorithms)) + (i - (len(datasets) - 1) / 2) * width,
                       part[column].to_numpy(float), width, color=colour, label=name)
            ax.set_xticks(np.arange(len(algorithms)), algorithms, rotation=30, ha="right")
            ax.set_title(label.format(r=min_recall))
            if log_scale:
                ax.set_yscale("log")
            ax.grid(True, axis="y", alpha=0.3)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(datasets)), fontsize="small",
                   bbox_to_anchor=(0.5, -0.12 - 0.05 * ((len(datasets) - 1) // 4)))
        fig.suptitle(title)
        return _save(fig, output)
    finally:
        plt.close(fig)
