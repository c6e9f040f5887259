"""Reports from a real, small results set made by the harness in-process: views, tables, exports,
the HTML report (checked in headless Chromium), neighbour pictures, escaping, bad input."""

from __future__ import annotations

import html.parser
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from annbench import paths
from annbench.analyse import OPERATING_RECALLS, results_frame
from annbench.cli_plot import main as plot_main
from annbench.datasets.registry import load
from annbench.execute import execute
from annbench.plan import RunOptions, make_plan
from annbench.results import RunKey, RunResult
from annbench.store import ResultStore, read_arrays, read_attrs
from chromium_cdp import Chromium
from conftest import call

EVIL = '<script>alert("x")</script>\'q'
BROKEN_ADAPTER = '''
from annbench.adapter import Adapter


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
    plan = make_plan(d.name, d.path, d.distance, algorithms, preset, RunOptions(k=10, runs=2),
                     paths.config_dirs(dirs), paths.algorithm_dirs(dirs))
    execute(plan, d, ResultStore(results))


@pytest.fixture(scope="module")
def bench(data_dir: Path, tmp_path_factory) -> Path:
    """random-xs-20 with bruteforce/kdtree/balltree (quick), digits-64 with their full sweeps, one
    failing adapter, and one run renamed to a hostile algorithm name."""
    results = tmp_path_factory.mktemp("bench") / "results"
    extra = tmp_path_factory.mktemp("extra")
    (extra / "broken.py").write_text(BROKEN_ADAPTER)
    (extra / "broken.yml").write_text("algorithm: broken\nmetrics: [euclidean]\ngroups:\n  quick: {}\n  full: {}\n")
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
            stripped = c.replace(r"\textbackslash{}", "").replace(r"\textasciitilde{}", "") \
                .replace(r"\textasciicircum{}", "").replace(r"\textless{}", "").replace(r"\textgreater{}", "") \
                .replace(r"\textbar{}", "")
            assert not unescaped.search(stripped), f"unescaped special character in {c!r}"


def test_latex_tables_well_formed(bench: Path) -> None:
    r = call(plot_main, "--results", bench, "--dataset", "random-xs-20-euclidean", "--operating-points", "latex")
    assert r.code == 0, r.err
    _check_latex(r.out, 11)
    assert EVIL not in r.out and r"\textless{}script\textgreater{}" in r.out
    r = call(plot_main, "--results", bench, "--table", "latex", "--columns", "algorithm,build_params,error,recall")
    _check_latex(r.out, 4)
    from annbench.tables import to_latex

    nasty = pd.DataFrame({"a_b": ["50% & $x$ #1 {y} ~z ^w \\ | <>"], "n": [1.5]})
    _check_latex(to_latex(nasty), 2)


def test_markdown_and_text_tables(bench: Path) -> None:
    r = call(plot_main, "--results", bench, "--dataset", "digits-64-euclidean", "--operating-points", "md")
    lines = r.out.strip().splitlines()
    assert lines[0].startswith("| dataset | k | algorithm |") and set(lines[1]) <= set("|-:")
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    r = call(plot_main, "--results", bench, "--operating-points", "text")
    assert r.code == 0 and "min_recall" in r.out and "kdtree" in r.out


# -- views ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", [".png", ".svg", ".pdf"])
@pytest.mark.parametrize("view", ["recall-qps", "recall-build", "recall-size", "recall-p99", "knn-qps"])
def test_every_view_renders(bench: Path, tmp_path: Path, view: str, fmt: str) -> None:
    from annbench.plotting import VIEWS, plot_metric_pair

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

    from annbench.analyse import pareto_frame
    from annbench.plotting import draw, style

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


def test_no_two_algorithms_of_a_figure_share_a_colour() -> None:
    from annbench.config import all_configs
    from annbench.paths import CONFIGS_DIR
    from annbench.plotting import style, styles

    shipped = sorted(all_configs([CONFIGS_DIR]))
    assert len({style(a)[0] for a in shipped}) < len(shipped)  # their names alone would clash
    palette = styles(shipped)
    assert len({colour for colour, _ in palette.values()}) == len(shipped)
    kept = [a for a in shipped if palette[a] == style(a)]
    assert len(kept) == len({style(a)[0] for a in shipped})  # one of each clashing set keeps its own
    assert styles(["kdtree"])["kdtree"] == style("kdtree")


# -- neighbours ------------------------------------------------------------------------------------------
def test_neighbour_marks_follow_recall(data_dir: Path, bench: Path, tmp_path: Path) -> None:
    from annbench.distances import distances_to_ids
    from annbench.metrics import recall
    from annbench.neighbours import Selection, correct, neighbour_figure

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
    from annbench.groundtruth import exact_knn
    from annbench.neighbours import Selection, neighbour_table

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

    def handle_starttag(self, tag, attrs):  # noqa: ANN001, ANN201
        self.tags.append((tag, dict(attrs)))


def test_report_escapes_and_loads_in_chromium(bench: Path, data_dir: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    r = call(plot_main, "--results", bench, "--report", site, "--data-dir", data_dir)
    assert r.code == 0, r.err
    pages = sorted(site.rglob("*.html"))
    ds_pages = {p.parent.name: p for p in pages if p.name == "index.html" and p.parent != site}
    assert set(ds_pages) == {"random-xs-20-euclidean", "digits-64-euclidean"}
    for p in [*pages, *site.rglob("*.svg")]:
        text = p.read_text(encoding="utf-8")
        assert "<script" not in text.lower() and "<img src=x" not in text, f"unescaped markup in {p}"
        if p.suffix == ".html":
            parser = _Tags()
            parser.feed(text)
            assert {t for t, _ in parser.tags} <= {"html", "head", "meta", "title", "link", "body", "nav", "a", "h1",
                                                   "h2", "h3", "p", "div", "figure", "img", "table", "thead",
                                                   "tbody", "tr", "th", "td", "details", "summary", "pre"}, p
            assert not [a for _, attrs in parser.tags for a in attrs if a.startswith("on")], p
    evil_page = [p for p in pages if "script" in p.name]
    assert len(evil_page) == 1 and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#x27;q" in evil_page[0].read_text()
    xs = ds_pages["random-xs-20-euclidean"].read_text()
    assert "broken" in xs and "&lt;b&gt;no answer&lt;/b&gt; &amp; &quot;quoted&quot;" in xs  # failed run, reason
    digits = ds_pages["digits-64-euclidean"].read_text()
    assert "neighbours.png" in digits and "annbench_commit" in digits and "version.scikit-learn" in digits

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "chromium is not installed: apt-get install chromium (.ci/run installs it)"
    bad = tmp_path / "control.html"
    bad.write_text('<!DOCTYPE html><title>c</title><img src="missing.png"><script>console.error("x")</script>')
    with Chromium(tmp_path / "profile") as browser:
        control = browser.visit(bad.as_uri())
        assert len(control["errors"]) == 2 and not control["images"][0]["ok"]  # the checks can see failures
        shot = tmp_path / "report-screenshot.png"
        for page in (site / "index.html", ds_pages["digits-64-euclidean"], ds_pages["random-xs-20-euclidean"],
                     evil_page[0]):
            seen = browser.visit(page.as_uri(), screenshot=shot if page == ds_pages["digits-64-euclidean"] else None)
            assert seen["errors"] == [], (page, seen["errors"])
            assert seen["scripts"] == 0 and seen["tables"] >= 2 and seen["rows"] >= 3, page
            assert all(i["ok"] for i in seen["images"]), (page, seen["images"])
            if page != site / "index.html":
                assert seen["images"], f"no images on {page}"
        assert EVIL in seen["text"] and seen["title"].startswith(EVIL)  # shown as text, never run
    _valid_image(shot)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


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
    r = call(plot_main, "--results", bench, "--output", tmp_path / "x.gif")
    assert r.code == 2 and ".svg" in r.err
    r = call(plot_main, "--results", bench, "--dataset", "random-xs-20-euclidean", "--neighbours",
             tmp_path / "n.png", "--data-dir", tmp_path)
    assert r.code == 2 and "--data-dir" in r.err
