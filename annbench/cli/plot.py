"""``python plot.py``: Pareto plots, tables, an HTML report and pictures of neighbours from stored results."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from annbench.cli.common import Parser, guarded, names, one_k, output_path, positive_int, recall_level, stored_results
from annbench.cli.options import shared
from annbench.core import paths
from annbench.core.errors import UserError
from annbench.core.logs import setup_logging
from annbench.core.results import Status
from annbench.report.plotting import DEFAULT_VIEW, PLOT_SUFFIXES, SCALES, SIZES, VIEWS, View, default_scale
from annbench.report.tables import FORMATS

log = logging.getLogger("annbench.plot")

TABLE_SUFFIXES = {".md": "md", ".csv": "csv", ".txt": "text", ".json": "json", ".tex": "latex"}


def parser(prog: str = "plot.py") -> Parser:
    p = Parser(prog=prog, description="Plot and tabulate stored benchmark results.",
               parents=[shared("results", "data-dir", "verbose")])
    p.add_argument("--dataset", help="comma-separated dataset names, each with its subsets (<dataset>-test<M>) "
                                     "(default: every dataset in the results folder)")
    p.add_argument("-k", "--count", dest="k", type=positive_int, default=None,
                   help="k of the runs (plots: default 10 if present, else the smallest; tables: every k)")
    p.add_argument("--batch", action="store_true", help="batch-mode runs instead of single-query runs")
    p.add_argument("--algorithm", help="comma-separated algorithms to keep (default: all)")
    p.add_argument("--runbook", metavar="NAME",
                   help="the runs of runbook NAME (<file stem>:<entry>, as run.py --runbook names them; all: every "
                        "runbook's) instead of the static runs: tables and plots of their per-run metrics")
    p.add_argument("--host", help="comma-separated hosts to keep: the machines that measured the runs "
                                  "(default: all; a curve mixing hosts is warned about)")
    g = p.add_argument_group("plots")
    g.add_argument("--view", default=None,
                   help=f"comma-separated views, or 'all': {', '.join(VIEWS)} (default {DEFAULT_VIEW})")
    g.add_argument("-x", default=None, help="metric on the x axis (a custom view; default recall)")
    g.add_argument("-y", default=None, help="metric on the y axis (a custom view; default qps)")
    g.add_argument("--x-scale", choices=SCALES, default=None,
                   help="default: the view's (nines for recall and kNN accuracy: 0.9, 0.99, 0.999 evenly spaced; "
                        "log otherwise); logit is ann-benchmarks' choice")
    g.add_argument("--y-scale", choices=SCALES, default=None, help="default: the view's (log for QPS, times, sizes)")
    g.add_argument("--size", choices=list(SIZES), default="screen",
                   help="figure size and fonts: screen (default), or single / double for one / two columns of a "
                        "paper (3.5 / 7.16 inches wide)")
    g.add_argument("--bands", action="store_true",
                   help="shade the QPS spread (slowest to fastest pass) under each line, besides the error bars")
    g.add_argument("--all", action="store_true", help="draw every run, not only Pareto-optimal ones")
    g.add_argument("--annotate", action="store_true", help="label points with their parameters")
    g.add_argument("--grid", action="store_true", help="several datasets: one figure with a panel each")
    g.add_argument("--output", type=Path, help="image file: .png, .svg or .pdf (several figures: used as a "
                                               "pattern, -<dataset>-<view> added before the suffix)")
    t = p.add_argument_group("tables and exports (printed on stdout)")
    t.add_argument("--table", choices=(*FORMATS, "summary"),
                   help="every run, one row each (csv/json: every column); summary: per algorithm at its "
                        "operating point (best QPS at recall >= --at-recall) the search time of the whole query "
                        "set, 1-R@1, index size and build time (faiss's table)")
    t.add_argument("--columns", help="comma-separated columns for --table (default: csv/json every column, "
                                     "else the summary columns)")
    t.add_argument("--operating-points", choices=FORMATS, metavar="FORMAT",
                   help="best QPS at recall >= 0.5/0.8/0.9/0.95/0.99: one row per algorithm, one column per "
                        "recall level, the best of each column bold with every cell not significantly slower "
                        "(process-level test: a tie), then the parameters of each cell; "
                        f"one of {', '.join(FORMATS)}")
    t.add_argument("--layout", choices=("wide", "long"), default=None,
                   help="--operating-points: wide = one row per algorithm, one QPS column per level (then the "
                        "parameters); long = one row per algorithm and level with parameters, build time and "
                        "index size (default: wide for text/md/latex, long for csv/json)")
    t.add_argument("--ranks", choices=FORMATS, metavar="FORMAT",
                   help="across datasets: per recall level each algorithm's rank by best QPS on every dataset "
                        "(1 + the algorithms significantly faster there, process-level test), its QPS relative to "
                        "the fastest there and its mean rank")
    t.add_argument("--by-host", action="store_true",
                   help="group tables by the host that measured the runs (operating points: per host)")
    r = p.add_argument_group("report and neighbours")
    r.add_argument("--report", type=Path, metavar="DIR",
                   help="write the HTML report into DIR: interactive charts (Plotly, offline), tables, static SVGs")
    r.add_argument("--self-contained", action="store_true",
                   help="--report: every page carries its scripts (Plotly, ~5 MB), styles and images inside it")
    r.add_argument("--neighbours", type=Path, metavar="FILE",
                   help="image datasets: a figure (.png/.svg/.pdf); datasets with keys: a table "
                        f"({', '.join(TABLE_SUFFIXES)})")
    r.add_argument("--queries", type=positive_int, default=4, help="queries shown in neighbour pictures (default 4)")
    r.add_argument("--at-recall", type=recall_level, default=0.9,
                   help="neighbours and --table summary: per algorithm its fastest run with at least this recall "
                        "(default 0.9)")
    from annbench.cli import clients
    from annbench.cli.difficulty import add_arguments
    from annbench.cli.filtered import add_arguments as add_filtered_arguments

    add_arguments(p)
    add_filtered_arguments(p)
    clients.add_arguments(p)
    return p


def select(frame: pd.DataFrame, args: argparse.Namespace, results_dir: Path) -> pd.DataFrame:
    """Filter by --dataset and --algorithm, naming the valid choices on a miss."""
    from annbench.analyse.compare import belongs_to

    datasets = sorted(frame["dataset"].unique())
    wanted = names(args.dataset)
    for d in wanted:
        if not any(belongs_to(name, d) for name in datasets):
            raise UserError(f"no results for dataset {d!r} in {results_dir}; valid: {', '.join(datasets)}")
    if wanted:  # a dataset's subsets (run --max-test M: <dataset>-test<M>) come with it, each its own dataset
        frame = frame[[any(belongs_to(name, d) for d in wanted) for name in frame["dataset"]]]
    algorithms = names(args.algorithm)
    known = sorted(frame["algorithm"].unique())
    for a in algorithms:
        if a not in known:
            raise UserError(f"no results for algorithm {a!r}; valid: {', '.join(known)}")
    frame = frame[frame["algorithm"].isin(algorithms)] if algorithms else frame
    hosts = names(args.host)
    if hosts:
        known = sorted(str(h) for h in frame["host"].dropna().unique()) if "host" in frame else []
        for h in hosts:
            if h not in known:
                raise UserError(f"no results measured on host {h!r}; valid: {', '.join(known) or 'none recorded'}")
        frame = frame[frame["host"].isin(hosts)]
    from annbench.analyse.frames import SUMMARY_COLUMNS

    empty = [c for c in frame.columns if c not in SUMMARY_COLUMNS and frame[c].isna().all()]
    return frame.drop(columns=empty)  # parameters of algorithms or datasets filtered out


def views(args: argparse.Namespace, frame: pd.DataFrame) -> list[View]:
    """The views asked for; ``all`` keeps only those whose metrics these results have."""
    if args.x or args.y:
        if args.view:
            raise UserError("give either --view or -x/-y, not both")
        x, y = args.x or "recall", args.y or "qps"
        chosen = [View(f"{x}-{y}", x, y, default_scale(x), default_scale(y))]
    else:
        wanted = names(args.view) or [DEFAULT_VIEW]
        if wanted == ["all"]:
            wanted = [n for n, v in VIEWS.items() if _has_metrics(frame, v)]
        for n in wanted:
            if n not in VIEWS:
                raise UserError(f"unknown view {n!r}; valid: {', '.join(VIEWS)}, all (or -x/-y for any pair)")
        chosen = [VIEWS[n] for n in wanted]
    return [View(v.name, v.x, v.y, args.x_scale or v.x_scale, args.y_scale or v.y_scale) for v in chosen]


def _has_metrics(frame: pd.DataFrame, view: View) -> bool:
    return all(a in frame.columns and pd.to_numeric(frame[a], errors="coerce").notna().any() for a in (view.x, view.y))


def _check_metrics(frame: pd.DataFrame, view: View) -> None:
    for axis in (view.x, view.y):
        if axis not in frame.columns or pd.to_numeric(frame[axis], errors="coerce").isna().all():
            numeric = sorted(c for c in frame.columns if frame[c].dtype.kind in "fiu")
            extra = " (kNN accuracy exists only for datasets with labels)" if axis.startswith("knn") else ""
            raise UserError(f"metric {axis!r} is not in these results{extra}; valid: {', '.join(numeric)}")


def plot(frame: pd.DataFrame, args: argparse.Namespace, results_dir: Path) -> list[Path]:
    from annbench.report.plotting import plot_panels

    if args.output is not None and args.output.suffix.lower() not in PLOT_SUFFIXES:
        raise UserError(f"--output {args.output}: unsupported file type; valid: {', '.join(PLOT_SUFFIXES)}")
    datasets = sorted(frame["dataset"].unique())
    parts = {d: one_k(frame, d, args.k, args.batch) for d in datasets}
    chosen = views(args, pd.concat([part for _, part in parts.values()]))
    every = names(args.view) == ["all"]  # 'all': a dataset lacking a view's metric (kNN: no labels) skips it
    for view in chosen:
        for _, part in parts.values():
            if not every:
                _check_metrics(part, view)
    mode = ", batch" if args.batch else ""
    written = []
    for view in chosen:
        options = dict(x_scale=view.x_scale, y_scale=view.y_scale, all_points=args.all, annotate=args.annotate,
                       size=args.size, bands=args.bands)
        having = {d: kp for d, kp in parts.items() if not every or _has_metrics(kp[1], view)}
        if args.grid and len(datasets) > 1:
            panels = [(f"{d} (k={k}{mode})", part) for d, (k, part) in having.items()]
            out = output_path(args, results_dir, None, 0, view, len(chosen) > 1)
            written.append(plot_panels(panels, view.x, view.y, out, **options))
            continue
        for d, (k, part) in having.items():
            out = output_path(args, results_dir, d, k, view, len(chosen) * len(datasets) > 1)
            written.append(plot_panels([(f"{d} (k={k}{mode})", part)], view.x, view.y, out, **options))
    return written


def all_runs_table(frame: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    from annbench.analyse.frames import SUMMARY_COLUMNS, has_notes

    if args.k:
        frame = frame[frame["k"] == args.k]
    if args.batch:
        frame = frame[frame["batch"]]
    if args.columns:
        cols = names(args.columns)
        for c in cols:
            if c not in frame.columns:
                raise UserError(f"--columns: unknown column {c!r}; valid: {', '.join(frame.columns)}")
    elif args.table in ("csv", "json"):
        cols = list(frame.columns)
    else:
        cols = ["dataset", *SUMMARY_COLUMNS, *(["knn_accuracy"] if "knn_accuracy" in frame else []),
                *(c for c in ("strategy", "filter_violations") if c in frame and frame[c].notna().any()),
                *(["note"] if has_notes(frame) else [])]
        if "qps_ci95_low" in frame and frame["qps_ci95_low"].notna().any():  # the process interval beside QPS
            cols[cols.index("qps") + 1:cols.index("qps") + 1] = ["qps_ci95_low", "qps_ci95_high"]
        if "clients" in frame and frame["clients"].nunique() > 1:  # several client levels: say which row is which
            cols.insert(cols.index("query_params") + 1, "clients")
        if "client_latency_every" in frame and (frame["client_latency_every"].fillna(1) > 1).any():
            cols.insert(cols.index("qps") + 1, "client_latency_every")  # its percentiles: one query in that many
    if args.by_host:
        _need_host(frame)
        cols = ["host", *(c for c in cols if c != "host")]
        frame = frame.sort_values("host", kind="stable")
    return frame[cols]


def _need_host(frame: pd.DataFrame) -> None:
    if "host" not in frame or frame["host"].isna().all():
        raise UserError("--by-host: these results record no host; valid: results stored by this version of run.py")


def _operating_groups(frame: pd.DataFrame, args: argparse.Namespace) -> list[tuple[dict, pd.DataFrame]]:
    """The runs behind each operating-point table: per dataset at one k, per host with --by-host."""
    if args.by_host:
        _need_host(frame)
    groups = []
    for d in sorted(frame["dataset"].unique()):
        k, part = one_k(frame, d, args.k, args.batch)
        for host, runs in (part.groupby("host", sort=True) if args.by_host else [(None, part)]):
            groups.append(({"dataset": d, "k": k, **({"host": host} if args.by_host else {})}, runs))
    return groups


def operating_table(frame: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    """--layout long: one row per dataset, k, (host,) algorithm and recall level, with the run's process interval
    of QPS (``qps_ci95_low`` .. ``qps_ci95_high``) where runs have one."""
    from annbench.analyse.frames import OPERATING_COLUMNS, note_algorithms, operating_points

    interval = [c for c in ("qps_ci95_low", "qps_ci95_high") if c in frame]
    parts = []
    for keys, runs in _operating_groups(frame, args):
        points = note_algorithms(operating_points(runs, columns=[*interval, *OPERATING_COLUMNS]), runs)
        for i, (name, value) in enumerate(keys.items()):
            points.insert(i, name, value)
        parts.append(points)
    return pd.concat(parts, ignore_index=True)


def operating_tables(frame: pd.DataFrame, args: argparse.Namespace) -> list:
    """The pivoted tables, one per dataset (and host): key columns lead in CSV/JSON."""
    from annbench.report.summaries import operating_pivot
    from annbench.report.tables import Table

    tables = []
    for keys, runs in _operating_groups(frame, args):
        t = operating_pivot(runs)
        where = ", ".join(f"{n}={v}" for n, v in keys.items())
        tables.append(Table(t.values, bold=t.bold, notes=t.notes, keys=t.keys, context=tuple(keys.items()),
                            caption=f"{where}{' (batch)' if args.batch else ''}: {t.caption}",
                            notes_caption=f"{where}: {t.notes_caption}", notes_suffix=t.notes_suffix))
    return tables


def summary_tables(frame: pd.DataFrame, args: argparse.Namespace) -> list:
    """``--table summary``: faiss's table (:func:`annbench.report.summaries.seed_summary`), one per dataset."""
    from annbench.report.summaries import seed_summary
    from annbench.report.tables import Table

    tables = []
    for keys, runs in _operating_groups(frame, args):
        t = seed_summary(runs, args.at_recall)
        where = ", ".join(f"{n}={v}" for n, v in keys.items())
        tables.append(Table(t.values, notes=t.notes, keys=t.keys, context=tuple(keys.items()),
                            caption=f"{where}: {t.caption}", notes_caption=f"{where}: {t.notes_caption}",
                            notes_suffix=t.notes_suffix))
    return tables


def ranks_table(frame: pd.DataFrame, args: argparse.Namespace):  # a tables.Table
    """Ranks across every selected dataset, each at its k (default 10 if present)."""
    from annbench.report.summaries import dataset_ranks

    parts = [one_k(frame, d, args.k, args.batch)[1] for d in sorted(frame["dataset"].unique())]
    return dataset_ranks(pd.concat(parts, ignore_index=True))


def neighbours(frame: pd.DataFrame, args: argparse.Namespace) -> Path:
    from annbench.report.html import load_local_dataset
    from annbench.report.neighbours import choose_runs, image_shape, load_selections, neighbour_figure, neighbour_table
    from annbench.report.tables import render

    datasets = sorted(frame["dataset"].unique())
    if len(datasets) != 1:
        raise UserError(f"--neighbours needs one dataset; choose with --dataset: {', '.join(datasets)}")
    k, part = one_k(frame, datasets[0], args.k, args.batch)
    data_dir = args.data_dir or paths.default_data_dir()
    dataset = load_local_dataset(datasets[0], data_dir, part)
    if dataset is None:
        raise UserError(f"--neighbours: the dataset file of the runs ({datasets[0]}.hdf5 with their checksum) is "
                        f"neither where they recorded it nor in {data_dir}; give --data-dir")
    ok = part[part["status"] == Status.OK]
    if ok.empty:
        raise UserError(f"--neighbours: no successful runs for {datasets[0]} at k={k}")
    selections = load_selections(choose_runs(ok, args.at_recall))
    suffix = args.neighbours.suffix.lower()
    if image_shape(dataset) is not None:
        if suffix not in PLOT_SUFFIXES:
            raise UserError(f"--neighbours {args.neighbours}: {dataset.name} is an image dataset; valid file "
                            f"types: {', '.join(PLOT_SUFFIXES)}")
        return neighbour_figure(dataset, selections, args.neighbours, n_queries=args.queries)
    if dataset.keys is None:
        raise UserError(f"--neighbours: {dataset.name} has neither images (labels and a square dimension) nor keys")
    if suffix not in TABLE_SUFFIXES:
        raise UserError(f"--neighbours {args.neighbours}: {dataset.name} has keys, so the output is a table; "
                        f"valid file types: {', '.join(TABLE_SUFFIXES)}")
    args.neighbours.parent.mkdir(parents=True, exist_ok=True)
    table = neighbour_table(dataset, selections, n_queries=args.queries)
    args.neighbours.write_text(render(table, TABLE_SUFFIXES[suffix]), encoding="utf-8")
    return args.neighbours


@guarded
def main(argv: list[str] | None = None, prog: str = "plot.py") -> int:
    args = parser(prog).parse_args(argv)
    setup_logging(args.verbose)
    from annbench.report.tables import render

    if args.self_contained and not args.report:
        raise UserError("--self-contained is an option of --report DIR; add --report or drop it")
    if args.table == "summary" and args.per_query:
        raise UserError("--table summary is per algorithm, --per-query per query; valid: --per-query with "
                        "--table text|csv|md|latex|json, or drop --per-query")
    if args.layout and not args.operating_points:
        raise UserError("--layout is an option of --operating-points FORMAT; add it or drop --layout")
    from annbench.analyse.frames import warn_mixed_checksums
    from annbench.cli import clients, filtered
    from annbench.cli import difficulty as extra

    extra.check(args)
    filtered.check(args)
    results_dir = args.results or paths.default_results_dir()
    every_level = select(stored_results(results_dir, args.runbook), args, results_dir)
    client_views, args.view = clients.split_views(args)
    all_levels = extra.filter_threads(every_level, args)
    full = clients.filter_clients(all_levels, args)
    every_thread_count = clients.filter_clients(every_level, args, quiet=True)
    warn_mixed_checksums(full)  # before any curve or table mixes them
    per_query = extra.PerQuery(full, args)
    frame = extra.subset_frame(full, args, per_query) if args.difficulty else full
    filtered_views, args.view = filtered.split_views(args)
    extra_views, args.view = extra.split_views(args)
    exports = args.table or args.operating_points or args.ranks or args.report or args.neighbours
    if args.table and args.per_query:
        table = extra.per_query_table(frame, args, per_query)
        if args.output:
            print(f"per-query table: {extra.write_per_query(table, args.output)}")
        else:
            sys.stdout.write(render(table, args.table))
    elif args.table == "summary":
        from annbench.report.tables import render_tables

        sys.stdout.write(render_tables(summary_tables(frame, args), "text"))
    elif args.table:  # every run: of every client level unless --clients N (a clients column tells them apart)
        runs = all_levels if args.clients is None and not args.difficulty else frame
        sys.stdout.write(render(all_runs_table(runs, args), args.table))
    # long: one row per algorithm and level, with the hard-query recall and --significance columns;
    # wide: one row per algorithm, one column per level (the default for text, Markdown, LaTeX, HTML)
    long = "long" if args.operating_points in ("csv", "json") or args.significance else "wide"
    if args.operating_points and args.by_band:
        from annbench.report.tables import render_tables

        sys.stdout.write(render_tables(filtered.band_tables(frame, args, per_query), args.operating_points))
    elif args.operating_points and (args.layout or long) == "long":
        table = extra.extend_operating(operating_table(frame, args), frame, args, per_query, full)
        sys.stdout.write(render(table, args.operating_points))
    elif args.operating_points:
        from annbench.report.tables import render_tables

        sys.stdout.write(render_tables(operating_tables(frame, args), args.operating_points))
    if args.ranks:
        from annbench.report.tables import render_tables

        sys.stdout.write(render_tables([ranks_table(frame, args)], args.ranks))
    if args.report:
        from annbench.report.html import write_report

        # the report's concurrency section needs every client level (its other sections show level 1)
        shown = all_levels if args.clients is None and not args.difficulty else frame
        index = write_report(shown, args.report, args.data_dir or paths.default_data_dir(), n_queries=args.queries,
                             self_contained=args.self_contained, results_dir=Path(results_dir))
        print(f"report: {index}")
    if args.neighbours:
        print(f"neighbours: {neighbours(frame, args)}")
    if not exports and client_views:
        for path in clients.plot_clients(all_levels, args, Path(results_dir), client_views):
            print(f"plot: {path}")
    if not exports and extra_views:
        for path in extra.plot_extra(frame, args, Path(results_dir), extra_views, per_query, every_thread_count):
            print(f"plot: {path}")
    if not exports and filtered_views:
        for path in filtered.plot_views(frame, args, Path(results_dir), filtered_views, per_query):
            print(f"plot: {path}")
    if not exports and (args.view or not (extra_views or filtered_views or client_views)):
        for path in plot(frame, args, Path(results_dir)):
            print(f"plot: {path}")
    return 0
