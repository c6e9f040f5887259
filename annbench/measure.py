"""The timed regions, and nothing else: no evaluation, no storage.

Clock: ``time.perf_counter_ns``. Each function makes one untimed warm-up pass, then
``runs`` timed passes over all queries, keeping every pass time; the neighbours and
latencies returned are those of the fastest pass, so QPS, latencies and recall all
describe the same pass.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from annbench.adapter import Adapter


class ResultError(Exception):
    """An adapter returned something that is not a valid answer (the run is an error)."""


@dataclass
class PassMeasurement:
    """The kept values of one measured query setting."""

    neighbors: np.ndarray            # (nq, k) int64, -1 padded, from the fastest pass
    latencies_ns: np.ndarray | None  # (nq,) int64 from the fastest pass; None where not measured
    pass_times_ns: np.ndarray        # (runs,) every timed pass
    best_pass: int


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


def _stack(results: list[object], k: int) -> np.ndarray:
    out = np.full((len(results), k), -1, dtype=np.int64)
    for i, r in enumerate(results):
        ids = _as_ids(r, k, f"query {i}")
        out[i, :len(ids)] = ids
    return out


def single_query_passes(adapter: Adapter, queries: np.ndarray, k: int, runs: int) -> PassMeasurement:
    """Each query timed alone; every per-query latency kept."""
    rows = list(queries)  # read-only views, made before any timing
    query = adapter.query
    clock = time.perf_counter_ns
    pass_times = np.empty(runs, dtype=np.int64)
    best: tuple[list[object], list[int]] | None = None
    best_pass = -1
    for p in range(-1, runs):  # pass -1 is the warm-up
        results: list[object] = []
        latencies: list[int] = []
        keep, lap = results.append, latencies.append
        start = clock()
        for q in rows:
            t0 = clock()
            r = query(q, k)
            t1 = clock()
            keep(r)
            lap(t1 - t0)
        elapsed = clock() - start
        if p < 0:
            continue
        pass_times[p] = elapsed
        if best is None or elapsed < pass_times[best_pass]:
            best, best_pass = (results, latencies), p
    assert best is not None
    return PassMeasurement(_stack(best[0], k), np.asarray(best[1], dtype=np.int64), pass_times, best_pass)


def batch_passes(adapter: Adapter, queries: np.ndarray, k: int, runs: int) -> PassMeasurement:
    """The whole batch timed as one call; per-query latencies only where the library reports them."""
    clock = time.perf_counter_ns
    pass_times = np.empty(runs, dtype=np.int64)
    best: tuple[object, np.ndarray | None] | None = None
    best_pass = -1
    for p in range(-1, runs):
        start = clock()
        result = adapter.batch_query(queries, k)
        elapsed = clock() - start
        if p < 0:
            continue
        pass_times[p] = elapsed
        if best is None or elapsed < pass_times[best_pass]:
            best, best_pass = (result, adapter.batch_latencies_ns()), p
    assert best is not None
    ids = np.asarray(best[0])
    if ids.shape != (len(queries), k):
        raise ResultError(f"batch_query returned shape {ids.shape}, expected {(len(queries), k)}")
    ids = np.stack([_as_ids(row, k, "batch_query") for row in ids]) if ids.dtype.kind != "i" else ids
    lat = None if best[1] is None else np.asarray(best[1], dtype=np.int64)
    return PassMeasurement(ids.astype(np.int64), lat, pass_times, best_pass)


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@contextlib.contextmanager
def peak_memory_growth() -> Iterator[dict[str, int]]:
    """Peak resident-memory growth (bytes) over the block, in ``result["bytes"]``.

    Linux: the high-water mark is reset through ``/proc/self/clear_refs`` before the block
    and ``VmHWM - VmRSS(before)`` read after it. Elsewhere: growth of ``ru_maxrss``,
    which only sees peaks above the process's earlier ones (a lower bound).
    """
    out: dict[str, int] = {}
    rss_before = _status_kib("VmRSS")
    reset = False
    if rss_before is not None:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            reset = True
        except OSError:
            pass
    scale = 1 if sys.platform == "darwin" else 1024
    max_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    try:
        yield out
    finally:
        hwm = _status_kib("VmHWM") if reset else None
        if hwm is not None and rss_before is not None:
            out["bytes"] = max(0, hwm - rss_before)
        else:
            out["bytes"] = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale - max_before)
