"""Concurrent clients on one built index: the timed loop and the threads that run it, nothing else.

Each client runs its own stream of single queries: the query set from its own offset, wrapping,
through its own adapter handle (:meth:`annbench.backends.adapter.Adapter.client`). The clients
start together (a barrier), run untimed for the ramp, then for the window; the loop records only the
clock after each answer, into a list allocated before the clock starts (copied into the trace's array
between blocks of queries), and keeps each query position's latest answer. No lock is shared between
clients while they run; the window's start and end are fixed before any client starts querying.
Everything else (which queries fell in the window, latencies, QPS, recall) is derived afterwards
(:mod:`annbench.execute.evaluate`).

A query's latency is the time from the clock read after the previous answer (or the start) to the one
after its own: one clock read per query instead of two, so the loop's own bookkeeping (tens of
nanoseconds) is inside it.

Threads here (:func:`thread_clients`); processes forked after the build in
:mod:`annbench.execute.client_processes`, whose clients run the same :func:`client_loop`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from annbench.backends.adapter import Adapter
from annbench.execute.measure import collector_off
from annbench.plan.grid import ClientKind

#: Most queries answered between two looks at the clock's end: the loop checks the window's end once per
#: block of queries, a block lasting about :data:`BLOCK_NS` (from the single-client latency) and at most this.
MAX_BLOCK = 256
BLOCK_NS = 1_000_000
#: The untimed ramp before each window, with every client already querying: this share of the window, at most
#: :data:`RAMP_MAX_S` seconds.
RAMP_SHARE = 0.25
RAMP_MAX_S = 0.5


@dataclass(frozen=True)
class Window:
    """The timed window of one client level, on the ``perf_counter_ns`` clock (system-wide on Linux)."""

    start_ns: int
    end_ns: int

    @property
    def length_ns(self) -> int:
        return self.end_ns - self.start_ns


def ramp_seconds(window_s: float) -> float:
    """The untimed ramp before a window of ``window_s`` seconds."""
    return min(RAMP_MAX_S, RAMP_SHARE * window_s)


def open_window(window_s: float) -> Window:
    """The window starting one ramp from now."""
    now = time.perf_counter_ns()
    start = now + int(ramp_seconds(window_s) * 1e9)
    return Window(start, start + int(window_s * 1e9))


def block_size(latency_ns: float | None) -> int:
    """Queries per look at the clock's end: about :data:`BLOCK_NS` of them, 1 to :data:`MAX_BLOCK`."""
    if not latency_ns or latency_ns <= 0:
        return 1
    return max(1, min(MAX_BLOCK, int(BLOCK_NS // latency_ns)))


def capacity(window_s: float, latency_ns: float | None, block: int) -> int:
    """Clock readings to allocate before a client starts: twice what the ramp and window take at the
    single-client latency (a client that answers faster grows its buffer between blocks, outside the
    timed calls), at least a few blocks."""
    total_ns = (window_s + ramp_seconds(window_s)) * 1e9
    expected = total_ns / latency_ns if latency_ns and latency_ns > 0 else 0
    return int(min(2 * expected, 2**22)) + 4 * block + 1


@dataclass
class ClientTrace:
    """What one client recorded. ``stamps[0]`` is the clock as it started querying; ``stamps[m]`` the clock
    after its m-th answer, of the query at position ``(offset + m - 1) % nq`` of the query set.
    ``answers[i]``: the latest answer to query ``i`` (None where it asked none)."""

    offset: int
    cores: tuple[int, ...] | None
    stamps: np.ndarray
    answers: list[object]


def client_loop(query: Callable[[np.ndarray, int], object], rows: Sequence[np.ndarray], k: int, offset: int,
                start: Callable[[], Window], block: int, size: int) -> ClientTrace:
    """One client: its buffers allocated (``size`` clock readings, the query set cut into blocks of
    ``block`` queries from ``offset`` on), ``start()`` waited for (every client ready; it gives the window),
    then queries, wrapping, until the first block that ends at or after the window's end. The caller turns
    the garbage collector off around it and pins it to its cores."""
    nq = len(rows)
    order = [(offset + j) % nq for j in range(nq)]
    blocks = [([rows[i] for i in order[s:s + block]], [None] * len(order[s:s + block])) for s in range(0, nq, block)]
    stamps = np.zeros(max(size, block + 1), dtype=np.int64)
    lap = [0] * block  # a block's clock readings, copied into stamps after the block (8 bytes each there)
    clock = time.perf_counter_ns
    end = start().end_ns
    stamps[0] = clock()
    c = 1
    while True:
        for qs, out in blocks:
            n = len(qs)
            if c + n > len(stamps):  # between blocks, never inside the timed calls
                stamps = np.concatenate([stamps, np.zeros(len(stamps), dtype=np.int64)])
            for j, q in enumerate(qs):
                out[j] = query(q, k)
                lap[j] = clock()
            stamps[c:c + n] = lap[:n]
            c += n
            if lap[n - 1] >= end:
                answers: list[object] = [None] * nq
                for i, r in zip(order, (r for _, out in blocks for r in out)):
                    answers[i] = r
                return ClientTrace(offset, None, stamps[:c].copy(), answers)


def offsets(clients: int, nq: int) -> list[int]:
    """Where each client starts in the query set: spread evenly, client 0 at query 0."""
    return [i * nq // clients for i in range(clients)]


def client_cores(clients: int, threads: int, cores: Sequence[int]) -> list[tuple[int, ...]]:
    """The cores each client is pinned to: ``threads`` consecutive ones of ``cores`` each, handed out
    round-robin, so with more clients than ``len(cores) // threads`` some share."""
    width = max(1, min(threads, len(cores)))
    groups = [tuple(cores[s:s + width]) for s in range(0, len(cores) - width + 1, width)] or [tuple(cores)]
    return [groups[i % len(groups)] for i in range(clients)]


def pin_here(cores: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """Pin the calling thread (Linux: affinity is per thread) to ``cores``; the cores it runs on after."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    if cores:
        os.sched_setaffinity(0, cores)
    return tuple(sorted(os.sched_getaffinity(0)))


@dataclass
class LevelMeasurement:
    """One client level: every client's trace, the window they shared, how they ran."""

    clients: int
    kind: ClientKind
    window: Window
    traces: list[ClientTrace]


def thread_clients(handles: Sequence[Adapter], rows: Sequence[np.ndarray], k: int, window_s: float,
                   cores: Sequence[tuple[int, ...] | None], latency_ns: float | None) -> LevelMeasurement:
    """``len(handles)`` clients as threads of this process, client i querying through ``handles[i]``
    pinned to ``cores[i]``. The garbage collector is off from before the threads start until they end.
    An exception in a client ends the others at the barrier or the window's end and is raised here."""
    n = len(handles)
    block = block_size(latency_ns)
    size = capacity(window_s, latency_ns, block)
    starts = offsets(n, len(rows))
    chosen: list[Window] = []
    barrier = threading.Barrier(n, action=lambda: chosen.append(open_window(window_s)))
    traces: list[ClientTrace | None] = [None] * n
    errors: list[BaseException] = []

    def start() -> Window:
        barrier.wait()
        return chosen[0]

    def client(i: int) -> None:
        try:
            pinned = pin_here(cores[i])
            trace = client_loop(handles[i].query, rows, k, starts[i], start, block, size)
            trace.cores = pinned
            traces[i] = trace
        except BaseException as e:  # raised again in the calling thread
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=client, args=(i,), name=f"annbench-client-{i}", daemon=True) for i in range(n)]
    with collector_off():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:
        raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
    return LevelMeasurement(n, ClientKind.THREAD, chosen[0], [t for t in traces if t is not None])
