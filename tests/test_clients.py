"""Concurrent clients on one index: the timed loop, threads and forked processes, the per-level metrics."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from annbench.backends.adapter import Adapter
from annbench.backends.discovery import load_adapter
from annbench.core import paths
from annbench.core.processes import children
from annbench.datasets.registry import load
from annbench.execute import clients as C
from annbench.execute.client_processes import process_clients
from annbench.execute.clients import ClientTrace, LevelMeasurement, Window, client_loop, thread_clients
from annbench.execute.evaluate import client_counts, client_quality, client_speed
from annbench.plan.grid import ClientKind


class Scripted:
    """A query function on a fake clock: each call advances it by ``step`` and answers ``[query index]``."""

    def __init__(self, rows: list[np.ndarray], step: int) -> None:
        self.now, self.step = 0, step
        self.index = {id(r): i for i, r in enumerate(rows)}

    def clock(self) -> int:
        return self.now

    def query(self, q: np.ndarray, k: int) -> list[int]:
        self.now += self.step
        return [self.index[id(q)]]


def test_client_loop_wraps_from_its_offset_until_the_window_ends(monkeypatch) -> None:
    rows = list(np.zeros((10, 2), dtype=np.float32))
    fake = Scripted(rows, step=100)
    monkeypatch.setattr(C.time, "perf_counter_ns", fake.clock)
    trace = client_loop(fake.query, rows, 1, offset=7, start=lambda: Window(1000, 2450), block=4, size=3)
    stamps = trace.stamps
    assert stamps[0] == 0 and np.all(np.diff(stamps) == 100)  # one clock reading per answer, after it
    assert stamps[-1] >= 2450 and stamps[-5] < 2450  # it stops at the first block ending past the window
    assert len(stamps) - 1 == 28  # blocks of 4, 4, 2 cut from the rotated query set: 10 + 10 + 4 + 4
    assert trace.answers == [[i] for i in range(10)]  # each position's latest answer, by query
    level = LevelMeasurement(1, ClientKind.THREAD, Window(1000, 2450), [trace])
    latencies, counts, timed = client_counts(level, 10)
    assert list(latencies[0]) == [100] * 15  # answers at 1000, 1100, ..., 2400
    answered = (7 + np.arange(9, 24)) % 10  # answers 10..24 of the stream: positions 9..23 from offset 7
    assert list(counts[0]) == list(np.bincount(answered, minlength=10)) and list(timed[0]) == list(counts[0])
    speed, every, per_client = client_speed(level, 10)
    assert speed["qps"] == pytest.approx(15 / 1450e-9) and len(every) == 15 and list(per_client) == [speed["qps"]]


def test_offsets_spread_and_cores_handed_out_round_robin() -> None:
    assert C.offsets(4, 10) == [0, 2, 5, 7]
    assert C.client_cores(3, 1, [4, 5]) == [(4,), (5,), (4,)]
    assert C.client_cores(2, 2, [0, 1, 2, 3]) == [(0, 1), (2, 3)]
    assert C.client_cores(2, 4, [0, 1]) == [(0, 1), (0, 1)]  # more threads than cores: all of them each


class Meeting(Adapter):
    """Each thread's first query waits until ``parties`` threads are inside their first query at once: it
    can only be answered when that many clients run concurrently (a structural check, no timing)."""

    def __init__(self, parties: int) -> None:
        super().__init__("euclidean")
        self.barrier = threading.Barrier(parties, timeout=10)
        self.local = threading.local()
        self.met: set[int] = set()

    def fit(self, X: np.ndarray) -> None:
        pass

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        if not getattr(self.local, "met", False):
            self.barrier.wait()
            self.local.met = True
            self.met.add(threading.get_ident())
        return np.arange(k)


def test_thread_clients_run_at_once_and_pinned() -> None:
    adapter = Meeting(3)
    handles = [adapter.client() for _ in range(3)]
    assert all(h is adapter for h in handles)  # the default handle: the adapter itself
    cores = tuple(sorted(os.sched_getaffinity(0)))
    pins = C.client_cores(3, 1, list(cores))
    level = thread_clients(adapter, list(np.zeros((5, 2), dtype=np.float32)), 4, 0.2, pins, None)
    assert level.clients == 3 and level.kind == ClientKind.THREAD
    assert [t.offset for t in level.traces] == [0, 1, 3]
    assert [t.cores for t in level.traces] == pins
    assert all(len(t.stamps) >= 2 for t in level.traces) and len(adapter.met) == 3
    assert os.sched_getaffinity(0) == set(cores)  # the calling thread is left as it was


class Failing(Adapter):
    def fit(self, X: np.ndarray) -> None:
        pass

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        if threading.current_thread().name.endswith("-1"):
            raise ValueError("client 1 broke")
        return np.arange(k)


def test_a_failing_thread_client_raises_in_the_caller_and_the_others_end() -> None:
    adapter = Failing("euclidean")
    start = time.monotonic()
    with pytest.raises(ValueError, match="client 1 broke"):
        thread_clients(adapter, list(np.zeros((5, 2), dtype=np.float32)), 3, 0.2, [None, None], None)
    assert time.monotonic() - start < 5
    assert not [t for t in threading.enumerate() if t.name.startswith("annbench-client")]


@pytest.fixture
def no_new_children() -> Callable[[], bool]:
    """Whether every process the test started has ended and been reaped: this process has no child it did
    not have when the test began (a worker keeps some for its whole life, e.g. multiprocessing's resource
    tracker once an earlier module's Dask cluster started it). An unreaped child is listed until reaped."""
    before = set(children(os.getpid()))
    return lambda: not set(children(os.getpid())) - before


def test_process_clients_answer_as_threads_do_and_leave_no_process(data_dir: Path,
                                                                   no_new_children: Callable[[], bool]) -> None:
    dataset = load("random-xs-20-euclidean", data_dir)
    adapter = load_adapter("bruteforce", paths.algorithm_dirs([]))(dataset.distance)
    adapter.fit(dataset.train)
    rows = list(dataset.test)
    cores = C.client_cores(2, 1, sorted(os.sched_getaffinity(0)))
    by_process = process_clients(adapter, rows, 10, 0.3, cores, None)
    assert by_process.kind == ClientKind.PROCESS and no_new_children()
    by_thread = thread_clients(adapter, rows, 10, 0.3, cores, None)
    single = np.stack([adapter.query(q, 10) for q in rows])
    for level in (by_process, by_thread):
        assert [t.cores for t in level.traces] == cores
        assert level.window.length_ns == 0.3e9
        scores, kept, _, differ = client_quality(dataset, level, 10, single)
        assert scores["recall"] == scores["single_client_recall"] == 1.0 and differ == 0
        answered = sum(client_counts(level, len(rows))[1]) > 0
        assert answered.sum() > 10 and np.array_equal(kept[answered], single[answered])
        assert np.all(kept[~answered] == -1)


class BrokenClient(Adapter):
    def fit(self, X: np.ndarray) -> None:
        pass

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        return np.arange(k)

    def client(self) -> Adapter:
        raise OSError("no connection")


def test_a_failing_process_client_raises_with_its_traceback_and_is_reaped(no_new_children: Callable[[], bool]) -> None:
    with pytest.raises(RuntimeError, match="no connection"):
        process_clients(BrokenClient("euclidean"), list(np.zeros((5, 2), dtype=np.float32)), 3, 0.2,
                        [None, None], None)
    assert no_new_children()


class Wrong(Adapter):
    """Answers the true neighbours, except through a second handle, which answers the farthest ones."""

    def __init__(self, metric: str, truth: np.ndarray | None = None, wrong: bool = False) -> None:
        super().__init__(metric)
        self.truth, self.wrong, self.handles = truth, wrong, 0

    def fit(self, X: np.ndarray) -> None:
        pass

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        row = self.truth[self.index[id(q)]]
        return row[::-1][:k] if self.wrong else row[:k]

    def client(self) -> Adapter:
        self.handles += 1
        handle = Wrong(self.metric, self.truth, wrong=self.handles == 2)
        handle.index = self.index
        return handle


def test_answers_that_differ_under_load_lower_recall_and_are_counted(data_dir: Path) -> None:
    dataset = load("random-xs-20-euclidean", data_dir)
    rows = list(dataset.test)
    adapter = Wrong(dataset.distance, dataset.neighbors)
    adapter.index = {id(r): i for i, r in enumerate(rows)}
    level = thread_clients(adapter, rows, 10, 0.3, [None, None], None)
    single = dataset.neighbors[:, :10]
    scores, kept, _, differ = client_quality(dataset, level, 10, single)
    _, counts, _ = client_counts(level, len(rows))
    assert differ == int((counts[1] > 0).sum()) > 0
    total = counts[0] + counts[1]
    answered = total > 0
    # per query the mean over the answers given (the far ones share no neighbour with the truth), then over queries
    assert scores["recall"] == pytest.approx(np.mean(counts[0][answered] / total[answered]))
    assert scores["single_client_recall"] == 1.0 and scores["queries_answered"] == answered.sum()
    assert np.array_equal(kept[counts[0] > 0], single[counts[0] > 0])  # client 0's answers kept first


def test_capacity_and_block_size_bounds() -> None:
    assert C.block_size(None) == 1 and C.block_size(10.0) == C.MAX_BLOCK and C.block_size(2e6) == 1
    assert C.block_size(100_000) == 10
    assert C.capacity(2.0, 100_000, 10) >= 2 * 2.5e9 / 100_000
    assert C.ramp_seconds(2.0) == C.RAMP_MAX_S and C.ramp_seconds(0.4) == pytest.approx(0.1)
    before = time.perf_counter_ns()
    window = C.open_window(0.4)  # the clients' window: an untimed ramp from now, then 0.4 s
    assert before + 0.1e9 <= window.start_ns <= time.perf_counter_ns() + 0.1e9 and window.length_ns == 0.4e9


def test_a_client_whose_answers_overflow_its_buffer_grows_it_between_blocks(monkeypatch) -> None:
    rows = list(np.zeros((3, 2), dtype=np.float32))
    fake = Scripted(rows, step=10)
    monkeypatch.setattr(C.time, "perf_counter_ns", fake.clock)
    trace = client_loop(fake.query, rows, 1, 0, lambda: Window(0, 1000), block=2, size=1)
    assert len(trace.stamps) - 1 >= 100 and np.all(np.diff(trace.stamps) == 10)


def test_trace_is_what_the_derivations_expect() -> None:
    trace = ClientTrace(0, None, np.array([0, 5, 10], dtype=np.int64), [None])
    level = LevelMeasurement(1, ClientKind.THREAD, Window(6, 10), [trace])
    latencies, counts, _ = client_counts(level, 1)
    assert list(latencies[0]) == [5] and list(counts[0]) == [1]  # only the answer at 10 falls in [6, 10]


class UnitNorm(Adapter):
    """Angular on unit-norm queries: fails on any query that reaches it unprepared; yields the GIL inside, so
    clients interleave inside the preparing wrapper."""

    native_metrics = {"angular": "dot"}
    normalize_for = ("angular",)
    normalize_queries = True

    def fit(self, X: np.ndarray) -> None:
        pass

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        time.sleep(0)
        if abs(float(np.linalg.norm(q)) - 1) > 1e-5:
            raise AssertionError(f"query of norm {np.linalg.norm(q)} reached the adapter unprepared")
        return np.arange(k)


def test_thread_clients_of_one_unit_norm_adapter_all_get_prepared_queries() -> None:
    adapter = UnitNorm("angular")
    rows = list(np.full((20, 4), 3.0, dtype=np.float32))
    level = thread_clients(adapter, rows, 3, 0.2, [None] * 4, None)
    assert all(len(t.stamps) > 2 for t in level.traces)


class DiesInFork(Adapter):
    """Kills the process it queries in, unless it is the one that built it (a library that does not survive
    a fork)."""

    def fit(self, X: np.ndarray) -> None:
        self.owner = os.getpid()

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        if os.getpid() != self.owner:
            os._exit(3)
        return np.arange(k)


def test_a_process_client_that_dies_mid_window_is_named_with_how_it_ended(no_new_children: Callable[[], bool]) -> None:
    adapter = DiesInFork("euclidean")
    adapter.fit(np.zeros((1, 2), dtype=np.float32))
    with pytest.raises(RuntimeError, match=r"client process 0 \(pid \d+\) ended without its trace \(exit code 3\)"):
        process_clients(adapter, list(np.zeros((5, 2), dtype=np.float32)), 3, 0.2, [None, None], None)
    assert no_new_children()


def test_a_client_timing_one_query_in_every_counts_and_answers_every_query(monkeypatch) -> None:
    rows = list(np.zeros((6, 2), dtype=np.float32))
    fake = Scripted(rows, step=10)
    monkeypatch.setattr(C.time, "perf_counter_ns", fake.clock)
    trace = client_loop(fake.query, rows, 1, offset=3, start=lambda: Window(200, 1000), block=99, size=1, every=4)
    assert trace.every == 4 and list(trace.timed_ns) == [10] * (len(trace.stamps) - 1)  # the timed query alone
    assert np.all(np.diff(trace.stamps) == 40)  # a block: its timed query and 3 untimed ones
    assert trace.stamps[-1] >= 1000 > trace.stamps[-2]  # it stops at the first block ending past the window
    assert trace.answers == [[i] for i in range(6)]
    runs = C.untimed_blocks(6, 3, 4)
    assert [list(r) for r in runs] == [[3, 4, 5], [0, 1, 2]]  # the client's order, cut
    level = LevelMeasurement(1, ClientKind.THREAD, Window(200, 1000), [trace])
    latencies, counts, timed = client_counts(level, 6)
    inside = [c for c in range(len(trace.stamps) - 1) if 200 <= trace.stamps[c + 1] <= 1000]
    assert list(latencies[0]) == [10] * len(inside) == [10] * 21  # blocks ending at 200, 240, ..., 1000
    expected = np.zeros(6, dtype=int)
    for c in inside:  # block c: the timed query at (3 + c) % 6, then untimed run c % 2
        expected[(3 + c) % 6] += 1
        np.add.at(expected, runs[c % len(runs)], 1)
    assert list(counts[0]) == list(expected) and expected.sum() == 84
    assert list(timed[0]) == list(np.bincount([(3 + c) % 6 for c in inside], minlength=6))  # the answers kept
    speed, every, _ = client_speed(level, 6)
    assert speed["qps"] == pytest.approx(84 / 800e-9) and speed["latency_samples"] == 21


def test_every_query_is_timed_unless_the_clock_is_a_visible_share_of_it() -> None:
    assert C.sample_every(None, 30, 1000) == 1 and C.sample_every(30 + 50 * 30, 30, 1000) == 1  # 2 %: all timed
    assert C.SAMPLE_NS // (40 * 30) == 83 and C.sample_every(30 + 40 * 30, 30, 1000) == 101  # 83 -> 100 | 1000
    assert C.sample_every(30 + 40 * 30, 30, 997) == 998  # a prime number of queries: one block of them all
    assert C.sample_every(60, 30, 1000) == 4001 and C.sample_every(60, 30, 5000) == 5001  # a multiple of nq
    for nq in (7, 100, 1000, 5000):
        runs = C.untimed_blocks(nq, 2, C.sample_every(60, 30, nq))
        assert len({len(r) for r in runs}) == 1  # every block alike, every query in them equally often
        assert len(set(np.bincount(np.concatenate(runs), minlength=nq))) == 1
    assert 0 < C.clock_cost_ns(calls=100, tries=2) < 10_000


class Connecting(Adapter):
    """An adapter whose ``client()`` opens a "connection": each handle records the process and thread that
    query through it, when it was opened and closed (in a file, so that forks report it too)."""

    def __init__(self, metric: str, log: Path | None = None) -> None:
        super().__init__(metric)
        self.log, self.name = log, "adapter"

    def fit(self, X: np.ndarray) -> None:
        pass

    def _write(self, event: str) -> None:
        with open(self.log, "a") as f:
            f.write(f"{event} {self.name} {os.getpid()} {time.perf_counter_ns()}\n")

    def client(self) -> Adapter:
        handle = type(self)(self.metric, self.log)
        handle.name = f"handle-{os.getpid()}-{id(handle)}"
        handle._write("open")
        return handle

    def close_client(self) -> None:
        self._write("close")

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        if self.name == "adapter":
            raise AssertionError("a client queried through the adapter instead of its own handle")
        if not getattr(self, "seen", None):
            self.seen = threading.get_ident()
            self._write(f"query-{self.seen}")
        return np.arange(k)


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_each_client_queries_through_its_own_handle_opened_before_and_closed_after_the_window(
        kind: str, tmp_path: Path, no_new_children: Callable[[], bool]) -> None:
    log = tmp_path / "events"
    adapter = Connecting("euclidean", log)
    run = process_clients if kind == "process" else thread_clients
    level = run(adapter, list(np.zeros((5, 2), dtype=np.float32)), 3, 0.2, [None] * 3, None)
    assert all(t.own_handle for t in level.traces) and no_new_children()
    events = [line.split() for line in log.read_text().splitlines()]
    opened = {name: int(t) for e, name, _, t in events if e == "open"}
    closed = {name: int(t) for e, name, _, t in events if e == "close"}
    queried = {name: e for e, name, _, _ in events if e.startswith("query-")}
    assert len(opened) == 3 and set(closed) == set(opened) == set(queried)  # one handle per client, each closed
    assert len(set(queried.values())) == 3 or kind == "process"  # threads: each handle its own thread
    assert len({pid for e, _, pid, _ in events if e == "open"}) == (3 if kind == "process" else 1)
    assert max(opened.values()) < level.window.start_ns and min(closed.values()) > level.window.end_ns


class FailsToClose(Connecting):
    def close_client(self) -> None:
        super().close_client()
        raise OSError("connection reset")


def test_every_handle_is_closed_even_when_one_fails_to_close(tmp_path: Path) -> None:
    log = tmp_path / "events"
    with pytest.raises(OSError, match="connection reset"):
        thread_clients(FailsToClose("euclidean", log), list(np.zeros((5, 2), dtype=np.float32)), 3, 0.1,
                       [None] * 2, None)
    assert sum(line.startswith("close") for line in log.read_text().splitlines()) == 2


class Stamped(Scripted):
    """Answers ``[query index, the fake clock as it answered]``."""

    def query(self, q: np.ndarray, k: int) -> list[int]:
        return [*super().query(q, k), self.now]


@pytest.mark.parametrize(("every", "step", "offset", "window", "answered_at"), [
    (1, 100, 7, Window(1000, 2450), lambda j: (j + 1) * 100),  # query j of the stream, answered at its end
    (4, 10, 3, Window(200, 1000), lambda c: 40 * c + 10),  # block c's timed query (the block ends at 40c + 40)
])
def test_each_position_keeps_its_first_answer_inside_the_window(monkeypatch, every, step, offset, window,
                                                                answered_at) -> None:
    nq = 10 if every == 1 else 6
    rows = list(np.zeros((nq, 2), dtype=np.float32))
    fake = Stamped(rows, step)
    monkeypatch.setattr(C.time, "perf_counter_ns", fake.clock)
    trace = client_loop(fake.query, rows, 1, offset, lambda: window, block=4, size=1, every=every)
    level = LevelMeasurement(1, ClientKind.THREAD, window, [trace])
    _, _, timed = client_counts(level, nq)
    assert timed[0].min() > 0  # every position answered (timed) inside the window: each keeps one answer
    ends = trace.stamps[1:]
    for p in range(nq):
        first = next(c for c in range(len(ends)) if (offset + c) % nq == p and window.start_ns <= ends[c])
        assert trace.answers[p] == [p, answered_at(first)], p  # not a later one, nor one of the ramp
