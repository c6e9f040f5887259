"""``python compare.py``: a raw dataset and its encodings side by side (table and bar chart)."""

from __future__ import annotations

import sys
from pathlib import Path

from annbench.cli.common import Parser, guarded, names, positive_int, recall_level, stored_results
from annbench.cli.options import shared
from annbench.core import paths
from annbench.core.errors import UserError
from annbench.core.logs import setup_logging


def parser(prog: str = "compare.py") -> Parser:
    p = Parser(prog=prog, description=__doc__, parents=[shared("results", "data-dir", "verbose")])
    p.add_argument("--dataset", required=True,
                   help="the raw dataset; its encodings in the results are found by name, and each subset "
                        "(run --max-test M: <dataset>-test<M>) beside the same subset of its encodings")
    p.add_argument("--with", dest="extra", default="", help="more datasets to put beside it, comma-separated")
    p.add_argument("-k", "--count", dest="k", type=positive_int, default=10, help="k of the runs (default 10)")
    p.add_argument("--batch", action="store_true", help="batch-mode runs instead of single-query runs")
    p.add_argument("--min-recall", type=recall_level, default=0.9, help="recall of the operating point (default 0.9)")
    p.add_argument("--table", choices=("text", "csv"), default="text", help="table format (default text)")
    p.add_argument("--output", type=Path, help="also draw the bar chart to this .png, .svg or .pdf file")
    return p


@guarded
def main(argv: list[str] | None = None, prog: str = "compare.py") -> int:
    args = parser(prog).parse_args(argv)
    setup_logging(args.verbose)
    from annbench.analyse.compare import belongs_to, related_datasets, side_by_side

    results_dir = args.results or paths.default_results_dir()
    frame = stored_results(results_dir)
    available = sorted(frame["dataset"].unique())
    extra = names(args.extra)
    for name in [args.dataset, *extra]:
        if not any(belongs_to(d, name) for d in available):  # a dataset's subsets (run --max-test) count as its
            raise UserError(f"no results for dataset {name!r} in {results_dir}; valid: {', '.join(available)}")
    datasets = list(dict.fromkeys([*related_datasets(args.dataset, available), *extra]))
    frame = frame[(frame["k"] == args.k) & (frame["batch"] == args.batch)]
    from annbench.analyse.frames import warn_mixed_checksums

    warn_mixed_checksums(frame[frame["dataset"].isin(datasets)])  # one table must not mix them silently
    from annbench.report.plotting import PLOT_SUFFIXES

    if args.output is not None and args.output.suffix not in PLOT_SUFFIXES:
        raise UserError(f"--output {args.output}: unsupported file type; valid: {', '.join(PLOT_SUFFIXES)}")
    table = side_by_side(frame, datasets, args.min_recall, args.data_dir or paths.default_data_dir())
    if table.empty:
        raise UserError(f"no finished runs with k={args.k}{' in batch mode' if args.batch else ''} for "
                        f"{', '.join(datasets)} in {results_dir}")
    if args.table == "csv":
        table.to_csv(sys.stdout, index=False)
    else:
        print(table.drop(columns=["build_params", "query_params"]).to_string(
            index=False, float_format=lambda v: f"{v:.4g}"))
    if args.output is not None:
        from annbench.report.plotting import plot_comparison

        plot_comparison(table, args.output, f"{args.dataset} and its encodings (k={args.k})", args.min_recall)
        print(f"plot: {args.output}")
    return 0
