#!/usr/bin/env python3
"""Runbooks on a 100k-point dataset: ground-truth cost per search step, and each changing library's figures.

1. Ground truth: every search step's exact top-100 of a runbook (annbench.quality.streaming, not cached) vs one
   static exact top-100 of the full train set (annbench.quality.groundtruth.exact_knn), alternated ``--repeat``
   times, best of each, same threads. Target: the simple runbook's at most 2x.
2. Runs: ``run.py --runbook`` (simple on random-s-100-euclidean, clustered on random-s-100-euclidean-clustered:
   90,000 train rows, 100-d) for every adapter that changes, each grid's demo group, single-query mode; per run
   mean and minimum recall over the search steps, QPS, insert and delete throughput, total time.

    python benchmarks/streaming.py [--data-dir DIR] [--queries 1000] [--skip-runs]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.cli.run import main as run_main
from annbench.datasets.registry import load
from annbench.datasets.step_truth import compute
from annbench.plan.runbook import read_runbook
from annbench.quality.groundtruth import exact_knn

#: (runbook, dataset) pairs measured.
CASES = (("simple", "random-s-100-euclidean"), ("clustered", "random-s-100-euclidean-clustered"))
ALGORITHMS = "bruteforce,faiss-flat,faiss-ivf,faiss-hnsw,hnswlib,usearch"


def ground_truth_ratio(runbook_name: str, dataset_name: str, data_dir: Path, repeat: int) -> None:
    dataset = load(dataset_name, data_dir)
    runbook = read_runbook(runbook_name, dataset.name, len(dataset.train))
    threads = os.cpu_count() or 1
    static, steps = [], []
    for _ in range(repeat):  # alternated: both see the same machine load
        t0 = time.perf_counter()
        exact_knn(dataset.train, dataset.test, dataset.distance, 100, threads=threads)
        static.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        compute(dataset, runbook.digest, runbook.live_sets, threads=threads)
        steps.append(time.perf_counter() - t0)
    n = len(runbook.searches)
    ratio = min(steps) / min(static)
    print(f"{runbook.name}: {len(dataset.train)} x {dataset.dimension} train, {len(dataset.test)} queries, top-100, "
          f"{threads} threads; {n} search steps")
    print(f"  static ground truth of the full set  {min(static):7.2f} s (best of {repeat})")
    print(f"  every search step's ground truth      {min(steps):7.2f} s   ratio {ratio:.2f}"
          f"{' (target <= 2)' if runbook_name == 'simple' else ''}; per search step {ratio / n:.2f}")


def runs(runbook_name: str, dataset_name: str, data_dir: Path, queries: int) -> None:
    import pandas as pd

    from annbench.analyse.frames import results_frame

    with tempfile.TemporaryDirectory(prefix="annbench-streaming-") as results:
        name = f"{dataset_name}-test{queries}"
        code = run_main(["--dataset", dataset_name, "--max-test", str(queries), "--runbook",
                         f"{runbook_name}:{dataset_name}", "--algorithm", ALGORITHMS, "--rebuild-fallback",
                         "--preset", "demo", "--runs", "1", "--data-dir", str(data_dir), "--results", results,
                         "--no-plot", "-q"])
        frame = results_frame(results, name, runbook=f"{runbook_name}:{dataset_name}")
    cols = ["algorithm", "build_params", "query_params", "recall", "recall_min", "qps", "insert_per_s",
            "delete_per_s", "total_s", "rebuild_fallback", "deleted_returned"]
    with pd.option_context("display.width", 250):
        print(f"{runbook_name} on {name} (exit code {code}):")
        print(frame[[c for c in cols if c in frame]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=Path("datasets"))
    p.add_argument("--repeat", type=int, default=2, help="alternated ground-truth timings (best kept)")
    p.add_argument("--queries", type=int, default=1000, help="queries of the runs (the first N of the test set)")
    p.add_argument("--skip-runs", action="store_true", help="only the ground-truth timings")
    args = p.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    for runbook_name, dataset_name in CASES:
        ground_truth_ratio(runbook_name, dataset_name, args.data_dir, args.repeat)
    if not args.skip_runs:
        for runbook_name, dataset_name in CASES:
            runs(runbook_name, dataset_name, args.data_dir, args.queries)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
