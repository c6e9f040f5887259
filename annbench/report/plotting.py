"""Figures from result tables (matplotlib, no display needed).

A *view* is a named metric pair with default scales; any other pair can be drawn too.
Each algorithm (and batch mode) is one line through its Pareto-optimal points, in a colour
and marker derived from its name, so the same algorithm looks the same in every figure, except
that no two algorithms of one figure share a colour (up to 10) or a colour and marker pair (up
to 100; see :func:`styles`). Colours are Paul Tol's colour-blind-safe "muted" scheme plus black.
Where a run kept several timed passes, QPS carries its spread: the line goes through the
fastest pass (``qps``), an error bar reaches down to the slowest one (``qps_slowest``), or for a run
measured in several processes spans their 95 % interval (``qps_ci95_low`` .. ``qps_ci95_high``); a shaded
band too with ``bands``. The legend sits outside the axes. Quality axes (recall, kNN accuracy)
default to the ``nines`` scale (:func:`nines`): 0.9, 0.99 and 0.999 equally far apart.
"""

from __future__ import annotations

import hashlib
import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from annbench.analyse.frames import hosts_per_curve, measured, pareto_frame
from annbench.core.results import from_canonical
from annbench.quality.metrics import ONE_RECALL_RS, one_recall_column

log = logging.getLogger(__name__)

#: The figure file types matplotlib writes here.
PLOT_SUFFIXES = (".png", ".svg", ".pdf")

#: Paul Tol's "muted" qualitative scheme (colour-blind safe) and black: rose, indigo, sand, green,
#: cyan, wine, teal, olive, purple, black.
PALETTE = ("#CC6677", "#332288", "#DDCC77", "#117733", "#88CCEE", "#882255", "#44AA99", "#999933", "#AA4499",
           "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
#: Line styles of the first, second and third algorithm sharing a colour in one figure.
DASHES = ("-", "--", ":", "-.")
SCALES = ("nines", "linear", "log", "logit")
SCALES_X = SCALES
SCALES_Y = SCALES
#: Metric → column holding the slow end of its spread (the metric itself is the fast end).
SPREAD = {"qps": "qps_slowest"}
#: Metric → its interval across measuring processes (``--processes P``): where a run has it, the error bar.
INTERVAL = {"qps": ("qps_ci95_low", "qps_ci95_high")}
#: Metrics in [0, 1] where higher is better: their default scale is ``nines``.
QUALITY = ("recall", "id_recall", "knn_accuracy", "knn_accuracy_exact", "eps_recall_0.01", "eps_recall_0.1",
           *map(one_recall_column, ONE_RECALL_RS))
#: Axis labels a reader understands (any other metric is labelled by its column name).
LABELS = {"recall": "recall", "id_recall": "recall (by id)", "knn_accuracy": "kNN accuracy",
          "qps": "queries per second", "qps_median": "queries per second (median pass)", "build_s": "build time (s)",
          "index_bytes": "index size (bytes)", "p50_ms": "p50 latency (ms)", "p99_ms": "p99 latency (ms)",
          "build_peak_rss_bytes": "build peak memory (bytes)"}
#: Figure sizes (inches) and font size (points): ``single``/``double`` = one/two columns of a paper.
SIZES = {"screen": ((9.0, 5.5), 10.0), "single": ((3.5, 2.8), 7.0), "double": ((7.16, 3.4), 8.0)}


@dataclass(frozen=True)
class View:
    name: str
    x: str
    y: str
    x_scale: str = "nines"
    y_scale: str = "log"
    note: str = ""


VIEWS: dict[str, View] = {v.name: v for v in (
    View("recall-qps", "recall", "qps"),
    View("recall-build", "recall", "build_s"),
    View("recall-size", "recall", "index_bytes"),
    View("recall-p99", "recall", "p99_ms"),
    View("knn-qps", "knn_accuracy", "qps", note="labelled datasets only"),
)}


def default_scale(metric: str) -> str:
    """``nines`` for quality metrics in [0, 1], else ``log``."""
    return "nines" if metric in QUALITY else "log"


def axis_label(metric: str, scale: str = "linear") -> str:
    """The axis label of ``metric``; on the nines scale it says how the axis is spaced."""
    text = LABELS.get(metric, metric)
    return f"{text} (log scale of 1 − {text})" if scale == "nines" else text


#: Decades between the last tick below 1 and 1 itself on the nines axis.
NINES_GAP = 0.5


def nines_floor(values: Iterable[float]) -> float:
    """``10^-d`` for the decade d holding the best value below 1 (``1 - q`` smallest; at most
    d = 6, d = 2 without one): the nines axis is logarithmic in ``1 - q`` down to it."""
    q = np.asarray(list(values), dtype=float)
    below = 1.0 - q[(q < 1.0) & np.isfinite(q)]
    below = below[below > 0]
    decades = math.ceil(-math.log10(below.min()) - 1e-9) if len(below) else 2
    return 10.0 ** -min(max(decades, 1), 6)


def nines(q: np.ndarray, floor: float) -> np.ndarray:
    """The nines transform: ``-log10(1 - q)`` while ``1 - q >= floor`` (0.9 → 1, 0.99 → 2), then
    linear, so that 1 sits :data:`NINES_GAP` decades past ``floor`` and beyond it stays drawable."""
    q = np.asarray(q, dtype=float)
    top = -math.log10(floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_part = -np.log10(np.maximum(1.0 - q, floor))
    return np.where(1.0 - q >= floor, log_part, top + (q - 1.0 + floor) / floor * NINES_GAP)


def nines_inverse(t: np.ndarray, floor: float) -> np.ndarray:
    """The quality at position ``t`` of the nines axis (inverse of :func:`nines`)."""
    t = np.asarray(t, dtype=float)
    top = -math.log10(floor)
    return np.where(t <= top, 1.0 - 10.0 ** -np.minimum(t, top), 1.0 - floor + (t - top) / NINES_GAP * floor)


def nines_ticks(floor: float) -> list[float]:
    """Tick values of the nines axis: 0, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999 … down to ``1 - floor``, then 1."""
    ticks = [0.0, 0.5, 0.8, 0.9, 0.95]
    d = 2
    while 10.0 ** -d > floor * 0.9999:
        ticks.append(1 - 10.0 ** -d)
        d += 1
    return [*ticks, 1.0]


def tick_text(q: float) -> str:
    """``0.999`` (never ``0.9990000000000001``), ``1`` for 1."""
    return "1" if q >= 1.0 else f"{round(q, 8):g}"
DEFAULT_VIEW = "recall-qps"


def _name_hash(algorithm: str) -> int:
    return int(hashlib.md5(algorithm.encode()).hexdigest(), 16)


def _rgba(hex_colour: str) -> tuple[float, float, float, float]:
    h = hex_colour.lstrip("#")
    return tuple(int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)) + (1.0,)


def style(algorithm: str) -> tuple[tuple[float, float, float, float], str]:
    """The colour and marker an algorithm prefers: derived from its name, so stable across plots."""
    h = _name_hash(algorithm)
    return _rgba(PALETTE[h % len(PALETTE)]), MARKERS[(h // len(PALETTE)) % len(MARKERS)]


def styles(algorithms: Iterable[str]) -> dict[str, tuple[tuple[float, float, float, float], str]]:
    """Colour and marker of each algorithm in one figure. Each keeps the colour of :func:`style`
    unless an algorithm before it (sorted by name) holds it; then it takes the next of the 10
    colours nobody in the figure prefers, so up to 10 algorithms never share a colour. Past 10,
    colours are shared, each by as few algorithms as can be (the least used, nearest after its
    own), and within a colour each algorithm keeps its preferred marker unless one before it holds
    it (then the next free one): up to 100 algorithms never share a colour and marker pair."""
    names = sorted(set(algorithms))
    n_colours, n_markers = len(PALETTE), len(MARKERS)
    want = {name: _name_hash(name) % n_colours for name in names}
    slots: dict[str, int] = {}
    for name in names:
        if want[name] not in slots.values():
            slots[name] = want[name]
    free = [i for i in range(n_colours) if i not in slots.values()]
    for name in names:
        if name not in slots and free:
            slots[name] = min(free, key=lambda i: (i - want[name]) % n_colours)  # the next free one after its own
            free.remove(slots[name])
    uses = {i: list(slots.values()).count(i) for i in range(n_colours)}
    for name in names:  # more than 10 algorithms: share the least used colours
        if name not in slots:
            slots[name] = min(range(n_colours), key=lambda i: (uses[i], (i - want[name]) % n_colours))
            uses[slots[name]] += 1
    out: dict[str, tuple[tuple[float, float, float, float], str]] = {}
    taken: set[tuple[int, int]] = set()
    for name in names:
        own = MARKERS.index(style(name)[1])
        m = next((own + j) % n_markers for j in range(n_markers) if (slots[name], (own + j) % n_markers) not in taken) \
            if len(taken) < n_colours * n_markers else own
        taken.add((slots[name], m))
        out[name] = (_rgba(PALETTE[slots[name]]), MARKERS[m])
    return out


def dashes(palette: dict[str, tuple[tuple[float, float, float, float], str]]) -> dict[str, str]:
    """Line style per algorithm of :func:`styles`: solid for the first (by name) of each colour,
    dashed for the second, dotted for the third …, so lines sharing a colour differ twice."""
    seen: dict[tuple, int] = {}
    out = {}
    for name in sorted(palette):
        colour = palette[name][0]
        out[name] = DASHES[seen.get(colour, 0) % len(DASHES)]
        seen[colour] = seen.get(colour, 0) + 1
    return out


def plain_text(text: str) -> str:
    """Text matplotlib shows literally (``$`` would otherwise start mathtext)."""
    return text.replace("$", r"\$")


def params_label(build_params: str, query_params: str) -> str:
    """``leaf_size=40 | ef=10`` from the stored JSON parameter strings."""
    parts = []
    for text in (build_params, query_params):
        try:
            params = from_canonical(text)
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
    if scale in ("nines", "logit"):
        values = values.where((values >= 0) & (values <= 1))
    return values.notna()


def _set_scale(ax, which: str, scale: str, values: Iterable[float] = ()) -> None:  # Axes
    setter = ax.set_xscale if which == "x" else ax.set_yscale
    if scale == "nines":
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

        floor = nines_floor(values)
        setter("function", functions=(lambda q: nines(q, floor), lambda t: nines_inverse(t, floor)))
        axis = ax.xaxis if which == "x" else ax.yaxis
        axis.set_major_locator(FixedLocator(nines_ticks(floor)))
        axis.set_major_formatter(FuncFormatter(lambda q, _pos: tick_text(q)))
        axis.set_minor_locator(NullLocator())
        (ax.set_xlim if which == "x" else ax.set_ylim)(auto=True)
    elif scale == "linear":
        setter("linear")
    else:
        with warnings.catch_warnings():  # all values at 0 or 1 (e.g. exact methods) on logit: still drawn
            warnings.filterwarnings("ignore", "Data has no values between 0 and 1")
            setter(scale, nonpositive="clip")  # recall 1.0 on logit, 0 on log: at the edge, not dropped


def error_bars(points: pd.DataFrame, metric: str) -> np.ndarray | None:
    """Error-bar lengths ``[[below], [above]]`` for ``metric``, or None without a spread: a run measured
    in several processes shows its 95 % interval across them (:data:`INTERVAL`), any other run the
    spread of its passes (down to the slowest, :data:`SPREAD`)."""
    value = points[metric].to_numpy(float)
    below, above = np.zeros_like(value), np.zeros_like(value)
    if (low_col := SPREAD.get(metric)) is not None and low_col in points:
        low = pd.to_numeric(points[low_col], errors="coerce").to_numpy(float)
        below = np.where(np.isnan(low), 0.0, np.clip(value - low, 0.0, None))
    if metric in INTERVAL and all(c in points for c in INTERVAL[metric]):
        low, high = (pd.to_numeric(points[c], errors="coerce").to_numpy(float) for c in INTERVAL[metric])
        has = ~(np.isnan(low) | np.isnan(high))
        below = np.where(has, np.clip(value - low, 0.0, None), below)
        above = np.where(has, np.clip(high - value, 0.0, None), above)
    return np.vstack([below, above]) if below.any() or above.any() else None


def warn_mixed_hosts(frame: pd.DataFrame) -> None:
    """Warn about every curve whose runs were measured on more than one host: its timings come
    from machines of possibly different speed, so its shape (and its Pareto front) mean little."""
    for (algorithm, batch), hosts in hosts_per_curve(frame).items():
        if len(hosts) > 1:
            log.warning("the curve of %s%s mixes runs measured on %d hosts (%s): timings from machines of "
                        "different speed are not comparable; plot one host at a time (plot.py --host NAME)",
                        algorithm, " (batch)" if batch else "", len(hosts), ", ".join(hosts))


def draw(ax, frame: pd.DataFrame, x: str, y: str, *, all_points: bool = False, annotate: bool = False,
         x_scale: str = "nines", y_scale: str = "log", palette: dict | None = None, bands: bool = False) -> int:
    """Draw ``frame``'s successful runs on ``ax``; returns the number of lines drawn. ``palette``:
    :func:`styles` of every algorithm in the figure (default: of those in ``frame``). The QPS
    spread is an error bar per point; ``bands`` adds a shaded band under each line."""
    ok = measured(frame)
    ok = ok[_usable(ok, x, x_scale) & _usable(ok, y, y_scale)]
    warn_mixed_hosts(ok)
    front = pareto_frame(ok, x, y) if len(ok) else ok
    palette = palette or styles(frame["algorithm"].astype(str))
    lines_of = dashes(palette)
    lines = 0
    for (algorithm, batch), line in front.groupby(["algorithm", "batch"], sort=True):
        colour, marker = palette[str(algorithm)]
        label = plain_text(f"{algorithm}{' (batch)' if batch else ''}")
        if all_points:
            pts = ok[(ok["algorithm"] == algorithm) & (ok["batch"] == batch)]
            ax.scatter(pts[x], pts[y], color=colour, marker=marker, alpha=0.3, s=14)
        ax.plot(line[x], line[y], color=colour, marker=marker, label=label, linewidth=1.3, markersize=4.5,
                linestyle="--" if batch else lines_of[str(algorithm)], markeredgewidth=0.6, markeredgecolor="white")
        yerr, xerr = error_bars(line, y), error_bars(line, x)
        if yerr is not None or xerr is not None:
            ax.errorbar(line[x], line[y], yerr=yerr, xerr=xerr, fmt="none", ecolor=colour, elinewidth=0.8,
                        capsize=2)
        if bands and yerr is not None and len(line) > 1:
            ax.fill_between(line[x], line[y] - yerr[0], line[y] + yerr[1], color=colour, alpha=0.15, linewidth=0)
        if annotate:
            for _, p in line.iterrows():
                ax.annotate(plain_text(params_label(p.get("build_params", ""), p.get("query_params", ""))),
                            (p[x], p[y]), xytext=(3, 3), textcoords="offset points", fontsize=6, color=colour)
        lines += 1
    _set_scale(ax, "x", x_scale, ok[x])
    _set_scale(ax, "y", y_scale, ok[y])
    ax.set_xlabel(axis_label(x, x_scale))
    ax.set_ylabel(axis_label(y, y_scale))
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)
    if not lines:
        ax.text(0.5, 0.5, "no successful runs with these metrics", transform=ax.transAxes, ha="center",
                va="center", color="grey")
    return lines


def figure_panels(panels: Sequence[tuple[str, pd.DataFrame]], x: str, y: str, *, x_scale: str = "nines",
                  y_scale: str = "log", all_points: bool = False, annotate: bool = False, title: str | None = None,
                  size: str = "screen", bands: bool = False):  # a matplotlib Figure
    """The figure of :func:`plot_panels`, not saved (the caller closes it). The legend is outside
    the axes: at the right of one panel (below it for ``size="single"``), below several panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if size not in SIZES:
        raise ValueError(f"unknown figure size {size!r}; valid: {', '.join(SIZES)}")
    (width, height), font = SIZES[size]
    n = len(panels)
    cols = 1 if n == 1 else 2 if n <= 4 else 3
    rows = math.ceil(n / cols)
    if n > 1:
        width, height = (width if size != "screen" else 5.5 * cols), height * rows / (1 if size != "screen" else 1.2)
    with matplotlib.rc_context({"font.size": font, "axes.titlesize": font, "axes.labelsize": font,
                                "legend.fontsize": font * 0.85, "xtick.labelsize": font * 0.85,
                                "ytick.labelsize": font * 0.85}):
        fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False, layout="constrained")
        handles: dict[str, object] = {}
        palette = styles(a for _, frame in panels for a in frame["algorithm"].astype(str))
        for ax, (panel_title, frame) in zip(axes.flat, panels):
            draw(ax, frame, x, y, all_points=all_points, annotate=annotate, x_scale=x_scale, y_scale=y_scale,
                 palette=palette, bands=bands)
            ax.set_title(plain_text(panel_title))
            for h, text in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(text, h)
        for ax in axes.flat[n:]:
            ax.set_visible(False)
        if handles:
            below = n > 1 or size == "single"
            ncol = (3 if size == "single" else 4) if below else math.ceil(len(handles) / 22)
            fig.legend(list(handles.values()), list(handles), frameon=False, ncol=min(ncol, len(handles)),
                       loc="outside lower center" if below else "outside right upper")
        if title:
            fig.suptitle(plain_text(title))
    return fig


def plot_panels(panels: Sequence[tuple[str, pd.DataFrame]], x: str, y: str, output: str | Path, *,
                x_scale: str = "nines", y_scale: str = "log", all_points: bool = False, annotate: bool = False,
                title: str | None = None, size: str = "screen", bands: bool = False) -> Path:
    """One figure, one panel per ``(title, frame)`` in a grid, one shared legend outside the axes;
    saved by suffix (``.png``, ``.svg``, ``.pdf``). ``size``: ``screen``, or ``single`` / ``double``
    for one / two columns of a paper."""
    import matplotlib.pyplot as plt

    fig = figure_panels(panels, x, y, x_scale=x_scale, y_scale=y_scale, all_points=all_points, annotate=annotate,
                        title=title, size=size, bands=bands)
    try:
        return _save(fig, output)
    finally:
        plt.close(fig)


def _metadata(suffix: str) -> dict[str, str | None]:
    # No creation date: the same results give the same file.
    return {".svg": {"Date": None}, ".pdf": {"CreationDate": None}}.get(suffix.lower(), {})


def _save(fig, output: str | Path) -> Path:  # a matplotlib Figure
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, bbox_inches="tight", dpi=200 if output.suffix.lower() == ".png" else "figure",
                metadata=_metadata(output.suffix))
    return output


def plot_metric_pair(frame: pd.DataFrame, x: str, y: str, output: str | Path, title: str,
                     x_scale: str = "nines", y_scale: str = "log", all_points: bool = False,
                     annotate: bool = False, size: str = "screen", bands: bool = False) -> Path:
    """One line per algorithm through its Pareto-optimal points (all points with ``all_points``)."""
    return plot_panels([(title, frame)], x, y, output, x_scale=x_scale, y_scale=y_scale, all_points=all_points,
                       annotate=annotate, size=size, bands=bands)


#: Panels of the raw-vs-encoded comparison: (column, title, log scale).
COMPARISON_PANELS = (("qps_at_recall", "QPS at recall ≥ {r:g}", True), ("build_s", "build time (s)", True),
                     ("index_bytes", "index size (bytes)", True), ("knn_accuracy", "kNN accuracy", False))


def plot_comparison(table: pd.DataFrame, output: str | Path, title: str, min_recall: float) -> Path:
    """Grouped bars (:func:`annbench.analyse.compare.side_by_side` table): one panel per metric, one group
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
