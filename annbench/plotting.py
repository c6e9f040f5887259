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
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(output, bbox_inches="tight")
    finally:
        plt.close(fig)
    return output
