#!/usr/bin/env python3
"""Concurrent clients: every shipped library's total QPS at 1, 2, 4 clients, threads and processes.

Two parts, the load average printed before and after:

1. **The harness's loop around a no-op adapter** against a plain loop of the same no-op calls, at every level,
   threads and processes (target: >= 0.95x at every one). The harness runs exactly as ``run.py --clients``
   does: its level-1 single-query pass gives the median latency, :func:`annbench.execute.clients.sample_every`
   decides from it and the clock's cost how many queries each client times (a no-op is far faster than 50
   clock readings, so one in ``every``), then :func:`thread_clients` / :func:`process_clients` run the window.
   The plain loop is what a client would be without the harness: each client (a thread, or a forked process,
   pinned as the harness pins its clients) runs ``for q in block: query(q, k)`` over blocks of as many
   queries as the harness's blocks, the window's end looked at after each block, and counts the queries of
   the blocks that end inside the same kind of window (ramp, then window). Printed beside it: a plain loop
   that reads the clock after each call, as a loop timing every query must (what the ratio was before
   sampling).
2. **Every library** with a grid for the dataset's distance (or those of ``--algorithm``), each in a fresh
   process of its own (killed after ``--library-timeout`` seconds, so one library that hangs or crashes cannot
   stop the others): the first build setting of its ``--preset`` grid with the middle query setting, built on
   one thread, then the harness's client loops for ``--seconds`` per level, level 1 too, so every ratio
   compares the same loop. Per library and kind: total QPS per level, its ratio to one client, p99, fairness
   (slowest / fastest client), one in how many queries were timed (``every``), and whether the library
   serialises its clients (2 clients give less than 1.35x one client). For threads at level 1, the plain loop
   of the same calls too (``plain``: harness / plain-loop QPS, the harness's own overhead on a real library).

Targets (on this 2-core machine): faiss-hnsw and hnswlib, threads, 2 clients >= 1.7x one client; the no-op
ratios >= 0.95 (each loop's best QPS over ``--rounds`` interleaved rounds: other work on the machine only slows
a loop down). Bounded time: the no-op part takes rounds x 3 loops x levels x kinds x (seconds + ramp); each
library at most ``--library-timeout`` (default 90 s).

    python benchmarks/clients.py [--dataset random-s-100-euclidean] [--max-train 20000] [--max-test 1000]
                                 [--algorithm A,B] [--levels 1,2,4] [--seconds 2] [--kinds thread,process]
                                 [--rounds 3] [--library-timeout 90] [--no-noop] [--no-libraries]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
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
from annbench.execute.client_levels import single_latency_ns  # noqa: E402
from annbench.execute.client_processes import forked, process_clients  # noqa: E402
from annbench.execute.clients import (  # noqa: E402
    Window,
    block_size,
    client_cores,
    clock_cost_ns,
    open_window,
    pin_here,
    sample_every,
    thread_clients,
)
from annbench.execute.evaluate import client_speed  # noqa: E402
from annbench.execute.isolation import available_cores  # noqa: E402
from annbench.execute.measure import collector_off, single_query_passes  # noqa: E402
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


def sampling(adapter: Adapter, rows: list[np.ndarray], k: int) -> tuple[float, int]:
    """The mean single-client latency and the harness's ``every``, as a run derives them from its level 1."""
    single = single_query_passes(adapter, np.stack(rows), k, runs=1, warmup_s=0.2, min_pass_s=0.2)
    every = sample_every(single_latency_ns(single, np.median), clock_cost_ns(), len(rows))
    return single_latency_ns(single) or 0.0, every


def level(adapter: Adapter, rows: list[np.ndarray], k: int, n: int, kind: str, seconds: float,
          latency_ns: float, every: int) -> dict[str, float]:
    """One client level through the harness's loops: its metrics (``qps``, ``p99_ms``, ``client_fairness``)."""
    pins = client_cores(n, 1, available_cores())
    run = process_clients if kind == "process" else thread_clients
    return client_speed(run(adapter, rows, k, seconds, pins, latency_ns, every), len(rows))[0]


def plain_client(query, rows: list[np.ndarray], k: int, block: int, window: Window, stamped: bool) -> int:
    """A plain client: the calls in blocks of ``block``, the clock looked at after each block (``stamped``: after
    each call too); the queries of the blocks that end inside ``window``."""
    nq = len(rows)
    blocks = [[rows[(s + j) % nq] for j in range(block)] for s in range(0, nq, block)]
    clock = time.perf_counter_ns
    start, end = window.start_ns, window.end_ns
    done = 0
    while True:
        for qs in blocks:
            if stamped:
                for q in qs:
                    query(q, k)
                    clock()
            else:
                for q in qs:
                    query(q, k)
            now = clock()
            if now >= start:
                if now > end:
                    return done
                done += block


def plain_threads(query, rows: list[np.ndarray], k: int, n: int, seconds: float, block: int,
                  stamped: bool) -> float:
    """``n`` plain clients as threads pinned as the harness pins its clients: total QPS in the window."""
    pins = client_cores(n, 1, available_cores())
    counts = [0] * n
    chosen: list[Window] = []
    barrier = threading.Barrier(n, action=lambda: chosen.append(open_window(seconds)))

    def client(i: int) -> None:
        pin_here(pins[i])
        barrier.wait()
        counts[i] = plain_client(query, rows, k, block, chosen[0], stamped)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    with collector_off():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return sum(counts) / (chosen[0].length_ns * 1e-9)


def plain_processes(query, rows: list[np.ndarray], k: int, n: int, seconds: float, block: int,
                    stamped: bool) -> float:
    """``n`` plain clients as processes forked from this one, pinned as the harness pins its clients, started
    on one window by the harness's own forking (:func:`forked`): total QPS in the window."""
    pins = client_cores(n, 1, available_cores())

    def body(i: int):
        def run(start):
            pin_here(pins[i])
            window = start()
            with collector_off():
                return plain_client(query, rows, k, block, window, stamped)
        return run

    window, counts = forked([body(i) for i in range(n)], seconds)
    return sum(counts) / (window.length_ns * 1e-9)


def plain(query, rows: list[np.ndarray], k: int, n: int, kind: str, seconds: float, block: int,
          stamped: bool = False) -> float:
    run = plain_processes if kind == "process" else plain_threads
    return run(query, rows, k, n, seconds, block, stamped)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b > 0 else "n/a (no query counted)"


def noop(args: argparse.Namespace) -> list[str]:
    adapter = NoOp("euclidean")
    rows = list(np.zeros((1000, 8), dtype=np.float32))
    latency, every = sampling(adapter, rows, 10)
    lines = [f"no-op: mean single-client latency {latency:.0f} ns (with one clock reading), the harness times one "
             f"query in {every}"]
    for kind in args.kinds:
        for n in args.levels:
            best = {"harness": 0.0, "plain": 0.0, "stamped": 0.0}
            samples = 0
            for _ in range(args.rounds):  # interleaved; the best of each: noise from other work only slows down
                m = level(adapter, rows, 10, n, kind, args.seconds, latency, every)
                if m["qps"] > best["harness"]:
                    best["harness"], samples = m["qps"], m["latency_samples"]
                best["plain"] = max(best["plain"], plain(adapter.query, rows, 10, n, kind, args.seconds, every))
                best["stamped"] = max(best["stamped"], plain(adapter.query, rows, 10, n, kind, args.seconds, every,
                                                             stamped=True))
            harness, loop, stamped = best["harness"], best["plain"], best["stamped"]
            lines.append(f"no-op {kind:<7} {n} client{'s' * (n > 1)}: harness {harness:10.0f} QPS, plain loop "
                         f"{loop:10.0f} (ratio {_ratio(harness, loop)}, target >= 0.95), plain loop reading the "
                         f"clock per call {stamped:10.0f} (ratio {_ratio(harness, stamped)}); {samples} latencies "
                         f"timed")
    return lines


def library(name: str, config_path: Path, args: argparse.Namespace) -> list[str]:
    """The table lines of one library (run in a process of its own)."""
    config = load_config(config_path)
    dataset = load(args.dataset, args.data_dir or paths.default_data_dir(), max_train=args.max_train,
                   max_test=args.max_test)
    if dataset.distance not in config.metrics or args.preset not in config.groups:
        return [f"{name:<20} (no {args.preset} grid for {dataset.distance})"]
    group = config.groups[args.preset]
    build, queries = group.build_settings()[0], group.query_settings()
    query = queries[len(queries) // 2]
    rows = list(dataset.test)
    adapter = load_adapter(name, paths.algorithm_dirs([]))(dataset.distance, threads=1, **build)
    adapter.warm_up(dataset.train)
    adapter.fit(dataset.train)
    adapter.set_query_params(**query)
    latency, every = sampling(adapter, rows, args.k)
    lines = []
    for kind in args.kinds:
        cells, ratios = [], {}
        if kind == "process" and not adapter.fork_clients:  # as run.py refuses it
            lines.append(f"{name:<20} {kind:<8} refused: {adapter.fork_clients_reason}")
            continue
        try:
            base = None
            for n in args.levels:
                m = level(adapter, rows, args.k, n, kind, args.seconds, latency, every)
                base = base or m["qps"]
                ratios[n] = m["qps"] / base
                cells.append(f"{n}: {m['qps']:8.0f} ({ratios[n]:4.2f}x) p99 {m['p99_ms']:7.3f} ms "
                             f"fair {m['client_fairness']:.2f}")
                if n == 1 and kind == "thread":
                    loop = plain(adapter.query, rows, args.k, 1, kind, args.seconds, block_size(latency))
                    cells[-1] += f" plain {_ratio(m['qps'], loop)}"
        except Exception as e:
            cells.append(f"fails: {type(e).__name__}: {' '.join(str(e).split())[:160]}")
        two = ratios.get(2)
        verdict = "" if two is None else "serialises" if two < SERIAL else "scales"
        lines.append(f"{name:<20} {kind:<8} every {every:<4} {' | '.join(cells)}  {verdict}")
    return lines


def one_library(args: argparse.Namespace) -> None:
    """The body of a library's own process: its lines on stdout."""
    name = args.one_library
    try:
        with limited_threads(1):
            lines = library(name, all_configs(paths.config_dirs([]))[name], args)
    except AdapterUnavailable as e:
        lines = [f"{name:<20} unavailable: {' '.join(str(e).split())[:160]}"]
    for line in lines:
        print(line, flush=True)


def libraries(args: argparse.Namespace, argv: list[str]) -> None:
    """Every library in a process of its own, at most ``--library-timeout`` seconds each."""
    configs = all_configs(paths.config_dirs([]))
    names = args.algorithm.split(",") if args.algorithm else sorted(configs)
    print(f"dataset {args.dataset} (max train {args.max_train}, max test {args.max_test}), k={args.k}, "
          f"{args.seconds:g} s per level, at most {args.library_timeout:g} s per library", flush=True)
    for name in names:
        if name not in configs:
            print(f"{name:<20} no grid", flush=True)
            continue
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, __file__, *argv, "--one-library", name], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = child.communicate(timeout=args.library_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # its own session: the library's servers and client forks too
            out, err = child.communicate()
            out += f"{name:<20} stopped after {args.library_timeout:g} s (--library-timeout)\n"
        for line in out.splitlines():
            print(line, flush=True)
        if child.returncode not in (0, -signal.SIGKILL):
            tail = " ".join(err.strip().splitlines()[-1:])[:200]
            print(f"{name:<20} its process ended with {child.returncode}: {tail}", flush=True)
        print(f"{'':<20} ({time.monotonic() - started:.0f} s)", flush=True)


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
    p.add_argument("--rounds", type=int, default=3, help="no-op: interleaved rounds, the best QPS of each loop kept")
    p.add_argument("--library-timeout", type=float, default=90.0, help="seconds each library may take at most")
    p.add_argument("--no-noop", action="store_true", help="skip the no-op comparison")
    p.add_argument("--no-libraries", action="store_true", help="only the no-op comparison")
    p.add_argument("--one-library", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    args = p.parse_args(argv)
    args.levels = [int(v) for v in args.levels.split(",")]
    args.kinds = args.kinds.split(",")
    if args.one_library:
        one_library(args)
        return
    print(f"load average before: {load_average()}  (cores: {len(available_cores())})", flush=True)
    if not args.no_noop:
        for line in noop(args):
            print(line, flush=True)
    if not args.no_libraries:
        libraries(args, argv)
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
