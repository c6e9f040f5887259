"""The HTML report of a results folder: interactive charts (Plotly, offline), tables, static figures.

``index.html`` lists every dataset and, with several, ranks the algorithms across them; each
dataset page holds, per k and mode, the sections of :data:`SECTIONS`: an interactive chart of
every view that has data (with its static SVG), the pivoted operating-point table, a link per
algorithm to a page with its whole sweep, the failed runs with their reasons, pictures of
neighbours when the dataset file is at hand; then the provenance of the measurements. A section
is a function ``(writer, part) -> html``: new ones slot into :data:`SECTIONS`.

Plotly's bundle and the chart script are copied once into the report folder and referenced
locally, or inlined into every page with ``self_contained`` (a page then works alone: styles,
scripts and images inside it). No page loads anything from the network. Every user-supplied
string (names, parameters, error messages) is escaped with :func:`html.escape` (and JSON for the
charts is escaped so it cannot end its ``<script>`` block); file names are derived slugs.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from annbench.analyse.frames import note_algorithms, pass_qps, trust_warnings
from annbench.core import provenance
from annbench.core.errors import UserError
from annbench.core.results import Status
from annbench.report import interactive
from annbench.report.filtered import filtered_section
from annbench.report.plotting import LABELS, VIEWS, plot_metric_pair
from annbench.report.streaming import streaming_section
from annbench.report.summaries import dataset_ranks, operating_pivot
from annbench.report.tables import Table, cell, to_html

log = logging.getLogger(__name__)

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}
th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}
img{max-width:100%;border:1px solid #eee}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:1em}
.err{color:#a00}pre{white-space:pre-wrap;font-size:.8em;background:#f8f8f8;padding:.5em}nav{margin-bottom:1em}
figure{margin:0 0 1.5em}figure.chart{border:1px solid #eee;padding:.4em}figcaption{font-size:.8em;color:#555}
.controls{font-size:.85em;display:flex;flex-wrap:wrap;gap:.4em 1.2em;margin-bottom:.3em}
td[title]{text-decoration:underline dotted #999;cursor:help}
caption{text-align:left;font-size:.9em;color:#555;padding:.2em 0}
.wide{overflow-x:auto}
"""

SWEEP_COLUMNS = ["build_params", "query_params", "status", "recall", "id_recall", "knn_accuracy", "qps",
                 "qps_ci95_low", "qps_ci95_high", "process_cv", "qps_median", "qps_slowest", "p50_ms", "p99_ms",
                 "build_s", "index_bytes", "build_peak_rss_bytes", "note"]
PROVENANCE_FIELDS = ["dataset_checksum", "cpu_model", "host", "platform", "python", "annbench_version",
                     "annbench_commit", "threads", "runs", "n_queries", "n_train"]


def slug(name: str) -> str:
    """A safe file name for ``name``: itself when already safe, else cleaned plus a hash."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:60]
    if clean != name or not clean:
        clean = f"{clean or 'x'}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return clean


def _inline_script(code: str) -> str:
    return "<script>" + code.replace("</script", "<\\/script") + "</script>"


def _page(title: str, body: str, root: str, crumbs: list[tuple[str, str]] = (), charts: bool = False,
          self_contained: bool = False) -> str:
    """A page; ``root`` is the way back to the report folder (``""`` or ``"../"``), where the
    stylesheet and scripts are unless ``self_contained`` (then they are inside the page)."""
    nav = " › ".join(f'<a href="{html.escape(href)}">{html.escape(text)}</a>' for text, href in crumbs)
    if self_contained:
        style = f"<style>{CSS}</style>"
        scripts = (_inline_script(interactive.plotly_js()) + "\n" + _inline_script(interactive.CHART_JS)) if charts \
            else ""
    else:
        style = f'<link rel="stylesheet" href="{html.escape(root)}style.css">'
        scripts = (f'<script src="{html.escape(root + interactive.PLOTLY_FILE)}"></script>\n'
                   f'<script src="{html.escape(root + interactive.CHART_FILE)}"></script>') if charts else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{html.escape(title)}</title>\n<link rel="icon" href="data:,">\n'
            f'{style}\n</head>\n<body>\n'
            f'{f"<nav>{nav}</nav>" if nav else ""}\n<h1>{html.escape(title)}</h1>\n'
            f'{body}\n{scripts}\n</body>\n</html>\n')


def _img(src: str, alt: str) -> str:
    return f'<figure><img src="{html.escape(src)}" alt="{html.escape(alt)}"></figure>'


def table_html(table: Table, links: dict[str, list[str | None]] | None = None, caption: bool = False) -> str:
    """A comparison table: bold cells, notes on hover (the caption above with ``caption``); scrolls if too wide."""
    return '<div class="wide">' + to_html(table.values, links=links, bold=table.bold, titles=table.notes,
                                          caption=table.caption if caption else "") + "</div>"


def _distinct(series: pd.Series) -> str:
    values = sorted({cell(v) for v in series if cell(v) != "-"})
    return ", ".join(values) if values else "-"


def provenance_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Every distinct machine, version and commit the runs in ``frame`` were measured with."""
    rows = [{"field": f, "values": _distinct(frame[f])} for f in PROVENANCE_FIELDS if f in frame]
    rows += [{"field": c, "values": _distinct(frame[c])} for c in sorted(frame.columns) if c.startswith("version.")]
    if "timestamp" in frame and frame["timestamp"].notna().any():
        stamps = frame["timestamp"].dropna().astype(str)
        rows.append({"field": "measured", "values": f"{stamps.min()} … {stamps.max()}"})
    return pd.DataFrame(rows, columns=["field", "values"])


def _columns(frame: pd.DataFrame, wanted: list[str]) -> pd.DataFrame:
    return frame[[c for c in wanted if c in frame]]


def _has(frame: pd.DataFrame, column: str) -> bool:
    return column in frame and pd.to_numeric(frame[column], errors="coerce").notna().any()


@dataclass(frozen=True)
class Part:
    """The runs of one dataset at one k and mode: what a section of a dataset page shows."""

    dataset: str
    folder: str
    k: int
    batch: bool
    frame: pd.DataFrame

    @property
    def mode(self) -> str:
        return "batch" if self.batch else "single"

    @property
    def tag(self) -> str:
        """Prefix of this part's files and anchors: ``k10-single``."""
        return f"k{self.k}-{self.mode}"

    @property
    def title(self) -> str:
        return f"{self.dataset} (k={self.k}, {self.mode}-query mode)"

    @property
    def ok(self) -> pd.DataFrame:
        return self.frame[self.frame["status"] == Status.OK]


class Writer:
    def __init__(self, out: Path, data_dir: Path | None, n_queries: int, self_contained: bool = False,
                 results_dir: Path | None = None) -> None:
        self.out, self.data_dir, self.n_queries, self.self_contained = out, data_dir, n_queries, self_contained
        self.results_dir = results_dir

    def write(self, rel: str, text: str) -> None:
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def assets(self) -> None:
        """The stylesheet, Plotly's bundle and the chart script, once, beside the pages."""
        if self.self_contained:
            return
        self.write("style.css", CSS)
        self.write(interactive.PLOTLY_FILE, interactive.plotly_js())
        self.write(interactive.CHART_FILE, interactive.CHART_JS)

    def page(self, rel: str, title: str, body: str, crumbs: list[tuple[str, str]] = (), charts: bool = False) -> None:
        root = "../" * rel.count("/")
        self.write(rel, _page(title, body, root, crumbs, charts, self.self_contained))

    def image(self, folder: str, rel: str, alt: str) -> str:
        """An ``<img>`` of ``<out>/<folder>/<rel>``: a data URI when self-contained."""
        if not self.self_contained:
            return _img(rel, alt)
        data = base64.b64encode((self.out / folder / rel).read_bytes()).decode()
        mime = "image/svg+xml" if rel.endswith(".svg") else "image/png"
        return _img(f"data:{mime};base64,{data}", alt)

    # -- one dataset ---------------------------------------------------------------------------
    def dataset(self, name: str, frame: pd.DataFrame) -> str:
        d = slug(name)
        (self.out / d).mkdir(exist_ok=True)
        frame.to_csv(self.out / d / "runs.csv", index=False)
        body = [f'<p>{len(frame)} runs ({int((frame["status"] == Status.OK).sum())} ok, '
                f'{int((frame["status"] == Status.ERROR).sum())} failed, '
                f'{int((frame["status"] == Status.SKIPPED).sum())} skipped as dominated). Every run with every column: '
                f'<a href="runs.csv">runs.csv</a>. Charts: hover a point for its run; click a legend entry to '
                f'hide or show an algorithm (double-click: only it); choose the metrics and scales above each '
                f'chart; "all runs" adds every run as faint points behind the Pareto lines.</p>', *warnings_html(frame)]
        from annbench.analyse.concurrency import at_level
        from annbench.report.concurrency import concurrency_section

        for (k, batch), runs in frame.groupby(["k", "batch"], sort=True):
            # every section but the concurrency one shows single-client runs: a front through several
            # client levels would set total QPS of N clients against one client's
            part = Part(name, d, int(k), bool(batch), at_level(runs, 1))
            body.append(f'<h2 id="{part.tag}">k = {part.k}, {part.mode}-query mode</h2>')
            body.extend(section(self, part) for section in SECTIONS)
            body.append(concurrency_section(self, Part(name, d, int(k), bool(batch), runs)))
        from annbench.report.difficulty import difficulty_section

        body.append(difficulty_section(self.out, d, name, frame, self.data_dir,
                                       lambda rel, alt: self.image(d, rel, alt)))
        body.append(filtered_section(self.out, d, name, frame, self.data_dir, lambda t: table_html(t, caption=True)))
        body.append(streaming_section(self.results_dir, self.out, d, name, lambda t: table_html(t, caption=True)))
        body.append("<h2>Provenance</h2>\n" + to_html(provenance_table(frame)))
        self.page(f"{d}/index.html", f"Dataset {name}", "\n".join(b for b in body if b),
                  [("all datasets", "../index.html")], charts=True)
        return f"{d}/index.html"

    # -- one algorithm's sweep -------------------------------------------------------------------
    def algorithm(self, part: Part, algorithm: str, runs: pd.DataFrame, page: str) -> None:
        d, name, k, mode = part.folder, part.dataset, part.k, part.mode
        sweep = _columns(runs, SWEEP_COLUMNS).copy()
        sweep["pass qps"] = [", ".join(f"{v:.4g}" for v in pass_qps(p, int(n))) if s == Status.OK else ""
                             for p, n, s in zip(runs["path"], runs["n_queries"].fillna(0), runs["status"])]
        if "error" in runs:
            sweep["error"] = runs["error"]
        if "note" in runs:
            sweep["note"] = runs["note"]
        body = [f"<p>Dataset {html.escape(name)}, k = {k}, {mode}-query mode: {len(runs)} runs.</p>"]
        ok = runs[runs["status"] == Status.OK]
        charts = _has(ok, "recall") and _has(ok, "qps")
        if charts:
            rel = page.replace(".html", ".svg")
            plot_metric_pair(runs, "recall", "qps", self.out / d / rel, f"{algorithm} on {name} (k={k}, {mode})",
                             all_points=True, annotate=True)
            spec_id = f"{page.replace('.html', '')}-data"
            body.append(interactive.spec_block(spec_id, interactive.chart_spec(runs)))
            body.append(interactive.chart_html(f"{spec_id}-chart", spec_id, "recall", "qps",
                                               f"{algorithm} on {name} (k={k}, {mode}): every run", all_runs=True,
                                               static_href=rel))
        body.append('<h2>Sweep</h2>\n<div class="wide">' + to_html(sweep) + "</div>")
        failed = runs[runs["status"] == Status.ERROR]
        for _, r in failed.iterrows():
            body.append(f'<details><summary class="err">{html.escape(cell(r.get("build_params")))} '
                        f'{html.escape(cell(r.get("query_params")))}: {html.escape(cell(r.get("error")))}</summary>'
                        f'<pre>{html.escape(str(r.get("traceback") or ""))}</pre></details>')
        body.append("<h2>Provenance</h2>\n" + to_html(provenance_table(runs)))
        self.page(f"{d}/{page}", f"{algorithm} on {name}", "\n".join(body),
                  [("all datasets", "../index.html"), (name, "index.html")], charts=charts)


# -- sections of a dataset page: (writer, part) -> html ------------------------------------------------
def charts_section(writer: Writer, part: Part) -> str:
    """An interactive chart per view with data, each with its static SVG."""
    ok = part.ok
    views = [v for v in VIEWS.values() if _has(ok, v.x) and _has(ok, v.y)]
    if not views:
        return "<p>No successful runs to plot.</p>"
    spec_id = f"{part.tag}-data"
    out = [interactive.spec_block(spec_id, interactive.chart_spec(part.frame))]
    for view in views:
        rel = f"{part.tag}-{view.name}.svg"
        title = f"{part.title}: {LABELS.get(view.y, view.y)} vs {LABELS.get(view.x, view.x)}"
        plot_metric_pair(part.frame, view.x, view.y, writer.out / part.folder / rel, title, view.x_scale,
                         view.y_scale)
        out.append(interactive.chart_html(f"{part.tag}-{view.name}", spec_id, view.x, view.y, title,
                                          static_href=rel))
    return "\n".join(out)


def operating_section(writer: Writer, part: Part) -> str:
    """Best QPS per algorithm at each recall level, parameters on hover."""
    if not len(part.ok):
        return ""
    table = operating_pivot(part.ok)
    return ("<h3>Operating points: best QPS at recall ≥ r</h3>\n"
            "<p>One row per algorithm; the best of each column in bold, and with it every cell not "
            "significantly slower by the processes' QPS (several bold cells: a tie; a run measured in one "
            "process ties); empty where no run reaches the recall; hover a cell for its run's parameters "
            "(build | query).</p>\n" + table_html(table))


def algorithms_section(writer: Writer, part: Part) -> str:
    """A row per algorithm linking to its sweep page (written here)."""
    summary, links = [], []
    for algorithm, runs in part.frame.groupby("algorithm", sort=True):
        page = f"{part.tag}-{slug(str(algorithm))}.html"
        writer.algorithm(part, str(algorithm), runs, page)
        good = runs[runs["status"] == Status.OK]
        summary.append({"algorithm": algorithm, "runs": len(runs),
                        "failed": int((runs["status"] == Status.ERROR).sum()),
                        "skipped": int((runs["status"] == Status.SKIPPED).sum()),
                        "best recall": good["recall"].max() if len(good) else np.nan,
                        "best qps": good["qps"].max() if len(good) else np.nan})
        links.append(page)
    return "<h3>Algorithms</h3>\n" + to_html(note_algorithms(pd.DataFrame(summary), part.frame),
                                            links={"algorithm": links})


def failed_section(writer: Writer, part: Part) -> str:
    failed = part.frame[part.frame["status"] == Status.ERROR]
    out = (f"<h3>Failed runs ({len(failed)})</h3>\n"
           + (to_html(_columns(failed, ["algorithm", "build_params", "query_params", "error", "timestamp"]))
              if len(failed) else "<p>None.</p>"))
    skipped = part.frame[part.frame["status"] == Status.SKIPPED]
    if len(skipped):
        out += (f"\n<h3>Skipped runs ({len(skipped)}): not measured, dominated by an exact setting</h3>\n"
                + to_html(_columns(skipped, ["algorithm", "build_params", "query_params", "note"])))
    return out


def neighbours_section(writer: Writer, part: Part) -> str:
    from annbench.report.neighbours import choose_runs, image_shape, load_selections, neighbour_figure, neighbour_table

    ok = part.ok
    dataset = load_local_dataset(part.dataset, writer.data_dir, ok)
    if dataset is None or not len(ok):
        return ""
    selections = load_selections(choose_runs(ok))
    heading = "<h3>Neighbours (fastest run at recall ≥ 0.9 per algorithm; ✗ = wrong)</h3>\n"
    if image_shape(dataset) is not None:
        rel = f"{part.tag}-neighbours.png"
        neighbour_figure(dataset, selections, writer.out / part.folder / rel, n_queries=writer.n_queries)
        return heading + writer.image(part.folder, rel, "query images, exact neighbours and returned neighbours")
    if dataset.keys is not None:
        return heading + to_html(neighbour_table(dataset, selections, n_queries=writer.n_queries))
    return ""


#: The sections of each (k, mode) part of a dataset page, in order.
SECTIONS: tuple[Callable[[Writer, Part], str], ...] = (charts_section, operating_section, algorithms_section,
                                                        failed_section, neighbours_section)


def ranks_section(frame: pd.DataFrame) -> str:
    """Ranks across datasets, per k and mode that several datasets share (index page)."""
    out = []
    ok = frame[frame["status"] == Status.OK]
    for (k, batch), part in ok.groupby(["k", "batch"], sort=True):
        if part["dataset"].nunique() < 2:
            continue
        mode = "batch" if batch else "single"
        out.append(f"<h3>k = {int(k)}, {mode}-query mode</h3>\n" + table_html(dataset_ranks(part)))
    if not out:
        return ""
    return ("<h2>Ranks across datasets</h2>\n<p>For each recall level, each algorithm's rank on each dataset by "
            "its best QPS at that recall (1 + the algorithms significantly faster there by the processes' QPS, so "
            "1 = fastest or tied with it, bold), its QPS relative to the fastest algorithm there "
            "(rel), and its mean rank over the datasets (a dataset where it never reaches the recall counts as "
            "one place behind the last that does; <em>reached</em> says on how many it got there).</p>\n"
            + "\n".join(out))


def warnings_html(frame: pd.DataFrame) -> list[str]:
    """Paragraphs (class ``err``) for what makes a dataset's numbers suspect
    (:func:`annbench.analyse.frames.trust_warnings`)."""
    return [f'<p class="err">Warning: {html.escape(line)}</p>' for line in trust_warnings(frame)]


def load_local_dataset(name: str, data_dir: Path | None, frame: pd.DataFrame):  # Dataset | None
    """The dataset file the runs were measured on (:func:`annbench.analyse.perquery.dataset_file`: the
    path they recorded, then ``<data_dir>/<name>.hdf5``), or None (logged) where neither holds it."""
    from annbench.analyse.perquery import dataset_file
    from annbench.core import paths

    try:
        return dataset_file(name, data_dir or paths.default_data_dir(), frame)
    except UserError as e:
        log.info("%s: report without neighbour pictures", e)
        return None


def write_report(frame: pd.DataFrame, out_dir: str | Path, data_dir: Path | None = None,
                 n_queries: int = 4, self_contained: bool = False, results_dir: Path | None = None) -> Path:
    """Write the site for every run in ``frame`` (as :func:`annbench.analyse.frames.results_frame`) into
    ``out_dir``; returns the path of ``index.html``. ``self_contained``: every page carries its
    styles, scripts (Plotly's bundle, ~5 MB per page with charts) and images inside it. ``results_dir``: where
    the runbook runs of each dataset are read from (its section on them; none without)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--report {out}: exists and is not a folder; give a folder path")
    if frame.empty:
        raise UserError("no results to report")
    out.mkdir(parents=True, exist_ok=True)
    writer = Writer(out, data_dir, n_queries, self_contained, results_dir)
    writer.assets()
    rows, links = [], []
    for name, part in frame.groupby("dataset", sort=True):
        links.append(writer.dataset(str(name), part))
        rows.append({"dataset": name, "k": ", ".join(str(k) for k in sorted(part["k"].unique())),
                     "algorithms": part["algorithm"].nunique(), "runs": len(part),
                     "failed": int((part["status"] == Status.ERROR).sum())})
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    body = ["<h2>Datasets</h2>", to_html(pd.DataFrame(rows), links={"dataset": links}), ranks_section(frame),
            "<h2>Provenance of the measurements</h2>", to_html(provenance_table(frame)),
            f"<p>Report written {html.escape(generated)} "
            f"by annbench {html.escape(provenance.machine()['annbench_version'])}"
            f" (commit {html.escape(provenance.git_commit())}).</p>"]
    writer.page("index.html", "annbench report", "\n".join(b for b in body if b))
    return out / "index.html"
