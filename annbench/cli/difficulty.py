"""``plot.py``'s per-query options: difficulty subsets, per-query exports, significance, the
difficulty, recall-by-difficulty and scaling views. Kept apart from :mod:`annbench.cli.plot`,
which calls in at a few points."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from annbench.analyse.difficulty import DEFAULT_QUANTILE, SUBSETS, Measure, measure_named
from annbench.cli.common import Parser, names, one_k, output_path
from annbench.core import paths
from annbench.core.errors import UserError
from annbench.core.results import Status

log = logging.getLogger("annbench.plot")

#: Views drawn here rather than as a metric pair.
EXTRA_VIEWS = ("difficulty", "recall-by-difficulty", "scaling")
#: Measure of the operating-point table's hard-query column when ``--difficulty`` is not given.
DEFAULT_MEASURE = "lid@10"
PER_QUERY_SUFFIXES = (".parquet", ".csv")


def add_arguments(p: Parser) -> None:
    g = p.add_argument_group("query difficulty, per-query results and significance (need the dataset file, "
                             "see --data-dir)")
    g.add_argument("--difficulty", metavar="MEASURE",
                   help="recompute every view and table on a subset of queries chosen by rc, lid or expansion "
                        "(at k=10; or rc@100, lid@100, expansion@50); also the measure of the "
                        f"recall-by-difficulty view and of the operating points' hard-query recall "
                        f"(default {DEFAULT_MEASURE})")
    g.add_argument("--subset", choices=SUBSETS, default=None,
                   help="with --difficulty: the hardest or easiest --quantile of the queries, or all (default hard)")
    g.add_argument("--quantile", type=float, default=DEFAULT_QUANTILE, metavar="Q",
                   help=f"fraction of the queries in the hard/easy subset (default {DEFAULT_QUANTILE})")
    g.add_argument("--per-query", action="store_true",
                   help="with --table: one row per (run, query); --output FILE.parquet (needs pyarrow) or .csv "
                        "writes a file instead of stdout")
    g.add_argument("--significance", action="store_true",
                   help="with --operating-points: 95%% bootstrap intervals of QPS and recall and, per level, a "
                        "ranking where A > B only if a Holm-corrected Wilcoxon test on per-query latencies says so")
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help="keep the runs measured with N library threads (the scaling view uses every count)")


def check(args: argparse.Namespace) -> None:
    """Option combinations, before anything is read."""
    if args.per_query and not args.table:
        raise UserError("--per-query applies to --table; valid: --table FORMAT --per-query")
    if args.significance and not args.operating_points:
        raise UserError("--significance applies to --operating-points; valid: --operating-points FORMAT --significance")
    if not 0 < args.quantile <= 1:
        raise UserError(f"--quantile {args.quantile}: valid: a fraction in (0, 1]")
    if args.subset and not args.difficulty:
        raise UserError(f"--subset {args.subset} needs --difficulty MEASURE (rc, lid or expansion)")
    args.subset = args.subset or "hard"
    if args.difficulty:
        measure_named(args.difficulty)


def measure(args: argparse.Namespace) -> Measure:
    return measure_named(args.difficulty or DEFAULT_MEASURE)


def filter_threads(frame: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    if args.threads is None:
        counts = sorted(int(t) for t in frame["threads"].dropna().unique()) if "threads" in frame else []
        if len(counts) > 1:
            log.warning("these results mix runs measured with %s threads: curves and operating points pool them; "
                        "give --threads N for one count (the scaling view uses every count)",
                        ", ".join(map(str, counts)))
        return frame
    known = sorted(int(t) for t in frame["threads"].dropna().unique())
    if args.threads not in known:
        raise UserError(f"--threads {args.threads}: no runs measured with that many threads; valid: "
                        f"{', '.join(map(str, known))}")
    return frame[frame["threads"] == args.threads]


class PerQuery:
    """The per-query frame of each dataset, computed once per ``plot.py`` call."""

    def __init__(self, frame: pd.DataFrame, args: argparse.Namespace) -> None:
        self.frame, self.args = frame, args
        self.data_dir = Path(args.data_dir or paths.default_data_dir())
        self._cache: dict[str, pd.DataFrame] = {}

    def of(self, dataset: str) -> pd.DataFrame:
        if dataset not in self._cache:
            from annbench.analyse.perquery import per_query_frame

            runs = self.frame[self.frame["dataset"] == dataset]
            self._cache[dataset] = per_query_frame(dataset, runs, self.data_dir)
        return self._cache[dataset]

    def available(self, dataset: str) -> bool:
        """Whether the dataset file with the runs' checksum is at hand (else the optional extras are left out)."""
        try:
            self.of(dataset)
        except UserError as e:
            log.info("%s", e)
            return False
        return True


def subset_frame(frame: pd.DataFrame, args: argparse.Namespace, per_query: PerQuery) -> pd.DataFrame:
    """``frame`` with every run's metrics recomputed on the ``--difficulty``/``--subset`` queries."""
    from annbench.analyse.perquery import query_mask, subset_runs

    m = measure(args)
    parts = []
    for dataset, runs in frame.groupby("dataset", sort=True):
        pq = per_query.of(str(dataset))
        mask = query_mask(pq, m, args.subset, args.quantile)
        failed = runs[runs["status"] != Status.OK]
        ok = subset_runs(runs, pq, mask)
        if ok["batch"].astype(bool).any():
            log.warning("%s: batch-mode runs have no per-query latencies, so their QPS is the whole batch's, not "
                        "the %s subset's (recall and the other quality metrics are the subset's)", dataset, args.subset)
        log.info("%s: %d of %d queries in the %s subset by %s", dataset, int(mask.sum()), len(mask), args.subset,
                 m.name)
        parts += [ok, failed]
    return pd.concat([p for p in parts if len(p)], ignore_index=True) if parts else frame


def per_query_table(frame: pd.DataFrame, args: argparse.Namespace, per_query: PerQuery) -> pd.DataFrame:
    parts = []
    for dataset in sorted(frame["dataset"].unique()):
        pq = per_query.of(str(dataset))
        if args.k:
            pq = pq[pq["k"] == args.k]
        if args.batch:
            pq = pq[pq["batch"].astype(bool)]
        paths_kept = set(frame["path"])
        parts.append(pq[pq["path"].isin(paths_kept)].drop(columns=["latency_ns"], errors="ignore"))
    return pd.concat(parts, ignore_index=True)


def write_per_query(table: pd.DataFrame, output: Path) -> Path:
    """Write the per-query table as Parquet (pandas through pyarrow) or CSV, by suffix."""
    suffix = output.suffix.lower()
    if suffix not in PER_QUERY_SUFFIXES:
        raise UserError(f"--output {output}: unsupported file type for --per-query; "
                        f"valid: {', '.join(PER_QUERY_SUFFIXES)}")
    if suffix == ".parquet" and not has_pyarrow():
        raise UserError(f"--output {output}: Parquet needs pyarrow, which is not installed; valid: "
                        f"pip install -e '.[parquet]', or --output {output.with_suffix('.csv').name}")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        table.to_parquet(tmp, index=False) if suffix == ".parquet" else table.to_csv(tmp, index=False)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    return output


def has_pyarrow() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


def _match_paths(points: pd.DataFrame, runs: pd.DataFrame) -> list[str | None]:
    """The result file of each operating point (matched on its run's identity and QPS)."""
    keys = ["algorithm", "batch", "build_params", "query_params", "qps"]
    index = {tuple(r[c] for c in keys): r["path"] for _, r in runs[runs["status"] == Status.OK].iterrows()}
    return [index.get(tuple(r[c] for c in keys)) if pd.notna(r["qps"]) else None for _, r in points.iterrows()]


def extend_operating(table: pd.DataFrame, frame: pd.DataFrame, args: argparse.Namespace,
                     per_query: PerQuery, full: pd.DataFrame) -> pd.DataFrame:
    """The operating-point table with the recall on the hardest ``--quantile`` of the queries (by
    ``--difficulty``, default lid@10; left out where the dataset file is not at hand) and, with
    ``--significance``, the intervals and rankings of :mod:`annbench.analyse.significance`. ``frame`` holds
    the runs the table was computed from (maybe a subset's), ``full`` the same runs on all queries."""
    from annbench.analyse.perquery import operating_extras, query_mask

    m = measure(args)
    parts = []
    for (dataset, k), rows in table.groupby(["dataset", "k"], sort=False):
        rows = rows.copy()
        runs = frame[(frame["dataset"] == dataset) & (frame["k"] == k)]
        if "host" in rows and "host" in runs:
            rows["path"] = [p for h, part in rows.groupby("host", sort=False)
                            for p in _match_paths(part, runs[runs["host"] == h])]
        else:
            rows["path"] = _match_paths(rows, runs)
        if not (args.significance or args.difficulty) and not per_query.available(str(dataset)):
            parts.append(rows)  # plain --operating-points work without the dataset file
            continue
        pq = per_query.of(str(dataset))
        mask = query_mask(pq, m, args.subset, args.quantile) if args.difficulty else None
        parts.append(operating_extras(rows, full[full["dataset"] == dataset], pq, m, args.quantile,
                                      args.significance, mask))
    out = pd.concat(parts, ignore_index=True) if parts else table
    return out.drop(columns=["path"], errors="ignore")


def plot_extra(frame: pd.DataFrame, args: argparse.Namespace, results_dir: Path, wanted: list[str],
               per_query: PerQuery, full: pd.DataFrame) -> list[Path]:
    """The ``difficulty``, ``recall-by-difficulty`` and ``scaling`` views, one figure per dataset.
    ``frame`` is filtered by ``--threads``; ``full`` is every thread count (for scaling)."""
    from annbench.analyse.difficulty import load_or_compute
    from annbench.analyse.perquery import dataset_file, recall_by_difficulty
    from annbench.report.difficulty_plots import plot_difficulty, plot_recall_by_difficulty, plot_scaling, scaling_table
    from annbench.report.plotting import View

    written = []
    datasets = sorted(frame["dataset"].unique())
    several = len(datasets) * len(wanted) > 1 or len(names(args.view)) > len(wanted)
    mode = ", batch" if args.batch else ""
    m = measure(args)
    for name in wanted:
        for d in datasets:
            if name == "scaling":
                k, part = one_k(full, d, args.k, args.batch)
                table = scaling_table(part, args.at_recall)
                out = output_path(args, results_dir, d, k, View(name, "threads", "qps"), several)
                written.append(plot_scaling(table, out, f"{d} (k={k}{mode}): QPS at recall ≥ {args.at_recall:g}"))
                continue
            k, part = one_k(frame, d, args.k, args.batch)
            if name == "difficulty":
                difficulty = load_or_compute(dataset_file(d, per_query.data_dir, part))
                out = output_path(args, results_dir, d, k, View(name, "difficulty", "histogram"), several)
                written.append(plot_difficulty(difficulty, out, d))
                continue
            from annbench.analyse.frames import operating_points

            pq = per_query.of(d)
            if m.name not in pq:
                raise UserError(f"--difficulty {m.name}: not available for {d}")
            points = operating_points(part, levels=(args.at_recall,), columns=["path"]).dropna(subset=["path"])
            table = recall_by_difficulty(points, pq, m)
            out = output_path(args, results_dir, d, k, View(name, f"{m.name}_decile", "recall"), several)
            written.append(plot_recall_by_difficulty(
                table, out, f"{d} (k={k}{mode}): recall by {m.name} decile at the fastest run with recall ≥ "
                            f"{args.at_recall:g}", m.name))
    return written


def split_views(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """``--view`` split into the views drawn here and the rest (for :mod:`annbench.cli.plot`)."""
    wanted = names(args.view)
    extra = [v for v in wanted if v in EXTRA_VIEWS]
    rest = [v for v in wanted if v not in EXTRA_VIEWS]
    return extra, ",".join(rest) if rest else None
