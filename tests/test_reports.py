"""Reports from a real, small results set made by the harness in-process: views, tables, exports,
the HTML report (checked in headless Chromium), neighbour pictures, escaping, bad input."""

from __future__ import annotations

import html.parser
import io
import json
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from chromium_cdp import Chromium
from conftest import call, write_backend

from annbench.analyse.frames import OPERATING_RECALLS, results_frame
from annbench.cli.plot import main as plot_main
from annbench.core import paths
from annbench.core.results import RunKey, RunResult
from annbench.datasets.registry import load
from annbench.execute.executors import ExecutorKind, execute, make_executor
from annbench.plan.grid import RunOptions, make_plan
from annbench.report.tables import cell
from annbench.store.folder import ResultStore, read_arrays, read_attrs

EVIL = '<script>alert("x")</script>\'q'
BROKEN_ADAPTER = '''
from annbench.backends.adapter import Adapter


class Broken(Adapter):
    metrics = ("euclidean",)
    exact = True

    def __init__(self, metric: str, threads: int = 1) -> None:
        super().__init__(metric, threads)

    def fit(self, X):
        self.n = len(X)

    def query(self, q, k):
        raise RuntimeError("<b>no answer</b> & \\"quoted\\"")
'''


def _run(data_dir: Path, results: Path, dataset: str, algorithms: list[str], preset: str,
         extra: Path | None = None) -> None:
    d = load(dataset, data_dir)
    dirs = [extra] if extra else []
    # passes of 20 ms: these runs feed tables, plots and reports, whose tests need no stable QPS; one measuring
    # process, whose 2 passes give the spread the error bars and qps_slowest show (the process interval of runs
    # measured in several processes: test_figures.py, test_interactive.py)
    plan = make_plan(d.name, d.path, d.distance, algorithms, preset, RunOptions(k=10, runs=2, min_pass_time=0.02,
                                                                                 processes=1),
                     paths.config_dirs(dirs), paths.algorithm_dirs(dirs))
    execute(make_executor(ExecutorKind.INPROCESS, ResultStore(results)), plan, d)  # not about isolation


@pytest.fixture(scope="module")
def bench(data_dir: Path, tmp_path_factory) -> Path:
    """random-xs-20 with bruteforce/kdtree/balltree (quick), digits-64 with their full sweeps, one
    failing adapter, and one run renamed to a hostile algorithm name."""
    results = tmp_path_factory.mktemp("bench") / "results"
    extra = write_backend(tmp_path_factory.mktemp("extra"), "broken", BROKEN_ADAPTER, "  quick: {}\n  full: {}")
    _run(data_dir, results, "random-xs-20-euclidean", ["bruteforce", "kdtree", "balltree", "broken"], "quick", extra)
    _run(data_dir, results, "digits-64-euclidean", ["bruteforce", "kdtree", "balltree"], "full")
    # a stored run copied under a hostile name, with hostile parameters
    frame = results_frame(results, "random-xs-20-euclidean")
    src = frame[frame["algorithm"] == "kdtree"].iloc[0]
    attrs = read_attrs(src["path"])
    key = RunKey(attrs["dataset"], 10, EVIL, False, {"name": '"a" & <b>'}, {"q": "it's"})
    keep = {k: v for k, v in attrs.items() if k not in ("dataset", "k", "algorithm", "batch", "threads",
                                                        "build_params", "query_params", "status", "error")}
    ResultStore(results).write(RunResult(key, "ok", attrs=keep, **read_arrays(src["path"])))
    ResultStore(results).write(RunResult(RunKey(attrs["dataset"], 10, EVIL, False, {"name": "x"}, {}), "error",
                                         error='query: <img src=x onerror="alert(1)">', attrs={"traceback": "<tb>"}))
    return results


@pytest.fixture(scope="module")
def site(bench: Path, data_dir: Path, tmp_path_factory) -> Path:
    """The HTML report of ``bench`` (with the neighbour pictures of ``data_dir``), written once for the tests
    that read it and load it in Chromium."""
    folder = tmp_path_factory.mktemp("report") / "site"
    r = call(plot_main, "--results", bench, "--report", folder, "--data-dir", data_dir)
    assert r.code == 0, r.err
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Chromium]:
    """One headless Chromium for the module's pages (each test opens tabs of its own)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is not installed: apt-get install chromium (.ci/run installs it)"
    with Chromium(tmp_path_factory.mktemp("chromium") / "profile") as chromium:
        yield chromium


def _valid_image(path: Path) -> None:
    data = path.read_bytes()
    suffix = path.suffix
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in data[-16:], path
    elif suffix == ".pdf":
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF"), path
    else:
        root = ET.fromstring(data)  # well-formed XML
        assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
        assert root.findall(".//{http://www.w3.org/2000/svg}path"), "empty SVG"


# -- export -----------------------------------------------------------------------------------------------
def test_results_frame_one_row_per_run_with_params_and_provenance(bench: Path) -> None:
    frame = results_frame(bench)
    assert len(frame) == len(list(bench.rglob("*.hdf5")))
    for col in ("algorithm", "build_params", "query_params", "k", "batch", "recall", "id_recall", "qps", "p50_ms",
                "p99_ms", "build_s", "index_bytes", "build.leaf_size", "cpu_model", "annbench_commit",
                "dataset_checksum", "version.numpy", "version.scikit-learn", "timestamp", "qps_slowest"):
        assert col in frame, col
    failed = frame[frame["status"] == "error"]
    assert set(failed["algorithm"]) == {"broken", EVIL} and failed["error"].str.contains("no answer|onerror").all()
    # the QPS spread comes from the kept pass times
    row = frame[(frame["algorithm"] == "kdtree") & (frame["status"] == "ok")].iloc[0]
    times = read_arrays(row["path"])["pass_times_ns"]
    assert len(times) == 2
    assert row["qps_slowest"] == pytest.approx(row["repeats"] * row["n_queries"] / (times.max() * 1e-9))
    assert row["qps"] == pytest.approx(row["repeats"] * row["n_queries"] / (times.min() * 1e-9))


def test_table_csv_all_runs_and_json(bench: Path) -> None:
    r = call(plot_main, "--results", bench, "--dataset", "digits-64-euclidean", "--table", "csv")
    assert r.code == 0, r.err
    from io import StringIO

    table = pd.read_csv(StringIO(r.out))
    frame = results_frame(bench, "digits-64-euclidean")
    assert len(table) == len(frame) and list(table.columns) == list(frame.columns)
    r = call(plot_main, "--results", bench, "--table", "json", "--columns", "algorithm,recall,qps")
    records = json.loads(r.out)
    assert len(records) == len(results_frame(bench)) and set(records[0]) == {"algorithm", "recall", "qps"}
    r = call(plot_main, "--results", bench, "--table", "md", "--columns", "nope")
    assert r.code == 2 and "nope" in r.err


def test_operating_points_json_matches_the_runs(bench: Path) -> None:
    r = call(plot_main, "--results", bench, "--dataset", "digits-64-euclidean", "--operating-points", "json")
    assert r.code == 0, r.err
    points = json.loads(r.out)
    frame = results_frame(bench, "digits-64-euclidean")
    ok = frame[frame["status"] == "ok"]
    assert len(points) == ok["algorithm"].nunique() * len(OPERATING_RECALLS)
    for p in points:
        runs = ok[(ok["algorithm"] == p["algorithm"]) & (ok["recall"] >= p["min_recall"])]
        best = runs.loc[runs["qps"].idxmax()]
        assert p["qps"] == pytest.approx(best["qps"]) and p["build_params"] == best["build_params"]
        assert p["index_bytes"] == best["index_bytes"] and p["build_s"] == pytest.approx(best["build_s"])


def _check_latex(text: str, n_cols: int) -> None:
    lines = text.strip().splitlines()
    assert lines[0].startswith(r"\begin{tabular}{") and lines[-1] == r"\end{tabular}"
    align = re.match(r"\\begin\{tabular\}\{([lrc]+)\}$", lines[0]).group(1)
    assert len(align) == n_cols
    assert [lines[1], lines[3], lines[-2]] == [r"\toprule", r"\midrule", r"\bottomrule"]
    unescaped = re.compile(r"(?<!\\)[&%$#_{}~^]")
    for line in [lines[2], *lines[4:-2]]:
        assert line.endswith(r" \\")
        body = line[:-3]
        cells = re.split(r"(?<!\\)&", body)
        assert len(cells) == n_cols, line
        for c in cells:
            c = re.sub(r"^\s*\\textbf\{(.*)\}\s*$", r"\1", c)  # a best cell, in bold
            stripped = c.replace(r"\textbackslash{}", "").replace(r"\textasciitilde{}", "") \
                .replace(r"\textasciicircum{}", "").replace(r"\textless{}", "").replace(r"\textgreater{}", "") \
                .replace(r"\textbar{}", "")
            assert not unescaped.search(stripped), f"unescaped special character in {c!r}"


def _tabulars(text: str) -> list[str]:
    """The ``tabular`` environments of a LaTeX output (captions are ``%`` comment lines)."""
    body = "\n".join(line for line in text.splitlines() if not line.startswith("%"))
    return [r"\begin{tabular}" + part.split(r"\end{tabular}")[0] + r"\end{tabular}"
            for part in body.split(r"\begin{tabular}")[1:]]


def test_latex_tables_well_formed(bench: Path) -> None:
    r = call(plot_main, "--results", bench, "--dataset", "random-xs-20-euclidean", "--operating-points", "latex")
    assert r.code == 0, r.err
    pivot, params = _tabulars(r.out)
    _check_latex(pivot, 1 + len(OPERATING_RECALLS))  # algorithm, one column per recall level
    _check_latex(params, 3)                          # algorithm, cells, parameters
    assert r"\textbf{" in pivot and r.out.startswith("% dataset=random-xs-20-euclidean, k=10")
    assert EVIL not in r.out and r"\textless{}script\textgreater{}" in r.out
    r = call(plot_main, "--results", bench, "--dataset", "random-xs-20-euclidean", "--operating-points", "latex",
             "--layout", "long")
    _check_latex(r.out, 12)  # ... and the hard-query recall: the dataset file is where the runs recorded it
    r = call(plot_main, "--results", bench, "--ranks", "latex")
    assert r.code == 0, r.err
    _check_latex(_tabulars(r.out)[0], 4 + 2 * 2)  # level, algorithm, mean rank, reached, (rank, rel) × 2 datasets
    r = call(plot_main, "--results", bench, "--table", "latex", "--columns", "algorithm,build_params,error,recall")
    _check_latex(r.out, 4)
    from annbench.report.tables import to_latex

    nasty = pd.DataFrame({"a_b": ["50% & $x$ #1 {y} ~z ^w \\ | <>"], "n": [1.5]})
    _check_latex(to_latex(nasty), 2)


def test_markdown_and_text_tables(bench: Path) -> None:
    r = call(plot_main, "--results", bench, "--dataset", "digits-64-euclidean", "--operating-points", "md")
    caption, table, params_caption, params = r.out.strip().split("\n\n")
    assert caption.startswith("**dataset=digits-64-euclidean, k=10: best qps") and "parameters" in params_caption
    assert params.startswith("| algorithm | cells | params |") and "leaf_size=" in params
    lines = table.splitlines()
    assert lines[0] == "| algorithm | " + " | ".join(f"recall>={v:g}" for v in OPERATING_RECALLS) + " |"
    assert set(lines[1]) <= set("|-:") and len(lines) == 2 + 3  # one row per algorithm
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    frame = results_frame(bench, "digits-64-euclidean")
    ok = frame[frame["status"] == "ok"]
    best = ok[ok["recall"] >= 0.9]["qps"].max()  # the column's best is bold
    assert f"**{cell(best)}**" in lines[2 + sorted(ok["algorithm"].unique()).index(
        ok.loc[ok[ok["recall"] >= 0.9]["qps"].idxmax(), "algorithm"])]
    r = call(plot_main, "--results", bench, "--operating-points", "text")
    assert r.code == 0 and "recall>=0.99" in r.out and "kdtree" in r.out and "parameters" in r.out
    r = call(plot_main, "--results", bench, "--ranks", "csv")
    ranks = pd.read_csv(io.StringIO(r.out))
    assert {"mean rank", "reached", "digits-64-euclidean rank", "random-xs-20-euclidean rel"} <= set(ranks.columns)
    every = results_frame(bench)
    ranked = every[every["status"] == "ok"]["algorithm"].nunique()  # "broken" never succeeded: no rank
    assert len(ranks) == len(OPERATING_RECALLS) * ranked and "broken" not in set(ranks["algorithm"])


# -- views ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [".png", ".svg", ".pdf"])
@pytest.mark.parametrize("view", ["recall-qps", "recall-build", "recall-size", "recall-p99", "knn-qps"])
def test_every_view_renders(bench: Path, tmp_path: Path, view: str, fmt: str) -> None:
    from annbench.report.plotting import VIEWS, plot_metric_pair

    frame = results_frame(bench, "digits-64-euclidean")
    if "knn_accuracy" not in frame:  # labelled datasets get it from the evaluation; here a stand-in column
        frame["knn_accuracy"] = frame["recall"] * np.linspace(0.8, 0.9, len(frame))
    v = VIEWS[view]
    out = plot_metric_pair(frame, v.x, v.y, tmp_path / f"plot{fmt}", "digits", v.x_scale, v.y_scale)
    _valid_image(out)


def test_cli_views_scales_grid_annotate(bench: Path, tmp_path: Path) -> None:
    r = call(plot_main, "--results", bench, "--view", "all", "--output", tmp_path / "v.svg")
    assert r.code == 0, r.err
    made = sorted(p.name for p in tmp_path.glob("v-*.svg"))
    # 2 datasets × 4 views, plus knn-qps for the labelled digits only (random-xs has no labels)
    assert len(made) == 9 and "v-random-xs-20-euclidean-recall-p99.svg" in made
    assert "v-digits-64-euclidean-knn-qps.svg" in made and "v-random-xs-20-euclidean-knn-qps.svg" not in made
    for p in tmp_path.glob("v-*.svg"):
        _valid_image(p)
    r = call(plot_main, "--results", bench, "--grid", "--all", "--annotate", "--output", tmp_path / "g.pdf")
    assert r.code == 0, r.err
    _valid_image(tmp_path / "g.pdf")
    r = call(plot_main, "--results", bench, "--dataset", "digits-64-euclidean", "-x", "qps", "-y", "recall",
             "--x-scale", "log", "--y-scale", "logit", "--output", tmp_path / "c.png")
    assert r.code == 0, r.err
    _valid_image(tmp_path / "c.png")
    r = call(plot_main, "--results", bench, "--view", "knn-qps", "--dataset", "random-xs-20-euclidean")
    assert r.code == 2 and "knn_accuracy" in r.err and "labels" in r.err
    r = call(plot_main, "--results", bench, "--view", "nope")
    assert r.code == 2 and "recall-qps" in r.err


def test_qps_error_bars_span_the_kept_passes(bench: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from annbench.analyse.frames import pareto_frame
    from annbench.report.plotting import draw, style

    frame = results_frame(bench, "digits-64-euclidean")
    fig, ax = plt.subplots()
    draw(ax, frame, "recall", "qps")
    front = pareto_frame(frame[frame["status"] == "ok"], "recall", "qps")
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    lows = sorted(min(seg[:, 1]) for c in bars for seg in c.get_segments())
    spread = front[front["qps_slowest"] < front["qps"]]
    assert lows == pytest.approx(sorted(spread["qps_slowest"]))
    colours = {line.get_label(): line.get_color() for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert colours["kdtree"] == style("kdtree")[0]  # the same in every figure: derived from the name
    plt.close(fig)
    assert len({style(a) for a in ("bruteforce", "kdtree", "balltree")}) == 3


def test_no_two_algorithms_of_a_figure_share_a_colour_and_marker() -> None:
    from annbench.core.paths import CONFIGS_DIR
    from annbench.plan.config import all_configs
    from annbench.report.plotting import PALETTE, dashes, style, styles

    shipped = sorted(all_configs([CONFIGS_DIR]))
    assert len(shipped) > len(PALETTE)
    assert len({style(a) for a in shipped}) < len(shipped)  # their names alone would clash
    palette = styles(shipped)
    assert len(set(palette.values())) == len(shipped)  # every colour and marker pair once
    uses = pd.Series([colour for colour, _ in palette.values()]).value_counts()
    assert len(uses) == len(PALETTE) and uses.max() - uses.min() <= 1  # colours shared as evenly as can be
    lines = dashes(palette)
    assert len({(palette[a][0], lines[a]) for a in shipped}) == len(shipped)  # same colour: other dashes
    first = shipped[:len(PALETTE)]  # up to 10 algorithms: never a shared colour
    assert len({colour for colour, _ in styles(first).values()}) == len(first)
    kept = [a for a in first if styles(first)[a][0] == style(a)[0]]
    assert len(kept) == len({style(a)[0] for a in first})  # one of each clashing set keeps its own
    assert styles(["kdtree"])["kdtree"] == style("kdtree")


# -- neighbours ------------------------------------------------------------------------------------------
def test_neighbour_marks_follow_recall(data_dir: Path, bench: Path, tmp_path: Path) -> None:
    from annbench.quality.distances import distances_to_ids
    from annbench.quality.metrics import recall
    from annbench.report.neighbours import Selection, correct, neighbour_figure

    d = load("digits-64-euclidean", data_dir)
    frame = results_frame(bench, "digits-64-euclidean")
    row = frame[(frame["algorithm"] == "kdtree") & (frame["status"] == "ok")].iloc[0]
    ids = read_arrays(row["path"])["neighbors"].astype(np.int64)
    assert correct(d, ids).mean() == pytest.approx(row["recall"])
    spoiled = ids.copy()
    spoiled[::3, 0] = d.neighbors[::3, 99]  # the 100th neighbour: wrong at k = 10 (unless tied)
    spoiled[1, 2] = -1
    expected = recall(distances_to_ids(d.test, d.train, spoiled, d.distance), d.distances, 10).mean()
    assert expected < 1.0 and correct(d, spoiled).mean() == pytest.approx(expected)
    out = neighbour_figure(d, [Selection("kdtree", ids), Selection("spoiled", spoiled)], tmp_path / "n.png",
                           n_queries=3)
    _valid_image(out)
    r = call(plot_main, "--results", bench, "--dataset", "digits-64-euclidean", "--neighbours", tmp_path / "c.png",
             "--data-dir", data_dir, "--queries", "2")
    assert r.code == 0, r.err
    _valid_image(tmp_path / "c.png")


def test_neighbour_table_for_keyed_dataset(tmp_path: Path) -> None:
    from annbench.datasets.format import load_dataset, write_dataset
    from annbench.quality.groundtruth import exact_knn
    from annbench.report.neighbours import Selection, neighbour_table

    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(200, 8)).astype(np.float32), rng.normal(size=(5, 8)).astype(np.float32)
    ids, dists = exact_knn(train, test, "euclidean", 100)
    keys = [f"w{i}|<{i}>" for i in range(200)]
    d = load_dataset(write_dataset(tmp_path / "words.hdf5", train=train, test=test, distance="euclidean",
                                   neighbors=ids, distances=dists, keys=keys))
    found = ids[:, :10].copy()
    found[2, 0] = ids[2, 50]
    table = neighbour_table(d, [Selection("approx", found)], n_queries=2, n_show=10)
    assert table["query"].tolist()[:2] == [2, 2]  # the query with a mistake comes first
    approx = table[table["source"] == "approx"]["neighbours"].tolist()[0]
    assert approx.count("✗") == 1 and approx.startswith(f"{keys[ids[2, 50]]} ✗")
    exact = table[table["source"] == "exact"]["neighbours"].tolist()[0]
    assert exact.split(", ") == [keys[i] for i in ids[2, :10]]


# -- HTML report -----------------------------------------------------------------------------------------
class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


SCRIPT_SRC = {"plotly.min.js", "charts.js"}
ALLOWED_TAGS = {"html", "head", "meta", "title", "link", "body", "nav", "a", "h1", "h2", "h3", "p", "div", "figure",
                "figcaption", "img", "table", "caption", "thead", "tbody", "tr", "th", "td", "details", "summary",
                "pre", "strong", "em", "script", "style"}


def test_report_escapes_and_loads_in_chromium(site: Path, browser: Chromium, tmp_path: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    ds_pages = {p.parent.name: p for p in pages if p.name == "index.html" and p.parent != site}
    assert set(ds_pages) == {"random-xs-20-euclidean", "digits-64-euclidean"}
    assert (site / "plotly.min.js").stat().st_size > 1_000_000 and (site / "charts.js").is_file()  # copied once
    assert not list(site.glob("*/plotly.min.js"))
    for p in [*pages, *site.rglob("*.svg")]:
        text = p.read_text(encoding="utf-8")
        assert "<script>alert" not in text and "<img src=x" not in text and "<b>no answer" not in text, p
        if p.suffix == ".svg":
            assert "<script" not in text.lower(), p
            continue
        parser = _Tags()
        parser.feed(text)
        assert {t for t, _ in parser.tags} <= ALLOWED_TAGS, p
        assert not [a for _, attrs in parser.tags for a in attrs if a.startswith("on")], p
        for tag, attrs in parser.tags:  # the only scripts: the two local files and JSON data blocks
            if tag == "script":
                script = attrs.get("src", "").split("/")[-1]
                assert attrs.get("type") == "application/json" or script in SCRIPT_SRC, attrs
                assert not attrs.get("src", "").startswith(("http:", "https:", "//")), attrs
    evil_page = [p for p in pages if "script" in p.name]
    assert len(evil_page) == 1
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#x27;q" in evil_page[0].read_text()
    xs = ds_pages["random-xs-20-euclidean"].read_text()
    assert "broken" in xs and "&lt;b&gt;no answer&lt;/b&gt; &amp; &quot;quoted&quot;" in xs  # failed run, reason
    digits = ds_pages["digits-64-euclidean"].read_text()
    assert "neighbours.png" in digits and "annbench_commit" in digits and "version.scikit-learn" in digits

    bad = tmp_path / "control.html"
    bad.write_text('<!DOCTYPE html><title>c</title><img src="missing.png"><script>console.error("x")</script>'
                   '<link rel="stylesheet" href="https://example.invalid/x.css">')
    control = browser.visit(bad.as_uri())
    assert len(control["errors"]) >= 2 and not control["images"][0]["ok"]  # the checks can see failures
    assert "https://example.invalid/x.css" in control["requests"]           # and a network request
    shot = tmp_path / "report-screenshot.png"
    for page in (site / "index.html", ds_pages["digits-64-euclidean"], ds_pages["random-xs-20-euclidean"],
                 evil_page[0]):
        seen = browser.visit(page.as_uri(), screenshot=shot if page == ds_pages["digits-64-euclidean"] else None)
        assert seen["errors"] == [], (page, seen["errors"])
        assert all(u.startswith("file://") for u in seen["requests"]), (page, seen["requests"])  # no network
        assert seen["tables"] >= 2 and seen["rows"] >= 3, page
        assert all(i["ok"] for i in seen["images"]), (page, seen["images"])
    assert EVIL in seen["text"] and seen["title"].startswith(EVIL)  # shown as text, never run
    _valid_image(shot)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


CHARTS = """JSON.stringify(Array.from(document.querySelectorAll('figure.chart')).map(f => {
  const gd = f.querySelector('.plot');
  return {id: f.id, pareto: gd.data.filter(t => t.meta.role === 'pareto').map(t => t.name),
          all: gd.data.filter(t => t.meta.role === 'all').map(t => t.visible),
          legend: gd.querySelector('.legend').textContent, x: gd._fullLayout.xaxis.title.text,
          y: gd._fullLayout.yaxis.title.text, ytype: gd._fullLayout.yaxis.type};
}))"""


def _point(tab, chart: str, name: str, role: str = "pareto", point: int = 0) -> tuple[float, float]:
    """Viewport pixel position of a point of the named trace (scrolled into view)."""
    return tuple(tab.evaluate(f"""(() => {{
      const gd = document.querySelector('#{chart} .plot');
      gd.scrollIntoView();
      const t = gd.data.find(t => t.meta.role === '{role}' && t.name === {json.dumps(name)});
      const fl = gd._fullLayout, r = gd.getBoundingClientRect();
      return [r.left + fl._size.l + fl.xaxis.d2p(t.x[{point}]), r.top + fl._size.t + fl.yaxis.d2p(t.y[{point}])];
    }})()"""))


def _hover_text(tab, chart: str) -> str:
    return tab.evaluate(f"document.querySelector('#{chart} .plot .hoverlayer').textContent")


def _wait(tab, ms: int = 400) -> None:
    tab.evaluate(f"new Promise(r => setTimeout(r, {ms}))", await_promise=True)


def test_interactive_charts_in_chromium(bench: Path, site: Path, browser: Chromium, tmp_path: Path) -> None:
    from chromium_cdp import open_tab

    from annbench.analyse.frames import pareto_frame
    from annbench.report.interactive import plotly_text
    from annbench.report.plotting import params_label

    frame = results_frame(bench)
    for dataset in ("digits-64-euclidean", "random-xs-20-euclidean"):
        tab = open_tab(browser, (site / dataset / "index.html").as_uri())
        _wait(tab)
        assert tab.errors() == [] and all(u.startswith("file://") for u in tab.requests()), tab.requests()
        ok = frame[(frame["dataset"] == dataset) & (frame["status"] == "ok")]
        names = sorted(plotly_text(a) for a in ok["algorithm"].unique())
        charts = json.loads(tab.evaluate(CHARTS))
        views = ["recall-qps", "recall-build", "recall-size", "recall-p99"] + \
            (["knn-qps"] if dataset == "digits-64-euclidean" else [])  # kNN accuracy: labelled data only
        assert [c["id"] for c in charts] == [f"k10-single-{v}" for v in views]
        for c in charts:  # one Pareto trace per algorithm, all runs hidden until asked
            assert sorted(c["pareto"]) == names and c["all"] == [False] * len(names), c
        assert charts[0]["y"] == "queries per second" and charts[0]["ytype"] == "log"
        assert "log scale of 1 − recall" in charts[0]["x"]
        if dataset == "random-xs-20-euclidean":
            assert EVIL in charts[0]["legend"]  # the hostile name shown as text in the legend
            hover_on = EVIL
        else:
            hover_on = "kdtree"
        # the hover label of the first Pareto point shows that run's parameters and metrics: reached
        # by a real mouse on digits; through Plotly.Fx.hover for the hostile copy, which sits exactly
        # on the kdtree run it was copied from
        runs = ok[ok["algorithm"] == hover_on]
        first = pareto_frame(runs, "recall", "qps").iloc[0]
        if hover_on == "kdtree":
            tab.mouse("mouseMoved", *_point(tab, charts[0]["id"], plotly_text(hover_on)))
        else:
            tab.evaluate(f"""(() => {{ const gd = document.querySelector('#{charts[0]["id"]} .plot');
                const i = gd.data.findIndex(t => t.meta.role === 'pareto'
                                                 && t.name === {json.dumps(plotly_text(EVIL))});
                Plotly.Fx.hover(gd, [{{curveNumber: i, pointNumber: 0}}]); }})()""")
        _wait(tab, 200)
        text = _hover_text(tab, charts[0]["id"])
        assert hover_on in text and f"build: {params_label(first['build_params'], '{}')}" in text, text
        assert f"query: {params_label('{}', first['query_params'])}" in text, text
        assert f"recall: {cell(first['recall'])}" in text and f"QPS: {cell(first['qps'])}" in text, text
        assert "p99" in text and "build time" in text and "index" in text, text
        if dataset == "random-xs-20-euclidean":
            assert 'name="a" & <b>' in text and "q=it's" in text  # parameters shown literally
            _wait(tab, 100)
            assert tab.evaluate("typeof window.alert === 'function' && !document.querySelector('b b')")
            tab.screenshot(tmp_path / "interactive.png")
            _valid_image(tmp_path / "interactive.png")
            tab.close()
            continue
        # the selectors: y metric, then all runs; a legend click hides an algorithm
        tab.evaluate("""(() => { const s = document.querySelectorAll('#k10-single-recall-qps select')[2];
            s.value = 'build_s'; s.dispatchEvent(new Event('change')); })()""")
        after = json.loads(tab.evaluate(CHARTS))[0]
        assert after["y"] == "build time (s)" and sorted(after["pareto"]) == names
        tab.evaluate("document.querySelector('#k10-single-recall-qps input[type=checkbox]').click()")
        assert json.loads(tab.evaluate(CHARTS))[0]["all"] == [True] * len(names)
        box = tab.evaluate("""(() => { const gd = document.querySelector('#k10-single-recall-qps .plot');
            const item = Array.from(gd.querySelectorAll('.legend .traces'))
                .find(e => e.textContent === 'kdtree');
            const r = item.getBoundingClientRect(); return [r.left + 10, r.top + r.height / 2]; })()""")
        tab.mouse("mousePressed", *box)
        tab.mouse("mouseReleased", *box)
        _wait(tab, 700)  # Plotly waits out a possible double click
        states = tab.evaluate("""(() => { const gd = document.querySelector('#k10-single-recall-qps .plot');
            return gd.data.map(t => [t.name, t.meta.role, t.visible]); })()""")
        assert {tuple(s) for s in states if s[0] == "kdtree"} == {("kdtree", "pareto", "legendonly"),
                                                                ("kdtree", "all", "legendonly")}
        assert all(s[2] is True for s in states if s[0] != "kdtree")
        assert tab.errors() == []
        tab.close()


def test_self_contained_page_works_alone(bench: Path, browser: Chromium, tmp_path: Path) -> None:
    from chromium_cdp import open_tab

    site = tmp_path / "site"
    r = call(plot_main, "--results", bench, "--dataset", "digits-64-euclidean", "--report", site, "--self-contained")
    assert r.code == 0, r.err
    assert not (site / "plotly.min.js").exists() and not (site / "style.css").exists()
    alone = tmp_path / "mailed" / "digits.html"
    alone.parent.mkdir()
    shutil.copy(site / "digits-64-euclidean" / "index.html", alone)  # nothing beside it
    tab = open_tab(browser, alone.as_uri())
    _wait(tab)
    assert tab.errors() == []
    assert [u for u in tab.requests() if not u.startswith("data:")] == [alone.as_uri()]  # only itself
    charts = json.loads(tab.evaluate(CHARTS))
    assert len(charts) == 5 and all(len(c["pareto"]) == 3 for c in charts)
    assert tab.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    tab.close()


# -- bad input ------------------------------------------------------------------------------------------------
def test_empty_or_missing_results_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for folder, words in ((tmp_path / "empty", "holds no result files"), (tmp_path / "none", "does not exist")):
        for extra in ([], ["--table", "csv"], ["--report", str(tmp_path / "site")], ["--operating-points", "md"]):
            r = call(plot_main, "--results", folder, *extra)
            assert r.code == 2 and words in r.err and "run.py" in r.err, (extra, r.err)
            assert "Traceback" not in r.err and r.out == "" and len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "site").exists()


def test_unknown_dataset_algorithm_and_bad_output(bench: Path, tmp_path: Path) -> None:
    r = call(plot_main, "--results", bench, "--dataset", "nope")
    assert r.code == 2 and "digits-64-euclidean" in r.err
    r = call(plot_main, "--results", bench, "--algorithm", "nope")
    assert r.code == 2 and "kdtree" in r.err
    for extra in (["--self-contained"], ["--layout", "long"]):
        r = call(plot_main, "--results", bench, *extra)
        assert r.code == 2 and extra[0] in r.err and len(r.err.strip().splitlines()) == 1, r.err
    r = call(plot_main, "--results", bench, "--output", tmp_path / "x.gif")
    assert r.code == 2 and ".svg" in r.err
    r = call(plot_main, "--results", bench, "--dataset", "random-xs-20-euclidean", "--neighbours",
             tmp_path / "n.png", "--data-dir", tmp_path)  # found where the runs recorded it, but it has no pictures
    assert r.code == 2 and "neither images" in r.err and len(r.err.strip().splitlines()) == 1
