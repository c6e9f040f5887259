"""``python plot.py``: Pareto plots and tables from stored results."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from annbench import paths
from annbench.cli import Parser, guarded, positive_int, setup_logging
from annbench.errors import UserError
from annbench.plotting import SCALES_X, SCALES_Y

log = logging.getLogger("annbench.plot")

TABLE_FORMATS = ("csv", "text")
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def parser() -> Parser:
    p = Parser(prog="plot.py", description="Plot and tabulate stored benchmark results.")
    p.add_argument("--dataset", help="dataset name (default: the only one in the results folder)")
    p.add_argument("--results", type=Path, default=None,
                   help=f"results folder (default ${paths.ENV_RESULTS_DIR} or ./results)")
    p.add_argument("-k", "--count", dest="k", type=positive_int, default=None, help="k of the runs (default: 10 if present)")
    p.add_argument("--batch", action="store_true", help="batch-mode runs instead of single-query runs")
    p.add_argument("-x", default="recall", help="metric on the x axis (default recall)")
    p.add_argument("-y", default="qps", help="metric on the y axis (default qps)")
    p.add_argument("--x-scale", choices=SCALES_X, default="linear")
    p.add_argument("--y-scale", choices=SCALES_Y, default="log")
    p.add_argument("--output", type=Path, help="image file: .png, .svg or .pdf")
    p.add_argument("--all", action="store_true", help="draw every run, not only Pareto-optimal ones")
    p.add_argument("--table", choices=TABLE_FORMATS, help="print every run as a table instead of plotting")
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


@guarded
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    from annbench.analyse import results_frame

    results_dir = args.results or paths.default_results_dir()
    frame = results_frame(results_dir)
    if frame.empty:
        raise UserError(f"no results in {results_dir}; run `python run.py` first (or give --results DIR)")
    datasets = sorted(frame["dataset"].unique())
    dataset = args.dataset
    if dataset is None:
        if len(datasets) > 1:
            raise UserError(f"results folder {results_dir} holds several datasets; choose one with --dataset: "
                            f"{', '.join(datasets)}")
        dataset = datasets[0]
    if dataset not in datasets:
        raise UserError(f"no results for dataset {dataset!r} in {results_dir}; valid: {', '.join(datasets)}")
    frame = frame[frame["dataset"] == dataset]
    ks = sorted(int(k) for k in frame["k"].unique())
    k = args.k or (10 if 10 in ks else ks[0])
    if k not in ks:
        raise UserError(f"no results for k={k} on {dataset}; valid: {', '.join(map(str, ks))}")
    frame = frame[(frame["k"] == k) & (frame["batch"] == args.batch)]
    if args.table:
        if args.table == "csv":
            frame.to_csv(sys.stdout, index=False)
        else:
            print(frame.to_string(index=False))
        return 0
    for axis in (args.x, args.y):
        if axis not in frame.columns or not frame[axis].dtype.kind in "fiu":
            numeric = sorted(c for c in frame.columns if frame[c].dtype.kind in "fiu")
            raise UserError(f"unknown metric {axis!r}; valid: {', '.join(numeric)}")
    output = args.output or Path(results_dir) / dataset / str(k) / f"{args.x}-{args.y}{'-batch' if args.batch else ''}.png"
    if Path(output).suffix not in PLOT_SUFFIXES:
        raise UserError(f"--output {output}: unsupported file type; valid: {', '.join(PLOT_SUFFIXES)}")
    from annbench.plotting import plot_metric_pair

    plot_metric_pair(frame, args.x, args.y, output, f"{dataset} (k={k}{', batch' if args.batch else ''})",
                     args.x_scale, args.y_scale, args.all)
    print(f"plot: {output}")
    return 0
