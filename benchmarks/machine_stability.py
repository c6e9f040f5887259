#!/usr/bin/env python3
"""The machine's own QPS stability: the floor under any harness's QPS coefficient of variation.

One process, pinned to one core, no harness: an hnswlib index (M=16, ef_construction=100) over
random 20-d vectors, and the same 100 single queries (ef=10) run again and again in windows of
``--window`` seconds for ``--seconds`` seconds. It prints the CV of the windows' QPS and of the
best window per block of ``--block`` windows (what a best-of-N measurement would report), and the
CPU steal time the kernel counted meanwhile. If this CV is above a target, no measurement policy
of the harness (calibrated passes, repetitions, warm-up) can meet it on this machine.

    python benchmarks/machine_stability.py [--seconds 30] [--window 0.2] [--block 15] [--core 0]
"""

from __future__ import annotations

import argparse
import os
import time

import hnswlib
import numpy as np


def steal_jiffies() -> int:
    """CPU steal time counted by the kernel since boot (the 8th field of ``cpu`` in /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as f:
        return int(f.readline().split()[8])


def window_qps(index: hnswlib.Index, queries: np.ndarray, window_s: float) -> float:
    """Queries per second over one window of at least ``window_s`` seconds of whole query sets."""
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < window_s:
        for q in queries:
            index.knn_query(q, 10)
        n += len(queries)
    return n / (time.perf_counter() - start)


def cv(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1) / np.mean(values))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--window", type=float, default=0.2, help="seconds per timed window (the harness's pass)")
    p.add_argument("--block", type=int, default=15, help="windows per block; a block reports its best window")
    p.add_argument("--core", type=int, default=0)
    args = p.parse_args()
    os.sched_setaffinity(0, {args.core})
    rng = np.random.default_rng(1)
    data = rng.standard_normal((10_000, 20)).astype(np.float32)
    queries = data[:100] + np.float32(0.01)
    index = hnswlib.Index("l2", 20)
    index.init_index(len(data), M=16, ef_construction=100, random_seed=100)
    index.add_items(data)
    index.set_ef(10)
    steal0, load0, qps = steal_jiffies(), os.getloadavg()[0], []
    end = time.perf_counter() + args.seconds
    while time.perf_counter() < end:
        qps.append(window_qps(index, queries, args.window))
    values = np.asarray(qps)
    blocks = np.asarray([values[i:i + args.block].max() for i in range(0, len(values) - args.block + 1, args.block)])
    print(f"core {args.core}, load average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
          f"steal {steal_jiffies() - steal0} jiffies meanwhile")
    print(f"{len(values)} windows of {args.window:g} s: QPS median {np.median(values):.0f}, min {values.min():.0f}, "
          f"max {values.max():.0f}, CV {cv(values) * 100:.1f} %")
    if len(blocks) > 1:
        print(f"best of {args.block} per block, {len(blocks)} blocks: CV {cv(blocks) * 100:.1f} % "
              f"[{' '.join(f'{b:.0f}' for b in blocks)}]")


if __name__ == "__main__":
    main()
