#!/usr/bin/env python3
"""Wall time of ann-benchmarks' annoy grid: a plain loop against annbench (target: b/a <= 0.25).

The grid is ann-benchmarks' ``ann_benchmarks/algorithms/annoy/config.yml``: n_trees 100/200/400 ×
search_k 100 … 400,000 (36 runs), on ``random-xs-20-euclidean``, one timed pass per setting:

(a) a plain in-process loop: each index built once with the annoy library, each setting's
    queries run once, no harness;
(b) ``run.py`` with its defaults (early stop on);
(c) ``run.py --warmup full --no-early-stop`` (every setting measured after a full warm-up pass;
    where run.py has no ``--warmup`` option its warm-up is always a full pass, and the script
    says so).

Prints the three wall times, b/a and c/a, and whether (b) and (c) have the same Pareto-optimal
settings (recall against QPS). The grid file lives in the script's own temporary configs folder.

    python benchmarks/sweep_wall.py [--dataset random-xs-20-euclidean] [--data-dir DIR] [-k 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from annbench.analyse.frames import pareto_frame, results_frame  # noqa: E402
from annbench.core import paths  # noqa: E402

N_TREES = (100, 200, 400)
SEARCH_K = (100, 200, 400, 1000, 2000, 4000, 10000, 20000, 40000, 100000, 200000, 400000)
GRID = (f"algorithm: annoy\nmetrics: [euclidean, angular]\ngroups:\n  annbench-benchmark:\n"
        f"    build: {{n_trees: {list(N_TREES)}}}\n    query: {{search_k: {list(SEARCH_K)}}}\n")
PRESET = "annbench-benchmark"


def plain_loop(dataset, k: int) -> float:  # an annbench Dataset
    """Seconds to build every index once and run every setting's queries once, no harness."""
    from annoy import AnnoyIndex

    metric = {"euclidean": "euclidean", "angular": "angular"}[dataset.distance]
    train, test = list(dataset.train), list(dataset.test)
    start = time.perf_counter()
    for n_trees in N_TREES:
        index = AnnoyIndex(len(train[0]), metric)
        index.set_seed(1)
        for i, x in enumerate(train):
            index.add_item(i, x)
        index.build(n_trees, n_jobs=1)
        for search_k in SEARCH_K:
            for q in test:
                index.get_nns_by_vector(q, k, search_k)
    return time.perf_counter() - start


def run_py_options() -> str:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--help"], capture_output=True, text=True,
                          check=True).stdout


def annbench_sweep(dataset: str, data_dir: Path, configs: Path, results: Path, k: int, extra: list[str]) -> float:
    """Seconds of one ``run.py`` sweep of the grid into a fresh results folder."""
    cmd = [sys.executable, str(ROOT / "run.py"), "--dataset", dataset, "--algorithm", "annoy", "--preset", PRESET,
           "--runs", "1", "-k", str(k), "--configs-dir", str(configs), "--data-dir", str(data_dir),
           "--results", str(results), "--no-plot", "-q", *extra]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"run.py failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}")
    print(f"  {' '.join(extra) or '(defaults)'}: {wall:.1f} s; {done.stdout.strip().splitlines()[-1]}", flush=True)
    return wall


def front(results: Path, dataset: str, k: int) -> list[tuple[str, str]]:
    frame = results_frame(results, dataset)
    frame = frame[frame["k"] == k]
    return sorted(zip(*(pareto_frame(frame, "recall", "qps")[c] for c in ("build_params", "query_params"))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="random-xs-20-euclidean")
    p.add_argument("--data-dir", type=Path, default=None, help="default: $ANNBENCH_DATA_DIR or ./datasets")
    p.add_argument("-k", type=int, default=10)
    args = p.parse_args()
    from annbench.datasets.registry import load

    data_dir = args.data_dir or paths.default_data_dir()
    dataset = load(args.dataset, data_dir)
    has_warmup = "--warmup" in run_py_options()
    full = ["--warmup", "full", "--no-early-stop"] if has_warmup else ["--no-early-stop"]
    print(f"annoy grid {len(N_TREES)} builds x {len(SEARCH_K)} query settings = {len(N_TREES) * len(SEARCH_K)} runs "
          f"on {dataset.name} ({len(dataset.train)} x {dataset.train.shape[1]}, {len(dataset.test)} queries), "
          f"k={args.k}, --runs 1; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if not has_warmup:
        print("  run.py has no --warmup option here: its warm-up is always one full pass, so (c) runs "
              "--no-early-stop alone", flush=True)
    with tempfile.TemporaryDirectory(prefix="annbench-sweep-wall-") as tmp:
        configs = Path(tmp) / "configs"
        configs.mkdir()
        (configs / "annoy.yml").write_text(GRID)
        a = plain_loop(dataset, args.k)
        print(f"  (a) measured: {a:.1f} s", flush=True)
        b = annbench_sweep(dataset.name, data_dir, configs, Path(tmp) / "b", args.k, [])
        c = annbench_sweep(dataset.name, data_dir, configs, Path(tmp) / "c", args.k, full)
        front_b, front_c = front(Path(tmp) / "b", dataset.name, args.k), front(Path(tmp) / "c", dataset.name, args.k)
    print(f"(a) plain loop                    {a:8.1f} s")
    print(f"(b) annbench defaults             {b:8.1f} s")
    print(f"(c) annbench {' '.join(full):<21}{c:8.1f} s")
    print(f"b/a = {b / a:.3f}   (target <= 0.25: {'met' if b / a <= 0.25 else 'NOT met'})")
    print(f"c/a = {c / a:.3f}")
    same = front_b == front_c
    print(f"Pareto-optimal settings (recall vs QPS) of (b) and (c): {'the same' if same else 'DIFFERENT'} "
          f"({len(front_b)} and {len(front_c)} points)")
    if not same:
        for label, only in (("only (b)", set(front_b) - set(front_c)), ("only (c)", set(front_c) - set(front_b))):
            for build, query in sorted(only):
                print(f"  {label}: {build} {query}")
    print(f"load average at the end {os.getloadavg()[0]:.1f} (the machine is shared: figures are noisy)")


if __name__ == "__main__":
    main()
