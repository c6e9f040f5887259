"""What the Dask executor costs next to the local one on this machine; prints its figures.

1. Per-task overhead: the same N small build settings (bruteforce on random-xs-20-euclidean cut
   to 100 queries, one timed pass) run one at a time by the local executor (``--parallelism 1``)
   and by the Dask executor on a one-worker ``LocalCluster`` (results shipped back, the default);
   overhead = difference of the per-task wall times. Starting and closing the cluster is
   reported apart (paid once per sweep).
2. The quick sweep (``python run.py``'s default: the quick preset of every installed backend on
   random-xs-20-euclidean, 3 timed passes): wall time with ``--parallelism 2`` vs a two-worker
   ``LocalCluster``, and the latter with the cluster's start and close included.

Usage: ``python benchmarks/dask_executor.py [--data-dir DIR] [--tasks 8] [--rounds 3] [--no-sweep]``.
The machine is shared:
the load average is printed with the figures; each measurement alternates the two executors.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.core import paths
from annbench.datasets.registry import load
from annbench.execute.dask import dask_client
from annbench.execute.executors import execute, make_executor
from annbench.plan.grid import RunOptions, make_plan
from annbench.plan.pending import make_tasks
from annbench.store.folder import ResultStore

DATASET = "random-xs-20-euclidean"


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _plan(dataset, algorithms, runs: int):
    return make_plan(dataset.name, dataset.path, dataset.distance, algorithms, "quick", RunOptions(k=10, runs=runs),
                     paths.config_dirs(), paths.algorithm_dirs())


def _run(kind: str, plan, dataset, client, tasks=None, parallelism: int = 1) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultStore(tmp)
        todo = tasks if tasks is not None else make_tasks(plan, dataset, store)
        todo = [dataclasses.replace(t, results_root=Path(tmp).resolve()) for t in todo]
        start = time.perf_counter()
        executor = make_executor(kind, store, parallelism=parallelism, client=client)
        results = execute(executor, plan, dataset, tasks=todo)
        wall = time.perf_counter() - start
    failed = [r.key.label() for r in results if r.status != "ok"]
    if failed:
        raise SystemExit(f"{kind}: failed runs {failed}")
    return wall


def overhead(data_dir: Path, n: int, rounds: int) -> None:
    dataset = load(DATASET, data_dir, max_test=100)
    plan = _plan(dataset, ["bruteforce"], runs=1)
    with tempfile.TemporaryDirectory() as tmp:
        template = make_tasks(plan, dataset, ResultStore(tmp))[0]
    tasks = [dataclasses.replace(template, task_id=uuid.uuid4().hex) for _ in range(n)]
    t0 = time.perf_counter()
    with dask_client(None, workers=1, threads=1, timeout_s=60) as client:
        started = time.perf_counter() - t0
        walls: dict[str, list[float]] = {"local": [], "dask": []}
        for _ in range(rounds):
            for kind in ("local", "dask"):
                walls[kind].append(_run(kind, plan, dataset, client, tasks) / n)
        t1 = time.perf_counter()
    closed = time.perf_counter() - t1
    local, dask_ = statistics.median(walls["local"]), statistics.median(walls["dask"])
    print(f"per-task wall, {n} tasks one at a time (bruteforce, {len(dataset.test)} queries, 1 pass), median of "
          f"{rounds} rounds: local {local * 1e3:.0f} ms, dask {dask_ * 1e3:.0f} ms; overhead of the Dask executor "
          f"{(dask_ - local) * 1e3:+.0f} ms per task ({dask_ / local:.2f}×)")
    print(f"  all rounds: local {', '.join(f'{w * 1e3:.0f}' for w in walls['local'])} ms; "
          f"dask {', '.join(f'{w * 1e3:.0f}' for w in walls['dask'])} ms")
    print(f"  one-worker LocalCluster: start + connect {started:.2f} s, close {closed:.2f} s (once per sweep)")


def quick_sweep(data_dir: Path) -> None:
    dataset = load(DATASET, data_dir)
    plan = _plan(dataset, None, runs=3)
    local = _run("local", plan, dataset, None, parallelism=2)
    t0 = time.perf_counter()
    with dask_client(None, workers=2, threads=1, timeout_s=60) as client:
        started = time.perf_counter() - t0
        dask_ = _run("dask", plan, dataset, client)
    total = time.perf_counter() - t0
    local2 = _run("local", plan, dataset, None, parallelism=2)
    algorithms = sorted({b.algorithm for b in plan.builds})
    print(f"quick sweep ({len(plan.builds)} build settings, {plan.n_runs} runs: {', '.join(algorithms)}; "
          f"3 passes): --parallelism 2 {local:.2f} s and {local2:.2f} s (before/after); two-worker LocalCluster "
          f"{dask_:.2f} s sweep, {total:.2f} s with the cluster's start ({started:.2f} s) and close")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=paths.default_data_dir())
    p.add_argument("--tasks", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3, help="alternating local/dask rounds of the overhead figure")
    p.add_argument("--no-sweep", action="store_true", help="only the per-task overhead (the sweep takes minutes)")
    args = p.parse_args()
    print(f"cores: {len(os.sched_getaffinity(0))}, load average before: {load_average()}")
    overhead(args.data_dir, args.tasks, args.rounds)
    if not args.no_sweep:
        quick_sweep(args.data_dir)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
