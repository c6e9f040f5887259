#!/usr/bin/env python3
"""Harness overhead per query in single-query mode (target: <= 1 µs).

A no-op adapter is timed through the runner's single-query loop
(``annbench.execute.measure.single_query_passes``) and through a bare Python loop making the
same ``adapter.query(q, k)`` calls; both over the same queries, alternated, best of N.
The runner's pass is one repetition of the query set (``--min-pass-time 0``) and, as a sweep
runs it by default, a calibrated pass of at least ``--min-pass-time`` seconds (per query
answered: pass time / (repeats · queries)).

    python benchmarks/harness_overhead.py [--queries 200000] [--repeats 7] [--min-pass-time 0.2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.backends.adapter import Adapter
from annbench.execute.measure import single_query_passes
from annbench.plan.grid import WARMUP_NONE, RunOptions

ANSWER = np.arange(10)


class NoOp(Adapter):
    def fit(self, X: np.ndarray) -> None:
        pass

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return ANSWER


def bare_loop(adapter: Adapter, queries: np.ndarray, k: int) -> int:
    rows = list(queries)
    query = adapter.query
    start = time.perf_counter_ns()
    for q in rows:
        query(q, k)
    return time.perf_counter_ns() - start


def per_query_ns(adapter: Adapter, queries: np.ndarray, min_pass_s: float) -> float:
    m = single_query_passes(adapter, queries, 10, runs=1, warmup_s=WARMUP_NONE, min_pass_s=min_pass_s)
    return int(m.pass_times_ns[0]) / m.answered_per_pass()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=200_000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--min-pass-time", type=float, default=RunOptions().min_pass_time)
    args = p.parse_args()
    queries = np.zeros((args.queries, 8), dtype=np.float32)
    queries.setflags(write=False)
    adapter = NoOp("euclidean")
    n = args.queries
    harness, calibrated, bare = [], [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(adapter, queries, 10) / n)
        harness.append(per_query_ns(adapter, queries, 0.0))
        calibrated.append(per_query_ns(adapter, queries, args.min_pass_time))
    b = min(bare)
    print(f"queries per pass          {n}")
    print(f"bare loop        ns/query {b:8.1f}  (median {np.median(bare):.1f})")
    for name, values in (("harness, 1 rep", harness), (f"harness, >= {args.min_pass_time:g} s", calibrated)):
        print(f"{name:<16} ns/query {min(values):8.1f}  (median {np.median(values):.1f})  "
              f"overhead {min(values) - b:8.1f}  (target <= 1000)")


if __name__ == "__main__":
    main()
