#!/usr/bin/env python3
"""The databases beside the libraries (issue 27): one sweep per dataset, then their figures.

``--databases sql`` (default: pgvector, DuckDB, sqlite-vec), ``embedded`` (LanceDB, Chroma, Milvus Lite, Qdrant's
local mode) or ``all`` chooses the databases of both parts; the tables show the chosen ones.

1. ``plain``: on Fashion-MNIST (raw, ``fashion-mnist-784-euclidean``) and ``random-s-100-euclidean``, one
   sweep per dataset of hnswlib, faiss-hnsw and the SQL databases (``--preset quick``, the first
   ``--max-test`` queries, k 10, one thread, one timed pass per setting), then one row per algorithm and
   build setting that gives an operating point: best QPS at recall >= 0.9 and >= 0.99 (empty: never
   reached; the best recall it did reach is printed beside), the build time with its parts where the
   adapter times them (``start_s`` server start, ``load_s`` rows loaded, ``index_s`` index built), the
   index size (``index_bytes``: a database's whole folder) and the build's peak memory
   (``build_peak_rss_bytes``, a server's processes included).
2. ``filtered``: on ``random-filtered-s-32-euclidean`` and ``fashion-mnist-by-class-784-euclidean`` (the
   first ``--filtered-queries`` queries), the databases' own filter path (``--filter-strategy native``,
   ``--preset filtered``, ``--no-early-stop``: for pgvector a narrow setting that reaches recall 1.0 through
   its exact re-ask is not the cheap end of the grid), every run's recall, QPS and ``filter_violations``
   (ids returned that fail their query's filter: must be 0); for pgvector also the share of queries asked
   again filter-first and that re-ask's share of the query time (``stats.reasked_share``,
   ``stats.reask_time_share``).

The load average is printed before and after each sweep (two cores shared: QPS moves with it). Each child
is bounded by ``--timeout`` seconds (a run past it is stored as failed, and the table says so). The results
stay in ``--results`` (default ``results/databases``), so ``--table-only`` prints the tables again and a
second run measures only what is missing.

    python benchmarks/databases.py [--data-dir DIR] [--source-dir ../shared/data] [--results DIR]
                                   [--parts plain,filtered] [--datasets D1,D2] [--databases sql|embedded|all]
                                   [--max-test 1000]
                                   [--filtered-queries 200]
                                   [--timeout 1800] [--share-cores] [--table-only]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LIBRARIES = ("hnswlib", "faiss-hnsw")
SQL_DATABASES = ("pgvector-hnsw", "pgvector-ivfflat", "duckdb-hnsw", "sqlite-vec")
EMBEDDED_DATABASES = ("lancedb-ivf-pq", "lancedb-ivf-flat", "lancedb-ivf-hnsw-sq", "chroma-hnsw", "milvus-hnsw",
                      "milvus-hnsw-sq", "milvus-ivf-flat", "milvus-ivf-sq8", "milvus-flat", "qdrant-local")
DATABASES = {"sql": SQL_DATABASES, "embedded": EMBEDDED_DATABASES, "all": SQL_DATABASES + EMBEDDED_DATABASES}
PLAIN = ("fashion-mnist-784-euclidean", "random-s-100-euclidean")
FILTERED = ("random-filtered-s-32-euclidean", "fashion-mnist-by-class-784-euclidean")
LEVELS = (0.9, 0.99)
#: The build's parts an adapter may time itself (``Adapter.build_stats``), in build order.
PARTS = ("start_s", "load_s", "index_s", "attrs_s")
#: pgvector's filter-first re-ask of a short answer (``PgVector.stats``): how often, and its share of the time.
REASK = ("stats.reasked_share", "stats.reask_time_share")


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def sweep(dataset: str, algorithms: tuple[str, ...], args: argparse.Namespace, queries: int, *extra: str) -> int:
    from annbench.cli.run import main as run_main

    argv = ["--dataset", dataset, "--algorithm", ",".join(algorithms), "--data-dir", str(args.data_dir),
            "--results", str(args.results), "--max-test", str(queries), "--runs", "1", "--min-pass-time", "0",
            "--warmup", "0.2", "--timeout", str(args.timeout), "--no-plot", "-q", *extra]
    if args.source_dir:
        argv += ["--source-dir", str(args.source_dir)]
    if args.share_cores:
        argv.append("--share-cores")
    print(f"\n$ run.py {' '.join(argv)}\nload average before: {load()}", flush=True)
    code = run_main(argv)
    print(f"load average after: {load()} (exit code {code})", flush=True)
    return code


def _runs(dataset: str, results: Path) -> pd.DataFrame:
    from annbench.analyse.frames import results_frame

    frame = results_frame(results, dataset)
    if frame.empty:
        return frame
    frame = frame[frame["k"] == 10] if "k" in frame else frame
    for column in (*PARTS, *REASK, "build_peak_rss_bytes", "filter_violations"):
        if column not in frame:
            frame[column] = np.nan
    return frame


def _mib(value: float) -> str:
    # index_bytes -1: the adapter has nothing to measure (qdrant-local in memory)
    return "" if pd.isna(value) else "—" if value < 0 else f"{value / 2**20:.1f}"


def _num(value: float, digits: int = 4) -> str:
    return "" if pd.isna(value) else f"{value:.{digits}g}"


def plain_table(dataset: str, results: Path, databases: tuple[str, ...] = SQL_DATABASES) -> pd.DataFrame:
    """One row per algorithm and build setting behind an operating point at recall >= 0.9 or >= 0.99."""
    from annbench.analyse.frames import measured
    from annbench.report.plotting import params_label

    frame = _runs(dataset, results)
    rows = []
    for algorithm in [*LIBRARIES, *databases]:
        runs = frame[frame["algorithm"] == algorithm] if len(frame) else frame
        ok = measured(runs)
        failed = runs[runs["status"] == "failed"] if len(runs) else runs
        if ok.empty:
            reason = "; ".join(dict.fromkeys(failed["reason"].astype(str))) if "reason" in failed else ""
            rows.append({"algorithm": algorithm, "build": "(no run)" if runs.empty else f"(failed: {reason})"})
            continue
        best = {r: ok[ok["recall"] >= r] for r in LEVELS}
        builds = [b for b in dict.fromkeys(ok["build_params"]) if any(
            len(part) and part.loc[part["qps"].idxmax(), "build_params"] == b for part in best.values())]
        if not builds:  # never reached 0.9: the build that came closest
            builds = [ok.loc[ok["recall"].idxmax(), "build_params"]]
        for build in builds:
            of_build = ok[ok["build_params"] == build]
            sized = of_build[of_build["index_bytes"] >= 0]  # a child killed before measuring it left -1 (pending)
            first = (sized if len(sized) else of_build).iloc[0]
            row = {"algorithm": algorithm, "build": params_label(build, "{}"),
                   "max recall": _num(of_build["recall"].max())}
            for r in LEVELS:
                reached = of_build[of_build["recall"] >= r]
                top = reached.loc[reached["qps"].idxmax()] if len(reached) else None
                is_best = top is not None and len(best[r]) and best[r]["qps"].max() == top["qps"]
                row[f"QPS@{r:g}"] = f"{top['qps']:.0f}{'' if is_best else ' (not best)'}" if top is not None else ""
                row[f"setting@{r:g}"] = "" if top is None else params_label("{}", top["query_params"])
            row["build s"] = _num(first["build_s"])
            for part in PARTS[:3]:
                row[part] = _num(first[part])
            row["index MiB"] = _mib(first["index_bytes"])
            row["peak MiB"] = _mib(first["build_peak_rss_bytes"])
            rows.append(row)
    return pd.DataFrame(rows).fillna("")


def filtered_table(dataset: str, results: Path, databases: tuple[str, ...] = SQL_DATABASES) -> pd.DataFrame:
    """Every run of the databases on a filtered dataset: recall, QPS, filter violations, status."""
    from annbench.report.plotting import params_label

    frame = _runs(dataset, results)
    if frame.empty:
        return frame
    frame = frame[frame["algorithm"].isin(databases)].sort_values(["algorithm", "build_params", "qps"])
    return pd.DataFrame({
        "algorithm": frame["algorithm"],
        "setting": [params_label(b, q) for b, q in zip(frame["build_params"], frame["query_params"])],
        "status": frame["status"].astype(str),
        "recall": [_num(v) for v in frame["recall"]], "QPS": [_num(v, 3) for v in frame["qps"]],
        "filter_violations": [_num(v) for v in frame["filter_violations"]],
        "attrs_s": [_num(v) for v in frame["attrs_s"]],
        "re-asked": [_num(v, 3) for v in frame[REASK[0]]], "re-ask time": [_num(v, 3) for v in frame[REASK[1]]]})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=Path("datasets"))
    p.add_argument("--source-dir", type=Path, default=None, help="upstream files for offline builds")
    p.add_argument("--results", type=Path, default=Path("results") / "databases")
    p.add_argument("--parts", default="plain,filtered", help="comma-separated: plain, filtered")
    p.add_argument("--datasets", default=",".join(PLAIN + FILTERED),
                   help="comma-separated: the datasets of the parts to run (default: all four)")
    p.add_argument("--databases", choices=sorted(DATABASES), default="sql",
                   help="the databases swept and shown: sql (default), embedded or all")
    p.add_argument("--max-test", type=int, default=1000)
    p.add_argument("--filtered-queries", type=int, default=200)
    p.add_argument("--timeout", type=int, default=1800, help="seconds allowed to each build setting's child")
    p.add_argument("--share-cores", action="store_true",
                   help="measure on cores other sweeps have claimed instead of waiting (the runs say cores_shared)")
    p.add_argument("--table-only", action="store_true", help="print the tables of the stored results, run nothing")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    databases = DATABASES[args.databases]
    code = 0
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 60):
        if "plain" in parts:
            for dataset in [d for d in PLAIN if d in args.datasets.split(",")]:
                if not args.table_only:
                    code |= sweep(dataset, (*LIBRARIES, *databases), args, args.max_test, "--preset", "quick")
                name = f"{dataset}-test{args.max_test}"
                print(f"\n{name} (k 10, 1 thread, --preset quick, one timed pass): best QPS at recall >= 0.9 / "
                      f">= 0.99 per build setting, build time (start + load + index where timed apart), index size, "
                      f"build peak memory")
                print(plain_table(name, args.results, databases).to_string(index=False))
        if "filtered" in parts:
            for dataset in [d for d in FILTERED if d in args.datasets.split(",")]:
                if not args.table_only:
                    code |= sweep(dataset, databases, args, args.filtered_queries, "--preset", "filtered",
                                  "--filter-strategy", "native", "--no-early-stop")
                name = f"{dataset}-test{args.filtered_queries}"
                print(f"\n{name} (native filters, --preset filtered, --no-early-stop): every run")
                print(filtered_table(name, args.results, databases).to_string(index=False))
    print(f"\nload average at the end: {load()}")
    return code


if __name__ == "__main__":
    sys.exit(main())
