#!/usr/bin/env python3
"""Concurrent clients: the harness's own cost, thread scaling, and every shipped library at 1, 2, 4 clients.

Three parts (``--parts``, default all three), the load average printed before and after each:

1. ``noop`` -- **the harness's loop around a no-op adapter against a plain loop of the same calls**, at every
   level of ``--levels``, threads and processes (target: >= 0.95x at every one). The harness runs as
   ``run.py --clients`` does: a level-1 single-query pass gives the median latency, from which (and the
   clock's cost) :func:`annbench.execute.clients.sample_every` decides that each client times one query in
   ``every``; :func:`thread_clients` / :func:`process_clients` run the window. The plain loop is the same
   clients without the harness's timing: the same blocks of the same rows from the same offsets, the same
   pinning, the same ramp and window, the clock read once per block to see the window's end, the queries
   of the blocks that end inside the window counted; what it lacks is exactly the harness's own work per
   block (one more clock reading, the timed query's answer and latency stored). ``--rounds`` rounds, the
   two loops back to back in each (which goes first alternates): the ratio harness / plain of each round,
   printed as median [lowest, highest] over the rounds (other work on the machine slows whichever loop it
   falls on; the median of paired ratios is what a noisy machine can give).
2. ``scaling`` -- **2 clients against 1** for each of ``--scaling`` (default faiss-hnsw and hnswlib: target
   >= 1.7x with threads on 2 cores), each in a process of its own: its index built as in part 3, then
   ``--rounds`` rounds, each measuring, back to back, 1 and 2 clients (which goes first alternates; which
   variant goes first rotates) for:
   the harness's threads, a plain loop's threads (as in part 1, every query asked and none timed), the
   plain loop's threads unpinned (the scheduler places them), the harness's processes and the plain
   loop's processes. Per variant: the ratio 2 / 1 of each round as median [lowest, highest] and the
   median single-client QPS. Where the plain loop also stays below 1.7x, the library or the machine is the
   limit, not the harness; where processes scale and threads do not, it is the GIL-held share of a query.
3. ``libraries`` -- **every library** with a grid for the dataset's distance (or those of ``--algorithm``),
   each in a fresh process of its own (killed after ``--library-timeout`` seconds, so one that hangs or
   crashes cannot stop the others): the first build setting of its ``--preset`` grid with the middle query
   setting, built on one thread, then the harness's clients at each of ``--levels``, threads and processes,
   ``--library-rounds`` windows per level (levels interleaved, the median QPS kept). Per library and
   kind: QPS per level, its ratio to one client, p99, fairness (slowest / fastest client), one in how many
   queries were timed (``every``), and whether the library serialises its clients (2 clients give less than
   1.35x one client). Kinds a library refuses (``fork_clients``) say why.

Bounded time: part 1 takes about kinds x levels x rounds x 2 x (seconds + ramp + 0.1 s); part 2 per library
its build plus rounds x 10 x (seconds + ramp + 0.1 s); part 3 at most ``--library-timeout`` per library.

    python benchmarks/clients.py [--parts noop,scaling,libraries] [--dataset random-s-100-euclidean]
        [--max-train 20000] [--max-test 1000] [--levels 1,2,4] [--kinds thread,process] [--seconds 0.5]
        [--rounds 11] [--scaling faiss-hnsw,hnswlib] [--algorithm A,B] [--library-rounds 2]
        [--library-timeout 180]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
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
    offsets,
    open_window,
    pin_here,
    ramp_seconds,
    sample_every,
    thread_clients,
    untimed_blocks,
)
from annbench.execute.evaluate import client_speed  # noqa: E402
from annbench.execute.isolation import available_cores  # noqa: E402
from annbench.execute.measure import collector_off, single_query_passes  # noqa: E402
from annbench.plan.config import all_configs, load_config  # noqa: E402

ANSWER = np.arange(10)
SERIAL = 1.35
SCALING_TARGET = 1.7
NOOP_TARGET = 0.95
PARTS = ("noop", "scaling", "libraries")

Query = Callable[[np.ndarray, int], object]


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


def pins(n: int, pinned: bool = True) -> list[tuple[int, ...] | None]:
    """Each client's cores as the harness pins them (one thread each), or none (the scheduler places them)."""
    return client_cores(n, 1, available_cores()) if pinned else [None] * n


def level(adapter: Adapter, rows: list[np.ndarray], k: int, n: int, kind: str, seconds: float,
          latency_ns: float, every: int, pinned: bool = True) -> dict[str, float]:
    """One client level through the harness's loops: its metrics (``qps``, ``p99_ms``, ``client_fairness``)."""
    run = process_clients if kind == "process" else thread_clients
    return client_speed(run(adapter, rows, k, seconds, pins(n, pinned), latency_ns, every), len(rows))[0]


def plain_loop(query: Query, rows: Sequence[np.ndarray], k: int, offset: int, block: int, every: int,
               start: Callable[[], Window]) -> int:
    """A client without the harness: the harness's blocks (``every`` > 1: a block is the query the harness
    would time, then its untimed run; else ``block`` queries), the clock read after each block only to see
    the window's end; the queries of the blocks that end inside the window (the harness's rule)."""
    nq = len(rows)
    clock = time.perf_counter_ns
    done = 0
    if every > 1:
        untimed = [[rows[i] for i in run] for run in untimed_blocks(nq, offset, every)]
        timed = [rows[(offset + j) % nq] for j in range(nq)]
        t, u, nu = 0, 0, len(untimed)
        window = start()
        s, e = window.start_ns, window.end_ns
        while True:
            query(timed[t], k)
            for q in untimed[u]:
                query(q, k)
            t = t + 1 if t + 1 < nq else 0
            u = u + 1 if u + 1 < nu else 0
            now = clock()
            if now >= s:
                if now > e:
                    return done
                done += every
    order = [(offset + j) % nq for j in range(nq)]
    blocks = [[rows[i] for i in order[s:s + block]] for s in range(0, nq, block)]
    window = start()
    s, e = window.start_ns, window.end_ns
    while True:
        for qs in blocks:
            for q in qs:
                query(q, k)
            now = clock()
            if now >= s:
                if now > e:
                    return done
                done += len(qs)


def threaded(bodies: Sequence[Callable[[Callable[[], Window]], int]], seconds: float) -> tuple[Window, list[int]]:
    """Each body in a thread of its own, started together on one window as the harness's thread clients are
    (a barrier whose last party opens it), the garbage collector off; the window and what each returned."""
    chosen: list[Window] = []
    barrier = threading.Barrier(len(bodies), action=lambda: chosen.append(open_window(seconds)))
    results = [0] * len(bodies)

    def start() -> Window:
        barrier.wait()
        return chosen[0]

    def run(i: int) -> None:
        results[i] = bodies[i](start)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    with collector_off():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return chosen[0], results


def plain(query: Query, rows: list[np.ndarray], k: int, n: int, kind: str, seconds: float, latency_ns: float,
          every: int, pinned: bool = True) -> float:
    """``n`` plain clients (:func:`plain_loop`), threads or forked processes, pinned as the harness pins its
    clients (or not at all), from the harness's offsets: their total QPS in the window."""
    cores, starts, block = pins(n, pinned), offsets(n, len(rows)), block_size(latency_ns)

    def body(i: int) -> Callable[[Callable[[], Window]], int]:
        def run(start: Callable[[], Window]) -> int:
            pin_here(cores[i])
            if kind != "process":  # threads: the collector is off around them all (threaded)
                return plain_loop(query, rows, k, starts[i], block, every, start)
            with collector_off():
                return plain_loop(query, rows, k, starts[i], block, every, start)
        return run

    window, counts = (forked if kind == "process" else threaded)([body(i) for i in range(n)], seconds)
    return sum(counts) / (window.length_ns * 1e-9)


def spread(values: Sequence[float]) -> str:
    """``median [lowest, highest]`` of ratios."""
    return f"{statistics.median(values):.3f} [{min(values):.3f}, {max(values):.3f}]"


def window_cost(seconds: float) -> float:
    """Seconds one measured window takes: the ramp, the window, starting and reaping the clients."""
    return seconds + ramp_seconds(seconds) + 0.1


def noop(args: argparse.Namespace) -> list[str]:
    adapter = NoOp("euclidean")
    rows = list(np.zeros((1000, 8), dtype=np.float32))
    latency, every = sampling(adapter, rows, 10)
    lines = [f"no-op: mean single-client latency {latency:.0f} ns (with one clock reading), the harness times one "
             f"query in {every}; {args.rounds} rounds of {args.seconds:g} s windows, harness and plain loop back "
             f"to back (alternating which first); ratio harness / plain: median [lowest, highest]"]
    for kind in args.kinds:
        for n in args.levels:
            ratios, harness, loops = [], [], []
            for r in range(args.rounds):
                pair = {}
                for which in (("harness", "plain") if r % 2 == 0 else ("plain", "harness")):
                    if which == "harness":
                        pair[which] = level(adapter, rows, 10, n, kind, args.seconds, latency, every)["qps"]
                    else:
                        pair[which] = plain(adapter.query, rows, 10, n, kind, args.seconds, latency, every)
                harness.append(pair["harness"])
                loops.append(pair["plain"])
                ratios.append(pair["harness"] / pair["plain"] if pair["plain"] > 0 else 0.0)
            verdict = "meets" if statistics.median(ratios) >= NOOP_TARGET else "BELOW"
            clients = f"{n} client{'s' * (n > 1)}"
            lines.append(f"no-op {kind:<7} {clients:<9}: harness {statistics.median(harness):11.0f} QPS,"
                         f" plain loop {statistics.median(loops):11.0f} (medians); ratio {spread(ratios)}  "
                         f"target >= {NOOP_TARGET}: {verdict}  (load {load_average()})")
    return lines


def built(name: str, args: argparse.Namespace) -> tuple[Adapter | None, list[np.ndarray], str]:
    """The library's adapter built on the dataset (first build setting of its preset, middle query setting),
    its query rows and what was built; None where it has no grid for the dataset."""
    config = load_config(all_configs(paths.config_dirs([]))[name])
    dataset = load(args.dataset, args.data_dir or paths.default_data_dir(), max_train=args.max_train,
                   max_test=args.max_test)
    rows = list(dataset.test)
    if dataset.distance not in config.metrics or args.preset not in config.groups:
        return None, rows, f"(no {args.preset} grid for {dataset.distance})"
    group = config.groups[args.preset]
    build, queries = group.build_settings()[0], group.query_settings()
    query = queries[len(queries) // 2]
    adapter = load_adapter(name, paths.algorithm_dirs([]))(dataset.distance, threads=1, **build)
    adapter.warm_up(dataset.train)
    adapter.fit(dataset.train)
    adapter.set_query_params(**query)
    return adapter, rows, f"{build} {query} on {len(dataset.train)} x {dataset.train.shape[1]}"


def scaling(name: str, args: argparse.Namespace) -> list[str]:
    """The scaling lines of one library (run in a process of its own): 2 clients / 1 per variant."""
    adapter, rows, what = built(name, args)
    if adapter is None:
        return [f"{name:<20} {what}"]
    latency, every = sampling(adapter, rows, args.k)
    k = args.k
    variants: dict[str, Callable[[int], float]] = {
        "harness threads": lambda n: level(adapter, rows, k, n, "thread", args.seconds, latency, every)["qps"],
        "plain threads": lambda n: plain(adapter.query, rows, k, n, "thread", args.seconds, latency, every),
        "plain threads unpinned": lambda n: plain(adapter.query, rows, k, n, "thread", args.seconds, latency, every,
                                                  pinned=False),
    }
    if "process" in args.kinds and adapter.fork_clients:
        variants["harness processes"] = lambda n: level(adapter, rows, k, n, "process", args.seconds, latency,
                                                        every)["qps"]
        variants["plain processes"] = lambda n: plain(adapter.query, rows, k, n, "process", args.seconds, latency,
                                                      every)
    ratios: dict[str, list[float]] = {v: [] for v in variants}
    single: dict[str, list[float]] = {v: [] for v in variants}
    load_before = load_average()
    for r in range(args.rounds):
        order = list(variants)
        for variant in order[r % len(order):] + order[:r % len(order)]:  # each variant first in turn
            measure = variants[variant]
            qps = {n: measure(n) for n in ((1, 2) if r % 2 == 0 else (2, 1))}
            ratios[variant].append(qps[2] / qps[1] if qps[1] > 0 else 0.0)
            single[variant].append(qps[1])
    lines = [f"{name}: {what}, single-client mean latency {latency / 1e3:.1f} us, every {every}; {args.rounds} "
             f"rounds of {args.seconds:g} s windows, 1 and 2 clients back to back (alternating which first); "
             f"load {load_before} -> {load_average()}"]
    for variant in variants:
        two = statistics.median(ratios[variant])
        verdict = f"target >= {SCALING_TARGET}: {'meets' if two >= SCALING_TARGET else 'BELOW'}"
        lines.append(f"  {variant:<23} 2 clients / 1: {spread(ratios[variant])}  1 client "
                     f"{statistics.median(single[variant]):8.0f} QPS (median)  {verdict}")
    return lines


def library(name: str, args: argparse.Namespace) -> list[str]:
    """The table lines of one library (run in a process of its own)."""
    adapter, rows, what = built(name, args)
    if adapter is None:
        return [f"{name:<20} {what}"]
    latency, every = sampling(adapter, rows, args.k)
    lines = []
    for kind in args.kinds:
        if kind == "process" and not adapter.fork_clients:  # as run.py refuses it
            lines.append(f"{name:<20} {kind:<8} refused: {adapter.fork_clients_reason}")
            continue
        runs: dict[int, list[dict[str, float]]] = {n: [] for n in args.levels}
        failed = ""
        try:
            for r in range(args.library_rounds):  # levels interleaved, so drift falls on every level alike
                for n in (args.levels if r % 2 == 0 else args.levels[::-1]):
                    runs[n].append(level(adapter, rows, args.k, n, kind, args.seconds, latency, every))
        except Exception as e:
            failed = f"fails: {type(e).__name__}: {' '.join(str(e).split())[:160]}"
        qps = {n: statistics.median(m["qps"] for m in ms) for n, ms in runs.items() if ms}
        base = qps.get(args.levels[0], 0.0)
        cells = []
        for n, value in qps.items():
            m = min(runs[n], key=lambda m: abs(m["qps"] - value))  # the median window's other figures
            cells.append(f"{n}: {value:8.0f} ({value / base if base else 0:4.2f}x) p99 {m['p99_ms']:7.3f} ms "
                         f"fair {m['client_fairness']:.2f}")
        cells += [failed] if failed else []
        two = qps.get(2, 0.0) / qps[1] if 1 in qps and 2 in qps else None
        verdict = "" if two is None else "serialises" if two < SERIAL else "scales"
        lines.append(f"{name:<20} {kind:<8} every {every:<4} {' | '.join(cells)}  {verdict} (load {load_average()})")
    return lines


def one_library(args: argparse.Namespace) -> None:
    """The body of a library's own process: its lines on stdout."""
    name = args.one_library
    part = scaling if args.parts == ["scaling"] else library
    try:
        with limited_threads(1):
            lines = part(name, args)
    except AdapterUnavailable as e:
        lines = [f"{name:<20} unavailable: {' '.join(str(e).split())[:160]}"]
    for line in lines:
        print(line, flush=True)


def each_library(names: list[str], part: str, timeout: float, argv: list[str]) -> None:
    """Every library of ``names`` in a process of its own (``part`` of it), at most ``timeout`` seconds each."""
    configs = all_configs(paths.config_dirs([]))
    for name in names:
        if name not in configs:
            print(f"{name:<20} no grid", flush=True)
            continue
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, __file__, *argv, "--parts", part, "--one-library", name],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # its own session: the library's servers and client forks too
            out, err = child.communicate()
            out += f"{name:<20} stopped after {timeout:g} s\n"
        for line in out.splitlines():
            print(line, flush=True)
        if child.returncode not in (0, -signal.SIGKILL):
            tail = " ".join(err.strip().splitlines()[-1:])[:200]
            print(f"{name:<20} its process ended with {child.returncode}: {tail}", flush=True)
        print(f"{'':<20} ({time.monotonic() - started:.0f} s)", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    p.add_argument("--dataset", default="random-s-100-euclidean")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--max-train", type=int, default=20000)
    p.add_argument("--max-test", type=int, default=1000)
    p.add_argument("--algorithm", help="libraries part: comma-separated algorithms (default: every one with a grid)")
    p.add_argument("--scaling", default="faiss-hnsw,hnswlib", help="scaling part: comma-separated algorithms")
    p.add_argument("--preset", default="quick")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--levels", default="1,2,4")
    p.add_argument("--seconds", type=float, default=0.5, help="each window")
    p.add_argument("--kinds", default="thread,process")
    p.add_argument("--rounds", type=int, default=11, help="no-op and scaling: interleaved rounds")
    p.add_argument("--library-rounds", type=int, default=2, help="libraries: windows per level (median kept)")
    p.add_argument("--library-timeout", type=float, default=180.0,
                   help="seconds each library's process may take at most (scaling: plus its rounds)")
    p.add_argument("--one-library", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    args = p.parse_args(argv)
    args.parts = args.parts.split(",")
    unknown = [part for part in args.parts if part not in PARTS]
    if unknown:
        p.error(f"--parts {','.join(unknown)}: valid: {', '.join(PARTS)}")
    args.levels = [int(v) for v in args.levels.split(",")]
    args.kinds = args.kinds.split(",")
    if args.one_library:
        one_library(args)
        return
    print(f"load average before: {load_average()}  (cores: {len(available_cores())})", flush=True)
    started = time.monotonic()
    if "noop" in args.parts:
        for line in noop(args):
            print(line, flush=True)
    data = (f"dataset {args.dataset} (max train {args.max_train}, max test {args.max_test}), k={args.k}, "
            f"{args.seconds:g} s windows")
    if "scaling" in args.parts:
        print(f"scaling: {data}", flush=True)
        each_library(args.scaling.split(","), "scaling",
                     args.library_timeout + args.rounds * 10 * window_cost(args.seconds), argv)
    if "libraries" in args.parts:
        names = args.algorithm.split(",") if args.algorithm else sorted(all_configs(paths.config_dirs([])))
        print(f"libraries: {data}, {args.library_rounds} per level, at most {args.library_timeout:g} s per library",
              flush=True)
        each_library(names, "libraries", args.library_timeout, argv)
    print(f"load average after: {load_average()}  ({time.monotonic() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
