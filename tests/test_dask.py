"""The Dask executor: same results as the local one, worker deaths, an unreachable scheduler, hosts.

Without the ``dask`` extra this module fails at its top, it is never skipped; Dask itself is imported by the
tests that start a cluster (an import of seconds that the fast tier's workers, which collect this module, skip).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, call, write_backend

from annbench.analyse.frames import hosts_per_curve, results_frame
from annbench.cli.plot import main as plot_main
from annbench.cli.run import main as run_main
from annbench.core.results import RunKey, RunResult
from annbench.execute.remote import RemoteOptions, host_cores, locate_dataset
from annbench.plan.task import Task
from annbench.store.folder import ResultStore, read_arrays, read_attrs

# a missing extra must fail here, without importing it
assert importlib.util.find_spec("dask") and importlib.util.find_spec("distributed"), "install the dask extra"

#: Local Dask clusters and sweeps with --parallelism 2.
pytestmark = pytest.mark.all_cores
DATASET = "random-xs-20-euclidean"
QUICK = "bruteforce,kdtree,balltree"

SLOW = '''
import contextlib, os, signal, subprocess, tempfile, time
import numpy as np
from annbench.backends.adapter import Adapter


class Slow(Adapter):
    """Exact search whose build sleeps ``delay`` s; ``die: true`` kills the worker running its child; the
    one build that finds the file ``hold-<delay>`` among the marks (and removes it) waits until it is killed;
    ``orphan: true`` leaves the scratch folder of a worker that died while it ran (of a process that is gone)."""

    metrics = ("euclidean",)

    def __init__(self, metric: str, delay: float = 0.0, die: bool = False, orphan: bool = False,
                 threads: int = 1) -> None:
        super().__init__(metric, threads)
        self.delay, self.die, self.orphan = delay, die, orphan

    def fit(self, X):
        marks = os.environ["ANNBENCH_TEST_MARKS"]
        with open(os.path.join(marks, f"{self.delay}-{self.die}.{os.getpid()}"), "w") as f:
            f.write(str(os.getppid()))                 # the Dask worker process running this child
        if self.die:
            os.kill(os.getppid(), signal.SIGKILL)
            time.sleep(60)
        if self.orphan:
            gone = subprocess.Popen(["true"])
            gone.wait()
            orphan = os.path.join(tempfile.gettempdir(), f"annbench-task-{gone.pid}-orphan")
            os.mkdir(orphan)
            with open(os.path.join(marks, f"orphan.{os.getpid()}"), "w") as f:
                f.write(orphan)
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(marks, f"hold-{self.delay}"))
            time.sleep(600)                            # ends with its worker, which the test kills
        time.sleep(self.delay)
        self._x, self._sq = X, (X.astype(np.float64) ** 2).sum(axis=1)

    def save(self, folder):  # the measuring processes load the index: only the child builds, in its worker
        np.save(os.path.join(folder, "x.npy"), self._x)

    def load(self, folder, dimension):
        self._x = np.load(os.path.join(folder, "x.npy"))
        self._sq = (self._x.astype(np.float64) ** 2).sum(axis=1)

    def query(self, q, k):
        d = self._sq - 2.0 * (self._x @ q)
        ids = np.argpartition(d, k)[:k]
        return ids[np.argsort(d[ids], kind="stable")]
'''


def _ok_frame(results: Path) -> pd.DataFrame:
    frame = results_frame(results, DATASET)
    assert len(frame) and (frame["status"] == "ok").all(), frame[["algorithm", "status", "error"]].to_string()
    return frame


def _relative_results(results: Path) -> set[str]:
    return {str(p.relative_to(results)) for p in ResultStore(results).paths(DATASET)}


def test_local_cluster_gives_the_local_executors_results(data_dir: Path, tmp_path: Path) -> None:
    common = ("--dataset", DATASET, "--algorithm", QUICK, "--runs", 1, "--data-dir", data_dir, "--no-plot", "-q")
    local = call(run_main, *common, "--results", tmp_path / "local", "--parallelism", 2)
    assert local.code == 0, local.err
    remote = call(run_main, *common, "--results", tmp_path / "dask", "--executor", "dask", "--parallelism", 2)
    assert remote.code == 0, remote.err
    assert not [line for line in remote.err.splitlines() if line[:2] in ("I ", "D ")], remote.err  # -q: Dask's too

    runs = _relative_results(tmp_path / "local")
    assert len(runs) == 3 and _relative_results(tmp_path / "dask") == runs  # same runs, same layout
    for run in sorted(runs):
        a, b = read_attrs(tmp_path / "local" / run), read_attrs(tmp_path / "dask" / run)
        assert a["status"] == b["status"] == "ok"
        assert a["recall"] == b["recall"] and a["id_recall"] == b["id_recall"]
        assert np.array_equal(read_arrays(tmp_path / "local" / run)["neighbors"],
                              read_arrays(tmp_path / "dask" / run)["neighbors"])
        assert b["host"] == socket.gethostname()              # the host that measured it
        assert Path(b["log_path"]).is_file() and str(b["log_path"]).startswith(str(tmp_path / "dask"))
        assert "recall=" in Path(b["log_path"]).read_text()  # the child's log, shipped back


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two single-threaded worker processes offering one benchmark slot each (as the README's workers),
    and the folder where the ``slow`` adapter leaves a mark per build (workers inherit its variable)."""
    import distributed

    marks = tmp_path_factory.mktemp("marks")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANNBENCH_TEST_MARKS", str(marks))
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      resources={"benchmark": 1}, memory_limit=0, dashboard_address=None,
                                      scheduler_port=0) as c, distributed.Client(c) as client:
            yield c, client, marks


@pytest.fixture
def slow(tmp_path: Path, cluster) -> tuple[Path, Path, Path]:
    folder = write_backend(tmp_path / "backends", "slow", SLOW)
    return folder, folder, cluster[2]


def _background_sweep(cluster, slow, data_dir: Path, results: Path, build: str, *extra: object):
    c, client, _ = cluster
    client.wait_for_workers(2, timeout=30)
    algos, configs, _ = slow
    write_backend(configs, "slow", groups=f"  quick:\n    build: {build}")
    outcome: dict[str, object] = {}

    def sweep() -> None:
        outcome["result"] = call(run_main, "--dataset", DATASET, "--algorithm", "slow", "--runs", 1, "--data-dir",
                                 data_dir, "--results", results, "--algorithms-dir", algos, "--configs-dir", configs,
                                 "--no-plot", "-q", "--executor", "dask", "--scheduler", c.scheduler_address, *extra)

    thread = threading.Thread(target=sweep)
    thread.start()
    return thread, outcome


def _marks(marks: Path, prefix: str) -> list[Path]:
    return sorted(marks.glob(f"{prefix}.*"), key=lambda p: p.stat().st_mtime)


def test_killed_worker_task_is_rerun_and_nothing_is_lost(cluster, slow, data_dir: Path, tmp_path: Path) -> None:
    marks = slow[2]
    (marks / "hold-0.4").touch()  # the first build of delay 0.4 waits until its worker is killed: mid-build
    thread, outcome = _background_sweep(cluster, slow, data_dir, tmp_path / "results",
                                        "{delay: [0.0, 0.2, 0.4]}")
    deadline = time.monotonic() + 300  # waits on conditions: bounds for a machine at load 15
    while not (_marks(marks, "0.4-False") and not (marks / "hold-0.4").exists()):
        assert time.monotonic() < deadline and thread.is_alive(), "the held build never started"
        time.sleep(0.05)
    first = _marks(marks, "0.4-False")
    worker_pid = int(first[0].read_text())
    os.kill(worker_pid, signal.SIGKILL)                       # the worker dies mid-build
    thread.join(300)
    assert not thread.is_alive()
    r = outcome["result"]
    assert r.code == 0, r.err + r.out
    attempts = _marks(marks, "0.4-False")
    assert len(attempts) == 2 and int(attempts[1].read_text()) != worker_pid  # rerun by another worker process
    frame = _ok_frame(tmp_path / "results")                     # nothing lost: every run stored and ok
    assert sorted(frame["build.delay"]) == [0.0, 0.2, 0.4] and (frame["recall"] == 1.0).all()
    assert not list(Path(tempfile.gettempdir()).glob(f"annbench-task-{worker_pid}-*"))  # its scratch folder removed


def test_a_task_ending_removes_the_scratch_of_a_worker_that_died_while_it_ran(cluster, slow, data_dir: Path,
                                                                              tmp_path: Path) -> None:
    """Not only as a task starts: a killed worker may still be dying when its rerun, perhaps the sweep's last
    task, starts and looks; nothing after it would."""
    thread, outcome = _background_sweep(cluster, slow, data_dir, tmp_path / "results", "{orphan: [true]}")
    thread.join(300)
    assert not thread.is_alive() and outcome["result"].code == 0, outcome["result"].err
    (mark,) = _marks(slow[2], "orphan")
    left = Path(mark.read_text())
    assert left.parent == Path(tempfile.gettempdir()) and not left.exists(), left


def test_task_whose_worker_always_dies_is_retried_once_then_failed(cluster, slow, data_dir: Path,
                                                                   tmp_path: Path) -> None:
    results = tmp_path / "results"
    thread, outcome = _background_sweep(cluster, slow, data_dir, results, "{delay: [0.0], die: [false, true]}",
                                        "--dask-results", "shared")
    thread.join(300)
    assert not thread.is_alive()
    r = outcome["result"]
    assert r.code == 1 and "worker lost" in r.out, r.err + r.out
    assert len(_marks(slow[2], "0.0-True")) == 2              # the first attempt and one retry, no more
    frame = results_frame(results, DATASET).set_index("build.die")
    assert frame.loc[False, "status"] == "ok" and frame.loc[False, "recall"] == 1.0  # the sweep finished
    dead = frame.loc[True]
    assert dead["status"] == "error" and dead["reason"] == "worker"
    assert dead["host"] == socket.gethostname() and Path(dead["log_path"]).is_file()
    # shared results folder: the worker's child wrote the healthy run in place
    assert Path(frame.loc[False, "log_path"]).is_relative_to(results)


def test_unreachable_scheduler_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                             # closed again: nothing listens there
    address = f"tcp://127.0.0.1:{port}"
    start = time.monotonic()
    p = subprocess.run([sys.executable, "run.py", "--executor", "dask", "--scheduler", address, "--dask-timeout", "2",
                        "--results", tmp_path / "results", "--data-dir", tmp_path / "data"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach the Dask scheduler at {address}"), p.stderr
    assert time.monotonic() - start < 30
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()  # no dataset built, no run


def test_dask_options_without_the_dask_executor_are_refused(tmp_path: Path) -> None:
    r = call(run_main, "--scheduler", "tcp://127.0.0.1:8786", "--results", tmp_path / "r")
    assert r.code == 2 and "--scheduler applies to the Dask executor" in r.err
    r = call(run_main, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:8786", "--parallelism", "2")
    assert r.code == 2 and "--parallelism 2 with --scheduler" in r.err


def test_worker_without_the_sweeps_file_builds_the_dataset_from_the_registry(data_dir: Path, tmp_path: Path) -> None:
    from annbench.datasets.format import load_dataset

    dataset = load_dataset(data_dir / f"{DATASET}.hdf5", name=DATASET)
    task = Task("t", DATASET, tmp_path / "elsewhere" / f"{DATASET}.hdf5", dataset.checksum, None, None, (), (),
                tmp_path)
    path, how = locate_dataset(task, RemoteOptions(data_dir=tmp_path / "worker-data"))
    assert path == tmp_path / "worker-data" / f"{DATASET}.hdf5" and path.is_file() and "generated" in how.lower()
    assert load_dataset(path, name=DATASET).checksum == dataset.checksum
    shared = Task("t", DATASET, data_dir / f"{DATASET}.hdf5", dataset.checksum, None, None, (), (), tmp_path)
    assert locate_dataset(shared, RemoteOptions(data_dir=tmp_path / "unused"))[0] == shared.dataset_path
    wrong = Task("t", DATASET, tmp_path / "nowhere.hdf5", "0" * 16, None, None, (), (), tmp_path)
    with pytest.raises(ValueError, match="checksum"):
        locate_dataset(wrong, RemoteOptions(data_dir=tmp_path / "worker-data"))


def test_core_claims_are_exclusive_across_claimants(tmp_path: Path) -> None:
    cores = sorted(os.sched_getaffinity(0))
    got: list[tuple[int, ...]] = []
    with contextlib.ExitStack() as held:
        claims = [held.enter_context(host_cores(1, tmp_path)) for _ in cores]  # one claimant per core
        assert sorted(c for claim in claims for c in claim) == cores    # each got a different core
        waiter = threading.Thread(target=lambda: got.append(_claim_one(tmp_path)))
        waiter.start()
        time.sleep(0.3)
        assert not got                                                  # every core is held: the next one waits
    waiter.join(5)
    assert len(got) == 1 and len(got[0]) == 1                           # and gets one once they are released
    with pytest.raises(ValueError, match="cores asked for"):
        with host_cores(len(cores) + 1, tmp_path):
            pass


def _claim_one(lock_dir: Path) -> tuple[int, ...]:
    with host_cores(1, lock_dir) as c:
        return c


def _two_host_results(results: Path) -> None:
    """Runs of two algorithms, each measured on this host and (slower) on another one."""
    store = ResultStore(results)
    for host, speed in ((socket.gethostname(), 1.0), ("other-host", 0.3)):
        for algorithm in ("bruteforce", "kdtree"):
            for i, recall in enumerate((0.5, 0.9, 1.0)):
                key = RunKey(DATASET, 10, algorithm, False, {}, {"step": i, "on": host})  # one file per host
                store.write(RunResult(key, "ok", metrics={"recall": recall, "qps": speed * 1000 / (i + 1)},
                                      attrs={"host": host}, neighbors=np.zeros((2, 10), "int32")))


def test_summary_groups_by_host_and_a_plot_mixing_hosts_warns(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _two_host_results(results)
    frame = results_frame(results, DATASET)
    here = socket.gethostname()
    assert hosts_per_curve(frame) == {("bruteforce", False): sorted([here, "other-host"]),
                                      ("kdtree", False): sorted([here, "other-host"])}

    table = call(plot_main, "--results", results, "--table", "csv", "--by-host", "--columns", "algorithm,qps")
    assert table.code == 0, table.err
    rows = pd.read_csv(io.StringIO(table.out))
    assert list(rows.columns[:2]) == ["host", "algorithm"] and list(rows["host"]) == sorted(rows["host"])
    points = call(plot_main, "--results", results, "--operating-points", "csv", "--by-host")
    per_host = pd.read_csv(io.StringIO(points.out))
    assert set(per_host["host"]) == {here, "other-host"}
    assert len(per_host) == 2 * 2 * 5                           # hosts × algorithms × recall levels
    fast = per_host[(per_host["algorithm"] == "kdtree") & (per_host["min_recall"] == 0.5)].set_index("host")
    assert fast.loc[here, "qps"] == 1000 and fast.loc["other-host", "qps"] == 300  # not mixed across hosts

    mixed = call(plot_main, "--results", results, "--output", tmp_path / "mixed.png")
    assert mixed.code == 0
    warned = [line for line in mixed.err.splitlines() if "mixes runs measured on 2 hosts" in line]
    assert len(warned) == 2 and any("bruteforce" in w for w in warned), mixed.err
    alone = call(plot_main, "--results", results, "--host", "other-host", "--output", tmp_path / "one.png")
    assert alone.code == 0 and "mixes" not in alone.err
    bad = call(plot_main, "--results", results, "--host", "nowhere")
    assert bad.code == 2 and "valid:" in bad.err and "other-host" in bad.err
