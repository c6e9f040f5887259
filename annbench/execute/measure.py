"""The timed regions, and nothing else: no evaluation, no storage.

Clock: ``time.perf_counter_ns``. Each function warms up (untimed, bounded: see
:func:`warm_up_single`), calibrates how many times one timed pass repeats the query set so that
it lasts at least ``min_pass_s`` (like :func:`timeit.Timer.autorange`), then makes ``runs``
timed passes, keeping every pass time. The neighbours and latencies returned are those of the
fastest pass, so QPS, latencies and recall all describe the same pass: the neighbours are the
answers of its first repetition (one per query), the latencies every timed query of it.

Around every pass (and the warm-up) the garbage collector is run, then disabled until the pass
ends (re-enabled after, also on an exception), as :mod:`timeit` and pyperf do; the buffers a
pass writes into are allocated before its clock starts.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import resource
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

import numpy as np

from annbench.backends.adapter import Adapter
from annbench.core.processes import descendants, status_bytes

#: Upper bound on the queries one timed pass answers (repetitions × nq): bounds the latency
#: buffer (8 bytes each) of an extremely fast setting asked for a long ``min_pass_s``.
MAX_QUERIES_PER_PASS = 2**22


class ResultError(Exception):
    """An adapter returned something that is not a valid answer (the run is an error)."""


@dataclass(frozen=True)
class WarmUp:
    """What the untimed warm-up ran: ``queries`` answered in ``elapsed_ns``; ``per_query_ns`` is
    the time per query of its last call (the whole warm-up in single-query mode), None if none ran."""

    queries: int = 0
    elapsed_ns: int = 0
    per_query_ns: float | None = None


@dataclass
class PassMeasurement:
    """The kept values of one measured query setting."""

    neighbors: np.ndarray            # (nq, k) int64, -1 padded: the first repetition of the fastest pass
    latencies_ns: np.ndarray | None  # (repeats·nq,) int64, every query of the fastest pass; None where not measured
    pass_times_ns: np.ndarray        # (runs,) every timed pass
    best_pass: int
    repeats: int = 1                 # times each timed pass answered the whole query set
    warm_up: WarmUp = WarmUp()

    def answered_per_pass(self) -> int:
        """Queries answered by one timed pass: ``repeats · nq``."""
        return self.repeats * len(self.neighbors)


def _as_ids(result: object, k: int, where: str) -> np.ndarray:
    ids = np.asarray(result)
    if ids.ndim == 2 and ids.shape[0] == 1:  # one query's row of a (1, k) answer
        ids = ids[0]
    if ids.ndim != 1 or len(ids) > k:
        raise ResultError(f"{where} returned shape {ids.shape}, expected at most {k} ids")
    if len(ids) and not np.issubdtype(ids.dtype, np.integer):
        if not np.issubdtype(ids.dtype, np.floating) or not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)):
            raise ResultError(f"{where} returned non-integer ids (dtype {ids.dtype})")
    return ids


def stack_answers(results: list[object], k: int) -> np.ndarray:
    """One answer per query → ``(nq, k)`` int64 ids, ``-1`` padded; :class:`ResultError` for a malformed one."""
    out = np.full((len(results), k), -1, dtype=np.int64)
    for i, r in enumerate(results):
        ids = _as_ids(r, k, f"query {i}")
        out[i, :len(ids)] = ids
    return out


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """``gc.collect()``, then the collector disabled for the block; re-enabled after it (also on an
    exception) if it was enabled before."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _bound_ns(warmup_s: float) -> float:
    return math.inf if math.isinf(warmup_s) else warmup_s * 1e9


def warm_up_single(query: Callable[[np.ndarray, int], object], rows: list[np.ndarray], k: int,
                   warmup_s: float) -> WarmUp:
    """Untimed queries from the first on, until ``warmup_s`` seconds have passed or every query has
    run, whichever comes first, and at least one (``warmup_s`` = 0: none; ``inf``: all)."""
    if warmup_s <= 0 or not rows:
        return WarmUp()
    clock, bound = time.perf_counter_ns, _bound_ns(warmup_s)
    n = 0
    with collector_off():
        start = clock()
        for q in rows:
            query(q, k)
            n += 1
            if clock() - start >= bound:
                break
        elapsed = clock() - start
    return WarmUp(n, elapsed, elapsed / n)


def warm_up_batch(batch_query: Callable[[np.ndarray, int], object], queries: np.ndarray, k: int,
                  warmup_s: float) -> WarmUp:
    """Untimed batch calls: with ``warmup_s = inf`` one over all queries; otherwise over the first
    1, 2, 4, ... queries until ``warmup_s`` seconds have passed or a call covered every query."""
    nq = len(queries)
    if warmup_s <= 0 or nq == 0:
        return WarmUp()
    clock, bound = time.perf_counter_ns, _bound_ns(warmup_s)
    size = nq if math.isinf(bound) else 1
    answered = 0
    with collector_off():
        start = clock()
        while True:
            t0 = clock()
            batch_query(queries[:size], k)
            last = clock() - t0
            answered += size
            if size == nq or clock() - start >= bound:
                break
            size = min(2 * size, nq)
        elapsed = clock() - start
    return WarmUp(answered, elapsed, last / size)


def calibrated_repeats(per_query_ns: float | None, nq: int, min_pass_s: float) -> int:
    """Whole repetitions of the query set one timed pass needs to last ``min_pass_s``:
    ``ceil(min_pass_s / (nq · per_query))``, at least 1 (1 when nothing was measured yet),
    at most :data:`MAX_QUERIES_PER_PASS` queries."""
    if min_pass_s <= 0 or not per_query_ns or per_query_ns <= 0 or nq == 0:
        return 1
    wanted = math.ceil(min_pass_s * 1e9 / (nq * per_query_ns))
    return max(1, min(wanted, MAX_QUERIES_PER_PASS // nq))


def _single_pass(query: Callable[[np.ndarray, int], object], rows: list[np.ndarray], k: int, repeats: int,
                 extend_ns: float) -> tuple[list[object], list[list[int]], int]:
    """One timed pass of ``repeats`` repetitions of every query, extended by whole repetitions
    while shorter than ``extend_ns`` (0: never). Answers of the first repetition, the latencies of
    each repetition, and the pass time."""
    clock = time.perf_counter_ns
    nq = len(rows)
    first: list[object] = [None] * nq
    scratch: list[object] = [None] * nq  # answers of later repetitions: dropped
    laps = [[0] * nq for _ in range(repeats)]
    limit = max(MAX_QUERIES_PER_PASS // max(nq, 1), repeats)
    with collector_off():
        start = clock()
        rep = 0
        while True:
            out, lap = first if rep == 0 else scratch, laps[rep]
            for i, q in enumerate(rows):
                t0 = clock()
                r = query(q, k)
                t1 = clock()
                out[i] = r
                lap[i] = t1 - t0
            rep += 1
            if rep < repeats:
                continue
            if rep >= limit or clock() - start >= extend_ns:
                break
            laps.append([0] * nq)
        elapsed = clock() - start
    return first, laps, elapsed


#: One query setting's measurement in steps (see :func:`interleaved`): the first ``next`` warms up and
#: calibrates, each later one makes one timed pass; the last pass ends it with the measurement.
Steps = Generator[None, None, PassMeasurement]


def run_steps(steps: Steps) -> PassMeasurement:
    """Every step of one setting's measurement, one after another."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def interleaved(settings: list[tuple[Callable[[], None], Callable[[], Steps]]]) -> list[PassMeasurement | Exception]:
    """Several query settings of one index measured round-robin: each ``(select, steps)`` setting is
    selected (its query parameters set) and warmed up and calibrated in turn, then pass 1 of every
    setting, pass 2 of every setting, ... (each selected again before its pass), so that a slow
    stretch of the machine hits all settings alike. The measurements, in the order given; a setting
    whose selection or steps raised an exception gets that exception and no further pass (as measured
    alone, it would have failed there), the others go on."""
    out: list[PassMeasurement | Exception | None] = [None] * len(settings)
    running: list[Steps | None] = []
    for i, (select, steps) in enumerate(settings):
        gen = None
        try:
            select()
            gen = steps()
            next(gen)  # the warm-up and calibration: a measurement has at least one pass to go
        except Exception as e:
            out[i], gen = e, None
        running.append(gen)
    while any(m is None for m in out):
        for i, ((select, _), gen) in enumerate(zip(settings, running)):
            if out[i] is None and gen is not None:
                try:
                    select()
                    next(gen)
                except StopIteration as done:
                    out[i] = done.value
                except Exception as e:
                    out[i] = e
    return [m for m in out if m is not None]


def single_query_passes(adapter: Adapter, queries: np.ndarray, k: int, runs: int, warmup_s: float = 0.5,
                        min_pass_s: float = 0.2) -> PassMeasurement:
    """Each query timed alone; every per-query latency kept (see :func:`single_query_steps`)."""
    return run_steps(single_query_steps(adapter, queries, k, runs, warmup_s, min_pass_s))


def single_query_steps(adapter: Adapter, queries: np.ndarray, k: int, runs: int, warmup_s: float = 0.5,
                       min_pass_s: float = 0.2) -> Steps:
    """Each query timed alone; every per-query latency kept.

    The warm-up (see :func:`warm_up_single`) calibrates the repetitions per pass; the first
    timed pass adds whole repetitions while it is shorter than ``min_pass_s`` (the warm-up ran
    on colder caches, or did not run), and every later pass makes as many.
    """
    rows = list(queries)  # read-only views, made before any timing
    query = adapter.query
    warm = warm_up_single(query, rows, k, warmup_s)
    repeats = calibrated_repeats(warm.per_query_ns, len(rows), min_pass_s)
    pass_times = np.empty(runs, dtype=np.int64)
    best: tuple[list[object], list[list[int]]] | None = None
    best_pass = -1
    for p in range(runs):
        yield  # after the warm-up, and between passes
        answers, laps, elapsed = _single_pass(query, rows, k, repeats, min_pass_s * 1e9 if p == 0 else 0.0)
        repeats = len(laps)
        pass_times[p] = elapsed
        if best is None or elapsed < pass_times[best_pass]:
            best, best_pass = (answers, laps), p
    assert best is not None
    latencies = np.array(best[1], dtype=np.int64).reshape(-1)
    return PassMeasurement(stack_answers(best[0], k), latencies, pass_times, best_pass, repeats, warm)


def batch_passes(adapter: Adapter, queries: np.ndarray, k: int, runs: int, warmup_s: float = 0.5,
                 min_pass_s: float = 0.2) -> PassMeasurement:
    """The whole batch timed as one call (see :func:`batch_steps`)."""
    return run_steps(batch_steps(adapter, queries, k, runs, warmup_s, min_pass_s))


def batch_steps(adapter: Adapter, queries: np.ndarray, k: int, runs: int, warmup_s: float = 0.5,
                min_pass_s: float = 0.2) -> Steps:
    """The whole batch timed as one call; per-query latencies only where the library reports them.

    A pass is ``repeats`` whole batch calls (calibrated as in :func:`single_query_passes`); its
    time is the sum of the calls' times; the answer kept is the first call's.
    """
    clock = time.perf_counter_ns
    batch_query = adapter.batch_query
    warm = warm_up_batch(batch_query, queries, k, warmup_s)
    repeats = calibrated_repeats(warm.per_query_ns, len(queries), min_pass_s)
    pass_times = np.empty(runs, dtype=np.int64)
    best: tuple[object, list[np.ndarray | None]] | None = None
    best_pass = -1
    for p in range(runs):
        yield  # after the warm-up, and between passes
        extend_ns = min_pass_s * 1e9 if p == 0 else 0.0
        first: object = None
        reported: list[np.ndarray | None] = []
        elapsed = rep = 0
        with collector_off():
            while rep < repeats or (elapsed < extend_ns and rep * len(queries) < MAX_QUERIES_PER_PASS):
                start = clock()
                result = batch_query(queries, k)
                elapsed += clock() - start
                if rep == 0:
                    first = result
                reported.append(adapter.batch_latencies_ns())  # between calls: outside the timed calls
                rep += 1
        repeats = rep
        pass_times[p] = elapsed
        if best is None or elapsed < pass_times[best_pass]:
            best, best_pass = (first, reported), p
    assert best is not None
    lat = None if any(r is None for r in best[1]) else np.concatenate([np.asarray(r, dtype=np.int64) for r in best[1]])
    return PassMeasurement(batch_answers(best[0], len(queries), k), lat, pass_times, best_pass, repeats, warm)


def batch_answers(result: object, nq: int, k: int) -> np.ndarray:
    """A ``batch_query`` answer as ``(nq, k)`` int64 ids; :class:`ResultError` for a malformed one."""
    ids = np.asarray(result)
    if ids.shape != (nq, k):
        raise ResultError(f"batch_query returned shape {ids.shape}, expected {(nq, k)}")
    ids = np.stack([_as_ids(row, k, "batch_query") for row in ids]) if ids.dtype.kind != "i" else ids
    return ids.astype(np.int64)


def _reset_high_water_mark(pid: int | str) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@contextlib.contextmanager
def peak_memory_growth() -> Iterator[dict[str, int]]:
    """Peak resident-memory growth (bytes) over the block, in ``result["bytes"]``, of this process
    and of every process below it (a database's server and its workers).

    Linux: each high-water mark is reset through ``/proc/<pid>/clear_refs`` before the block and
    ``VmHWM - VmRSS(before)`` read after it; a process started during the block counts its whole
    ``VmHWM``. The processes' peaks are summed (they may fall at different moments, and shared
    memory counts in each process that touched it), so with servers it is an upper bound.
    Elsewhere: growth of ``ru_maxrss``, which only sees peaks above the process's earlier ones
    (a lower bound) and no other process.
    """
    out: dict[str, int] = {}
    me = os.getpid()
    before = {p: status_bytes(p, "VmRSS") for p in [me, *descendants(me)]}
    reset = before[me] is not None and _reset_high_water_mark(me)
    for p in before:
        if p != me:
            _reset_high_water_mark(p)
    scale = 1 if sys.platform == "darwin" else 1024
    max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    try:
        yield out
    finally:
        if reset:
            out["bytes"] = sum(max(0, (status_bytes(p, "VmHWM") or 0) - (before.get(p) or 0))
                               for p in [me, *descendants(me)])
        else:
            out["bytes"] = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale - max_before)
