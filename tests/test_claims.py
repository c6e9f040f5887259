"""Cores claimed machine-wide (annbench.core.claims): a claim waits for a held core and says who holds
it, takes free cores first, is gone the moment its process is SIGKILLed; children count every measuring
process beside them; real sweeps started together never measure on one core at once; --share-cores.

Every test has a registry of its own (a temporary folder), so nothing else on the machine takes part.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from conftest import REPO, write_backend

from annbench.analyse.frames import results_frame
from annbench.core.claims import ENV_CLAIMS_DIR, BesideRef, CoreClaims, Look, Presence, live_presences
from annbench.execute.isolation import available_cores

DATASET = "random-xs-20-euclidean"
#: A process that claims cores in a registry and then sleeps: ``python -c HOLD FOLDER RESULTS CORE``.
HOLD = """
import sys, time
from annbench.core.claims import CoreClaims
claims = CoreClaims(sys.argv[2], [int(sys.argv[3])], folder=__import__("pathlib").Path(sys.argv[1]))
claims.claim(1)
print("ready", flush=True)
time.sleep(600)
"""
#: An exact adapter whose build sleeps ``delay`` seconds: a child that holds its core for a known while;
#: with ``$SLOW_GO`` (a file's path) it first says it is building (``$SLOW_GO.<pid>``), then waits for that
#: file, so it holds its core until a test has seen what it waits for (a second sweep waiting for the core,
#: or building beside it).
SLOW = '''
import os
import time
import numpy as np
from annbench.backends.adapter import Adapter


class Slow(Adapter):
    metrics = ("euclidean",)

    def __init__(self, metric: str, delay: float = 0.0, threads: int = 1) -> None:
        super().__init__(metric, threads)
        self.delay = delay

    def fit(self, X):
        go, deadline = os.environ.get("SLOW_GO"), time.monotonic() + 300
        if go:
            open(f"{go}.{os.getpid()}", "w").close()
        while go and not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(float(os.environ.get("SLOW_DELAY", self.delay)))  # a sweep's own delay, the grid alike
        self._x, self._sq = X, (X.astype(np.float64) ** 2).sum(axis=1)

    def query(self, q, k):
        d = self._sq - 2.0 * (self._x @ q)
        ids = np.argpartition(d, k)[:k]
        return ids[np.argsort(d[ids], kind="stable")]
'''


def _holder(folder: Path, results: str, core: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), results, str(core)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_a_claim_waits_says_who_holds_the_core_and_gets_it_when_the_holder_is_killed(tmp_path: Path) -> None:
    holder = _holder(tmp_path, "/somewhere/results-a", 0)
    try:
        assert live_presences(tmp_path)  # the holder measures
        shown: list[str | None] = []
        claims = CoreClaims(tmp_path / "results-b", [0], folder=tmp_path, on_wait=shown.append)
        got = []
        waiter = threading.Thread(target=lambda: got.append(claims.claim(1)))
        waiter.start()
        deadline = time.monotonic() + 10
        while not shown and time.monotonic() < deadline:
            time.sleep(0.01)
        assert shown == [f"waiting for cores: sweep {holder.pid} (results /somewhere/results-a) on cores 0"]
        time.sleep(0.3)
        assert not got  # still waiting
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel dropped the killed process's lock: the claim is gone at once, its presence too
    waiter.join(5)
    assert len(got) == 1 and got[0].cores == (0,) and not got[0].shared
    assert shown[-1] is None  # the progress bar's line cleared
    assert live_presences(tmp_path, got[0].presence.name) == set()
    assert claims.holders() == {0: claims.holders()[0]} and claims.holders()[0].pid == os.getpid()
    claims.release(got[0])
    assert claims.holders() == {} and live_presences(tmp_path) == set()


def test_free_cores_first_and_share_cores_measures_anyway(tmp_path: Path) -> None:
    holder = _holder(tmp_path, "/somewhere/results-a", 0)
    try:
        claims = CoreClaims(tmp_path / "b", [0, 1], folder=tmp_path)
        with claims.claimed(1) as claim:
            assert claim.cores == (1,) and not claim.shared  # core 0 is held: the free one, no wait
        sharing = CoreClaims(tmp_path / "c", [0], share=True, folder=tmp_path)
        with sharing.claimed(1) as claim:
            assert claim.cores == (0,) and claim.shared
            assert len(live_presences(tmp_path)) == 2  # the sharer is counted beside the holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_a_child_counts_every_measuring_process_that_ran_beside_it(tmp_path: Path) -> None:
    own = Presence(tmp_path, (0,))
    look = Look(BesideRef(tmp_path, own.name))
    assert look.since_last() == 0
    first = Presence(tmp_path, (1,))
    assert look.since_last() == 1      # started since the last look
    assert look.since_last() == 1      # alive at the last look
    first.release()
    second = Presence(tmp_path, (1,))
    second.release()                   # started and ended between two looks: still beside
    assert look.since_last() == 2      # first (alive at the last look) and second
    assert look.since_last() == 0
    own.release()


def _slow_adapter(tmp_path: Path, delays: str) -> list[str]:
    folder = write_backend(tmp_path / "backends", "slow", SLOW, f"  quick:\n    build: {{delay: [{delays}]}}")
    return ["--algorithms-dir", str(folder), "--configs-dir", str(folder)]


def _start(results: Path, data_dir: Path, claims: Path, core: int, *extra: str,
           env: dict[str, str] | None = None) -> subprocess.Popen:
    """A real sweep (``python run.py``) pinned to ``core`` with its own registry ``claims``, measuring as
    briefly as ``run`` allows, in the child alone (what is tested is who measures when, not what: a child's
    measuring processes run inside its claim)."""
    argv = [sys.executable, "run.py", "--dataset", DATASET, "--runs", "1", "--processes", "1", "--warmup", "none",
            "--min-pass-time", "0", "--data-dir", str(data_dir), "--results", str(results), "--no-plot", *extra]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, ENV_CLAIMS_DIR: str(claims), "PYTHONPATH": str(REPO), **(env or {})},
                            preexec_fn=lambda: os.sched_setaffinity(0, {core}))


def _wait_claimed(claims: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not CoreClaims("-", available_cores(), folder=claims).holders():
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep never claimed a core"
        time.sleep(0.02)


def _second_beside_first(tmp_path: Path, data_dir: Path, core: int, first: list[str], second: list[str],
                         results: tuple[str, str] = ("a", "b"), go: Callable[[str], bool] = lambda err: True,
                         ) -> tuple[subprocess.Popen, subprocess.Popen, tuple[str, str, str]]:
    """Sweep ``first`` started, then (once it has claimed the core) sweep ``second``, both pinned to
    ``core`` with one registry; both must exit 0. The slow adapter's builds (:data:`SLOW`) wait until
    ``go(second's error output so far)`` holds, or the second has ended. The two processes, the first's
    output, the second's output and error output."""
    started = tmp_path / "go"
    env = {"SLOW_GO": str(started)}
    a = _start(tmp_path / results[0], data_dir, tmp_path / "claims", core, *first, env=env)
    try:
        _wait_claimed(tmp_path / "claims", a)
        b = _start(tmp_path / results[1], data_dir, tmp_path / "claims", core, *second, env=env)
        err: list[str] = []
        reader = threading.Thread(target=lambda: err.extend(iter(lambda: b.stderr.read(1), "")), daemon=True)
        reader.start()
        deadline = time.monotonic() + 300
        while not started.exists():
            if b.poll() is not None or go("".join(err)):
                started.touch()
            assert time.monotonic() < deadline, "the second sweep never got to the point the test waits for"
            time.sleep(0.02)
        out_b = b.stdout.read()
        b.wait(timeout=300)
        reader.join(60)
        out_a, err_a = a.communicate(timeout=300)
    finally:
        a.kill()
    err_b = "".join(err)
    assert a.returncode == 0 and b.returncode == 0, (err_a, err_b)
    return a, b, (out_a, out_b, err_b)


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", re.M)


def _child_intervals(results: Path) -> list[tuple[int, datetime, datetime]]:
    """(core, first log line, last log line) of every child of a sweep, from its log."""
    spans = []
    for log in results.rglob("logs/*/*.log"):
        if log.name.startswith("warm-parent"):
            continue
        text = log.read_text()
        cpus = re.search(r"worker pid \d+ for .*cpus \[(\d+)\]", text)
        stamps = [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in _STAMP.findall(text)]
        assert cpus and stamps, text
        spans.append((int(cpus.group(1)), stamps[0], stamps[-1]))
    return spans


@pytest.mark.parametrize("folders", [("a", "b"), ("a", "a")], ids=["two folders", "one folder"])
def test_two_sweeps_never_measure_on_one_core_at_once_nor_one_run_twice(folders: tuple[str, str], tmp_path: Path,
                                                                         data_dir: Path) -> None:
    """Two sweeps of one grid, the second started once the first has claimed the only core: one
    child at a time on the core; on one results folder each run measured by one of them, the other
    counting it as that sweep's; no failure, exit codes 0."""
    core = available_cores()[0]
    slow = _slow_adapter(tmp_path, "0.2, 0.3, 0.4")
    grid = ["--algorithm", "slow,kdtree", *slow]
    # the first sweep's first build holds the core until the second says it waits for it (or, were claims
    # broken, until a second build runs beside it: the checks below then fail at once, not at a timeout)
    a, b, (out_a, out_b, err_b) = _second_beside_first(
        tmp_path, data_dir, core, grid, grid, folders,
        go=lambda err: "waiting for cores: sweep" in err or len(list(tmp_path.glob("go.*"))) >= 2)
    spans = sorted({s for f in set(folders) for s in _child_intervals(tmp_path / f)}, key=lambda s: s[1])
    assert {s[0] for s in spans} == {core}
    for (_, _, end), (_, start, _) in zip(spans, spans[1:]):
        assert end <= start, spans  # one child at a time on the core
    for f in set(folders):
        frame = results_frame(tmp_path / f)
        assert len(frame) == 4 and (frame["status"] == "ok").all() and not frame["cores_shared"].any()
    if folders[0] != folders[1]:
        assert len(spans) == 8
        # b started while a measured on the only core: it waited, saying once which sweep held it
        said = f"waiting for cores: sweep {a.pid} (results {(tmp_path / 'a').resolve()}) measures on them"
        assert err_b.count(said) == 1, err_b
        return
    assert len(spans) == 4  # each build setting measured once, by one of them
    done = {}
    for pid, out in ((a.pid, out_a), (b.pid, out_b)):
        m = re.search(r"^(\d+) runs done, 0 failed(?:, (\d+) measured by sweep (\d+))?, (\d+) already stored",
                      out, re.M)
        assert m, out
        done[pid] = int(m.group(1))
        assert not m.group(2) or int(m.group(3)) == ({a.pid, b.pid} - {pid}).pop()
        assert int(m.group(1)) + int(m.group(2) or 0) + int(m.group(4)) == 4
    assert sum(done.values()) == 4 and done[b.pid] < 4, (out_a, out_b)  # b left a's runs to a


def test_a_run_left_to_a_sweep_that_dies_is_measured_by_the_other(tmp_path: Path, data_dir: Path) -> None:
    core = available_cores()[0]
    grid = ["--algorithm", "slow,kdtree", *_slow_adapter(tmp_path, "0.5")]
    a = _start(tmp_path / "r", data_dir, tmp_path / "claims", core, *grid, env={"SLOW_DELAY": "120"})
    try:
        _wait_claimed(tmp_path / "claims", a)  # a measures slow (120 s)
        b = _start(tmp_path / "r", data_dir, tmp_path / "claims", core, *grid)
        deadline = time.monotonic() + 60
        while not list((tmp_path / "r").glob(f"{DATASET}/10/kdtree/.*.claim")):
            assert b.poll() is None and time.monotonic() < deadline, "b never claimed kdtree's run"
            time.sleep(0.05)  # b left slow to a, claimed kdtree, waits for the core
    finally:
        a.send_signal(signal.SIGKILL)
        a.wait()
    out_b, err_b = b.communicate(timeout=300)
    assert b.returncode == 0, err_b
    assert f"sweep {a.pid} did not store it; measuring it here" in err_b
    assert re.search(r"^2 runs done, 0 failed, 0 already stored", out_b, re.M), out_b
    frame = results_frame(tmp_path / "r")
    assert len(frame) == 2 and (frame["status"] == "ok").all()


def test_share_cores_measures_beside_the_holder_and_says_so(tmp_path: Path, data_dir: Path) -> None:
    core = available_cores()[0]
    slow = _slow_adapter(tmp_path, "0.5")
    # the first sweep's build holds the core until the second's child builds beside it
    _, _, (_, out_b, err_b) = _second_beside_first(tmp_path, data_dir, core, ["--algorithm", "slow", *slow],
                                                ["--algorithm", "slow", "--share-cores", *slow],
                                                go=lambda err: len(list(tmp_path.glob("go.*"))) >= 2)
    assert "waiting for cores" not in err_b and "measuring on them anyway (--share-cores)" in err_b
    shared, holder = results_frame(tmp_path / "b"), results_frame(tmp_path / "a")
    assert shared["cores_shared"].all() and (shared["concurrent_children"] >= 1).all()
    assert not holder["cores_shared"].any() and (holder["concurrent_children"] >= 1).all()
    assert "shared cores: 1 of 1 runs were measured on cores another sweep had claimed" in out_b
    assert "measured on another sweep's cores" in shared["note"].iloc[0]


def test_a_killed_sweeps_claims_are_gone_at_once(tmp_path: Path, data_dir: Path) -> None:
    core = available_cores()[0]
    slow = _slow_adapter(tmp_path, "60.0")
    a = _start(tmp_path / "a", data_dir, tmp_path / "claims", core, "--algorithm", "slow", *slow)
    try:
        _wait_claimed(tmp_path / "claims", a)
        # the sweep registers its child's presence just after taking the core's lock: wait for that too
        deadline = time.monotonic() + 60
        while not live_presences(tmp_path / "claims"):
            assert a.poll() is None and time.monotonic() < deadline, "the sweep never registered its child"
            time.sleep(0.02)
    finally:
        a.send_signal(signal.SIGKILL)
        a.wait()
    claims = CoreClaims("-", [core], folder=tmp_path / "claims")
    assert claims.holders() == {} and live_presences(tmp_path / "claims") == set()
    with claims.claimed(1) as claim:  # no wait
        assert claim.cores == (core,) and not claim.shared


@pytest.mark.parametrize("executor", ["inprocess", "dask"])
def test_share_cores_is_for_the_local_executor(executor: str, data_dir: Path, tmp_path: Path) -> None:
    from conftest import call

    from annbench.cli.run import main as run_main

    r = call(run_main, "--share-cores", "--executor", executor, "--data-dir", data_dir, "--results", tmp_path)
    assert r.code == 2 and r.err.startswith(f"error: --share-cores with --executor {executor}"), r.err
