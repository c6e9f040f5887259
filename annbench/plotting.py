"""Figures from result tables (matplotlib, no display needed).

A *view* is a named metric pair with default scales; any other pair can be drawn too.
Each algorithm (and batch mode) is one line through its Pareto-optimal points, in a colour
and marker derived from its name, so the same algorithm looks the same in every figure, except
that no two algorithms of one figure share a colour (see :func:`styles`).
Where a run kept several timed passes, QPS carries its spread: the line goes through the
fastest pass (``qps``), a bar and a shaded band reach down to the slowest one (``qps_slowest``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from annbench.analyse import hosts_per_curve, measured, pareto_frame

log = logging.getLogger(__name__)

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
SCALES = ("linear", "log", "logit")
SCALES_X = SCALES
SCALES_Y = SCALES
#: Metric → column holding the slow end of its spread (the metric itself is the fast end).
SPREAD = {"qps": "qps_slowest"}


@dataclass(frozen=True)
class View:
    name: str
    x: str
    y: str
    x_scale: str = "linear"
    y_scale: str = "log"
    note: str = ""


VIEWS: dict[str, View] = {v.name: v for v in (
    View("recall-qps", "recall", "qps"),
    View("recall-build", "recall", "build_s"),
    View("recall-size", "recall", "index_bytes"),
    View("recall-p99", "recall", "p99_ms"),
    View("knn-qps", "knn_accuracy", "qps", note="labelled datasets only"),
)}
DEFAULT_VIEW = "recall-qps"


def _name_hash(algorithm: str) -> int:
    return int(hashlib.md5(algorithm.encode()).hexdigest(), 16)


def style(algorithm: str) -> tuple[tuple[float, float, float, float], str]:
    """The colour and marker an algorithm prefers: derived from its name, so stable across plots."""
    import matplotlib

    h = _name_hash(algorithm)
    return matplotlib.colormaps["tab20"](h % 20), MARKERS[(h // 20) % len(MARKERS)]


def styles(algorithms: Iterable[str]) -> dict[str, tuple[tuple[float, float, float, float], str]]:
    """Colour and marker of each algorithm in one figure. Each keeps the colour of :func:`style`
    unless an algorithm before it (sorted by name) holds it; then it takes the next of the 20
    colours nobody in the figure prefers, so up to 20 algorithms never share a colour."""
    import matplotlib

    names = sorted(set(algorithms))
    want = {name: _name_hash(name) % 20 for name in names}
    slots: dict[str, int] = {}
    for name in names:
        if want[name] not in slots.values():
            slots[name] = want[name]
    free = [i for i in range(20) if i not in slots.values()]
    for name in names:
        if name not in slots and free:
            slots[name] = min(free, key=lambda i: (i - want[name]) % 20)  # the next free one after its own
            free.remove(slots[name])
        slots.setdefault(name, want[name])  # more than 20 algorithms: markers still tell them apart
    return {n: (matplotlib.colormaps["tab20"](slots[n]), style(n)[1]) for n in names}


def plain_text(text: str) -> str:
    """Text matplotlib shows literally (``$`` would otherwise start mathtext)."""
    return text.replace("$", r"\$")


def params_label(build_params: str, query_params: str) -> str:
    """``leaf_size=40 | ef=10`` from the stored JSON parameter strings."""
    parts = []
    for text in (build_params, query_params):
        try:
            params = json.loads(text or "{}")
        except ValueError:
            params = {"?": text}
        parts.append(" ".join(f"{k}={v}" for k, v in params.items()))
    return " | ".join(p for p in parts if p) or "defaults"


def _usable(frame: pd.DataFrame, column: str, scale: str) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    if column == "index_bytes":
        values = values.where(values >= 0)  # -1 = the library cannot serialise its index
    if scale == "log":
        values = values.where(values > 0)
    return values.notna()


def _set_scale(ax, which: str, scale: str) -> None:  # noqa: ANN001 - matplotlib Axes
    setter = ax.set_xscale if which == "x" else ax.set_yscale
    if scale == "linear":
        setter("linear")
    else:
        with warnings.catch_warnings():  # all values at 0 or 1 (e.g. exact methods) on logit: still drawn
            warnings.filterwarnings("ignore", "Data has no values between 0 and 1")
            setter(scale, nonpositive="clip")  # recall 1.0 on logit, 0 on log: at the edge, not dropped


def _spread(points: pd.DataFrame, metric: str) -> np.ndarray | None:
    """Error-bar lengths ``[[below], [above]]`` for ``metric``, or None without a spread."""
    low_col = SPREAD.get(metric)
    if low_col is None or low_col not in points:
        return None
    low = pd.to_numeric(points[low_col], errors="coerce").to_numpy(float)
    value = points[metric].to_numpy(float)
    below = np.where(np.isnan(low), 0.0, np.clip(value - low, 0.0, None))
    return np.vstack([below, np.zeros_like(below)]) if below.any() else None


def warn_mixed_hosts(frame: pd.DataFrame) -> None:
    """Warn about every curve whose runs were measured on more than one host: its timings come
    from machines of possibly different speed, so its shape (and its Pareto front) mean little."""
    for (algorithm, batch), hosts in hosts_per_curve(frame).items():
        if len(hosts) > 1:
            log.warning("the curve of %s%s mixes runs measured on %d hosts (%s): timings from machines of "
                        "different speed are not comparable; plot one host at a time (plot.py --host NAME)",
                        algorithm, " (batch)" if batch else "", len(hosts), ", ".join(hosts))


def draw(ax, frame: pd.DataFrame, x: str, y: str, *, all_points: bool = False, annotate: bool = False,  # noqa: ANN001
         x_scale: str = "linear", y_scale: str = "log", palette: dict | None = None) -> int:
    """Draw ``frame``'s successful runs on ``ax``; returns the number of lines drawn. ``palette``:
    :func:`styles` of every algorithm in the figure (default: of those in ``frame``)."""
    ok = measured(frame)
    ok = ok[_usable(ok, x, x_scale) & _usable(ok, y, y_scale)]
    warn_mixed_hosts(ok)
    front = pareto_frame(ok, x, y) if len(ok) else ok
    palette = palette or styles(frame["algorithm"].astype(str))
    lines = 0
    for (algorithm, batch), line in front.groupby(["algorithm", "batch"], sort=True):
        colour, marker = palette[str(algorithm)]
        label = plain_text(f"{algorithm}{' (batch)' if batch else ''}")
        if all_points:
            pts = ok[(ok["algorithm"] == algorithm) & (ok["batch"] == batch)]
            ax.scatter(pts[x], pts[y], color=colour, marker=marker, alpha=0.3, s=14)
        ax.plot(line[x], line[y], color=colour, marker=marker, label=label, linewidth=1.5, markersize=5)
        yerr, xerr = _spread(line, y), _spread(line, x)
        if yerr is not None or xerr is not None:
            ax.errorbar(line[x], line[y], yerr=yerr, xerr=xerr, fmt="none", ecolor=colour, elinewidth=0.8,
                        capsize=2)
        if yerr is not None and len(line) > 1:
            ax.fill_between(line[x], line[y] - yerr[0], line[y], color=colour, alpha=0.15, linewidth=0)
        if annotate:
            for _, p in line.iterrows():
                ax.annotate(plain_text(params_label(p.get("build_params", ""), p.get("query_params", ""))),
                            (p[x], p[y]), xytext=(3, 3), textcoords="offset points", fontsize=6, color=colour)
        lines += 1
    _set_scale(ax, "x", x_scale)
    _set_scale(ax, "y", y_scale)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(True, which="both", alpha=0.3)
    if not lines:
        ax.text(0.5, 0.5, "no successful runs with these metrics", transform=ax.transAxes, ha="center",
                va="center", color="grey")
    return lines


def plot_panels(panels: Sequence[tuple[str, pd.DataFrame]], x: str, y: str, output: str | Path, *,
                x_scale: str = "linear", y_scale: str = "log", all_points: bool = False, annotate: bool = False,
                title: str | None = None) -> Path:
    """One figure, one panel per ``(title, frame)`` in a grid, one shared legend; saved by suffix
    (``.png``, ``.svg``, ``.pdf``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    cols = 1 if n == 1 else 2 if n <= 4 else 3
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(8 if n == 1 else 5.5 * cols, 6 if n == 1 else 4.5 * rows),
                             squeeze=False, layout="constrained")
    try:
        handles: dict[str, object] = {}
        palette = styles(a for _, frame in panels for a in frame["algorithm"].astype(str))
        for ax, (panel_title, frame) in zip(axes.flat, panels):
            draw(ax, frame, x, y, all_points=all_points, annotate=annotate, x_scale=x_scale, y_scale=y_scale,
                 palette=palette)
            ax.set_title(plain_text(panel_title))
            for h, label in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(label, h)
        for ax in axes.flat[n:]:
            ax.set_visible(False)
        if handles:
            if n == 1:
                axes[0, 0].legend(list(handles.values()), list(handles), loc="best", fontsize="small")
            else:
                fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                           ncol=min(4, len(handles)), fontsize="small")
        if title:
            fig.suptitle(plain_text(title))
        return _save(fig, output)
    finally:
        plt.close(fig)


def _metadata(suffix: str) -> dict[str, str | None]:
    # No creation date: the same results give the same file.
    return {".svg": {"Date": None}, ".pdf": {"CreationDate": None}}.get(suffix.lower(), {})


def _save(fig, output: str | Path) -> Path:  # noqa: ANN001 - a matplotlib Figure
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, bbox_inches="tight", metadata=_metadata(output.suffix))
    return output


def plot_metric_pair(frame: pd.DataFrame, x: str, y: str, output: str | Path, title: str,
                     x_scale: str = "linear", y_scale: str = "log", all_points: bool = False,
                     annotate: bool = False) -> Path:
    """One line per algorithm through its Pareto-optimal points (all points with ``all_points``)."""
    return plot_panels([(title, frame)], x, y, output, x_scale=x_scale, y_scale=y_scale, all_points=all_points,
                       annotate=annotate)


#: Panels of the raw-vs-encoded comparison: (column, title, log scale).
COMPARISON_PANELS = (("qps_at_recall", "QPS at recall ≥ {r:g}", True), ("build_s", "build time (s)", True),
                     ("index_bytes", "index size (bytes)", True), ("knn_accuracy", "kNN accuracy", False))


def plot_comparison(table: pd.DataFrame, output: str | Path, title: str, min_recall: float) -> Path:
    """Grouped bars (:func:`annbench.compare.side_by_side` table): one panel per metric, one group
    per algorithm, one bar per dataset (raw first)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(table["dataset"]))
    algorithms = sorted(table["algorithm"].unique())
    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, max(1, len(datasets))))
    width = 0.8 / max(1, len(datasets))
    fig, axes = plt.subplots(1, len(COMPARISON_PANELS), figsize=(5 * len(COMPARISON_PANELS), 4.5),
                             layout="constrained")
    try:
        for ax, (column, label, log_scale) in zip(axes, COMPARISON_PANELS):
            for i, (name, colour) in enumerate(zip(datasets, colours)):
                part = table[table["dataset"] == name].set_index("algorithm").reindex(algorithms)
                values = part[column].to_numpy(float)
                if column == "index_bytes":
                    values = np.where(values >= 0, values, np.nan)  # -1: the library cannot serialise
                ax.bar(np.arange(len(algorithms)) + (i - (len(datasets) - 1) / 2) * width, values, width,
                       color=colour, label=plain_text(name))
            ax.set_xticks(np.arange(len(algorithms)), [plain_text(a) for a in algorithms], rotation=30, ha="right")
            ax.set_title(label.format(r=min_recall))
            if log_scale:
                ax.set_yscale("log")
            ax.grid(True, axis="y", alpha=0.3)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(datasets)), fontsize="small")
        fig.suptitle(plain_text(title))
        return _save(fig, output)
    finally:
        plt.close(fig)
