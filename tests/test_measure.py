"""The measurement contract: warm-up + R passes, every pass kept, one pass's values stored together."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
from conftest import write_backend

import annbench.execute.measure as measure
from annbench.analyse.processes import process_values
from annbench.backends.adapter import Adapter
from annbench.execute.evaluate import speed
from annbench.execute.measure import ResultError, batch_passes, single_query_passes
from annbench.plan.grid import WARMUP_FULL, WARMUP_NONE, RunOptions


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class PassAware(Adapter):
    """Each pass takes a scripted time per query and answers with its own pass number."""

    def __init__(self, clock: FakeClock, per_query_ns: list[int]) -> None:
        super().__init__("euclidean")
        self.clock, self.per_query_ns, self.calls = clock, per_query_ns, 0

    def fit(self, X: np.ndarray) -> None:
        pass

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        pass_no = self.calls // 4
        self.calls += 1
        self.clock.now += self.per_query_ns[pass_no]
        return np.full(k, pass_no)[:1]


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(measure.time, "perf_counter_ns", c)
    return c


def test_single_query_mode_keeps_every_pass_and_stores_the_fastest(clock: FakeClock) -> None:
    # pass 0 is the warm-up (fastest of all, and never counted); then passes 1..3
    adapter = PassAware(clock, [1, 50, 20, 30])
    m = single_query_passes(adapter, np.zeros((4, 2), dtype=np.float32), k=3, runs=3, warmup_s=WARMUP_FULL,
                            min_pass_s=0)
    assert m.pass_times_ns.tolist() == [200, 80, 120]
    assert m.best_pass == 1
    assert m.latencies_ns.tolist() == [20, 20, 20, 20]
    assert (m.neighbors[:, 0] == 2).all() and (m.neighbors[:, 1:] == -1).all()  # answers of that same pass


def test_batch_mode_times_the_whole_call_and_keeps_no_latencies(clock: FakeClock) -> None:
    class Batch(PassAware):
        def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
            return np.stack([np.resize(self.query(q, k), k) + np.arange(k) for q in Q])

    m = batch_passes(Batch(clock, [5, 7, 3]), np.zeros((4, 2), dtype=np.float32), k=2, runs=2,
                     warmup_s=WARMUP_FULL, min_pass_s=0)
    assert m.pass_times_ns.tolist() == [28, 12]
    assert m.best_pass == 1 and m.latencies_ns is None
    assert m.neighbors.tolist() == [[2, 3]] * 4


def test_wrong_result_shapes_are_errors(clock: FakeClock) -> None:
    class TooMany(PassAware):
        def query(self, q: np.ndarray, k: int) -> np.ndarray:
            return np.arange(k + 1)

    with pytest.raises(ResultError, match="expected at most 3 ids"):
        single_query_passes(TooMany(clock, [1]), np.zeros((2, 2), dtype=np.float32), k=3, runs=1, min_pass_s=0)

    class Floats(PassAware):
        def query(self, q: np.ndarray, k: int) -> np.ndarray:
            return np.array([0.5, np.nan])

    with pytest.raises(ResultError, match="non-integer ids"):
        single_query_passes(Floats(clock, [1]), np.zeros((2, 2), dtype=np.float32), k=3, runs=1, min_pass_s=0)


def test_peak_memory_growth_sees_a_temporary_allocation() -> None:
    with measure.peak_memory_growth() as grown:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        del block
    assert grown["bytes"] >= 48 * 2**20


MS = 1_000_000


class Ticking(Adapter):
    """Every query takes ``per_query_ns`` of the fake clock; records each call (its number) and
    whether the garbage collector was enabled during it; answers with the call number."""

    def __init__(self, clock: FakeClock, per_query_ns: int) -> None:
        super().__init__("euclidean")
        self.clock, self.per_query_ns = clock, per_query_ns
        self.calls = 0
        self.gc_enabled: list[bool] = []

    def fit(self, X: np.ndarray) -> None:
        pass

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        self.gc_enabled.append(gc.isenabled())
        self.clock.now += self.per_query_ns
        self.calls += 1
        return np.array([self.calls - 1])


def _queries(n: int) -> np.ndarray:
    q = np.zeros((n, 2), dtype=np.float32)
    q.setflags(write=False)
    return q


def test_warm_up_stops_after_its_time_bound(clock: FakeClock) -> None:
    adapter = Ticking(clock, 10 * MS)
    m = single_query_passes(adapter, _queries(100), k=1, runs=1, warmup_s=0.05, min_pass_s=0)
    assert m.warm_up.queries == 5 and m.warm_up.elapsed_ns == 50 * MS  # 5 queries of 10 ms reach 0.05 s
    assert adapter.calls == 5 + 100
    # the first timed query is query 0 again: the warm-up ran the first queries, untimed
    assert m.neighbors[:, 0].tolist() == list(range(5, 105))


def test_warm_up_is_at_least_one_query_and_at_most_every_query(clock: FakeClock) -> None:
    adapter = Ticking(clock, 10 * MS)
    assert single_query_passes(adapter, _queries(20), k=1, runs=1, warmup_s=1e-9, min_pass_s=0).warm_up.queries == 1
    adapter = Ticking(clock, 10 * MS)
    m = single_query_passes(adapter, _queries(20), k=1, runs=1, warmup_s=30.0, min_pass_s=0)
    assert m.warm_up.queries == 20 and adapter.calls == 40


def test_warmup_none_makes_no_untimed_call_and_full_one_full_pass(clock: FakeClock) -> None:
    adapter = Ticking(clock, 10 * MS)
    m = single_query_passes(adapter, _queries(30), k=1, runs=2, warmup_s=WARMUP_NONE, min_pass_s=0)
    assert adapter.calls == 2 * 30 and m.warm_up.queries == 0
    assert m.neighbors[:, 0].tolist()[:3] == [0, 1, 2]  # the first call was a timed one
    adapter = Ticking(clock, 10 * MS)  # 0.3 s per pass: a full warm-up goes past the default 0.5 s bound
    m = single_query_passes(adapter, _queries(30), k=1, runs=2, warmup_s=WARMUP_FULL, min_pass_s=0)
    assert m.warm_up.queries == 30 and adapter.calls == 30 + 2 * 30
    adapter = Ticking(clock, 30 * MS)  # the default bound stops a 0.9 s pass after 0.5 s: 17 queries
    m = single_query_passes(adapter, _queries(30), k=1, runs=1, min_pass_s=0)
    assert m.warm_up.queries == 17 and adapter.calls == 17 + 30


def test_short_passes_repeat_the_whole_query_set(clock: FakeClock) -> None:
    adapter = Ticking(clock, 1 * MS)
    nq, runs = 4, 2
    # warm-up over all 4 queries: 4 ms per repetition, so 0.01 s takes 3 repetitions
    m = single_query_passes(adapter, _queries(nq), k=1, runs=runs, warmup_s=WARMUP_FULL, min_pass_s=0.01)
    assert m.repeats == 3
    assert adapter.calls == nq + runs * m.repeats * nq
    assert m.pass_times_ns.tolist() == [12 * MS, 12 * MS]
    assert m.answered_per_pass() == 12 and len(m.latencies_ns) == 12 and (m.latencies_ns == MS).all()
    assert speed(m)["qps"] == pytest.approx(12 / 0.012)  # queries answered / time
    # one stored answer per query: those of the first repetition of the kept (first) pass
    assert m.neighbors.shape == (nq, 1) and m.neighbors[:, 0].tolist() == [4, 5, 6, 7]


def test_calibration_from_a_bounded_warm_up_and_without_one(clock: FakeClock) -> None:
    adapter = Ticking(clock, 1 * MS)
    # warm-up stops after 3 of 10 queries (3 ms): 1 ms per query, 10 ms per repetition, 25 ms → 3
    m = single_query_passes(adapter, _queries(10), k=1, runs=2, warmup_s=0.003, min_pass_s=0.025)
    assert m.warm_up.queries == 3 and m.repeats == 3
    assert adapter.calls == 3 + 2 * 3 * 10
    # no warm-up: the first timed pass repeats until it lasts 25 ms, and the others as often
    adapter = Ticking(clock, 1 * MS)
    m = single_query_passes(adapter, _queries(10), k=1, runs=3, warmup_s=WARMUP_NONE, min_pass_s=0.025)
    assert m.repeats == 3 and adapter.calls == 3 * 3 * 10
    assert m.pass_times_ns.tolist() == [30 * MS] * 3


def test_repeats_come_from_the_warm_up(clock: FakeClock) -> None:
    class WarmFaster(Ticking):
        def query(self, q: np.ndarray, k: int) -> np.ndarray:
            self.per_query_ns = 1 * MS if self.calls < 5 else 2 * MS
            return super().query(q, k)

    # 5 ms of warm-up calibrates 4 repetitions for 20 ms, kept although the first pass of 40 ms
    # would have reached 20 ms after 2
    m = single_query_passes(WarmFaster(clock, 0), _queries(5), k=1, runs=2, warmup_s=WARMUP_FULL,
                            min_pass_s=0.02)
    assert m.repeats == 4 and m.pass_times_ns.tolist() == [40 * MS, 40 * MS]


def test_a_warm_up_on_colder_caches_still_gives_passes_of_the_minimum_time(clock: FakeClock) -> None:
    class ColdFirst(Ticking):
        def query(self, q: np.ndarray, k: int) -> np.ndarray:
            self.per_query_ns = 4 * MS if self.calls < 5 else 1 * MS  # the warm-up's 5 queries are slow
            return super().query(q, k)

    adapter = ColdFirst(clock, 0)
    m = single_query_passes(adapter, _queries(5), k=1, runs=2, warmup_s=WARMUP_FULL, min_pass_s=0.05)
    # calibrated on 20 ms per repetition: 3 repetitions, 15 ms; the first pass goes on to 50 ms
    assert m.repeats == 10 and (m.pass_times_ns >= 50 * MS).all()


def test_batch_passes_repeat_whole_batch_calls(clock: FakeClock) -> None:
    class Batch(Ticking):
        def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
            self.batch_calls = getattr(self, "batch_calls", 0) + 1
            return np.stack([np.resize(self.query(q, k), k) for q in Q])

    adapter = Batch(clock, 1 * MS)
    m = batch_passes(adapter, _queries(4), k=1, runs=2, warmup_s=WARMUP_FULL, min_pass_s=0.01)
    assert m.repeats == 3 and adapter.batch_calls == 1 + 2 * 3
    assert m.pass_times_ns.tolist() == [12 * MS, 12 * MS] and m.latencies_ns is None
    assert m.neighbors[:, 0].tolist() == [4, 5, 6, 7]  # the first call of the kept pass
    assert speed(m)["qps"] == pytest.approx(12 / 0.012)
    # a bounded warm-up calls on the first 1, 2, 4, ... queries until the bound
    adapter = Batch(clock, 1 * MS)
    m = batch_passes(adapter, _queries(100), k=1, runs=1, warmup_s=0.005, min_pass_s=0)
    assert m.warm_up.queries == 1 + 2 + 4 and adapter.calls == 7 + 100
    adapter = Batch(clock, 1 * MS)
    batch_passes(adapter, _queries(100), k=1, runs=1, warmup_s=WARMUP_NONE, min_pass_s=0)
    assert adapter.batch_calls == 1


def test_collector_is_off_in_the_timed_passes_and_back_on_after(clock: FakeClock) -> None:
    assert gc.isenabled()
    adapter = Ticking(clock, 1 * MS)
    single_query_passes(adapter, _queries(4), k=1, runs=2, warmup_s=WARMUP_FULL, min_pass_s=0.01)
    assert adapter.gc_enabled and not any(adapter.gc_enabled)
    assert gc.isenabled()

    class Fails(Ticking):
        def query(self, q: np.ndarray, k: int) -> np.ndarray:
            if self.calls == 6:
                raise RuntimeError("library error")
            return super().query(q, k)

    with pytest.raises(RuntimeError):
        single_query_passes(Fails(clock, 1 * MS), _queries(4), k=1, runs=2, warmup_s=WARMUP_FULL, min_pass_s=0)
    assert gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        single_query_passes(Ticking(clock, 1 * MS), _queries(4), k=1, runs=1, min_pass_s=0)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_pass_collects_garbage_before_it_starts(clock: FakeClock, monkeypatch) -> None:
    events: list[str] = []
    monkeypatch.setattr(measure.gc, "collect", lambda *a: events.append("collect") or 0)

    class Logged(Ticking):
        def query(self, q: np.ndarray, k: int) -> np.ndarray:
            events.append("query")
            return super().query(q, k)

    single_query_passes(Logged(clock, 1 * MS), _queries(2), k=1, runs=2, warmup_s=WARMUP_FULL, min_pass_s=0)
    assert events == ["collect", "query", "query"] * 3  # warm-up, then each of the 2 passes


RECORDING_ADAPTER = '''
import os, signal
import numpy as np
from annbench.backends.adapter import Adapter


class Recording(Adapter):
    calls = []  # the order of calls, read by the test

    def fit(self, X):
        Recording.calls.append("fit")

    def set_query_params(self, width: int = 1):
        Recording.calls.append(f"set_query_params({width})")
        self.width = width

    def query(self, q, k):
        if self.width == 99:
            raise SystemExit("the child dies here")
        if self.width == 98:
            os.kill(os.getpid(), signal.SIGSEGV)
        if self.width == 97:
            raise ValueError("query exploded on purpose")
        if not Recording.calls[-1].startswith("query"):
            Recording.calls.append(f"query({self.width})")
        return np.arange(k)

    def index_size_bytes(self):
        Recording.calls.append("index_size_bytes")
        if self.width == 7:
            raise OSError("disk full")
        return 1234
'''


def _recording_build(tmp_path: Path, data_dir: Path, widths: list[int], processes: int | None = None,
                     early_stop: bool = True):
    from annbench.backends.discovery import load_adapter
    from annbench.datasets.registry import load
    from annbench.plan.grid import BuildSetting, RunOptions
    from annbench.plan.pending import run_keys
    from annbench.plan.task import Task

    algos = tmp_path / "algorithms"
    algos.mkdir(parents=True, exist_ok=True)
    write_backend(algos, "recording", RECORDING_ADAPTER)
    dataset = load("random-xs-20-euclidean", data_dir)
    options = RunOptions(k=5, runs=1, warmup=WARMUP_NONE, min_pass_time=0, early_stop=early_stop,
                         processes=RunOptions().processes if processes is None else processes)
    setting = BuildSetting("recording", {}, tuple({"width": w} for w in widths))
    keys = run_keys(dataset.name, options, setting)
    task = Task("t", dataset.name, dataset.path, dataset.checksum, options, setting, tuple(keys), (algos,),
                tmp_path / "results")
    cls = load_adapter("recording", [algos])
    cls.calls.clear()
    return task, dataset, keys, cls


@pytest.mark.parametrize("processes", [1, 3])
def test_index_size_is_measured_after_the_last_query_setting(processes: int, tmp_path: Path, data_dir: Path) -> None:
    from annbench.execute.child import run_build_setting
    from annbench.store.folder import ResultStore, read_attrs

    task, dataset, keys, cls = _recording_build(tmp_path, data_dir, [1, 2], processes)
    store = ResultStore(tmp_path / "results")
    results = run_build_setting(task, dataset, store)
    # the calls in the build's process: with several measuring processes the queries ran in them, and had ended
    queried = ["query(1)", "set_query_params(2)", "query(2)"] if processes == 1 else ["set_query_params(2)"]
    assert cls.calls == ["fit", "set_query_params(1)", *queried, "index_size_bytes"]
    assert [r.status for r in results] == ["ok", "ok"]
    for key in keys:  # every stored run of the build carries the size, rewritten after it was known
        attrs = read_attrs(store.path_for(key))
        assert attrs["index_bytes"] == 1234 and attrs["index_bytes_status"] == "measured"
        assert attrs["warmup"] == "none" and attrs["min_pass_time"] == 0 and attrs["repeats"] == 1


def test_index_size_failure_keeps_the_runs_and_a_dead_child_leaves_them_pending(tmp_path: Path,
                                                                                data_dir: Path) -> None:
    from annbench.execute.child import run_build_setting
    from annbench.store.folder import ResultStore, read_attrs

    task, dataset, keys, cls = _recording_build(tmp_path, data_dir, [1, 7])
    store = ResultStore(tmp_path / "results")
    run_build_setting(task, dataset, store)
    for key in keys:
        attrs = read_attrs(store.path_for(key))
        assert attrs["status"] == "ok" and attrs["index_bytes"] == -1
        assert attrs["index_bytes_status"] == "failed" and "disk full" in attrs["index_bytes_error"]

    task, dataset, keys, cls = _recording_build(tmp_path / "b", data_dir, [3, 99])
    store = ResultStore(tmp_path / "b" / "results")
    with pytest.raises(SystemExit):
        run_build_setting(task, dataset, store)
    finished = read_attrs(store.path_for(keys[0]))  # stored before the child died, size unknown
    assert finished["status"] == "ok" and finished["index_bytes"] == -1 and finished["index_bytes_status"] == "pending"
    assert not store.path_for(keys[1]).exists()
    assert "index_size_bytes" not in cls.calls


@pytest.mark.parametrize(("processes", "early_stop"), [(1, True), (3, True), (3, False)])
def test_a_query_that_raises_fails_its_setting_alone(processes: int, early_stop: bool, tmp_path: Path,
                                                     data_dir: Path) -> None:
    """With early stop the first measuring process meets the error in its untimed answer pass, without it in the
    setting's passes."""
    from annbench.execute.child import run_build_setting
    from annbench.store.folder import ResultStore

    task, dataset, keys, cls = _recording_build(tmp_path, data_dir, [3, 97, 4], processes, early_stop)
    results = run_build_setting(task, dataset, ResultStore(tmp_path / "results"))
    assert [r.status for r in results] == ["ok", "error", "ok"]
    assert results[1].error == "query: ValueError: query exploded on purpose"  # as raised, in any process
    assert "recording.py" in results[1].attrs["traceback"]  # where it was raised


def test_a_process_dying_in_a_query_ends_the_build_as_one_process_would(tmp_path: Path, data_dir: Path) -> None:
    """A measuring process killed by a signal in the second setting's queries: the first setting is stored (its
    size pending), the second is not, and the build's process dies of the same signal."""
    import faulthandler
    import os
    import signal

    from annbench.execute.child import run_build_setting
    from annbench.store.folder import ResultStore, read_attrs

    task, dataset, keys, cls = _recording_build(tmp_path, data_dir, [3, 98], processes=3)
    store = ResultStore(tmp_path / "results")
    pid = os.fork()
    if pid == 0:  # the build's process
        try:
            faulthandler.disable()
            run_build_setting(task, dataset, store)
        finally:
            os._exit(0)
    status = os.waitpid(pid, 0)[1]
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV
    finished = read_attrs(store.path_for(keys[0]))
    assert finished["status"] == "ok" and finished["index_bytes_status"] == "pending" and finished["processes"] == 3
    assert not store.path_for(keys[1]).exists()


@pytest.mark.parametrize("option, value, message", [
    ("--warmup", "soon", "'soon' is not a warm-up; valid: full, none, or a number of seconds > 0"),
    ("--warmup", "0", "'0' is out of range; valid: full, none, or a number of seconds > 0"),
    ("--warmup", "-1", "'-1' is out of range"),
    ("--min-pass-time", "-0.1", "-0.1 is out of range; valid: a finite number >= 0"),
    ("--min-pass-time", "inf", "inf is out of range"),
    ("--min-pass-time", "fast", "'fast' is not a number"),
])
def test_bad_warmup_and_min_pass_time_are_one_line_errors(option: str, value: str, message: str,
                                                          data_dir: Path, results_dir: Path) -> None:
    from conftest import call

    from annbench.cli.run import main as run_main

    with pytest.raises(SystemExit) as exit_info:
        call(run_main, "--dataset", "random-xs-20-euclidean", "--algorithm", "bruteforce", option, value,
             "--data-dir", data_dir, "--results", results_dir, "--no-plot")
    assert exit_info.value.code == 2
    assert not results_dir.exists()


def test_bad_option_message_is_one_line(capsys) -> None:
    from annbench.cli.run import parser

    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["--warmup", "soon"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "--warmup" in err and "'soon' is not a warm-up; valid: full, none, or a number of seconds > 0" in err


@pytest.mark.measured  # run's default measuring processes
def test_stored_run_holds_its_calibrated_passes(data_dir: Path, results_dir: Path) -> None:
    from conftest import call

    from annbench.cli.run import main as run_main
    from annbench.store.folder import ResultStore, read_arrays, read_attrs

    r = call(run_main, "--dataset", "random-xs-20-euclidean", "--algorithm", "kdtree", "--runs", 2,
             "--warmup", "full", "--min-pass-time", "0.3", "--data-dir", data_dir, "--results", results_dir,
             "--no-plot")
    assert r.code == 0, r.err
    [path] = ResultStore(results_dir).paths()
    attrs, arrays = read_attrs(path), read_arrays(path)
    repeats, processes = attrs["repeats"], attrs.get("processes", 1)  # the first measuring process's repeats
    assert attrs["warmup"] == "full" and attrs["min_pass_time"] == 0.3
    assert attrs["warmup_queries"] == processes * 1000  # every query once in each process, summed
    times = arrays["pass_times_ns"].reshape(processes, 2)  # each process's 2 passes
    assert repeats >= 1 and (times[:, 0] >= 0.3e9).all()  # each process's first pass goes on until 0.3 s
    # the latencies of each process's fastest pass (repeats · nq each), the first process's first
    latencies = arrays["latencies_ns"]
    assert arrays["neighbors"].shape == (1000, 10) and len(latencies) % 1000 == 0
    assert len(latencies) >= processes * 1000 and (latencies[:repeats * 1000] > 0).all()
    per = process_values(attrs["qps_processes"]) if processes > 1 else [attrs["qps"]]
    assert len(per) == processes == RunOptions().processes and attrs["qps"] == pytest.approx(np.mean(per))
    assert per[0] == pytest.approx(repeats * 1000 / (times[0].min() * 1e-9))
    assert attrs["recall"] == 1.0 and attrs["index_bytes"] > 0 and attrs["index_bytes_status"] == "measured"
