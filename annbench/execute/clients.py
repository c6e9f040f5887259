"""Concurrent clients on one built index: the timed loop and the threads that run it, nothing else.

Each client runs its own stream of single queries: the query set from its own offset, wrapping,
through its own adapter handle (:meth:`annbench.backends.adapter.Adapter.client`, made before it starts
and closed once its window has ended). The clients start together (a barrier), run untimed for the
ramp, then for the window. No lock is shared between clients while they run; the window's start and end
are fixed before any client starts querying. Everything else (which queries fell in the window, latencies,
QPS, recall) is derived afterwards (:mod:`annbench.execute.evaluate`).

Two loops, chosen per level by :func:`sample_every` (from the single-client latency and what one clock
reading costs here):

- **Every query timed** (``every = 1``, any query slower than 50 clock readings): the loop records only the
  clock after each answer, into a list allocated before the clock starts (copied into the trace's array
  between blocks of queries). Its answers go into a list of one block, each dropped when the next block's
  answer takes its place, while it is still in the cache; each query position's first answer inside the
  window is kept (during the window's first pass), since holding every latest answer until the next pass
  made each query free a cold one (1-2 us a query here with faiss and hnswlib). A query's latency is the
  time from the clock read after the previous answer (or the start) to the one after its own: one clock
  read per query, so the loop's own bookkeeping (tens of nanoseconds) is inside it.
- **One query in ``every`` timed** (queries so fast that a clock reading would be a visible share of them):
  each block is one timed query (the clock read on both sides of it, its answer kept) followed by
  ``every - 1`` queries that are only asked, in a plain ``for`` loop that drops their answers (keeping
  them, even in a list comprehension, costs a no-op call a third more on Python 3.11); the clock before a
  block's timed query is also the previous block's end. The timed query is the next of a second pass over
  the client's queries, so every query is timed in turn, and the answers judged are the timed ones (each
  position's first timed answer in a block ending inside the window).

Threads here (:func:`thread_clients`); processes forked after the build in
:mod:`annbench.execute.client_processes`, whose clients run the same :func:`client_loop`.
"""

from __future__ import annotations

import math
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
#: A client times every query unless one clock reading costs more than this share of a query.
CLOCK_SHARE = 0.02
#: Otherwise it times one query per about this much of its querying (about 10,000 a second per client) ...
SAMPLE_NS = 100_000
#: ... one in at most this many.
MAX_EVERY = 4096


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


def clock_cost_ns(calls: int = 2000, tries: int = 5) -> float:
    """What one ``perf_counter_ns`` reading costs in this process: the least over ``tries`` loops of ``calls``."""
    clock = time.perf_counter_ns
    best = math.inf
    for _ in range(tries):
        t0 = clock()
        for _ in range(calls):
            clock()
        best = min(best, (clock() - t0) / calls)
    return best


def sample_every(latency_ns: float | None, clock_ns: float, nq: int) -> int:
    """One in how many queries a client times: 1 (every one) unless a clock reading (``clock_ns``) costs more
    than :data:`CLOCK_SHARE` of a query; then about one per :data:`SAMPLE_NS` (at most one in
    :data:`MAX_EVERY`), the untimed queries of a block rounded up to the nearest divisor or multiple of the
    ``nq`` queries, so that every block holds as many. ``latency_ns``: the single-client median latency, which
    holds one clock reading."""
    if not latency_ns or latency_ns <= 0 or nq < 1:
        return 1
    query_ns = max(latency_ns - clock_ns, 1.0)
    if clock_ns <= CLOCK_SHARE * query_ns:
        return 1
    untimed = int(max(1, min(MAX_EVERY - 1, SAMPLE_NS // query_ns)))
    if untimed >= nq:
        return 1 + nq * -(-untimed // nq)
    return 1 + next(d for d in range(untimed, nq + 1) if nq % d == 0)


def untimed_blocks(nq: int, offset: int, every: int) -> list[np.ndarray]:
    """The query positions of the untimed part of each block of a client timing one query in ``every``: its
    order (from ``offset``, wrapping), repeated until it holds ``every - 1`` queries, cut into runs of
    ``every - 1`` (all alike for an ``every`` of :func:`sample_every`; else the last is shorter). Block ``c`` of
    the loop runs run ``c % len(runs)`` of them after its timed query, the one at position ``(offset + c) % nq``."""
    size = every - 1
    stream = (offset + np.arange(nq * max(1, -(-size // nq)))) % nq
    return [stream[s:s + size] for s in range(0, len(stream), size)]


def capacity(window_s: float, latency_ns: float | None, block: int) -> int:
    """Clock readings to allocate before a client starts: twice what the ramp and window take at the
    single-client latency (a client that answers faster grows its buffer between blocks, outside the
    timed calls), at least a few blocks."""
    total_ns = (window_s + ramp_seconds(window_s)) * 1e9
    expected = total_ns / latency_ns if latency_ns and latency_ns > 0 else 0
    return int(min(2 * expected, 2**22)) + 4 * block + 1


@dataclass
class ClientTrace:
    """What one client recorded, block by block (a block: the queries between two clock readings that
    count; one query where ``every`` is 1). ``stamps[0]`` is the clock as it started querying; ``stamps[c + 1]``
    the clock at the end of block ``c``. ``every == 1``: block ``c`` is the query at position
    ``(offset + c) % nq`` of the query set, its latency ``stamps[c + 1] - stamps[c]``. ``every > 1``: block
    ``c`` is its timed query, at position ``(offset + c) % nq``, whose latency is ``timed_ns[c]``, then the
    untimed run ``c % len(runs)`` of :func:`untimed_blocks`. ``answers[i]``: its first answer to query ``i``
    inside the window (None where it gave none there; ``every > 1``: its first timed answer there).
    ``own_handle``: it queried through a handle of its own (``client()`` gave another object than the
    adapter: a database adapter's own connection)."""

    offset: int
    cores: tuple[int, ...] | None
    stamps: np.ndarray
    answers: list[object]
    every: int = 1
    timed_ns: np.ndarray | None = None
    own_handle: bool = False


def client_loop(query: Callable[[np.ndarray, int], object], rows: Sequence[np.ndarray], k: int, offset: int,
                start: Callable[[], Window], block: int, size: int, every: int = 1) -> ClientTrace:
    """One client: its buffers allocated (``size`` clock readings, the query set cut into blocks from
    ``offset`` on: ``block`` queries between two looks at the window's end, or the blocks of one query in
    ``every``), ``start()`` waited for (every client ready; it gives the window), then queries, wrapping,
    until the first block that ends at or after the window's end. The caller turns the garbage collector
    off around it and pins it to its cores."""
    if every > 1:
        return _sampled_loop(query, rows, k, offset, start, every, size)
    nq = len(rows)
    order = [(offset + j) % nq for j in range(nq)]
    blocks = [([rows[i] for i in order[s:s + block]], order[s:s + block]) for s in range(0, nq, block)]
    stamps = np.zeros(max(size, block + 1), dtype=np.int64)
    lap = [0] * block  # a block's clock readings, copied into stamps after the block (8 bytes each there)
    got: list[object] = [None] * block  # a block's answers, each dropped by the next block's (still in cache)
    answers: list[object] = [None] * nq
    missing = nq  # positions with no answer kept yet
    clock = time.perf_counter_ns
    window = start()
    opened, end = window.start_ns, window.end_ns
    stamps[0] = clock()
    c = 1
    while True:
        for qs, positions in blocks:
            n = len(qs)
            if c + n > len(stamps):  # between blocks, never inside the timed calls
                stamps = np.concatenate([stamps, np.zeros(len(stamps), dtype=np.int64)])
            for j, q in enumerate(qs):
                got[j] = query(q, k)
                lap[j] = clock()
            stamps[c:c + n] = lap[:n]
            c += n
            last = lap[n - 1]
            if missing and last >= opened:  # answers in the window kept where none are yet (its first pass)
                for j, i in enumerate(positions):
                    if answers[i] is None and opened <= lap[j] <= end:
                        answers[i] = got[j]
                        missing -= 1
            if last >= end:
                return ClientTrace(offset, None, stamps[:c].copy(), answers)


def _sampled_loop(query: Callable[[np.ndarray, int], object], rows: Sequence[np.ndarray], k: int, offset: int,
                  start: Callable[[], Window], every: int, size: int) -> ClientTrace:
    """:func:`client_loop` timing one query in ``every``. Per block the harness's own work is two clock reads,
    three list stores and a few integer steps; the untimed queries run in a plain ``for`` loop, the same
    bytecode as a loop of bare calls, their answers dropped."""
    nq = len(rows)
    untimed = [[rows[i] for i in run] for run in untimed_blocks(nq, offset, every)]
    timed = [rows[(offset + j) % nq] for j in range(nq)]
    kept: list[object] = [None] * nq  # by timed position: its first timed answer in a block ending in the window
    missing = nq
    blocks = max(16, size // every)
    marks, took = [0] * blocks, [0] * blocks
    clock = time.perf_counter_ns
    window = start()
    opened, end = window.start_ns, window.end_ns
    c, t, u, nu = 0, 0, 0, len(untimed)
    a, last = None, -1  # the previous block's timed answer and its timed position
    while True:
        t0 = clock()
        marks[c] = t0  # the end of block c - 1 and the start of block c
        if missing and opened <= t0 <= end and last >= 0 and kept[last] is None:  # block c - 1 ended in the window
            kept[last] = a
            missing -= 1
        if t0 >= end:
            break
        a = query(timed[t], k)
        t1 = clock()
        for q in untimed[u]:
            query(q, k)
        took[c] = t1 - t0
        c += 1
        last = t
        t = t + 1 if t + 1 < nq else 0
        u = u + 1 if u + 1 < nu else 0
        if c == len(marks):  # between blocks, never inside the timed calls
            marks.extend([0] * c)
            took.extend([0] * c)
    answers: list[object] = [None] * nq
    for j, answer in enumerate(kept):
        answers[(offset + j) % nq] = answer
    return ClientTrace(offset, None, np.array(marks[:c + 1], dtype=np.int64), answers, every,
                       np.array(took[:c], dtype=np.int64))


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


def close_handles(adapter: Adapter, handles: Sequence[Adapter]) -> None:
    """Close every handle of ``handles`` that is not ``adapter`` itself (:meth:`Adapter.close_client`), all of
    them even if one fails; the first failure is raised after."""
    failed: list[BaseException] = []
    for handle in handles:
        if handle is not adapter:
            try:
                handle.close_client()
            except Exception as e:  # the others are still closed
                failed.append(e)
    if failed:
        raise failed[0]


def thread_clients(adapter: Adapter, rows: Sequence[np.ndarray], k: int, window_s: float,
                   cores: Sequence[tuple[int, ...] | None], latency_ns: float | None,
                   every: int = 1) -> LevelMeasurement:
    """``len(cores)`` clients as threads of this process, client i querying through its own handle
    (``adapter.client()``, made here in order before any thread starts, closed after every one has ended)
    pinned to ``cores[i]``, timing one query in ``every``. The garbage collector is off from before the
    threads start until they end. An exception in a client ends the others at the barrier or the window's
    end and is raised here."""
    n = len(cores)
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

    def client(i: int, handle: Adapter) -> None:
        try:
            pinned = pin_here(cores[i])
            trace = client_loop(handle.query, rows, k, starts[i], start, block, size, every)
            trace.cores, trace.own_handle = pinned, handle is not adapter
            traces[i] = trace
        except BaseException as e:  # raised again in the calling thread
            errors.append(e)
            barrier.abort()

    handles: list[Adapter] = []
    try:
        for _ in range(n):
            handles.append(adapter.client())
        threads = [threading.Thread(target=client, args=(i, h), name=f"annbench-client-{i}", daemon=True)
                   for i, h in enumerate(handles)]
        with collector_off():
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        close_handles(adapter, handles)
    if errors:
        raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
    return LevelMeasurement(n, ClientKind.THREAD, chosen[0], [t for t in traces if t is not None])
