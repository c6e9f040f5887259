#!/usr/bin/env python3
"""QPS at recall >= 0.9 per algorithm, k = 10, single-query mode, through the harness.

Every algorithm with a grid for the dataset's distance (or those given by ``--algorithm``) runs its
``--preset`` grid on ``--dataset`` via plan → execute → analyse, into a results folder in a
temporary directory. Per algorithm the table shows the highest QPS among its runs with recall >=
``--min-recall``, that run's parameters, and the best recall it reached at all. The first
``--queries`` test queries are used (the registry's subset dataset, ``0`` = all): the exact tree
methods take tens of milliseconds per query on 100-d data, so all 10,000 of random-s take hours.

    python benchmarks/backend_qps.py [--dataset random-s-100-euclidean] [--preset quick]
                                     [--algorithm A,B] [--runs 3] [--queries 1000]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.core.threads import pin_environment

pin_environment(1)  # before numpy and the libraries load their thread pools

from annbench.analyse.frames import results_frame  # noqa: E402
from annbench.core import paths  # noqa: E402
from annbench.datasets.registry import load  # noqa: E402
from annbench.execute.executors import ExecutorKind, execute, make_executor  # noqa: E402
from annbench.plan.grid import RunOptions, make_plan  # noqa: E402
from annbench.store.folder import ResultStore  # noqa: E402


def qps_table(frame, min_recall: float) -> list[tuple[str, str, str, str, str]]:  # DataFrame
    """Rows (algorithm, qps, recall, parameters, best recall) of the fastest run reaching ``min_recall``."""
    rows = []
    for algorithm, group in frame.groupby("algorithm", sort=True):
        ok = group[group["status"] == "ok"]
        best_recall = f"{ok['recall'].max():.4f}" if len(ok) else "-"
        good = ok[ok["recall"] >= min_recall]
        if not len(good):
            errors = len(group) - len(ok)
            rows.append((algorithm, "-", "-", f"(no run reached it; {errors} errors)", best_recall))
            continue
        top = good.loc[good["qps"].idxmax()]
        rows.append((algorithm, f"{top['qps']:.0f}", f"{top['recall']:.4f}",
                     f"{top['build_params']} {top['query_params']}", best_recall))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="random-s-100-euclidean", help="registered name or .hdf5 path")
    p.add_argument("--data-dir", type=Path, default=None, help="dataset folder (default as run.py)")
    p.add_argument("--algorithm", help="comma-separated algorithms (default: every one with a grid)")
    p.add_argument("--preset", default="quick")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--queries", type=int, default=1000, help="first N test queries (default 1000; 0 = all)")
    p.add_argument("--min-recall", type=float, default=0.9)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname).1s %(message)s")
    for noisy in ("faiss", "matplotlib", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    dataset = load(args.dataset, args.data_dir or paths.default_data_dir(), max_test=args.queries or None)
    algorithms = args.algorithm.split(",") if args.algorithm else None
    options = RunOptions(k=10, runs=args.runs, batch=False, threads=1)
    plan = make_plan(dataset.name, dataset.path, dataset.distance, algorithms, args.preset, options,
                     paths.config_dirs(), paths.algorithm_dirs())
    with tempfile.TemporaryDirectory() as tmp:
        execute(make_executor(ExecutorKind.LOCAL, ResultStore(tmp)), plan, dataset)
        frame = results_frame(tmp, dataset.name)
    print(f"dataset {dataset.name} ({len(dataset.train)} x {dataset.train.shape[1]}, {dataset.distance}, "
          f"{len(dataset.test)} queries); k=10, single-query, 1 thread, preset {args.preset}, "
          f"best of {args.runs} passes")
    header = ("algorithm", f"QPS@recall>={args.min_recall}", "recall", "parameters of that run", "best recall")
    rows = [header, *qps_table(frame, args.min_recall)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(c.ljust(w) if i in (0, 3) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    for name, error in plan.unavailable.items():
        print(f"unavailable: {name}: {error}")


if __name__ == "__main__":
    main()
