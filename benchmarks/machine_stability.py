#!/usr/bin/env python3
"""The machine's own QPS stability: the floor under any harness's QPS coefficient of variation.

One process, pinned to one core, no harness: an hnswlib index (M=16, ef_construction=100) over
random 20-d vectors, and the same 100 single queries (ef=10) run again and again in windows of
``--window`` seconds for ``--seconds`` seconds. It prints the CV of the windows' QPS and of the
best window per block of ``--block`` windows (what a best-of-N measurement would report), and the
CPU steal time the kernel counted meanwhile. If this CV is above a target, no measurement policy
of the harness (calibrated passes, repetitions, warm-up) can meet it on this machine.

With ``--processes N`` it measures instead the machine's process-to-process noise ``c``: N fresh
interpreters one after another, each loading the same saved index and reporting its median window QPS
over ``--seconds``; ``c`` = the CV of those N medians (what ``benchmarks/qps_stability.py`` sets its
target by: a setting's QPS CV across sweeps at most ``1.2 · c / sqrt(P)`` with ``--processes P``).
``--forked`` adds, alternating with them, N processes forked one after another from one interpreter that
built the index, each searching the inherited copy-on-write pages (what ``run.py --processes`` would measure
if it did not load or rebuild the index in each process), and their CV ``c_forked``.

    python benchmarks/machine_stability.py [--seconds 30] [--window 0.2] [--block 15] [--core 0]
    python benchmarks/machine_stability.py --processes 6 [--seconds 3] [--forked]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
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


def _data() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((10_000, 20)).astype(np.float32)


def _queries() -> np.ndarray:
    """The 100 queries, the same in every process."""
    return _data()[:100] + np.float32(0.01)


def build_index() -> tuple[hnswlib.Index, np.ndarray]:
    """The seeded index and its queries."""
    data = _data()
    index = hnswlib.Index("l2", 20)
    index.init_index(len(data), M=16, ef_construction=100, random_seed=100)
    index.add_items(data)
    index.set_ef(10)
    return index, _queries()


def fresh_process(path: str, seconds: float, window: float, core: int) -> float:
    """Median window QPS of one fresh interpreter loading the index saved at ``path``."""
    done = subprocess.run([sys.executable, __file__, "--load", path, "--seconds", str(seconds), "--window",
                           str(window), "--core", str(core)], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def forked_process(index: hnswlib.Index, seconds: float, window: float) -> float:
    """Median window QPS of one process forked from this one, searching the inherited ``index``."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the fork: never returns
        try:
            os.write(write, f"{median_qps(index, seconds, window):.1f}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    return float(text)


def process_cv(processes: int, seconds: float, window: float, core: int,
               forked: bool = False) -> tuple[float, list[float], float, list[float]]:
    """The plain loop's process-to-process CV ``c``: ``processes`` fresh interpreters, one after another,
    each loading one saved index and printing its median window QPS over ``seconds``; with ``forked`` as many
    forks of this process searching the index it built, alternating with them. (c, the medians, c_forked and
    the forks' medians; NaN and [] without ``forked``)."""
    index, _ = build_index()
    fresh, forks = [], []
    with tempfile.TemporaryDirectory(prefix="annbench-machine-") as tmp:
        path = os.path.join(tmp, "index.bin")
        index.save_index(path)
        for _ in range(processes):
            fresh.append(fresh_process(path, seconds, window, core))
            if forked:
                forks.append(forked_process(index, seconds, window))
    return cv(np.asarray(fresh)), fresh, cv(np.asarray(forks)) if forks else float("nan"), forks


def median_qps(index: hnswlib.Index, seconds: float, window: float) -> float:
    """Median window QPS of ``index`` over ``seconds`` in this process."""
    queries = _queries()
    end, qps = time.perf_counter() + seconds, []
    while time.perf_counter() < end:
        qps.append(window_qps(index, queries, window))
    return float(np.median(qps))


def one_process(path: str, seconds: float, window: float) -> float:
    """Median window QPS of this process over ``seconds``, on the index saved at ``path``."""
    index = hnswlib.Index("l2", 20)
    index.load_index(path)
    index.set_ef(10)
    return median_qps(index, seconds, window)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--window", type=float, default=0.2, help="seconds per timed window (the harness's pass)")
    p.add_argument("--block", type=int, default=15, help="windows per block; a block reports its best window")
    p.add_argument("--core", type=int, default=0)
    p.add_argument("--processes", type=int, default=0, help="measure the process-to-process CV over N processes")
    p.add_argument("--forked", action="store_true", help="with --processes: also N forks searching one index")
    p.add_argument("--load", help=argparse.SUPPRESS)  # one process of --processes: the saved index
    args = p.parse_args()
    os.sched_setaffinity(0, {args.core})
    if args.load:
        print(f"{one_process(args.load, args.seconds, args.window):.1f}")
        return
    if args.processes > 1:
        load0 = os.getloadavg()[0]
        c, medians, c_forked, forks = process_cv(args.processes, args.seconds, args.window, args.core, args.forked)
        print(f"core {args.core}, load average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
        print(f"{args.processes} processes, one saved index, median window QPS each: "
              f"[{' '.join(f'{m:.0f}' for m in medians)}]; process-to-process CV c = {c * 100:.1f} %")
        if args.forked:
            print(f"{args.processes} forks of one process, its index inherited, median window QPS each: "
                  f"[{' '.join(f'{m:.0f}' for m in forks)}]; CV c_forked = {c_forked * 100:.1f} %")
        return
    index, queries = build_index()
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
