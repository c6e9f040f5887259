"""The HTML report's difficulty section of one dataset: the quartiles and histograms of its queries'
difficulty, per k and mode the recall by difficulty decile at recall ≥ 0.9, and the operating
points with their hard-query recall, process intervals and significance ranking."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from annbench.analyse.frames import OPERATING_COLUMNS, operating_points
from annbench.core import paths
from annbench.core.errors import UserError
from annbench.core.results import Status
from annbench.report.tables import to_html

log = logging.getLogger(__name__)

#: Measure and recall level of the report's recall-by-difficulty figures.
REPORT_MEASURE = "lid@10"
REPORT_RECALL = 0.9


def difficulty_section(out: Path, d: str, name: str, frame: pd.DataFrame, data_dir: Path | None,
                       image: Callable[[str, str], str]) -> str:
    """HTML for the dataset page (figures written into ``out / d``, shown by ``image(file name, alt text)``:
    a link, or the figure inline in a self-contained page); empty when the dataset file is not at hand
    (where the runs recorded it, nor in ``data_dir``) or its distance has no difficulty measures (ip)."""
    from annbench.analyse.difficulty import DEFAULT_QUANTILE, load_or_compute, measure_named
    from annbench.analyse.perquery import dataset_file, operating_extras, per_query_frame, recall_by_difficulty
    from annbench.report.difficulty_plots import plot_difficulty, plot_recall_by_difficulty

    ok = frame[frame["status"] == Status.OK]
    if ok.empty:
        return ""
    try:
        dataset = dataset_file(name, data_dir or paths.default_data_dir(), ok)
    except UserError as e:
        log.info("no difficulty section for %s: %s", name, e)
        return ""
    if dataset.filters is not None:  # the filtered section's selectivity bands stand in for it
        return ""
    if dataset.distance not in ("euclidean", "angular"):
        return (f"<h2>Query difficulty</h2>\n<p>Not defined for the {html.escape(dataset.distance)} distance "
                f"(inner products are not distances).</p>")
    difficulty = load_or_compute(dataset)
    plot_difficulty(difficulty, out / d / "difficulty.svg", name)
    m = measure_named(REPORT_MEASURE)
    body = ["<h2>Query difficulty</h2>",
            f"<p>Per query: relative contrast (RC), local intrinsic dimensionality (LID) and expansion "
            f"(see the README). Hard = the {DEFAULT_QUANTILE:.0%} of queries with the highest {m.name}.</p>",
            to_html(difficulty.quartiles()), image("difficulty.svg", "difficulty histograms")]
    pq = per_query_frame(dataset, ok)
    for (k, batch), part in ok.groupby(["k", "batch"], sort=True):
        mode = "batch" if batch else "single"
        tag = f"k{int(k)}-{mode}"
        points = operating_points(part, columns=[*OPERATING_COLUMNS, "path"])
        at = points[(points["min_recall"] == REPORT_RECALL) & points["path"].notna()]
        rel = f"{tag}-recall-by-difficulty.svg"
        plot_recall_by_difficulty(recall_by_difficulty(at, pq, m), out / d / rel,
                                  f"{name} (k={int(k)}, {mode}): recall by {m.name} decile "
                                  f"at recall ≥ {REPORT_RECALL:g}",
                                  m.name)
        table = operating_extras(points, part, pq, m, DEFAULT_QUANTILE, significance=True)
        body += [f"<h3>k = {int(k)}, {mode}-query mode</h3>",
                 image(rel, "recall by difficulty decile"),
                 "<p>Operating points with their recall on the hardest queries, the 95 % interval of QPS across "
                 "the processes that measured it (recall: bootstrap over queries) and, per level, a ranking "
                 "where A &gt; B only when a Holm-corrected Welch test on the processes' QPS says so (A ≈ B "
                 "otherwise; n/a for a run measured in one process).</p>",
                 to_html(table.drop(columns=["path"]))]
    return "\n".join(body)
