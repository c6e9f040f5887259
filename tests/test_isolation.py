"""Fault injection: broken adapters in a temporary algorithms folder, each sweep with healthy runs too.

Every build setting runs in its own child process; a crash, hang, memory blow-up or bad
answer ends up stored as an ``error`` result with its reason, and the healthy runs finish.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, call, write_backend

from annbench.analyse.frames import results_frame
from annbench.cli.run import main as run_main
from annbench.core.processes import process_alive
from annbench.store.folder import ResultStore, read_arrays, read_attrs

#: Most sweeps here run two children at once (--parallelism 2).
pytestmark = pytest.mark.all_cores
DATASET = "random-xs-20-euclidean"

FAULTY = '''
import ctypes, os, time
import numpy as np
from annbench.backends.adapter import Adapter


class Faulty(Adapter):
    """Exact search that misbehaves on demand (build parameter ``fault``)."""

    metrics = ("euclidean", "angular", "ip")

    def __init__(self, metric: str, fault: str = "none", delay: float = 0.0, threads: int = 1) -> None:
        super().__init__(metric, threads)
        self.fault, self.delay = fault, delay

    def fit(self, X):
        time.sleep(self.delay)
        self._x, self._sq = X, (X.astype(np.float64) ** 2).sum(axis=1)
        if self.fault == "segfault":
            ctypes.string_at(0)                    # NULL read
        if self.fault == "abort":
            os.abort()
        if self.fault == "hang":
            while True:
                pass
        if self.fault == "memory":                 # a steady blow-up, 16 MiB at a time
            blocks = []
            while True:
                blocks.append(np.ones(2**21))
                time.sleep(0.005)
        if self.fault == "huge-alloc":             # one allocation far beyond the cap
            self._junk = np.empty(2**32, dtype=np.uint8)  # 4 GiB, untouched
        if self.fault == "fit-error":
            raise RuntimeError("fit exploded on purpose")

    def query(self, q, k):
        if self.fault == "query-error":
            raise ValueError("query exploded on purpose")
        d = self._sq - 2.0 * (self._x @ q)
        ids = np.argpartition(d, k)[:k]
        ids = ids[np.argsort(d[ids], kind="stable")]
        if self.fault == "shape":
            return np.stack([ids, ids])
        if self.fault == "duplicates":
            return np.zeros(k, dtype=np.int64)
        if self.fault == "nan":
            return np.where(np.arange(k) == 0, np.nan, ids.astype(float))
        return ids

    def index_size_bytes(self):
        return self._x.nbytes

    def stats(self):
        return {"cpus": sorted(os.sched_getaffinity(0)), "pid": os.getpid()}
'''


@pytest.fixture
def faulty(tmp_path: Path) -> tuple[Path, Path]:
    """``(algorithms dir, configs dir)`` holding the ``faulty`` adapter; grids written per test."""
    folder = write_backend(tmp_path / "backends", "faulty", FAULTY)
    return folder, folder


def _grid(configs: Path, build: str) -> None:
    write_backend(configs, "faulty", groups=f"  quick:\n    build: {build}")


def _sweep(dirs: tuple[Path, Path], data_dir: Path, results_dir: Path, *extra: object):
    algos, configs = dirs
    # no timing is checked here: no warm-up, one repetition of the queries per pass
    return call(run_main, "--dataset", DATASET, "--algorithm", "faulty,bruteforce", "--runs", 1, "--warmup", "none",
                "--min-pass-time", 0,
                "--algorithms-dir", algos, "--configs-dir", configs, "--data-dir", data_dir,
                "--results", results_dir, "--no-plot", *(extra or ("--parallelism", 2)))


def _by_fault(results_dir: Path):
    frame = results_frame(results_dir)
    rows = {row["build.fault"] if row["algorithm"] == "faulty" else "bruteforce": row
            for _, row in frame.iterrows()}
    return frame, rows


def _assert_healthy(rows) -> None:
    for name in ("bruteforce", "none"):
        assert rows[name]["status"] == "ok", (name, rows[name]["error"])
        assert rows[name]["recall"] == 1.0


def _failing_sweep(dirs, data_dir: Path, results_dir: Path, fault: str, reason: str, *extra: object):
    """A sweep of bruteforce and faulty with ``fault: [none, <fault>]``: the healthy runs finish and
    the faulty one is stored as an error with ``reason``; returns the CLI result and its row."""
    _grid(dirs[1], f"{{fault: [none, {fault}]}}")
    r = _sweep(dirs, data_dir, results_dir, *extra)
    assert r.code == 1, r.err
    _, rows = _by_fault(results_dir)
    _assert_healthy(rows)
    bad = rows[fault]
    assert bad["status"] == "error" and bad["reason"] == reason, (bad["reason"], bad["error"])
    assert np.isnan(bad["recall"]) and np.isnan(bad["qps"])
    return r, bad


@pytest.mark.parametrize(("fault", "signal_name"), [("segfault", "SIGSEGV"), ("abort", "SIGABRT")])
def test_crash_is_recorded_with_its_signal(fault: str, signal_name: str, faulty, data_dir: Path,
                                           results_dir: Path) -> None:
    r, bad = _failing_sweep(faulty, data_dir, results_dir, fault, "signal")
    assert signal_name in bad["error"]
    log = Path(bad["log_path"])
    assert log.is_file() and "Fatal Python error" in log.read_text()  # faulthandler's report of the child
    assert "Fatal Python error" in bad["traceback"]
    assert "failed: faulty" in r.out and signal_name in r.out


def test_infinite_loop_hits_the_timeout(faulty, data_dir: Path, results_dir: Path, tmp_path: Path) -> None:
    # The timeout holds every run: it must outlast the healthy ones on this machine as loaded now (at load 28
    # bruteforce's run took more than 4 s), so it is twice the wall time of the same sweep without the hang.
    _grid(faulty[1], "{fault: [none]}")
    start = time.monotonic()
    assert _sweep(faulty, data_dir, tmp_path / "calibration").code == 0
    timeout = max(4, math.ceil(2 * (time.monotonic() - start)))
    _, bad = _failing_sweep(faulty, data_dir, results_dir, "hang", "timeout", "--timeout", timeout,
                            "--parallelism", 2)
    assert f"timeout: still running after {timeout} s" in bad["error"]
    # killed once its time was up, not later: the hanging child's own time, whatever the other runs took
    assert timeout <= bad["elapsed_s"] < 2 * timeout + 10, (bad["elapsed_s"], timeout)
    text = Path(bad["log_path"]).read_text()
    assert "in fit" in text  # the stacks the child dumped before it was killed


def test_memory_blow_up_hits_the_cap(faulty, data_dir: Path, results_dir: Path) -> None:
    _grid(faulty[1], "{fault: [none, memory, huge-alloc]}")
    r = _sweep(faulty, data_dir, results_dir, "--memory-limit", "400M", "--parallelism", 2)
    assert r.code == 1, r.err
    _, rows = _by_fault(results_dir)
    _assert_healthy(rows)
    blow_up = rows["memory"]
    assert blow_up["reason"] == "memory" and "memory cap" in blow_up["error"]
    assert 400 * 2**20 < blow_up["peak_rss_bytes"] < 2 * 400 * 2**20
    # One allocation beyond the address-space backstop fails inside the child, which records it.
    huge = rows["huge-alloc"]
    assert huge["status"] == "error" and huge["reason"] == "exception" and "MemoryError" in huge["error"]


@pytest.mark.parametrize(("fault", "expected"), [
    ("fit-error", "build: RuntimeError: fit exploded on purpose"),
    ("query-error", "query: ValueError: query exploded on purpose"),
    ("shape", "query 0 returned shape (2, 10), expected at most 10 ids"),
    ("duplicates", "same id twice in 1000 queries"),
    ("nan", "query 0 returned non-integer ids"),
])
def test_bad_adapter_behaviour_is_recorded(fault: str, expected: str, faulty, data_dir: Path,
                                           results_dir: Path) -> None:
    _, bad = _failing_sweep(faulty, data_dir, results_dir, fault, "exception")
    assert expected in bad["error"]
    assert "faulty.py" in bad["traceback"] or fault in ("shape", "duplicates", "nan")
    listed = call(run_main, "--dataset", DATASET, "--results", results_dir, "--list-failures")
    assert listed.code == 0 and expected in listed.out and bad["log_path"] in listed.out
    assert "1 failed runs" in listed.out


def test_children_are_pinned_to_distinct_cores(faulty, data_dir: Path, results_dir: Path) -> None:
    _grid(faulty[1], "{fault: [none], delay: [0.0, 0.5]}")
    r = _sweep(faulty, data_dir, results_dir, "--parallelism", 2)
    assert r.code == 0, r.err
    frame = results_frame(results_dir)
    stats = [json.loads(s) for s in frame.loc[frame["algorithm"] == "faulty", "stats"]]
    assert len({s["pid"] for s in stats}) == 2 and all(s["pid"] != os.getpid() for s in stats)
    assert all(len(s["cpus"]) == 1 for s in stats)
    assert {s["cpus"][0] for s in stats} <= set(os.sched_getaffinity(0))


def test_more_children_than_cores_is_refused(data_dir: Path, results_dir: Path) -> None:
    n = len(os.sched_getaffinity(0))
    r = call(run_main, "--dataset", DATASET, "--algorithm", "bruteforce", "--parallelism", n + 1,
             "--data-dir", data_dir, "--results", results_dir, "--no-plot")
    assert r.code == 2 and f"this machine gives {n}" in r.err
    r = call(run_main, "--dataset", DATASET, "--algorithm", "bruteforce", "--batch", "--parallelism", 2,
             "--data-dir", data_dir, "--results", results_dir, "--no-plot")
    assert r.code == 2 and "--parallelism 1" in r.err
    assert not results_dir.exists()


def test_failed_run_is_rerun_and_not_plotted(faulty, data_dir: Path, results_dir: Path) -> None:
    _grid(faulty[1], "{fault: [none, fit-error]}")
    assert _sweep(faulty, data_dir, results_dir).code == 1
    plotted = call(run_main, "--dataset", DATASET, "--algorithm", "faulty", "--runs", 1, "--warmup", "none",
                   "--min-pass-time", 0, "--algorithms-dir", faulty[0], "--configs-dir", faulty[1], "--data-dir",
                   data_dir, "--results", results_dir, "--table", "runs")
    # Only the failed run was attempted again; the summary shows both with their status.
    assert "0 runs done, 1 failed, 1 already stored" in plotted.out
    assert any(" status " in line for line in plotted.out.splitlines()) and " error " in plotted.out
    from annbench.analyse.frames import pareto_frame

    front = pareto_frame(results_frame(results_dir), "recall", "qps")
    assert "fit-error" not in set(front.get("build.fault", []))


def _results_state(results: Path) -> dict[str, tuple[int, str]]:
    return {str(p): (p.stat().st_mtime_ns, read_attrs(p)["timestamp"]) for p in ResultStore(results).paths()}


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        below = parents.get(todo.pop(), [])
        found += below
        todo += below
    return found


def test_sigkill_mid_sweep_then_resume(faulty, data_dir: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    _grid(faulty[1], "{fault: [none], delay: [0.2, 0.21, 0.22, 0.23, 0.24]}")
    # measured as briefly as run allows (no warm-up, passes of one repetition), in its default processes
    argv = [sys.executable, "run.py", "--dataset", DATASET, "--algorithm", "faulty", "--runs", "1", "--warmup", "none",
            "--min-pass-time", "0", "--algorithms-dir", str(faulty[0]), "--configs-dir", str(faulty[1]),
            "--data-dir", str(data_dir), "--results", str(results), "--no-plot", "-q"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list(ResultStore(results).paths())) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGSTOP)  # stopped, it starts no child while its descendants are listed
    children = _descendants(proc.pid)
    assert children, "the sweep had no child when it was killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = _results_state(results)
    assert 2 <= len(finished) < 5, "the kill did not land mid-sweep"
    for path in finished:  # every visible result is complete and readable
        assert read_attrs(path)["status"] == "ok" and read_arrays(path)["neighbors"].shape == (1000, 10)
    # the killed sweep's children die with it (PR_SET_PDEATHSIG): once they are gone, nothing more appears
    deadline = time.monotonic() + 30
    while (alive := [p for p in children if process_alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive, f"children of the killed sweep still run: {alive}"
    assert _results_state(results) == finished

    again = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    after = _results_state(results)
    assert len(after) == 5
    assert {p: after[p] for p in finished} == finished  # earlier results untouched, not recomputed
    assert f"{5 - len(finished)} runs done, 0 failed, {len(finished)} already stored" in again.stdout
    assert not [p for p in results.rglob("*.tmp")]


def test_a_killed_process_not_yet_reaped_counts_as_dead() -> None:
    """Files named after a killed worker are cleaned up even before its parent reaps it."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process_alive(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not process_alive(proc.pid)
        assert proc.poll() is not None  # only now reaped (it was a zombie until here)
    finally:
        proc.kill()
        proc.wait()


def test_a_process_reaped_between_the_two_checks_counts_as_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    """kill(pid, 0) found it, then its parent reaped it before /proc/<pid>/stat was read."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    monkeypatch.setattr("annbench.core.processes.os.kill", lambda pid, sig: None)  # as it was a moment ago
    assert not process_alive(proc.pid)


def test_corrupt_result_file_is_rerun_with_a_warning(faulty, data_dir: Path, results_dir: Path) -> None:
    _grid(faulty[1], "{fault: [none]}")
    assert _sweep(faulty, data_dir, results_dir).code == 0
    before = _results_state(results_dir)
    [broken] = [Path(p) for p in before if "bruteforce" in p]
    broken.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # an HDF5 signature, then nothing
    r = _sweep(faulty, data_dir, results_dir)
    assert r.code == 0, r.err
    assert f"result {broken} is unreadable" in r.err and "run again" in r.err
    assert "1 runs done, 0 failed, 1 already stored" in r.out
    after = _results_state(results_dir)
    assert read_attrs(broken)["status"] == "ok" and after[str(broken)] != before[str(broken)]
    assert {p: v for p, v in after.items() if p != str(broken)} == {p: v for p, v in before.items() if p != str(broken)}


def test_corrupt_dataset_fails_before_any_child(faulty, data_dir: Path, results_dir: Path, tmp_path: Path) -> None:
    _grid(faulty[1], "{fault: [none]}")
    source = (data_dir / f"{DATASET}.hdf5").read_bytes()
    bad = tmp_path / "broken.hdf5"
    bad.write_bytes(source[: len(source) // 2])
    algos, configs = faulty
    r = call(run_main, "--dataset", bad, "--algorithm", "faulty,bruteforce", "--algorithms-dir", algos,
             "--configs-dir", configs, "--data-dir", data_dir, "--results", results_dir, "--no-plot")
    assert r.code == 2 and "Traceback" not in r.err
    [line] = r.err.strip().splitlines()
    assert line.startswith(f"error: dataset file {bad}: ")
    assert not results_dir.exists()  # no child ran: no log, no result


def test_run_task_isolated_directly(data_dir: Path, tmp_path: Path) -> None:
    """The executor-independent entry point: a picklable task in, an outcome out."""
    import pickle
    import uuid

    from annbench.core.paths import ALGORITHMS_DIR
    from annbench.core.results import RunKey
    from annbench.datasets.format import load_dataset
    from annbench.execute.isolation import run_task_isolated
    from annbench.plan.grid import BuildSetting, RunOptions
    from annbench.plan.task import Limits, Task

    path = data_dir / f"{DATASET}.hdf5"
    checksum = load_dataset(path).checksum
    key = RunKey(DATASET, 10, "bruteforce", False, {}, {}, 1)
    task = Task(uuid.uuid4().hex, DATASET, path, "sha256:not-this-file", RunOptions(runs=1),
                BuildSetting("bruteforce", {}, ({},)), (key,), (ALGORITHMS_DIR,), tmp_path / "results")
    assert pickle.loads(pickle.dumps(task)) == task
    log = tmp_path / "logs" / "child.log"
    outcome = run_task_isolated(task, Limits(timeout_s=60, cpus=(0,)), log)
    assert outcome.reason == "exit" and outcome.exit_code == 1 and outcome.log_path == log
    stored = read_attrs(ResultStore(tmp_path / "results").path_for(key))
    assert stored["status"] == "error" and "changed since the sweep started" in stored["error"]
    assert stored["task_id"] == task.task_id and stored["log_path"] == str(log)

    good = Task(uuid.uuid4().hex, DATASET, path, checksum, RunOptions(runs=1), task.setting, (key,),
                task.adapter_dirs, task.results_root)
    outcome = run_task_isolated(good, Limits(timeout_s=60, cpus=(0,)), log)
    assert outcome.ok and outcome.exit_code == 0 and outcome.peak_rss_bytes > 0
    stored = read_attrs(ResultStore(tmp_path / "results").path_for(key))
    assert stored["status"] == "ok" and stored["task_id"] == good.task_id and stored["recall"] == 1.0
    assert "dataset" in log.read_text() and "opened" in log.read_text()
