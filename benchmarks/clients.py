#!/usr/bin/env python3
"""Concurrent clients: every shipped library's total QPS at 1, 2, 4 clients, threads and processes.

Each algorithm with a grid for the dataset's distance (or those of ``--algorithm``) builds the first
build setting of its ``--preset`` grid with the middle query setting, in this process (one library
thread), then runs the harness's own client loops (:func:`annbench.execute.clients.thread_clients`,
:func:`annbench.execute.client_processes.process_clients`) for ``--seconds`` per level, level 1 too, so
every ratio compares the same loop. Printed per library and kind: total QPS per level, its ratio to one
client, p99, fairness (slowest / fastest client), and whether the library serialises its clients
(2 clients give less than 1.35× one client).

Targets (on this 2-core machine): faiss-hnsw and hnswlib, threads, 2 clients >= 1.7× one client; the
harness's loop around a no-op adapter >= 0.95× the QPS of a plain loop of the same no-op calls at every
level (threads, each client a plain ``for`` loop over its rows, the end looked at per block as the harness
does), printed beside a plain loop that also reads the clock after each call, as any loop that keeps
per-query latencies must. The load average is printed before and after.

    python benchmarks/clients.py [--dataset random-s-100-euclidean] [--max-train 20000] [--max-test 1000]
                                 [--algorithm A,B] [--levels 1,2,4] [--seconds 2] [--kinds thread,process]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.core.threads import pin_environment

pin_environment(1)  # before numpy and the libraries load their thread pools

import numpy as np  # noqa: E402

from annbench.backends.adapter import Adapter  # noqa: E402
from annbench.backends.discovery import AdapterUnavailable, load_adapter  # noqa: E402
from annbench.core import paths  # noqa: E402
from annbench.core.threads import limited_threads  # noqa: E402
from annbench.datasets.registry import load  # noqa: E402
from annbench.execute.client_processes import process_clients  # noqa: E402
from annbench.execute.clients import block_size, client_cores, pin_here, thread_clients  # noqa: E402
from annbench.execute.evaluate import client_speed  # noqa: E402
from annbench.execute.isolation import available_cores  # noqa: E402
from annbench.execute.measure import collector_off  # noqa: E402
from annbench.plan.config import all_configs, load_config  # noqa: E402

ANSWER = np.arange(10)
SERIAL = 1.35


class NoOp(Adapter):
    def fit(self, X: np.ndarray) -> None:
        pass

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return ANSWER


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def level(adapter: Adapter, rows: list[np.ndarray], k: int, n: int, kind: str, seconds: float,
          latency_ns: float) -> dict[str, float]:
    """One client level through the harness's loops: its metrics (``qps``, ``p99_ms``, ``client_fairness``)."""
    pins = client_cores(n, 1, available_cores())
    if kind == "process":
        measured = process_clients(adapter, rows, k, seconds, pins, latency_ns)
    else:
        measured = thread_clients([adapter.client() for _ in range(n)], rows, k, seconds, pins, latency_ns)
    return client_speed(measured, len(rows))[0]


def mean_latency_ns(adapter: Adapter, rows: list[np.ndarray], k: int) -> float:
    """A quick single-client latency (what the harness sizes its buffers from): a pass over the rows."""
    start = time.perf_counter_ns()
    for q in rows:
        adapter.query(q, k)
    return (time.perf_counter_ns() - start) / len(rows)


def library(name: str, preset: str, dataset, rows: list[np.ndarray], args: argparse.Namespace) -> list[str]:
    """The table lines of one library."""
    config = load_config(all_configs(paths.config_dirs([]))[name])
    if dataset.distance not in config.metrics or preset not in config.groups:
        return [f"{name:<16} (no {preset} grid for {dataset.distance})"]
    group = config.groups[preset]
    build, queries = group.build_settings()[0], group.query_settings()
    query = queries[len(queries) // 2]
    adapter = load_adapter(name, paths.algorithm_dirs([]))(dataset.distance, threads=1, **build)
    adapter.warm_up(dataset.train)
    adapter.fit(dataset.train)
    adapter.set_query_params(**query)
    mean_latency_ns(adapter, rows[:50], args.k)  # warm
    latency = mean_latency_ns(adapter, rows, args.k)
    lines = []
    for kind in args.kinds:
        cells, ratios = [], {}
        if kind == "process" and not adapter.fork_clients:  # as run.py refuses it
            lines.append(f"{name:<16} {kind:<8} refused: {adapter.fork_clients_reason}")
            continue
        try:
            base = None
            for n in args.levels:
                m = level(adapter, rows, args.k, n, kind, args.seconds, latency)
                base = base or m["qps"]
                ratios[n] = m["qps"] / base
                cells.append(f"{n}: {m['qps']:8.0f} ({ratios[n]:4.2f}x) p99 {m['p99_ms']:7.3f} ms "
                             f"fair {m['client_fairness']:.2f}")
        except Exception as e:
            cells.append(f"fails: {type(e).__name__}: {' '.join(str(e).split())[:160]}")
        two = ratios.get(2)
        verdict = "" if two is None else "serialises" if two < SERIAL else "scales"
        lines.append(f"{name:<16} {kind:<8} {' | '.join(cells)}  {verdict}")
    return lines


def plain_level(query, rows: list[np.ndarray], k: int, n: int, seconds: float, stamped: bool) -> float:
    """``n`` threads each making the same calls in a plain loop for ``seconds`` (the end looked at per block,
    as the harness does; ``stamped``: the clock read after each call too): total calls per second."""
    block = block_size(1.0)  # the harness's block for a no-op: the end looked at once per 256 calls
    blocks = [rows[s:s + block] for s in range(0, len(rows), block)]
    counts = [0] * n
    barrier = threading.Barrier(n)
    clock = time.perf_counter_ns
    window: list[int] = []

    pins = client_cores(n, 1, available_cores())  # pinned as the harness pins its clients

    def client(i: int) -> None:
        pin_here(pins[i])
        barrier.wait()
        if i == 0:
            window.append(clock() + int(seconds * 1e9))
        while not window:
            pass
        end, done = window[0], 0
        while True:
            for qs in blocks:
                if stamped:
                    for q in qs:
                        query(q, k)
                        clock()
                else:
                    for q in qs:
                        query(q, k)
                done += len(qs)
                if clock() >= end:
                    counts[i] = done
                    return

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    start = clock()
    with collector_off():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return sum(counts) / ((clock() - start) * 1e-9)


def noop(args: argparse.Namespace) -> list[str]:
    adapter = NoOp("euclidean")
    rows = list(np.zeros((1000, 8), dtype=np.float32))
    latency = mean_latency_ns(adapter, rows, 10)
    lines = []
    for n in args.levels:
        harness = level(adapter, rows, 10, n, "thread", args.seconds, latency)["qps"]
        plain = plain_level(adapter.query, rows, 10, n, args.seconds, stamped=False)
        stamped = plain_level(adapter.query, rows, 10, n, args.seconds, stamped=True)
        lines.append(f"no-op, {n} client{'s' * (n > 1)}: harness {harness:10.0f} QPS, plain loop {plain:10.0f} "
                     f"(ratio {harness / plain:.3f}, target >= 0.95), plain loop reading the clock per call "
                     f"{stamped:10.0f} (ratio {harness / stamped:.3f})")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="random-s-100-euclidean")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--max-train", type=int, default=20000)
    p.add_argument("--max-test", type=int, default=1000)
    p.add_argument("--algorithm", help="comma-separated algorithms (default: every one with a grid)")
    p.add_argument("--preset", default="quick")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--levels", default="1,2,4")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--kinds", default="thread,process")
    p.add_argument("--no-noop", action="store_true", help="skip the no-op comparison")
    args = p.parse_args()
    args.levels = [int(v) for v in args.levels.split(",")]
    args.kinds = args.kinds.split(",")
    print(f"load average before: {load_average()}  (cores: {len(available_cores())})", flush=True)
    if not args.no_noop:
        for line in noop(args):
            print(line, flush=True)
    dataset = load(args.dataset, args.data_dir or paths.default_data_dir(), max_train=args.max_train,
                   max_test=args.max_test)
    rows = list(dataset.test)
    print(f"dataset {dataset.name}: {len(dataset.train)} train, {len(rows)} queries, k={args.k}, "
          f"{args.seconds:g} s per level", flush=True)
    names = args.algorithm.split(",") if args.algorithm else sorted(all_configs(paths.config_dirs([])))
    with limited_threads(1):
        for name in names:
            try:
                for line in library(name, args.preset, dataset, rows, args):
                    print(line, flush=True)
            except AdapterUnavailable as e:
                print(f"{name:<16} unavailable: {e}", flush=True)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
