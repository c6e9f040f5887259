#!/usr/bin/env python3
"""Ground-truth time vs faiss ``IndexFlatL2`` (target: <= 1.2x).

Random data of Fashion-MNIST's shape by default (60,000 × 784 train, 10,000 queries,
top-100, euclidean), or a registered dataset's arrays with ``--dataset NAME``. Both sides
use the cores this process may run on (or ``--threads N``; with 1, annbench searches with numpy BLAS:
``--threads 1 --numpy`` shows why); annbench's time includes its exact float64 re-ranking.

    python benchmarks/ground_truth.py [--train 60000] [--queries 10000] [--dim 784] [--threads N] [--numpy]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.core.threads import available_cores
from annbench.quality.groundtruth import exact_knn


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=60_000)
    p.add_argument("--queries", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=784)
    p.add_argument("--dataset", help="use a registered dataset's train/test instead of random data")
    p.add_argument("--data-dir", type=Path, default=Path("datasets"))
    p.add_argument("--numpy", action="store_true", help="also time the numpy-only path")
    p.add_argument("--threads", type=int, help="threads of both sides (default: the cores this process may use)")
    args = p.parse_args()
    import faiss

    if args.dataset:
        from annbench.datasets.registry import load

        d = load(args.dataset, args.data_dir)
        train, test = np.asarray(d.train), np.asarray(d.test)
    else:
        rng = np.random.default_rng(0)
        train = rng.random((args.train, args.dim), dtype=np.float32)
        test = rng.random((args.queries, args.dim), dtype=np.float32)
    threads = args.threads or len(available_cores())
    faiss.omp_set_num_threads(threads)
    print(f"train {train.shape}, queries {test.shape}, top-100 euclidean, {threads} threads")

    t0 = time.perf_counter()
    index = faiss.IndexFlatL2(train.shape[1])
    index.add(train)
    _, faiss_ids = index.search(test, 100)
    t_faiss = time.perf_counter() - t0

    t0 = time.perf_counter()
    ids, _ = exact_knn(train, test, "euclidean", 100, threads=threads)
    t_ours = time.perf_counter() - t0
    print(f"faiss IndexFlatL2        {t_faiss:8.2f} s")
    print(f"annbench exact_knn       {t_ours:8.2f} s   ratio {t_ours / t_faiss:.3f} (target <= 1.2)")
    print(f"ids agreeing with faiss  {np.mean(ids == faiss_ids):.6f} (differences are float ties/rounding)")
    if args.numpy:
        t0 = time.perf_counter()
        exact_knn(train, test, "euclidean", 100, threads=threads, backend="numpy")
        t_np = time.perf_counter() - t0
        print(f"annbench numpy path      {t_np:8.2f} s   ratio {t_np / t_faiss:.3f}")


if __name__ == "__main__":
    main()
