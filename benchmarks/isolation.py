"""What isolation costs and what parallelism buys; prints its figures.

1. Per build setting, the cost of the child process: start + imports + opening (and validating)
   the dataset file, from a task with no runs (so nothing is built), on random-xs-20-euclidean
   and on a larger dataset (Fashion-MNIST when it is registered, else random-s-100-euclidean).
2. The speed-up of ``--parallelism 2`` over ``--parallelism 1``: wall time of a sweep of the quick
   preset of every installed backend on random-xs-20-euclidean (single-query mode).
3. Whether per-query latencies measured in parallel differ from those measured alone: p50 and p99
   of every run of those two sweeps, side by side.

Usage: ``python benchmarks/isolation.py [--data-dir DIR] [--repeats 5]``. The machine is shared:
the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.analyse.frames import results_frame
from annbench.core import paths
from annbench.datasets.format import load_dataset
from annbench.datasets.registry import registry, resolve
from annbench.execute.executors import ExecutorKind, execute, make_executor
from annbench.execute.isolation import run_task_isolated
from annbench.plan.grid import BuildSetting, RunOptions, make_plan
from annbench.plan.task import Limits, Task
from annbench.store.folder import ResultStore

SHARED_DATA = paths.PROJECT_ROOT.parent / "shared" / "data"


def larger_dataset() -> str:
    names = [n for n in registry() if "fashion" in n.lower()]
    return names[0] if names else "random-s-100-euclidean"


def child_cost(name: str, data_dir: Path, repeats: int) -> None:
    _, path = resolve(name, data_dir, SHARED_DATA if SHARED_DATA.is_dir() else None)
    t0 = time.perf_counter()
    dataset = load_dataset(path, name=name)
    in_process = time.perf_counter() - t0
    walls, imports, opens = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):
            task = Task(uuid.uuid4().hex, name, path.resolve(), dataset.checksum, RunOptions(),
                        BuildSetting("bruteforce", {}, ({},)), (), (paths.ALGORITHMS_DIR,), Path(tmp))
            log = Path(tmp) / "child.log"
            outcome = run_task_isolated(task, Limits(cpus=(0,)), log)
            assert outcome.ok, outcome.log_tail
            text = log.read_text()
            walls.append(outcome.elapsed_s)
            imports.append(float(re.search(r"imports ([0-9.]+) s", text).group(1)))
            opens.append(float(re.search(r"opened in ([0-9.]+) s", text).group(1)))
    mb = (dataset.train.nbytes + dataset.test.nbytes) / 2**20
    print(f"{name} ({len(dataset.train)}×{dataset.dimension}, {mb:.0f} MiB of vectors): child start to exit "
          f"median {statistics.median(walls) * 1e3:.0f} ms (min {min(walls) * 1e3:.0f}) over {repeats}; of which "
          f"imports {statistics.median(imports) * 1e3:.0f} ms, dataset open+validate "
          f"{statistics.median(opens) * 1e3:.0f} ms (same load in-process: {in_process * 1e3:.0f} ms)")


def sweep(parallelism: int, data_dir: Path) -> tuple[float, object]:
    dataset = load_dataset(resolve("random-xs-20-euclidean", data_dir)[1], name="random-xs-20-euclidean")
    plan = make_plan(dataset.name, dataset.path, dataset.distance, None, "quick", RunOptions(k=10, runs=3),
                     paths.config_dirs(), paths.algorithm_dirs())
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        results = execute(make_executor(ExecutorKind.LOCAL, ResultStore(tmp), parallelism=parallelism), plan, dataset)
        wall = time.perf_counter() - start
        failed = [r.key.label() for r in results if r.status != "ok"]
        if failed:
            print(f"  (parallelism {parallelism}: failed runs {failed})")
        frame = results_frame(tmp)
    return wall, frame[["algorithm", "build_params", "query_params", "p50_ms", "p99_ms", "qps", "build_s"]]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=paths.default_data_dir())
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    print(f"cores: {len(os.sched_getaffinity(0))}, load average before: {os.getloadavg()[0]:.2f}")
    print("\n1. cost of the child process per build setting")
    for name in ("random-xs-20-euclidean", larger_dataset()):
        child_cost(name, args.data_dir, args.repeats)

    print("\n2. sweep of every installed backend's quick preset on random-xs-20-euclidean, k=10, runs=3")
    wall1, alone = sweep(1, args.data_dir)
    wall2, parallel = sweep(2, args.data_dir)
    print(f"  {len(alone)} runs; --parallelism 1: {wall1:.2f} s, --parallelism 2: {wall2:.2f} s, "
          f"speed-up {wall1 / wall2:.2f}×  (load average after: {os.getloadavg()[0]:.2f})")

    print("\n3. per-query latency, measured alone (parallelism 1) vs in parallel (parallelism 2)")
    both = alone.merge(parallel, on=["algorithm", "build_params", "query_params"], suffixes=("_alone", "_par"))
    print(f"  {'algorithm':<14} {'build':<22} {'query':<18} {'p50 alone':>10} {'p50 par':>9} {'ratio':>6} "
          f"{'p99 alone':>10} {'p99 par':>9} {'ratio':>6}")
    for _, r in both.iterrows():
        print(f"  {r['algorithm']:<14} {r['build_params'][:22]:<22} {r['query_params'][:18]:<18} "
              f"{r['p50_ms_alone']:>10.4f} {r['p50_ms_par']:>9.4f} {r['p50_ms_par'] / r['p50_ms_alone']:>6.2f} "
              f"{r['p99_ms_alone']:>10.4f} {r['p99_ms_par']:>9.4f} {r['p99_ms_par'] / r['p99_ms_alone']:>6.2f}")
    ratios = (both["p50_ms_par"] / both["p50_ms_alone"]).to_numpy()
    print(f"  p50 ratio parallel/alone: median {statistics.median(ratios):.2f}, range {ratios.min():.2f}–"
          f"{ratios.max():.2f} over {len(ratios)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
