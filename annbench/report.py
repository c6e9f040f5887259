"""A static HTML report of a results folder: no JavaScript, one folder of HTML, CSS, SVG and CSV.

``index.html`` lists every dataset; each dataset page holds, per k and mode, the plots of every
view that has data (SVG), the operating-point table, a link per algorithm to a page with its
whole sweep, the failed runs with their reasons, pictures of neighbours when the dataset file
is at hand, and the provenance of the measurements. Every user-supplied string (names,
parameters, error messages) is escaped with :func:`html.escape`; file names are derived slugs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from annbench import provenance
from annbench.analyse import operating_points, pass_qps
from annbench.errors import UserError
from annbench.results import Status
from annbench.plotting import VIEWS, plot_metric_pair
from annbench.tables import cell, to_html

log = logging.getLogger(__name__)

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.85em}
th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}
img{max-width:100%;border:1px solid #eee}.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:1em}
.err{color:#a00}pre{white-space:pre-wrap;font-size:.8em;background:#f8f8f8;padding:.5em}nav{margin-bottom:1em}
"""

SWEEP_COLUMNS = ["build_params", "query_params", "status", "recall", "id_recall", "knn_accuracy", "qps",
                 "qps_median", "qps_slowest", "p50_ms", "p99_ms", "build_s", "index_bytes", "build_peak_rss_bytes"]
PROVENANCE_FIELDS = ["dataset_checksum", "cpu_model", "host", "platform", "python", "annbench_version",
                     "annbench_commit", "threads", "runs", "n_queries", "n_train"]


def slug(name: str) -> str:
    """A safe file name for ``name``: itself when already safe, else cleaned plus a hash."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:60]
    if clean != name or not clean:
        clean = f"{clean or 'x'}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return clean


def _page(title: str, body: str, css: str, crumbs: list[tuple[str, str]] = ()) -> str:
    nav = " › ".join(f'<a href="{html.escape(href)}">{html.escape(text)}</a>' for text, href in crumbs)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{html.escape(title)}</title>\n<link rel="icon" href="data:,">\n'
            f'<link rel="stylesheet" href="{html.escape(css)}">\n</head>\n<body>\n'
            f'{f"<nav>{nav}</nav>" if nav else ""}\n<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n')


def _img(src: str, alt: str) -> str:
    return f'<figure><img src="{html.escape(src)}" alt="{html.escape(alt)}"></figure>'


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


class _Writer:
    def __init__(self, out: Path, data_dir: Path | None, n_queries: int) -> None:
        self.out, self.data_dir, self.n_queries = out, data_dir, n_queries

    def write(self, rel: str, text: str) -> None:
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    # -- one dataset ---------------------------------------------------------------------------
    def dataset(self, name: str, frame: pd.DataFrame) -> str:
        d = slug(name)
        (self.out / d).mkdir(exist_ok=True)
        frame.to_csv(self.out / d / "runs.csv", index=False)
        body = [f'<p>{len(frame)} runs ({int((frame["status"] == Status.OK).sum())} ok, '
                f'{int((frame["status"] == Status.ERROR).sum())} failed, '
                f'{int((frame["status"] == Status.SKIPPED).sum())} skipped as dominated). Every run with every column: '
                f'<a href="runs.csv">runs.csv</a>.</p>']
        for (k, batch), part in frame.groupby(["k", "batch"], sort=True):
            body.append(self.section(name, d, int(k), bool(batch), part))
        body.append("<h2>Provenance</h2>\n" + to_html(provenance_table(frame)))
        self.write(f"{d}/index.html", _page(f"Dataset {name}", "\n".join(body), "../style.css",
                                            [("all datasets", "../index.html")]))
        return f"{d}/index.html"

    def section(self, name: str, d: str, k: int, batch: bool, frame: pd.DataFrame) -> str:
        mode = "batch" if batch else "single"
        tag = f"k{k}-{mode}"
        title = f"{name} (k={k}, {mode}-query mode)"
        ok = frame[frame["status"] == "ok"]
        out = [f'<h2 id="{tag}">k = {k}, {mode}-query mode</h2>']
        figures = []
        for view in VIEWS.values():
            if not (_has(ok, view.x) and _has(ok, view.y)):
                continue
            rel = f"{tag}-{view.name}.svg"
            plot_metric_pair(frame, view.x, view.y, self.out / d / rel, f"{title}: {view.y} vs {view.x}",
                             view.x_scale, view.y_scale)
            figures.append(_img(rel, f"{view.y} against {view.x}, Pareto front per algorithm"))
        out.append('<div class="plots">' + "\n".join(figures) + "</div>" if figures
                   else "<p>No successful runs to plot.</p>")
        if len(ok):
            out.append("<h3>Operating points: best QPS at recall ≥ r</h3>")
            out.append(to_html(operating_points(ok)))
        out.append("<h3>Algorithms</h3>")
        summary, links = [], []
        for algorithm, runs in frame.groupby("algorithm", sort=True):
            page = f"{tag}-{slug(str(algorithm))}.html"
            self.algorithm(name, d, str(algorithm), k, mode, runs, page)
            good = runs[runs["status"] == "ok"]
            summary.append({"algorithm": algorithm, "runs": len(runs),
                            "failed": int((runs["status"] == Status.ERROR).sum()),
                            "skipped": int((runs["status"] == Status.SKIPPED).sum()),
                            "best recall": good["recall"].max() if len(good) else np.nan,
                            "best qps": good["qps"].max() if len(good) else np.nan})
            links.append(page)
        out.append(to_html(pd.DataFrame(summary), links={"algorithm": links}))
        failed = frame[frame["status"] == Status.ERROR]
        out.append(f"<h3>Failed runs ({len(failed)})</h3>")
        out.append(to_html(_columns(failed, ["algorithm", "build_params", "query_params", "error", "timestamp"]))
                   if len(failed) else "<p>None.</p>")
        skipped = frame[frame["status"] == Status.SKIPPED]
        if len(skipped):
            out.append(f"<h3>Skipped runs ({len(skipped)}): not measured, dominated by an exact setting</h3>")
            out.append(to_html(_columns(skipped, ["algorithm", "build_params", "query_params", "note"])))
        out.append(self.neighbours(name, d, tag, ok))
        return "\n".join(out)

    # -- one algorithm's sweep -------------------------------------------------------------------
    def algorithm(self, name: str, d: str, algorithm: str, k: int, mode: str, runs: pd.DataFrame, page: str) -> None:
        sweep = _columns(runs, SWEEP_COLUMNS).copy()
        sweep["pass qps"] = [", ".join(f"{v:.4g}" for v in pass_qps(p, int(n))) if s == "ok" else ""
                             for p, n, s in zip(runs["path"], runs["n_queries"].fillna(0), runs["status"])]
        if "error" in runs:
            sweep["error"] = runs["error"]
        if "note" in runs:
            sweep["note"] = runs["note"]
        body = [f"<p>Dataset {html.escape(name)}, k = {k}, {mode}-query mode: {len(runs)} runs.</p>"]
        ok = runs[runs["status"] == "ok"]
        if _has(ok, "recall") and _has(ok, "qps"):
            rel = page.replace(".html", ".svg")
            plot_metric_pair(runs, "recall", "qps", self.out / d / rel, f"{algorithm} on {name} (k={k}, {mode})",
                             all_points=True, annotate=True)
            body.append(_img(rel, f"every run of {algorithm}: qps against recall"))
        body.append("<h2>Sweep</h2>\n" + to_html(sweep))
        failed = runs[runs["status"] == Status.ERROR]
        for _, r in failed.iterrows():
            body.append(f'<details><summary class="err">{html.escape(cell(r.get("build_params")))} '
                        f'{html.escape(cell(r.get("query_params")))}: {html.escape(cell(r.get("error")))}</summary>'
                        f'<pre>{html.escape(str(r.get("traceback") or ""))}</pre></details>')
        body.append("<h2>Provenance</h2>\n" + to_html(provenance_table(runs)))
        self.write(f"{d}/{page}", _page(f"{algorithm} on {name}", "\n".join(body), "../style.css",
                                        [("all datasets", "../index.html"), (name, "index.html")]))

    # -- neighbours ------------------------------------------------------------------------------------------
    def neighbours(self, name: str, d: str, tag: str, ok: pd.DataFrame) -> str:
        from annbench.neighbours import choose_runs, image_shape, load_selections, neighbour_figure, neighbour_table

        dataset = load_local_dataset(name, self.data_dir, ok)
        if dataset is None or not len(ok):
            return ""
        selections = load_selections(choose_runs(ok))
        if image_shape(dataset) is not None:
            rel = f"{tag}-neighbours.png"
            neighbour_figure(dataset, selections, self.out / d / rel, n_queries=self.n_queries)
            return ("<h3>Neighbours (fastest run at recall ≥ 0.9 per algorithm; ✗ = wrong)</h3>\n"
                    + _img(rel, "query images, exact neighbours and returned neighbours"))
        if dataset.keys is not None:
            return ("<h3>Neighbours (fastest run at recall ≥ 0.9 per algorithm; ✗ = wrong)</h3>\n"
                    + to_html(neighbour_table(dataset, selections, n_queries=self.n_queries)))
        return ""


def load_local_dataset(name: str, data_dir: Path | None, frame: pd.DataFrame):  # noqa: ANN201 - Dataset | None
    """The dataset file ``<data_dir>/<name>.hdf5`` if present and its checksum is the runs' one."""
    from annbench.datasets.format import load_dataset
    from annbench.datasets.registry import dataset_path

    if data_dir is None:
        return None
    path = dataset_path(name, data_dir)
    if not path.is_file():
        log.info("no dataset file %s: report without neighbour pictures", path)
        return None
    dataset = load_dataset(path, name=name)
    stored = set(frame["dataset_checksum"].dropna()) if "dataset_checksum" in frame else set()
    if stored and stored != {dataset.checksum}:
        log.warning("dataset file %s has checksum %s but the runs were made on %s: no neighbour pictures",
                    path, dataset.checksum, ", ".join(sorted(stored)))
        return None
    return dataset


def write_report(frame: pd.DataFrame, out_dir: str | Path, data_dir: Path | None = None,
                 n_queries: int = 4) -> Path:
    """Write the site for every run in ``frame`` (as :func:`annbench.analyse.results_frame`) into
    ``out_dir``; returns the path of ``index.html``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--report {out}: exists and is not a folder; give a folder path")
    if frame.empty:
        raise UserError("no results to report")
    out.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out, data_dir, n_queries)
    writer.write("style.css", CSS)
    rows, links = [], []
    for name, part in frame.groupby("dataset", sort=True):
        links.append(writer.dataset(str(name), part))
        rows.append({"dataset": name, "k": ", ".join(str(k) for k in sorted(part["k"].unique())),
                     "algorithms": part["algorithm"].nunique(), "runs": len(part),
                     "failed": int((part["status"] == Status.ERROR).sum())})
    generated = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    body = ["<h2>Datasets</h2>", to_html(pd.DataFrame(rows), links={"dataset": links}),
            "<h2>Provenance of the measurements</h2>", to_html(provenance_table(frame)),
            f"<p>Report written {html.escape(generated)} by annbench {html.escape(provenance.machine()['annbench_version'])}"
            f" (commit {html.escape(provenance.git_commit())}).</p>"]
    writer.write("index.html", _page("annbench report", "\n".join(body), "style.css"))
    return out / "index.html"
