"""Filtered runs as figures, tables and a section of the HTML report: recall–QPS per selectivity band,
QPS against selectivity at a fixed recall, operating points per band (see :mod:`annbench.analyse.filtered`)."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from annbench.analyse.filtered import DEFAULT_EDGES, DEFAULT_RECALL, band_runs, qps_at_recall
from annbench.analyse.frames import OPERATING_RECALLS
from annbench.core.errors import UserError
from annbench.core.results import Status
from annbench.report.plotting import _save, plain_text, plot_panels, styles
from annbench.report.summaries import operating_pivot
from annbench.report.tables import Table

log = logging.getLogger(__name__)


def plot_bands(banded: pd.DataFrame, output: str | Path, title: str) -> Path:
    """Recall against QPS, one panel per selectivity band (the runs' metrics on that band's queries)."""
    panels = [(f"selectivity {label} ({int(part['n_subset'].iloc[0])} queries)", part)
              for (_, label), part in banded.groupby(["band_index", "band"], sort=True)]
    return plot_panels(panels, "recall", "qps", output, title=title)


def plot_qps_by_selectivity(table: pd.DataFrame, output: str | Path, title: str) -> Path:
    """Per algorithm, its best QPS at the fixed recall in each band, at the band's median selectivity
    (log-log); a band where the algorithm never reaches the recall leaves a gap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    try:
        palette = styles(table["algorithm"].astype(str))
        for (algorithm, batch), part in table.groupby(["algorithm", "batch"], sort=True):
            part = part.sort_values("selectivity_median")
            colour, marker = palette[str(algorithm)]
            ax.plot(part["selectivity_median"] * 100, part["qps"], marker=marker, color=colour,
                    label=f"{algorithm}{' (batch)' if batch else ''}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("selectivity (% of points matching; median of the band's queries)")
        ax.set_ylabel("queries per second")
        ax.grid(True, which="major", alpha=0.35)
        ax.set_title(plain_text(title))
        if len(table):
            fig.legend(loc="outside right upper", frameon=False)
        return _save(fig, output)
    finally:
        plt.close(fig)


def band_tables(banded: pd.DataFrame, levels: tuple[float, ...] = OPERATING_RECALLS, prefix: str = "") -> list[Table]:
    """One operating-point table per band: best QPS per algorithm at each recall level on its queries."""
    return [operating_pivot(part, levels, caption=f"{prefix}selectivity {label} ({int(part['n_subset'].iloc[0])} "
                                                  "queries): best qps at recall >= r on them")
            for (_, label), part in banded.groupby(["band_index", "band"], sort=True)]


def filtered_section(out: Path, d: str, name: str, frame: pd.DataFrame, data_dir: Path | None,
                     render: Callable[[Table], str], edges: tuple[float, ...] = DEFAULT_EDGES) -> str:
    """HTML of the dataset page's filtered section (figures written into ``out / d``, tables through
    ``render``): per k and mode,
    recall–QPS per band, QPS against selectivity at recall >= 0.9, the operating points per band. Empty
    for an unfiltered dataset or where its file is not at hand."""
    from annbench.analyse.perquery import dataset_file, per_query_frame
    from annbench.core import paths

    ok = frame[frame["status"] == Status.OK]
    if ok.empty or "strategy" not in ok:
        return ""
    try:  # where the runs recorded the file, then data_dir
        dataset = dataset_file(name, data_dir or paths.default_data_dir(), ok)
    except UserError as e:
        log.info("no filtered section for %s: %s", name, e)
        return ""
    if dataset.filters is None:
        return ""
    per_query = per_query_frame(dataset, ok)
    body = ["<h2>Filtered search by selectivity</h2>",
            "<p>Each run's metrics recomputed on the queries of each selectivity band (the fraction of points "
            "matching a query's predicate); single-query QPS apportioned by the band's share of the latencies. "
            "Strategies: <em>native</em> = the library filters; <em>+post</em> = the harness's post-filter.</p>"]
    for (k, batch), part in ok.groupby(["k", "batch"], sort=True):
        mode = "batch" if batch else "single"
        tag = f"k{int(k)}-{mode}"
        banded = band_runs(part, per_query[per_query["path"].isin(set(part["path"]))], edges)
        if banded.empty:
            continue
        bands_svg, sel_svg = f"{tag}-bands.svg", f"{tag}-qps-by-selectivity.svg"
        plot_bands(banded, out / d / bands_svg, f"{name} (k={int(k)}, {mode}): recall vs QPS per selectivity band")
        plot_qps_by_selectivity(qps_at_recall(banded, DEFAULT_RECALL), out / d / sel_svg,
                                f"{name} (k={int(k)}, {mode}): QPS at recall ≥ {DEFAULT_RECALL:g}")
        body += [f"<h3>k = {int(k)}, {mode}-query mode</h3>",
                 f'<figure><img src="{html.escape(bands_svg)}" alt="recall vs QPS per selectivity band"></figure>',
                 f'<figure><img src="{html.escape(sel_svg)}" alt="QPS against selectivity"></figure>']
        body += [render(t) for t in band_tables(banded)]
    return "\n".join(body)
