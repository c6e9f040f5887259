"""Static figures fit for a paper, on hand-made result frames: the legend never over the data,
sizes for one and two columns, the nines recall axis, error bars and bands, PDFs poppler opens."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from annbench.core.paths import CONFIGS_DIR
from annbench.plan.config import all_configs
from annbench.report.plotting import (
    SIZES,
    figure_panels,
    nines,
    nines_floor,
    nines_inverse,
    nines_ticks,
    plot_metric_pair,
)

SHIPPED = sorted(all_configs([CONFIGS_DIR]))


def default_run_frame(algorithms: list[str] = SHIPPED, seed: int = 0) -> pd.DataFrame:
    """Runs shaped like the README's main job: every shipped algorithm, a few settings each,
    recall from 0.3 to 1 (exact methods at 1), QPS over two decades, a QPS spread."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, a in enumerate(algorithms):
        n = 1 if i % 6 == 0 else 6
        recall = np.sort(1 - rng.uniform(0.0005, 0.7, n) ** 1.5) if n > 1 else np.array([1.0])
        qps = 10 ** (5 - 2 * recall + rng.normal(0, 0.2, n))
        for r, q in zip(recall, qps):
            rows.append({"algorithm": a, "batch": False, "status": "ok", "recall": r, "qps": q,
                         "qps_slowest": q * 0.8, "build_s": rng.uniform(0.01, 10), "index_bytes": 1e6,
                         "build_params": "{}", "query_params": "{}"})
    return pd.DataFrame(rows)


def _boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax.get_window_extent(renderer) for ax in fig.axes if ax.get_visible()]
    legends = [leg.get_window_extent(renderer) for leg in fig.legends]
    legends += [ax.get_legend().get_window_extent(renderer) for ax in fig.axes if ax.get_legend()]
    return axes, legends


@pytest.mark.parametrize("size", list(SIZES))
def test_legend_of_the_default_run_is_outside_the_axes(size: str) -> None:
    frame = default_run_frame()
    fig = figure_panels([("random-xs-20-euclidean (k=10)", frame)], "recall", "qps", size=size)
    try:
        axes, legends = _boxes(fig)
        assert len(legends) == 1 and len(axes) == 1
        legend, ax = legends[0], axes[0]
        assert not legend.overlaps(ax), (size, legend, ax)
        texts = [t.get_text() for t in fig.legends[0].get_texts()]
        assert texts == SHIPPED  # every algorithm, once
        # the whole legend is on the figure (nothing cut off when saved)
        width, height = fig.get_size_inches() * fig.dpi
        assert legend.x0 >= 0 and legend.y0 >= 0 and legend.x1 <= width + 1 and legend.y1 <= height + 1
        if size != "screen":
            assert tuple(fig.get_size_inches()) == pytest.approx(SIZES[size][0])
    finally:
        plt.close(fig)


def test_legend_outside_with_several_panels() -> None:
    panels = [(f"dataset {i}", default_run_frame(seed=i)) for i in range(3)]
    fig = figure_panels(panels, "recall", "qps", size="double")
    try:
        axes, legends = _boxes(fig)
        assert len(legends) == 1 and len(axes) == 3
        assert not any(legends[0].overlaps(ax) for ax in axes)
    finally:
        plt.close(fig)


def test_nines_axis_spreads_the_high_recall_end() -> None:
    floor = nines_floor([0.3, 0.95, 0.9995, 1.0])
    assert floor == pytest.approx(1e-4)
    t = nines(np.array([0.0, 0.9, 0.99, 0.999, 1.0]), floor)
    assert np.diff(t[1:4]) == pytest.approx([1.0, 1.0])  # 0.9, 0.99, 0.999 equally far apart
    assert t[4] > -np.log10(floor)  # 1 beyond the last decade, not squeezed onto it
    q = np.array([0.0, 0.5, 0.93, 0.99995, 1.0, 1.00002])
    assert nines_inverse(nines(q, floor), floor) == pytest.approx(q)
    assert nines_ticks(floor) == pytest.approx([0, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999, 1])
    fig = figure_panels([("d", default_run_frame())], "recall", "qps")
    try:
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert {"0.9", "0.99", "0.999", "1"} <= set(labels) and "1 − recall" in ax.get_xlabel()
        fig.canvas.draw()
        box = ax.get_window_extent()
        exact = [line for line in ax.get_lines() if line.get_label() == "annoy"][0]  # an exact one at recall 1
        px = ax.transData.transform(np.column_stack([exact.get_xdata(), exact.get_ydata()]))
        assert (px[:, 0] < box.x1 - 2).all()  # drawn inside the axes, not on its edge
    finally:
        plt.close(fig)


def test_spread_is_error_bars_and_bands_only_when_asked() -> None:
    frame = default_run_frame(SHIPPED[:4])
    for bands, expected in ((False, 0), (True, 3)):  # 3 of the 4 have more than one point
        fig = figure_panels([("d", frame)], "recall", "qps", bands=bands)
        try:
            polys = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
            assert len(polys) == expected
            assert fig.axes[0].containers  # the error bars, either way
        finally:
            plt.close(fig)


def test_error_bars_are_the_process_interval_where_a_run_has_one() -> None:
    from annbench.report.plotting import error_bars

    points = pd.DataFrame({"qps": [100.0, 200.0], "qps_slowest": [80.0, 150.0],
                           "qps_ci95_low": [90.0, np.nan], "qps_ci95_high": [130.0, np.nan]})
    assert error_bars(points, "qps").tolist() == [[10.0, 50.0], [30.0, 0.0]]  # interval; passes where none
    assert error_bars(points.drop(columns=["qps_ci95_low", "qps_ci95_high"]), "qps").tolist() == [[20.0, 50.0],
                                                                                              [0.0, 0.0]]


@pytest.mark.parametrize("fmt", [".pdf", ".svg", ".png"])
def test_figures_open_and_pdf_renders_in_poppler(tmp_path: Path, fmt: str) -> None:
    out = plot_metric_pair(default_run_frame(), "recall", "qps", tmp_path / f"f{fmt}", "d", size="single")
    if fmt != ".pdf":
        assert out.stat().st_size > 5000
        return
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm, "pdftoppm is not installed: apt-get install poppler-utils (.ci/run installs it)"
    done = subprocess.run([pdftoppm, "-png", "-r", "100", "-singlefile", str(out), str(tmp_path / "page")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr, done.stderr
    from matplotlib.image import imread

    page = imread(tmp_path / "page.png")
    assert page.shape[1] == pytest.approx(3.5 * 100, abs=60)  # one column wide (plus the tight margin)
    ink = (page[..., :3] < 0.5).any(axis=2).mean()
    assert 0.01 < ink < 0.5  # lines, text and markers drawn; not blank, not black
