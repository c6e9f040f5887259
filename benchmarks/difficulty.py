#!/usr/bin/env python3
"""Cost of the query-difficulty measures vs the ground truth (target: at most 1x).

On a dataset's own arrays (default fashion-mnist-784-euclidean: 60,000 × 784 train, 10,000
queries), alternating the two computations ``--repeats`` times so both see the same machine
load: annbench's exact top-100 (``exact_knn``, as dataset builds run it) and every difficulty
measure (``difficulty.compute``: the exact mean-distance scan over all train points plus LID and
expansion from the stored neighbours). Both use every core. Prints each time, their ratio, and
the time to read the measures back from the sidecar file.

    python benchmarks/difficulty.py [--dataset NAME] [--data-dir DIR] [--source-dir DIR] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.analyse import difficulty
from annbench.quality.groundtruth import exact_knn


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion-mnist-784-euclidean")
    p.add_argument("--data-dir", type=Path, default=Path("datasets"))
    p.add_argument("--source-dir", type=Path, default=None)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    from annbench.datasets.registry import load

    ds = load(args.dataset, args.data_dir, args.source_dir)
    threads = os.cpu_count() or 1
    print(f"{ds.name}: train {ds.train.shape}, queries {ds.test.shape}, {ds.distance}, {threads} threads")
    gt, dif = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        exact_knn(ds.train, ds.test, ds.distance, 100, threads=threads)
        gt.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        measures = difficulty.compute(ds, threads=threads)
        dif.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        side = difficulty.write_sidecar(Path(tmp) / "x.difficulty.npz", measures)
        t0 = time.perf_counter()
        difficulty.read_sidecar(side)
        t_read = time.perf_counter() - t0
    print(f"ground truth (exact_knn top-100)  {min(gt):8.2f} s   (each: {', '.join(f'{t:.2f}' for t in gt)})")
    print(f"difficulty (6 measures)           {min(dif):8.2f} s   (each: {', '.join(f'{t:.2f}' for t in dif)})")
    pairs = [d / g for d, g in zip(dif, gt)]  # each pair ran back to back, under the same load
    print(f"ratio difficulty / ground truth   {min(dif) / min(gt):8.3f}   (fastest of each; target <= 1)")
    print(f"  per alternated pair             {', '.join(f'{r:.3f}' for r in pairs)}   median {np.median(pairs):.3f}")
    print(f"read back from the sidecar        {t_read * 1e3:8.1f} ms")
    print(f"quartiles:\n{measures.quartiles().to_string(index=False, float_format=lambda v: f'{v:.4g}')}")
    assert all(np.isfinite(v).any() for v in measures.values.values())


if __name__ == "__main__":
    main()
