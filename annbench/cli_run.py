"""``python run.py``: build indexes, run the query grids, store and summarise the results."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from annbench import paths
from annbench.cli import Parser, guarded, positive_int, setup_logging
from annbench.errors import UserError

log = logging.getLogger("annbench.run")

DEFAULT_DATASET = "random-xs-20-euclidean"


def parser() -> Parser:
    p = Parser(prog="run.py", description="Benchmark ANN algorithms on a dataset.")
    p.add_argument("--dataset", default=DEFAULT_DATASET,
                   help=f"registered name or path of a dataset .hdf5 file (default: {DEFAULT_DATASET})")
    p.add_argument("--algorithm", help="comma-separated algorithms (default: every installed one)")
    p.add_argument("-k", "--count", dest="k", type=positive_int, default=10, help="neighbours per query (default 10)")
    p.add_argument("--runs", type=positive_int, default=3, help="timed passes after one warm-up (default 3)")
    p.add_argument("--batch", action="store_true", help="time all queries as one batch call")
    p.add_argument("--threads", type=positive_int, default=1, help="library threads (default 1)")
    p.add_argument("--preset", default="quick", help="grid group of each config to run (default quick)")
    p.add_argument("--force", action="store_true", help="re-run runs whose results are stored")
    p.add_argument("--results", type=Path, default=None,
                   help=f"results folder (default ${paths.ENV_RESULTS_DIR} or ./results)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help=f"dataset folder (default ${paths.ENV_DATA_DIR} or ./datasets)")
    p.add_argument("--algorithms-dir", type=Path, action="append", default=[],
                   help=f"extra adapter folder searched first (also ${paths.ENV_ALGORITHMS_PATH})")
    p.add_argument("--configs-dir", type=Path, action="append", default=[],
                   help=f"extra grid folder searched first (also ${paths.ENV_CONFIGS_PATH})")
    p.add_argument("--list-algorithms", action="store_true", help="list algorithms and whether they import")
    p.add_argument("--list-datasets", action="store_true",
                   help="list datasets: size, dimension, distance, local or not, how each is obtained")
    p.add_argument("--prepare", action="store_true", help="only get or build --dataset and describe it")
    p.add_argument("--source-dir", type=Path, default=None,
                   help=f"folder of upstream dataset files for offline builds (also ${paths.ENV_SOURCE_DIR})")
    p.add_argument("--max-train", type=positive_int, default=None,
                   help="quick subset: first N train rows (cached as <dataset>-train<N>, ground truth recomputed)")
    p.add_argument("--max-test", type=positive_int, default=None,
                   help="quick subset: first M queries (cached as <dataset>-test<M>)")
    p.add_argument("--no-plot", action="store_true", help="do not write the Pareto plot")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    return p


def list_algorithms(config_dirs: list[Path], adapter_dirs: list[Path]) -> int:
    from annbench.config import all_configs, load_config
    from annbench.discovery import load_adapter

    for name, path in sorted(all_configs(config_dirs).items()):
        try:
            config = load_config(path)
            adapter = load_adapter(name, adapter_dirs)
            status = f"available  metrics: {', '.join(m for m in config.metrics if m in adapter.metrics)}; " \
                     f"groups: {', '.join(config.groups)}"
        except UserError as e:
            status = f"UNAVAILABLE  {e}"
        print(f"{name:<20} {status}")
    return 0


def list_datasets(data_dir: Path) -> int:
    from annbench.cli_dataset import catalogue

    print(catalogue(data_dir))
    return 0


def summary_text(frame) -> str:  # noqa: ANN001 - a pandas DataFrame
    cols = ["algorithm", "build_params", "query_params", "status", "recall", "qps", "p50_ms", "p99_ms",
            "build_s", "index_bytes"]
    cols += [c for c in ("knn_accuracy", "knn_accuracy_exact") if c in frame and frame[c].notna().any()]
    view = frame[cols].copy()
    return view.to_string(index=False, float_format=lambda v: f"{v:.4g}", max_colwidth=40)


@guarded
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose)
    data_dir = args.data_dir or paths.default_data_dir()
    results_dir = args.results or paths.default_results_dir()
    adapter_dirs = paths.algorithm_dirs(args.algorithms_dir)
    config_dirs = paths.config_dirs(args.configs_dir)
    if args.list_algorithms:
        return list_algorithms(config_dirs, adapter_dirs)
    if args.list_datasets:
        return list_datasets(data_dir)
    if args.prepare:
        from annbench.cli_dataset import describe
        from annbench.datasets.registry import prepare

        prepared = prepare(args.dataset, data_dir, args.source_dir, max_train=args.max_train, max_test=args.max_test)
        print(describe(prepared.path, prepared.name, prepared.how))
        return 0

    from annbench.analyse import results_frame
    from annbench.datasets.registry import load
    from annbench.execute import execute
    from annbench.plan import RunOptions, make_plan
    from annbench.store import ResultStore

    dataset = load(args.dataset, data_dir, args.source_dir, max_train=args.max_train, max_test=args.max_test)
    if args.k > dataset.ground_truth_k:
        raise UserError(f"-k {args.k} exceeds the {dataset.ground_truth_k} neighbours stored in "
                        f"{dataset.path}; valid: 1..{dataset.ground_truth_k}")
    if args.k > len(dataset.train):
        raise UserError(f"-k {args.k} exceeds the {len(dataset.train)} train points of {dataset.path}")
    algorithms = [a.strip() for a in args.algorithm.split(",") if a.strip()] if args.algorithm else None
    if algorithms is not None and not algorithms:
        raise UserError("--algorithm is empty; give one or more names (see --list-algorithms)")
    options = RunOptions(k=args.k, runs=args.runs, batch=args.batch, threads=args.threads, force=args.force)
    plan = make_plan(dataset.name, dataset.path, dataset.distance, algorithms, args.preset, options,
                     config_dirs, adapter_dirs)
    if not plan.builds and not plan.unavailable:
        raise UserError(f"nothing to run: no algorithm has a {args.preset!r} grid for distance {dataset.distance!r}")
    store = ResultStore(results_dir)
    results = execute(plan, dataset, store)

    frame = results_frame(results_dir, dataset.name)
    frame = frame[(frame["k"] == args.k) & (frame["batch"] == args.batch)]
    if len(frame):
        print(summary_text(frame))
    if not args.no_plot and len(frame):
        from annbench.plotting import plot_metric_pair

        out = store.root / dataset.name / str(args.k) / f"recall-qps{'-batch' if args.batch else ''}.png"
        plot_metric_pair(frame, "recall", "qps", out, f"{dataset.name} (k={args.k}{', batch' if args.batch else ''})",
                         x_scale="linear", y_scale="log")
        print(f"plot: {out}")
    failed = [r for r in results if r.status != "ok"]
    print(f"{len(results) - len(failed)} runs done, {len(failed)} failed, "
          f"{plan.n_runs - len(results)} already stored; results in {store.root}")
    for name, error in plan.unavailable.items():
        print(f"unavailable: {error}", file=sys.stderr)
    explicit_unavailable = algorithms is not None and plan.unavailable
    return 1 if failed or explicit_unavailable else 0
