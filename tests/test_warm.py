"""Warm parents (a fork server per algorithm) and the record of children running beside each other.

The fault-injection tests of test_isolation.py run through the warm path too (it is the default);
these check what is particular to it: one import per sweep, a fresh interpreter where an adapter
says it is not fork-safe or a library kills forked children, the server dying with the sweep, and
``concurrent_children``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO, call, write_backend

from annbench.analyse.frames import results_frame
from annbench.cli.run import main as run_main
from annbench.core.processes import process_alive
from annbench.execute.forkclient import WarmParents
from annbench.execute.forkproto import SOCKET_DIR_PREFIX
from annbench.plan.grid import RunOptions

#: Sweeps with --parallelism 2, and counts of the processes each sweep starts.
pytestmark = pytest.mark.all_cores
DATASET = "random-xs-20-euclidean"

#: An exact adapter that leaves a mark per import (module level) and per warm_up, named after the pid.
MARKED = '''
import os, time
import numpy as np
from annbench.backends.adapter import Adapter

MARKS = os.environ["ANNBENCH_TEST_MARKS"]
open(os.path.join(MARKS, f"import.{os.getpid()}"), "w").close()
@EXTRA@


class Marked(Adapter):
    metrics = ("euclidean",)
    fork_safe = @FORK_SAFE@

    def __init__(self, metric: str, n: int = 0, delay: float = 0.0, threads: int = 1) -> None:
        super().__init__(metric, threads)
        self.delay = delay

    def warm_up(self, X):
        open(os.path.join(MARKS, f"warm.{os.getpid()}"), "w").close()

    def fit(self, X):
        time.sleep(self.delay)
        self._x, self._sq = X, (X.astype(np.float64) ** 2).sum(axis=1)

    def query(self, q, k):
        d = self._sq - 2.0 * (self._x @ q)
        ids = np.argpartition(d, k)[:k]
        return ids[np.argsort(d[ids], kind="stable")]

    def stats(self):
        return {"pid": os.getpid(), "ppid": os.getppid(), "cpus": sorted(os.sched_getaffinity(0))}
'''


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    monkeypatch.setenv("ANNBENCH_TEST_MARKS", str(folder))
    return folder


def _adapter(tmp_path: Path, grid: str, fork_safe: bool = True, extra: str = "") -> tuple[Path, Path]:
    folder = write_backend(tmp_path / "backends", "marked",
                           MARKED.replace("@FORK_SAFE@", str(fork_safe)).replace("@EXTRA@", extra),
                           f"  quick:\n    {grid}")
    return folder, folder


def _sweep(dirs: tuple[Path, Path], data_dir: Path, results: Path, *extra: object):
    return call(run_main, "--dataset", DATASET, "--algorithm", "marked", "--runs", 1, "--algorithms-dir", dirs[0],
                "--configs-dir", dirs[1], "--data-dir", data_dir, "--results", results, "--no-plot", *extra)


def _pids(marks: Path, kind: str) -> set[int]:
    return {int(p.name.split(".")[1]) for p in marks.glob(f"{kind}.*")}


def _stats(results: Path) -> list[dict]:
    frame = results_frame(results)
    assert (frame["status"] == "ok").all(), frame["error"].tolist()
    return [json.loads(s) for s in frame["stats"]]


@pytest.mark.measured  # the default measuring processes, each warming up
@pytest.mark.parametrize("parallelism", [1, 2])
def test_one_import_and_warm_up_per_sweep(parallelism: int, marks: Path, data_dir: Path, tmp_path: Path) -> None:
    dirs = _adapter(tmp_path, "build: {n: [1, 2, 3, 4]}")
    assert _sweep(dirs, data_dir, tmp_path / "results", "--parallelism", parallelism).code == 0
    # The sweep imported the adapter to plan; one warm parent imported it and warmed up once.
    stats = _stats(tmp_path / "results")
    [server] = _pids(marks, "import") - {os.getpid()}
    # the children warm up too (untimed), and so do their measuring processes, each building the index again (the
    # adapter cannot save it: process_index rebuilt): 1 + P warm-ups per build setting besides the server's
    warm, children = _pids(marks, "warm"), {s["pid"] for s in stats}
    assert {server, *children} <= warm and len(warm) == 1 + len(children) * (1 + RunOptions().processes)
    assert len({s["pid"] for s in stats}) == 4 and {s["ppid"] for s in stats} == {server}
    assert all(len(s["cpus"]) == 1 for s in stats)
    logs = sorted((tmp_path / "results" / DATASET / "10" / "logs" / "marked").glob("n=*.log"))
    assert len(logs) == 4 and all(f"forked from warm parent {server}" in p.read_text() for p in logs)
    assert "warm parent pid" in (logs[0].parent / "warm-parent.threads=1.log").read_text()
    assert not (server and process_alive(server))  # shut down


def test_cold_workers_and_fork_unsafe_adapters_start_fresh_interpreters(marks: Path, data_dir: Path,
                                                                        tmp_path: Path) -> None:
    dirs = _adapter(tmp_path, "build: {n: [1, 2, 3]}")
    assert _sweep(dirs, data_dir, tmp_path / "cold", "--cold-workers").code == 0
    stats = _stats(tmp_path / "cold")
    assert _pids(marks, "import") - {os.getpid()} == {s["pid"] for s in stats}  # each child imported it itself
    assert {s["ppid"] for s in stats} == {os.getpid()}

    for p in marks.iterdir():
        p.unlink()
    sys.modules.pop("annbench_algorithms.marked", None)
    dirs = _adapter(tmp_path, "build: {n: [1, 2, 3]}", fork_safe=False)
    assert _sweep(dirs, data_dir, tmp_path / "unsafe").code == 0
    stats = _stats(tmp_path / "unsafe")
    assert _pids(marks, "import") - {os.getpid()} == {s["pid"] for s in stats}
    assert not list((tmp_path / "unsafe").rglob("warm-parent*.log"))


def test_a_library_that_kills_forked_children_falls_back_to_fresh_interpreters(marks: Path, data_dir: Path,
                                                                               tmp_path: Path) -> None:
    """Like numba on GNU OpenMP: the server's probe fork dies at once, so no child is forked. The handler is
    registered in every process that imports the adapter but this test's (the sweep imports it too): the
    test's worker forks measuring processes in later tests."""
    dirs = _adapter(tmp_path, "build: {n: [1, 2]}",
                    extra=f"if os.getpid() != {os.getpid()}: os.register_at_fork(after_in_child=lambda: os._exit(9))")
    r = _sweep(dirs, data_dir, tmp_path / "results")
    assert r.code == 0, r.err
    stats = _stats(tmp_path / "results")
    assert {s["ppid"] for s in stats} == {os.getpid()}
    assert "fresh interpreters" in r.err and "exited with code 3" in r.err
    [log] = (tmp_path / "results").rglob("warm-parent*.log")
    assert "cannot fork safely" in log.read_text()


def _forkservers_of(pid: int) -> list[int]:
    """The sweep ``pid``'s fork servers (its forked children share their command line; their parent is a server)."""
    out = subprocess.run(["pgrep", "-P", str(pid), "-f", "annbench.execute.forkserver"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_the_warm_parent_and_its_child_die_with_the_sweep(marks: Path, data_dir: Path, tmp_path: Path) -> None:
    dirs = _adapter(tmp_path, "build: {n: [1], delay: [30.0]}")
    argv = [sys.executable, "run.py", "--dataset", DATASET, "--algorithm", "marked", "--runs", "1",
            "--algorithms-dir", str(dirs[0]), "--configs-dir", str(dirs[1]), "--data-dir", str(data_dir),
            "--results", str(tmp_path / "results"), "--no-plot", "-q"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # a wait on a condition: two interpreters start and import first, which takes a minute at load 15
    deadline = time.monotonic() + 300
    try:
        while not ((servers := _forkservers_of(proc.pid)) and (children := _pids(marks, "warm") - set(servers))):
            assert time.monotonic() < deadline and proc.poll() is None, "no forked child appeared"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30  # PR_SET_PDEATHSIG kills them at once; their exits wait for a core
    while any(process_alive(p) for p in [*servers, *children]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(process_alive(p) for p in [*servers, *children])
    # the killed sweep could not remove its servers' socket folder: the next sweep does, and only that
    left = list(Path(tempfile.gettempdir()).glob(f"{SOCKET_DIR_PREFIX}{proc.pid}-*"))
    assert left, "the killed sweep's socket folder should still be there"
    mine = Path(tempfile.mkdtemp(prefix=f"{SOCKET_DIR_PREFIX}{os.getpid()}-"))  # a live sweep's
    try:
        WarmParents(lambda key, task: tmp_path / "unused.log").close()
        assert not any(d.exists() for d in left) and mine.is_dir()
    finally:
        mine.rmdir()


BESIDE = '''
import os, time
import numpy as np
from annbench.backends.adapter import Adapter
from annbench.core.processes import process_alive

MARKS = os.environ["ANNBENCH_TEST_MARKS"]


def _wait(what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise TimeoutError("the other build setting did not get there")
        time.sleep(0.01)


class Beside(Adapter):
    """role long: runs q=0 while short runs, q=1 until short has ended, q=2 alone. role short: one build."""

    metrics = ("euclidean",)

    def __init__(self, metric: str, role: str = "long", threads: int = 1) -> None:
        super().__init__(metric, threads)
        self.role = role

    def fit(self, X):
        self._x, self._sq = X, (X.astype(np.float64) ** 2).sum(axis=1)
        if self.role == "short":
            with open(os.path.join(MARKS, "short-started"), "w") as f:
                f.write(str(os.getpid()))
            _wait(lambda: os.path.exists(os.path.join(MARKS, "may-finish")))

    def set_query_params(self, q: int = 0):
        if self.role != "long":
            return
        started = os.path.join(MARKS, "short-started")
        if q == 0:
            _wait(lambda: os.path.exists(started))
        if q == 1:
            open(os.path.join(MARKS, "may-finish"), "w").close()
            pid = int(open(started).read())
            _wait(lambda: not process_alive(pid))
            time.sleep(1.0)  # the sweep sees the short child end and marks its slot idle

    def query(self, q, k):
        d = self._sq - 2.0 * (self._x @ q)
        ids = np.argpartition(d, k)[:k]
        return ids[np.argsort(d[ids], kind="stable")]
'''


@pytest.mark.parametrize("cold", [False, True])
def test_each_run_records_the_children_beside_it(cold: bool, marks: Path, data_dir: Path, tmp_path: Path) -> None:
    algos = configs = write_backend(tmp_path / "backends", "beside", BESIDE,
                                    "  quick:\n    build: {role: [long, short]}\n    query: {q: [0, 1, 2]}")
    results = tmp_path / "results"
    r = call(run_main, "--dataset", DATASET, "--algorithm", "beside", "--runs", 1, "--algorithms-dir", algos,
             "--configs-dir", configs, "--data-dir", data_dir, "--results", results, "--no-plot",
             "--parallelism", 2, "--no-early-stop", *(["--cold-workers"] if cold else []),  # every q runs
             "--processes", 1)  # q 0, 1 and 2 one after another: several processes would interleave their passes
    frame = results_frame(results)
    assert (frame["status"] == "ok").all(), frame["error"].tolist()
    assert r.code == 0, r.err
    got = {(row["build.role"], row["query.q"]): row["concurrent_children"] for _, row in frame.iterrows()}
    assert got == {("long", 0): 1, ("long", 1): 1, ("long", 2): 0, ("short", 0): 1, ("short", 1): 1, ("short", 2): 1}
    assert (frame["parallelism"] == 2).all()
    assert "shared machine: 5 of 6 runs were built or measured while another child ran beside them" in r.out

    # Alone: every run says 0, and the summary says nothing about sharing.
    r = call(run_main, "--dataset", DATASET, "--algorithm", "bruteforce", "--runs", 1, "--data-dir", data_dir,
             "--results", tmp_path / "alone", "--no-plot")
    assert r.code == 0 and "shared machine" not in r.out
    alone = results_frame(tmp_path / "alone")
    assert (alone["concurrent_children"] == 0).all() and (alone["parallelism"] == 1).all()
