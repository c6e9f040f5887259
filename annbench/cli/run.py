"""``python run.py``: build indexes, run the query grids, store and summarise the results."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annbench.cli.common import Parser, guarded, memory_size, names, non_negative_float, positive_float, positive_int
from annbench.cli.options import shared
from annbench.cli.runbook import add_options as runbook_options
from annbench.core import paths
from annbench.core.errors import UserError
from annbench.core.folders import Folder, check_folders, failure_folder_error, folder_errors, temporary_folder
from annbench.core.logs import setup_logging
from annbench.core.results import Status, batch_suffix, canonical, from_canonical, run_name
from annbench.execute.executors import ExecutorKind
from annbench.plan.grid import ClientKind, RunOptions, parse_warmup
from annbench.plan.task import DEFAULT_TIMEOUT_S

if TYPE_CHECKING:
    from annbench.sweep.steps import SweepOutcome, SweepRequest

log = logging.getLogger("annbench.run")

DEFAULT_DATASET = "random-xs-20-euclidean"
EXECUTORS = tuple(ExecutorKind)
#: The default of ``--executor`` when set (the test suite sets ``inprocess``); otherwise ``local``.
ENV_EXECUTOR = "ANNBENCH_EXECUTOR"
DEFAULT_OPTIONS = RunOptions()
DASK_TIMEOUT_S = 30.0


def warmup_arg(text: str) -> float:
    """``--warmup``: ``full``, ``none`` or seconds > 0 (see :func:`annbench.plan.grid.parse_warmup`)."""
    try:
        return parse_warmup(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parser(prog: str = "run.py") -> Parser:
    p = Parser(prog=prog, description="Benchmark ANN algorithms on a dataset.",
               parents=[shared("results", "data-dir", "source-dir", "algorithms-dir", "configs-dir", "verbose",
                               "quiet")])
    p.add_argument("--dataset", default=DEFAULT_DATASET,
                   help=f"registered name or path of a dataset .hdf5 file (default: {DEFAULT_DATASET})")
    p.add_argument("--algorithm", help="comma-separated algorithms (default: every installed one)")
    p.add_argument("-k", "--count", dest="k", type=positive_int, default=10, help="neighbours per query (default 10)")
    p.add_argument("--runs", type=positive_int, default=DEFAULT_OPTIONS.runs,
                   help=f"timed passes after the warm-up, in each measuring process (default {DEFAULT_OPTIONS.runs})")
    p.add_argument("--processes", type=positive_int, default=DEFAULT_OPTIONS.processes, metavar="P",
                   help="processes that measure each query setting one after another, forked after the build "
                        "(loading the saved index where the adapter can save, else building it again): QPS = their "
                        f"mean, stored with each process's, their SD and 95%% interval (default "
                        f"{DEFAULT_OPTIONS.processes}; 1: the build's own process)")
    p.add_argument("--warmup", type=warmup_arg, default=DEFAULT_OPTIONS.warmup, metavar="full|none|SECONDS",
                   help="untimed queries before each query setting's passes: the first queries until SECONDS "
                        f"have passed or all have run (default {DEFAULT_OPTIONS.warmup_label()}); full = every "
                        "query once; none = no untimed query")
    p.add_argument("--min-pass-time", type=non_negative_float, default=DEFAULT_OPTIONS.min_pass_time,
                   metavar="SECONDS", help="a timed pass repeats the whole query set until it lasts this long "
                                           f"(default {DEFAULT_OPTIONS.min_pass_time:g}; 0 = one repetition)")
    p.add_argument("--batch", action="store_true", help="time all queries as one batch call")
    p.add_argument("--threads", type=thread_counts, default=[1], metavar="N[,N...]",
                   help="library threads (default 1); a comma-separated list (1,2) runs the sweep once per count")
    c = p.add_argument_group("concurrent clients (see README: Concurrent clients)")
    c.add_argument("--clients", type=client_levels, default=list(DEFAULT_OPTIONS.clients), metavar="N[,N...]",
                   help="client levels: N clients share each built index, each sending its own stream of single "
                        "queries; each level above 1 is one more run per query setting (default 1: single-query "
                        "mode only)")
    c.add_argument("--client-seconds", type=positive_float, default=DEFAULT_OPTIONS.client_seconds,
                   metavar="SECONDS", help="timed window of each client level, after an untimed ramp "
                                           f"(default {DEFAULT_OPTIONS.client_seconds:g})")
    c.add_argument("--client-kind", choices=tuple(ClientKind), default=str(DEFAULT_OPTIONS.client_kind),
                   help="thread: clients are threads of the child; process: processes forked after the build, "
                        f"for libraries that hold the GIL (default {DEFAULT_OPTIONS.client_kind})")
    p.add_argument("--preset", default=None,
                   help="grid group of each config to run (default: demo, the few settings that trace each "
                        "library's front on the built-in dataset; quick where a grid has no demo group)")
    p.add_argument("--include-slow", action="store_true",
                   help="also run the algorithms left out of a sweep that names none for their slow start or "
                        "build (their grid's opt_in says why; e.g. pynndescent's numba compilation)")
    p.add_argument("--table", choices=("operating-points", "runs"), default="operating-points",
                   help="the closing summary's table: operating-points = best QPS at recall >= 0.9 / 0.99 per "
                        "algorithm (default); runs = one row per run")
    p.add_argument("--force", action="store_true", help="re-run runs whose results are stored")
    p.add_argument("--filter-strategy", choices=("auto", "native", "post"), default=DEFAULT_OPTIONS.filter_strategy,
                   help="on a filtered dataset: native = the adapter's own filtering (an error for an adapter "
                        "without it), post = the harness's post-filter for every adapter, auto = native where the "
                        "adapter has it, else post (default auto; see README: Filtered search)")
    p.add_argument("--no-early-stop", action="store_true",
                   help="measure every query setting, also those after one of the same build that reached "
                        "recall 1.0 (default: store those as skipped, dominated)")
    p.add_argument("--timeout", type=positive_float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help=f"wall time allowed to each build setting's child (default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--memory-limit", type=memory_size, default=None, metavar="SIZE",
                   help="resident memory allowed to each child, e.g. 4G (default: available memory / parallelism)")
    p.add_argument("--parallelism", type=positive_int, default=1, metavar="N",
                   help="children at once, each pinned to its own cores (default 1; N × threads <= cores)")
    p.add_argument("--share-cores", action="store_true",
                   help="measure on cores another sweep has claimed rather than wait for free ones (the results "
                        "say cores_shared; see README: Sweeps sharing a machine)")
    p.add_argument("--cold-workers", action="store_true",
                   help="start every build setting's child as a fresh interpreter, not forked from a warm "
                        "parent per algorithm (see README: Warm parents)")
    d = p.add_argument_group("executor (see README: Sweeps across machines on Dask)")
    d.add_argument("--executor", choices=EXECUTORS, default=default_executor(),
                   help="local: children of this process; dask: tasks on a Dask cluster; inprocess: no "
                        f"isolation, for tests and debugging (default local, or ${ENV_EXECUTOR})")
    d.add_argument("--scheduler", metavar="ADDRESS",
                   help="dask: scheduler address (tcp://HOST:8786) or scheduler file (.json); default Dask's "
                        "config (scheduler-address, $DASK_SCHEDULER_ADDRESS), else a LocalCluster of "
                        "--parallelism worker processes")
    d.add_argument("--dask-results", choices=("ship", "shared"), default=None,
                   help="dask: ship = results travel back and are stored here (default); shared = workers store "
                        "them into --results, which they see at the same path")
    d.add_argument("--dask-data-dir", type=Path, default=None, metavar="DIR",
                   help="dask: where a worker that does not see the dataset file gets or builds it from the "
                        f"registry (default: the worker's ${paths.ENV_DATA_DIR} or ./datasets)")
    d.add_argument("--dask-timeout", type=positive_float, default=None, metavar="SECONDS",
                   help=f"dask: to reach the scheduler and see a worker (default {DASK_TIMEOUT_S:g})")
    runbook_options(p)
    p.add_argument("--list-failures", action="store_true",
                   help="list the dataset's failed runs with their reason and log file, then exit")
    p.add_argument("--list-algorithms", action="store_true", help="list algorithms and whether they import")
    p.add_argument("--markdown", action="store_true",
                   help="with --list-algorithms: print a Markdown table of the algorithms' libraries, metrics and "
                        "parameters, generated from the adapters (README's backend table; every adapter's library "
                        "must import)")
    p.add_argument("--list-datasets", action="store_true",
                   help="list datasets: size, dimension, distance, local or not, how each is obtained")
    p.add_argument("--prepare", action="store_true", help="only get or build --dataset and describe it")
    p.add_argument("--max-train", type=positive_int, default=None,
                   help="quick subset: first N train rows (cached as <dataset>-train<N>, ground truth recomputed)")
    p.add_argument("--max-test", type=positive_int, default=None,
                   help="quick subset: first M queries (cached as <dataset>-test<M>)")
    p.add_argument("--no-plot", action="store_true", help="do not write the Pareto plot")
    p.add_argument("--pg-dsn", default=None, metavar="URI",
                   help="the pgvector adapters use this PostgreSQL server (in a schema of their own, dropped after "
                        "each build) instead of a private server per build setting; checked before the sweep")
    return p


def default_executor() -> str:
    """``$ANNBENCH_EXECUTOR`` when set, else ``local``."""
    chosen = os.environ.get(ENV_EXECUTOR) or "local"
    if chosen not in EXECUTORS:
        raise UserError(f"${ENV_EXECUTOR}={chosen!r} is not an executor; valid: {', '.join(EXECUTORS)}")
    return chosen


def distinct_counts(text: str, noun: str) -> list[int]:
    """``"1,2"`` → ``[1, 2]``: distinct counts of ``noun``, each an integer >= 1, in the order given."""
    values = [positive_int(t) for t in names(text)]
    if not values:
        raise argparse.ArgumentTypeError(f"{text!r} names no {noun}; valid: N or N,N,... (integers >= 1)")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r} repeats a {noun}; valid: distinct integers >= 1")
    return values


def thread_counts(text: str) -> list[int]:
    """``--threads 1,2``: distinct thread counts (see :func:`distinct_counts`)."""
    return distinct_counts(text, "thread count")


def client_levels(text: str) -> list[int]:
    """``--clients 1,2,4``: distinct client levels (see :func:`distinct_counts`)."""
    return distinct_counts(text, "client level")


def list_algorithms(config_dirs: list[Path], adapter_dirs: list[Path]) -> int:
    from annbench.backends.adapter import served
    from annbench.backends.discovery import load_adapter
    from annbench.plan.config import all_configs, load_config

    for name, path in sorted(all_configs(config_dirs).items()):
        try:
            config = load_config(path)
            adapter = load_adapter(name, adapter_dirs)
            status = f"available  metrics: {', '.join(m for m in config.metrics if m in adapter.metrics)}; " \
                     f"groups: {', '.join(config.groups)}; point types: {served(adapter, config.metrics)}"
        except UserError as e:
            status = f"UNAVAILABLE  {e}"
        print(f"{name:<20} {status}")
    return 0


def algorithms_markdown(config_dirs: list[Path], adapter_dirs: list[Path]) -> str:
    """The Markdown table of every algorithm with a grid (see :mod:`annbench.backends.table`)."""
    from annbench.backends.discovery import load_adapter
    from annbench.backends.table import markdown_table
    from annbench.plan.config import all_configs, load_config

    adapters, metrics = {}, {}
    for name, path in sorted(all_configs(config_dirs).items()):
        try:
            adapters[name] = load_adapter(name, adapter_dirs)
        except UserError as e:
            raise UserError(f"--markdown documents every algorithm, and {e}") from None
        metrics[name] = load_config(path).metrics
    return markdown_table(adapters, metrics)


def list_datasets(data_dir: Path) -> int:
    from annbench.report.catalogue import catalogue

    print(catalogue(data_dir))
    return 0


def list_failures(results_dir: Path, dataset_arg: str) -> int:
    from annbench.analyse.frames import results_frame

    dataset = Path(dataset_arg).stem if Path(dataset_arg).suffix in (".hdf5", ".h5") else dataset_arg
    frame = results_frame(results_dir, dataset)
    failed = frame[frame["status"] == Status.ERROR] if len(frame) else frame
    skipped = frame[frame["status"] == Status.SKIPPED] if len(frame) else frame
    for line in skip_lines((f"k={row['k']} {level_name(row['algorithm'], row['batch'], row['clients'])}",
                            row["build_params"],
                            row["query_params"], row["dominated_by"], row["note"]) for _, row in skipped.iterrows()):
        print(line)
    if len(skipped):
        print(f"{len(skipped)} skipped runs (not measured; `run.py --no-early-stop` measures them)")
    if not len(failed):
        print(f"no failed runs for dataset {dataset} in {results_dir}")
        return 0
    for _, row in failed.iterrows():
        print(f"k={row['k']} {run_name(row['algorithm'], row['batch'])} build={row['build_params']} "
              f"query={row['query_params']}\n"
              f"    reason: {row.get('error', '')}\n    log:    {row.get('log_path', '') or '-'}")
    print(f"{len(failed)} failed runs (they are re-run by the next run.py invocation)")
    return 0


def level_name(algorithm: str, batch: bool, clients: int) -> str:
    """``hnswlib``, ``hnswlib clients=4``: a run's algorithm and mode, and its client level above 1."""
    return run_name(algorithm, batch) + (f" clients={int(clients)}" if int(clients) > 1 else "")


def skip_lines(rows: Iterable[tuple[str, str, str, str, str]]) -> list[str]:
    """``(algorithm, build params, query params, dominated_by, note)`` of skipped runs (parameters as
    stored: JSON) → one line per build setting and exact setting, listing the skipped values of the
    innermost parameter: ``skipped: annoy {"n_trees":10} search_k=4000, 10000: dominated: ...``."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for algorithm, build, query, by, note in rows:
        groups.setdefault((algorithm, build, by, note), []).append(from_canonical(query))
    lines = []
    for (algorithm, build, by, note), queries in groups.items():
        exact = from_canonical(by) if isinstance(by, str) else {}  # differs from each skipped one in the innermost only
        inner = next((n for n in queries[0] if exact.get(n) != queries[0][n]), list(queries[0])[-1])
        fixed = "".join(f"{n}={v} " for n, v in queries[0].items() if n != inner)
        lines.append(f"skipped: {algorithm} {build} {fixed}{inner}={', '.join(str(q[inner]) for q in queries)}: {note}")
    return lines


def summary_text(frame) -> str:  # a pandas DataFrame
    from annbench.analyse.frames import has_notes

    cols = ["algorithm", "build_params", "query_params", "status", "recall", "qps", "p50_ms", "p99_ms",
            "build_s", "index_bytes"]
    cols += [c for c in ("knn_accuracy", "knn_accuracy_exact") if c in frame and frame[c].notna().any()]
    cols[1:1] = [c for c in ("strategy",) if c in frame and frame[c].notna().any()]  # filtered datasets
    cols += [c for c in ("filter_violations",) if c in frame and frame[c].notna().any()]
    cols += ["note"] if has_notes(frame) else []  # exact methods that scored recall < 1
    if "clients" in frame and frame["clients"].nunique() > 1:  # client levels: one row per level
        cols.insert(3, "clients")
        frame = frame.sort_values(["algorithm", "build_params", "query_params", "clients"], kind="stable")
    if "converted_from" in frame and frame["converted_from"].notna().any():  # the harness converted the points
        cols[1:1] = ["converted_from", *(["converted_to"] if "converted_to" in frame else [])]
    if "host" in frame and frame["host"].nunique() > 1:  # measured on several machines: say which
        cols.insert(0, "host")
        frame = frame.sort_values(["host", "algorithm", "build_params", "query_params"], kind="stable")
    view = frame[cols].copy()
    for c in ("converted_from", "converted_to"):
        if c in view:
            view[c] = view[c].fillna("")
    return view.to_string(index=False, float_format=lambda v: f"{v:.4g}", max_colwidth=40)


def left_out_line(left_out: dict[str, str]) -> str:
    """The closing summary's line naming the algorithms a default selection left out (their grid's
    ``opt_in``: name → why) and the option that runs them."""
    them = "them" if len(left_out) > 1 else "it"
    return (f"left out: {', '.join(f'{name} ({why})' for name, why in left_out.items())}; --include-slow runs "
            f"{them} too (or name {them} in --algorithm)")


#: Recall levels of the closing summary's operating-point table.
SUMMARY_RECALLS = (0.9, 0.99)


def operating_text(frame) -> str:  # a pandas DataFrame
    """The closing summary's table: per algorithm its best QPS at recall >= 0.9 and 0.99, then the
    parameters behind each cell (:func:`annbench.report.summaries.operating_pivot`)."""
    from annbench.report.summaries import operating_pivot
    from annbench.report.tables import render_tables

    table = operating_pivot(frame, SUMMARY_RECALLS)
    return render_tables([table], "text").rstrip("\n") + "\n(every run: --table runs; annbench plot --table text)"


def noise_note(frame) -> str:  # a pandas DataFrame
    """The closing summary's line on the machine's noise: the median process-to-process CV of QPS over the
    runs measured in several processes ('' where none was)."""
    if "process_cv" not in frame or not (cv := frame["process_cv"].dropna()).size:
        return ""
    median = float(cv.median())
    return (f"noise: QPS varied between measuring processes by a median CV of {median:.1%} over {cv.size} runs "
            f"(--processes): QPS differences below ~{2 * median:.0%} are within this machine's noise")


def beside_note(results: list[Any]) -> str:
    """The closing summary's lines on runs measured while other measuring processes (this sweep's
    children or any other sweep's) shared the machine, and on runs measured on cores another sweep
    had claimed (``--share-cores``); '' if none."""
    measured = [r for r in results if r.status == Status.OK]
    beside = [r for r in measured if int(r.attrs.get("concurrent_children", 0)) > 0]
    lines = []
    if beside:
        most = max(int(r.attrs["concurrent_children"]) for r in beside)
        lines.append(f"shared machine: {len(beside)} of {len(measured)} runs were built or measured while "
                     f"{'another child' if most == 1 else f'up to {most} other children'} ran beside them, of this "
                     f"sweep or another (memory bandwidth and caches shared; attr concurrent_children): compare "
                     f"their latencies, p99 above all, with runs measured alone with care")
    if shared := [r for r in measured if r.attrs.get("cores_shared")]:
        lines.append(f"shared cores: {len(shared)} of {len(measured)} runs were measured on cores another sweep "
                     f"had claimed (--share-cores; attr cores_shared): their speed is not a measurement of the "
                     f"library alone")
    return "\n".join(lines)


@contextlib.contextmanager
def progress_bar(total: int, disable: bool = False
                 ) -> Iterator[tuple[Callable[..., None], Callable[[str | None], None]]]:
    """A tqdm bar over the sweep's runs (done / failed / remaining, elapsed, estimate); yields the
    per-task callback of :func:`annbench.execute.executors.execute` and the one that shows (a line) or
    clears (None) what the sweep waits for (:class:`annbench.core.claims.CoreClaims`). Log lines go
    above the bar."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from annbench.execute.sharing import MEASURED_BY

    counts = {"ok": 0, "failed": 0, "skipped": 0, "by others": 0}
    with tqdm(total=total, unit="run", desc="sweep", file=sys.stderr, disable=disable or total == 0,
              dynamic_ncols=True) as bar, logging_redirect_tqdm():
        def on_task(task, outcome, recorded) -> None:
            mine = [r for r in recorded if MEASURED_BY not in r.attrs]  # not those of another sweep
            failed = sum(r.status == Status.ERROR for r in mine)
            skipped = sum(r.status == Status.SKIPPED for r in mine)
            counts["ok"] += len(mine) - failed - skipped
            counts["failed"] += failed
            counts["skipped"] += skipped
            counts["by others"] += len(recorded) - len(mine)
            others = {"by_others": counts["by others"]} if counts["by others"] else {}
            bar.set_postfix(done=counts["ok"], failed=counts["failed"], skipped=counts["skipped"], **others,
                            left=total - bar.n - len(recorded), refresh=False)
            bar.update(len(recorded))

        def on_wait(text: str | None) -> None:
            bar.set_description_str(f"sweep, {text}" if text else "sweep")

        yield on_task, on_wait


@guarded
def main(argv: list[str] | None = None, prog: str = "run.py") -> int:
    args = parser(prog).parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose)
    data_dir = args.data_dir or paths.default_data_dir()
    results_dir = args.results or paths.default_results_dir()
    adapter_dirs = paths.algorithm_dirs(args.algorithms_dir)
    config_dirs = paths.config_dirs(args.configs_dir)
    if args.markdown and not args.list_algorithms:
        raise UserError("--markdown is an option of --list-algorithms; give both")
    if args.list_algorithms and args.markdown:
        print(algorithms_markdown(config_dirs, adapter_dirs))
        return 0
    if args.list_algorithms:
        return list_algorithms(config_dirs, adapter_dirs)
    if args.list_datasets:
        return list_datasets(data_dir)
    if args.prepare:
        from annbench.datasets.registry import prepare
        from annbench.report.catalogue import describe

        folders = [data_folder(args, data_dir), temporary_folder()]
        check_folders(folders)
        with folder_errors(folders):
            prepared = prepare(args.dataset, data_dir, args.source_dir, max_train=args.max_train,
                               max_test=args.max_test)
            print(describe(prepared.path, prepared.name, prepared.how))
        return 0
    if args.list_failures:
        return list_failures(results_dir, args.dataset)
    if args.batch and args.parallelism > 1:
        raise UserError(f"--parallelism {args.parallelism} with --batch: batch mode runs one child at a time on the "
                        f"--threads cores; valid: --parallelism 1 (give --threads N for more cores)")
    check_executor(args)
    if args.pg_dsn is not None:  # unreachable, or no pgvector: one line and exit 2 before anything runs
        from annbench.backends.postgres import ENV_DSN, check_dsn

        os.environ[ENV_DSN] = check_dsn(args.pg_dsn)  # the children inherit it
    counts = args.threads
    args.threads = max(counts)  # the cores and cluster slots must fit the largest count
    if args.executor in ("local", "inprocess"):
        check_cores(args)  # every count fits, or nothing runs
    folders = sweep_folders(args, data_dir, results_dir)
    check_folders(folders)  # before any work: one line naming the folder, exit 2
    with contextlib.ExitStack() as stack:
        stack.enter_context(folder_errors(folders))  # the same line when one fails mid-sweep
        client = None
        if args.executor == "dask":  # connect first: an unreachable scheduler fails before anything runs
            from annbench.execute.dask import dask_client

            if args.scheduler is None:
                from annbench.execute.isolation import core_slots

                core_slots(args.parallelism, args.threads)  # the local cluster's workers must fit
            client = stack.enter_context(dask_client(args.scheduler, args.parallelism, args.threads,
                                                     args.dask_timeout or DASK_TIMEOUT_S))
        codes = [sweep(argparse.Namespace(**{**vars(args), "threads": t, "thread_counts": counts}), data_dir,
                       results_dir, adapter_dirs, config_dirs, client) for t in counts]
        return max(codes)


def check_cores(args: argparse.Namespace) -> None:
    """``--parallelism`` children, each on the cores of ``--threads`` (and of its clients, ``--clients``),
    fit the cores this process may use (:func:`annbench.sweep.steps.check_cores`)."""
    from annbench.sweep.steps import check_cores as fits

    fits(args.parallelism, args.threads, args.clients)


def sweep_folders(args: argparse.Namespace, data_dir: Path, results_dir: Path) -> list[Folder]:
    """The folders a sweep writes into: results (and logs, inside it), data, temporary."""
    return [Folder("results", results_dir), data_folder(args, data_dir), temporary_folder()]


def stop_on_folder_errors(on_task: Callable[..., None], folders: list[Folder]) -> Callable[..., None]:
    """``on_task`` that first looks at a task's failed runs: one that failed because a folder filled up
    or turned read-only mid-sweep ends the sweep with that folder's one line (the runs it affected
    are stored as failed, where the folder still took them), not one failure per run."""

    def checked(task, outcome, recorded) -> None:
        for r in recorded:
            if r.status == Status.ERROR and (error := failure_folder_error(r.error, folders)) is not None:
                raise error
        on_task(task, outcome, recorded)

    return checked


def data_folder(args: argparse.Namespace, data_dir: Path) -> Folder:
    """The data folder, written into only when the dataset (or its subset) must be made there: a
    read-only folder of prepared datasets is fine."""
    from annbench.datasets.registry import writes_into

    return Folder("data", data_dir, write=writes_into(args.dataset, data_dir, args.max_train, args.max_test))


def check_executor(args: argparse.Namespace) -> None:
    """Options that only the Dask executor takes, what it leaves to the cluster, and what the in-process
    executor cannot do."""
    if args.executor == "inprocess":
        for option, given in (("--parallelism", args.parallelism > 1), ("--cold-workers", args.cold_workers)):
            if given:
                raise UserError(f"{option} with --executor inprocess: its tasks run one at a time in this process; "
                                f"valid: --executor local, or drop {option}")
    if args.share_cores and args.executor != "local":
        raise UserError(f"--share-cores with --executor {args.executor}: only the local executor claims cores "
                        f"(Dask workers always wait for free ones); valid: --executor local, or drop --share-cores")
    if args.executor in ("local", "inprocess"):
        for option, value in (("--scheduler", args.scheduler), ("--dask-results", args.dask_results),
                              ("--dask-data-dir", args.dask_data_dir), ("--dask-timeout", args.dask_timeout)):
            if value is not None:
                raise UserError(f"{option} applies to the Dask executor; valid: add --executor dask, or drop {option}")
    elif args.scheduler is not None and args.parallelism > 1:
        raise UserError(f"--parallelism {args.parallelism} with --scheduler: the cluster's workers set how many "
                        f"benchmarks run at once (their 'benchmark' resource); valid: drop --parallelism")


def request_of(args: argparse.Namespace, data_dir: Path, results_dir: Path, adapter_dirs: list[Path],
               config_dirs: list[Path], client: Any) -> SweepRequest:
    """The sweep the command line asks for (one thread count of ``--threads``)."""
    from annbench.execute.remote import RemoteOptions
    from annbench.sweep.steps import SweepRequest

    algorithms = names(args.algorithm) if args.algorithm else None
    options = RunOptions(k=args.k, runs=args.runs, batch=args.batch, threads=args.threads, force=args.force,
                         warmup=args.warmup, min_pass_time=args.min_pass_time, early_stop=not args.no_early_stop,
                         filter_strategy=args.filter_strategy, clients=tuple(args.clients),
                         client_seconds=args.client_seconds, client_kind=ClientKind(args.client_kind),
                         rebuild_fallback=args.rebuild_fallback, processes=args.processes)
    return SweepRequest(
        args.dataset, None if algorithms is None else tuple(algorithms), args.preset, options, args.runbook,
        args.include_slow, data_dir, results_dir, args.source_dir, args.max_train, args.max_test, tuple(adapter_dirs),
        tuple(config_dirs), args.executor, args.parallelism, args.timeout, args.memory_limit, not args.cold_workers,
        args.share_cores, client, RemoteOptions(ship_results=args.dask_results != "shared",
                                                data_dir=args.dask_data_dir, source_dir=args.source_dir))


def sweep(args: argparse.Namespace, data_dir: Path, results_dir: Path, adapter_dirs: list[Path],
          config_dirs: list[Path], client: Any) -> int:
    """Prepare the sweep, run it with a progress bar (locally, or on the cluster of ``client``), report it."""
    from annbench.cli import runbook as streaming
    from annbench.sweep.steps import prepare, run

    prepared = prepare(request_of(args, data_dir, results_dir, adapter_dirs, config_dirs, client))
    with progress_bar(sum(len(t.keys) for t in prepared.tasks), disable=args.quiet) as (bar, on_wait):
        outcome = run(prepared, stop_on_folder_errors(bar, sweep_folders(args, data_dir, results_dir)), on_wait)
    if prepared.runbook is not None:
        return streaming.close(results_dir, prepared.dataset.name, prepared.runbook, args, outcome.results,
                               prepared.plan, prepared.left_alone)
    report(outcome, args)
    return outcome.exit_code


def report(outcome: SweepOutcome, args: argparse.Namespace) -> None:
    """Print what a static sweep did: the plot written, skipped and failed runs, counts, warnings, the table."""
    from annbench.analyse.frames import trust_warnings

    frame, plan = outcome.frame, outcome.prepared.plan
    store, dataset = outcome.prepared.store, outcome.prepared.dataset
    if not args.no_plot and len(frame):
        from annbench.report.plotting import VIEWS, plot_metric_pair

        several = len(getattr(args, "thread_counts", [args.threads])) > 1
        threads = f"-threads{args.threads}" if several else ""
        out = store.root / dataset.name / str(args.k) / f"recall-qps{batch_suffix(args.batch)}{threads}.png"
        plot_metric_pair(frame, "recall", "qps", out, f"{dataset.name} (k={args.k}{', batch' if args.batch else ''}"
                                                      f"{f', {args.threads} threads' if several else ''})",
                         x_scale=VIEWS["recall-qps"].x_scale, y_scale=VIEWS["recall-qps"].y_scale)
        print(f"plot: {out}")
    mine, failed, skipped = outcome.mine, outcome.failed, outcome.skipped
    by_others = outcome.by_others
    for line in skip_lines((level_name(r.key.algorithm, r.key.batch, r.key.clients), canonical(r.key.build_params),
                            canonical(r.key.query_params), r.attrs["dominated_by"], r.attrs["note"]) for r in skipped):
        print(line)
    for r in failed:
        print(f"failed: {r.key.label()}: {r.error} (log: {r.attrs.get('log_path') or '-'})")
    if note := beside_note(mine):
        print(note)
    if note := noise_note(frame):
        print(note)
    others = "".join(f", {n} measured by sweep {pid if pid >= 0 else '(unknown pid)'}" for pid, n in by_others.items())
    print(f"{len(mine) - len(failed) - len(skipped)} runs done, {len(failed)} failed{others}, "
          f"{outcome.already_stored} already stored"
          f"{f', {len(skipped)} skipped as dominated (--no-early-stop measures them)' if skipped else ''}; "
          f"results in {store.root}")
    for line in trust_warnings(frame):  # exact methods with recall < 1, runs on other contents of the file
        print(f"warning: {line}")
    if plan.left_out:
        print(left_out_line(plan.left_out))
    for name, error in plan.unavailable.items():
        print(f"unavailable: {error}", file=sys.stderr)
    if len(frame):
        print(summary_text(outcome.every_level) if args.table == "runs" else operating_text(frame))
