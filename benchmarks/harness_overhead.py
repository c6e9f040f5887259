#!/usr/bin/env python3
"""Harness overhead per query in single-query mode (target: <= 1 µs).

A no-op adapter is timed through the runner's single-query loop
(``annbench.measure.single_query_passes``) and through a bare Python loop making the
same ``adapter.query(q, k)`` calls; both over the same queries, alternated, best of N.

    python benchmarks/harness_overhead.py [--queries 200000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.adapter import Adapter  # noqa: E402
from annbench.measure import single_query_passes  # noqa: E402

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=200_000)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    queries = np.zeros((args.queries, 8), dtype=np.float32)
    queries.setflags(write=False)
    adapter = NoOp("euclidean")
    harness, bare = [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(adapter, queries, 10))
        m = single_query_passes(adapter, queries, 10, runs=1)
        harness.append(int(m.pass_times_ns[0]))
    n = args.queries
    h, b = min(harness) / n, min(bare) / n
    print(f"queries per pass          {n}")
    print(f"bare loop        ns/query {b:8.1f}  (median {np.median(bare) / n:.1f})")
    print(f"harness loop     ns/query {h:8.1f}  (median {np.median(harness) / n:.1f})")
    print(f"overhead         ns/query {h - b:8.1f}  (target <= 1000)")


if __name__ == "__main__":
    main()
