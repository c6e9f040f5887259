#!/usr/bin/env python3
"""Filtered search: the cost of the filtered ground truth, and native against post-filtered QPS per band.

1. Ground truth (target: filtered at most 1.5x unfiltered): on fashion-mnist-by-class-784-euclidean's
   arrays, alternating ``--repeats`` times, annbench's unfiltered exact top-100 (``exact_knn``, as a
   dataset build runs it) and the filtered one (``filtered_knn``: the inverted index, each predicate's
   rows gathered or masked). Both use every core. Prints each time and the ratio of the medians.
2. hnswlib's filter callback: the same searches with a callable that lets every point through, and
   without one (a 20,000 x 32 random index, M 16).
3. Per filtering algorithm (the ``filtered`` grid of bruteforce, faiss-flat, faiss-ivf, faiss-hnsw,
   hnswlib), its QPS at recall >= 0.9 in each selectivity band, natively and through the harness's
   post-filter (``--filter-strategy post``), on the first ``--queries`` queries of
   fashion-mnist-by-class and random-filtered-s-32-euclidean (one timed pass per setting).

    python benchmarks/filtered.py [--data-dir DIR] [--source-dir DIR] [--repeats 3] [--queries 400]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NATIVE = ("bruteforce", "faiss-flat", "faiss-ivf", "faiss-hnsw", "hnswlib")
BY_CLASS = "fashion-mnist-by-class-784-euclidean"
RANDOM = "random-filtered-s-32-euclidean"


def ground_truth_ratio(data_dir: Path, source_dir: Path | None, repeats: int) -> None:
    from annbench.datasets.registry import load
    from annbench.quality.filtered import filtered_knn
    from annbench.quality.groundtruth import exact_knn

    ds = load(BY_CLASS, data_dir, source_dir)
    f = ds.filters
    assert f is not None
    plain, filtered = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        exact_knn(ds.train, ds.test, ds.distance, 100)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        ids, _, _ = filtered_knn(ds.train, ds.test, ds.distance, f.predicates, f.index, 100)
        filtered.append(time.perf_counter() - t)
    assert np.array_equal(ids, ds.neighbors), "the filtered ground truth differs from the stored one"
    print(f"ground truth of {BY_CLASS} ({len(ds.train)} x {ds.dimension}, {len(ds.test)} queries, "
          f"{os.cpu_count()} cores, {repeats} alternating repeats)")
    print(f"  unfiltered exact_knn:   {', '.join(f'{v:.2f}' for v in plain)} s")
    print(f"  filtered filtered_knn:  {', '.join(f'{v:.2f}' for v in filtered)} s")
    print(f"  ratio of medians: {statistics.median(filtered) / statistics.median(plain):.2f} (target <= 1.5)")


def hnswlib_callback(repeats: int) -> None:
    import hnswlib

    rng = np.random.default_rng(0)
    x = rng.standard_normal((20_000, 32)).astype(np.float32)
    q = rng.standard_normal((500, 32)).astype(np.float32)
    index = hnswlib.Index(space="l2", dim=32)
    index.init_index(len(x), M=16, ef_construction=100, random_seed=1)
    index.set_num_threads(1)
    index.add_items(x, num_threads=1)
    allow = np.ones(len(x), dtype=np.uint8).tobytes().__getitem__  # as the adapter passes it
    print("hnswlib filter callback (every point allowed) against no filter, 20,000 x 32, M 16, per query:")
    for ef in (40, 160):
        index.set_ef(ef)
        plain, filtered = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            for v in q:
                index.knn_query(v, 10, num_threads=1)
            plain.append((time.perf_counter() - t) / len(q))
            t = time.perf_counter()
            for v in q:
                index.knn_query(v, 10, num_threads=1, filter=allow)
            filtered.append((time.perf_counter() - t) / len(q))
        a, b = statistics.median(plain), statistics.median(filtered)
        print(f"  ef {ef}: {a * 1e6:.0f} us without, {b * 1e6:.0f} us with the callback: {b / a:.2f}x")


def sweep(dataset: str, data_dir: Path, source_dir: Path | None, results: Path, queries: int, strategy: str) -> int:
    from annbench.cli.run import main as run_main

    args = ["--dataset", dataset, "--data-dir", str(data_dir), "--results", str(results), "--algorithm",
            ",".join(NATIVE), "--preset", "filtered", "--filter-strategy", strategy, "--max-test", str(queries),
            "--runs", "1", "--min-pass-time", "0", "--warmup", "0.1", "--no-plot", "-q", "--timeout", "1200"]
    if source_dir:
        args += ["--source-dir", str(source_dir)]
    return run_main(args)


def band_table(dataset: str, data_dir: Path, results: Path) -> None:
    from annbench.analyse.filtered import band_runs, qps_at_recall
    from annbench.analyse.frames import results_frame
    from annbench.analyse.perquery import dataset_file, per_query_frame

    runs = results_frame(results, dataset)
    runs = runs[runs["status"] == "ok"]
    ds = dataset_file(dataset, data_dir, runs)
    table = qps_at_recall(band_runs(runs, per_query_frame(ds, runs)), 0.9)
    table["strategy"] = np.where(table["algorithm"].str.endswith("+post"), "post", "native")
    table["algorithm"] = table["algorithm"].str.removesuffix("+post")
    wide = table.pivot(index=["algorithm", "band_index", "band"], columns="strategy",
                       values="qps").reset_index().drop(columns="band_index")
    print(f"{dataset}, first {len(ds.test)} queries: QPS at recall >= 0.9 per selectivity band (empty: never reached)")
    print(wide.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=Path("datasets"))
    p.add_argument("--source-dir", type=Path, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--queries", type=int, default=400)
    p.add_argument("--skip", default="", help="comma-separated parts to skip: gt, hnswlib, sweeps")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(f"load average before: {os.getloadavg()}")
    if "gt" not in skip:
        ground_truth_ratio(args.data_dir, args.source_dir, args.repeats)
    if "hnswlib" not in skip:
        hnswlib_callback(args.repeats)
    if "sweeps" not in skip:
        with tempfile.TemporaryDirectory(prefix="annbench-filtered-") as tmp:
            results = Path(tmp)
            for dataset in (BY_CLASS, RANDOM):
                for strategy in ("native", "post"):
                    sweep(dataset, args.data_dir, args.source_dir, results, args.queries, strategy)
                band_table(f"{dataset}-test{args.queries}", args.data_dir, results)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
