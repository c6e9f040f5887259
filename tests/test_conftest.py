"""How the suite shares the machine between its xdist workers (tests/conftest.py): the machine lock,
each worker on a core of its own, every core for an ``all_cores`` test."""

from __future__ import annotations

import fcntl
import gc
import os
import threading
import time
from pathlib import Path

import pytest
from conftest import (
    _CORES,
    SHARED_DATA,
    TIER_MARKERS,
    MachineLock,
    _code_uses,
    call,
    modules_in_schedule_order,
    tier_markers,
)

from annbench.backends.discovery import load_adapter
from annbench.cli.run import main as run_main
from annbench.core.paths import ALGORITHMS_DIR

WORKER = os.environ.get("PYTEST_XDIST_WORKER")


def _held(lock_file) -> bool:  # an open file
    """Whether another open file holds ``lock_file``'s lock (a non-blocking attempt fails)."""
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(lock_file, fcntl.LOCK_UN)
    return False


def test_exclusive_waits_for_shared_holders_and_keeps_new_ones_out(tmp_path: Path) -> None:
    reader, writer, probe = MachineLock(tmp_path), MachineLock(tmp_path), MachineLock(tmp_path)
    order: list[str] = []
    with reader.hold(exclusive=False):
        with probe.hold(exclusive=False):  # shared holders do not exclude each other
            order.append("two readers")

        def exclusive() -> None:
            with writer.hold(exclusive=True):
                order.append("writer")

        thread = threading.Thread(target=exclusive, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not _held(probe._turnstile):  # the writer waits, holding the turnstile: new readers wait too
            assert time.monotonic() < deadline, "the writer never reached the turnstile"
            time.sleep(0.01)
        assert order == ["two readers"] and thread.is_alive()  # not while a reader holds the lock
        order.append("reader done")
    thread.join(30)
    assert order == ["two readers", "reader done", "writer"]
    assert not _held(probe._machine) and not _held(probe._turnstile)


def test_consecutive_exclusive_holds_keep_the_lock_between_them(tmp_path: Path) -> None:
    writer, probe = MachineLock(tmp_path), MachineLock(tmp_path)
    with writer.hold(exclusive=True, keep=True):
        pass
    assert _held(probe._machine)  # kept for the next exclusive hold: no reader gets in between
    with writer.hold(exclusive=True):
        assert _held(probe._machine)
    assert not _held(probe._machine) and not _held(probe._turnstile)
    with writer.hold(exclusive=False, keep=True):  # only an exclusive hold is kept
        pass
    assert not _held(probe._machine)


def test_a_worker_runs_on_one_core_of_the_session(request: pytest.FixtureRequest) -> None:
    session = set(request.config.stash[_CORES])
    now = os.sched_getaffinity(0)
    assert (len(now) == 1 and now <= session) if WORKER else now == session


@pytest.mark.all_cores
def test_an_all_cores_test_runs_on_every_core_of_the_session(request: pytest.FixtureRequest) -> None:
    assert os.sched_getaffinity(0) == set(request.config.stash[_CORES])


# ------------------------------------------------------------------ the tiers' markers, from what a test uses

def _probe_sweep_in_children(data_dir):
    return call(run_main, "--dataset", "random-xs-20-euclidean", "--data-dir", data_dir)


def _probe_sweep_in_process(data_dir):
    return call(run_main, "--data-dir", data_dir, "--executor", "inprocess")


def _probe_both_executors(data_dir):
    return [call(run_main, "--data-dir", data_dir, "--executor", e) for e in ("local", "inprocess")]


def _probe_helper_sweeps():
    return _probe_sweep_in_children(Path("."))


def _probe_trains_a_gru():
    from annbench.apps.encoders import gru

    return gru


def _probe_reads_shared_data():
    return SHARED_DATA / "surnames"


SURNAMES_CSV = SHARED_DATA / "surnames" / "surnames.csv"


def _probe_reads_a_constant_made_from_shared_data():
    return SURNAMES_CSV.read_text()


def _probe_calls_the_marker_rules():  # conftest's own code names what it looks for: not followed into
    return tier_markers({"pure"})


def _probe_numba():
    return load_adapter("pynndescent", [ALGORITHMS_DIR])


def _probe_milvus_lite():  # a gRPC server per database file and ~2 s a build
    return load_adapter("milvus-hnsw", [ALGORITHMS_DIR])


def _probe_pure():
    return sorted([3, 1, 2])


#: Looked up by name, so this module's test does not itself use what the probes use.
PROBES = {name[len("_probe_"):]: f for name, f in dict(globals()).items() if name.startswith("_probe_")}


@pytest.mark.parametrize(("probe", "expected"), [
    ("sweep_in_children", {"slow"}), ("sweep_in_process", set()), ("both_executors", {"slow"}),
    ("helper_sweeps", {"slow"}), ("trains_a_gru", {"slow", "needs_torch"}),
    ("reads_shared_data", {"slow", "needs_shared_data"}),
    ("reads_a_constant_made_from_shared_data", {"slow", "needs_shared_data"}), ("calls_the_marker_rules", set()),
    ("numba", {"slow"}), ("milvus_lite", {"slow"}), ("pure", set()),
])
def test_tier_markers_follow_what_a_test_uses(probe: str, expected: set[str]) -> None:
    function = PROBES[probe]
    found: set[str] = set()
    _code_uses(function.__code__, function.__globals__, found, set())
    assert tier_markers(found) == expected


def test_the_suite_marks_its_own_tests(request: pytest.FixtureRequest) -> None:
    """This very test uses nothing slow; a test of the Chromium report is marked as such when collected."""
    assert request.node.get_closest_marker("slow") is None
    assert {"slow", "needs_chromium"} <= TIER_MARKERS.keys()


def test_the_heap_earlier_tests_left_is_frozen() -> None:
    """At a module's first test the objects alive (imported modules, caches) are out of the collector's reach,
    so the ``gc.collect()`` of each measured pass in a test scans only what its module made."""
    assert gc.get_freeze_count() > 10_000


class _Item:
    """What ``modules_in_schedule_order`` reads of a test item: its node id and its markers."""

    def __init__(self, nodeid: str, exclusive: bool = False) -> None:
        self.nodeid, self._exclusive = nodeid, exclusive

    def get_closest_marker(self, name: str) -> object | None:
        return object() if name == "exclusive" and self._exclusive else None


def test_modules_are_handed_out_exclusive_first_then_longest_first_each_kept_whole() -> None:
    items = [_Item("tests/test_a.py::x"), _Item("tests/test_b.py::x"), _Item("tests/test_a.py::y"),
             _Item("tests/test_gate.py::quick"), _Item("tests/test_gate.py::timed", exclusive=True),
             _Item("tests/test_new.py::x"), _Item("tests/test_c.py::x")]
    durations = {"test_a": 5.0, "test_b": 50.0, "test_c": 1.0, "test_gate": 0.5}
    order = [i.nodeid for i in modules_in_schedule_order(items, durations)]
    # the gate holds an exclusive test; test_new is not recorded: the median (3.0) places it between a and c
    assert order == ["tests/test_gate.py::quick", "tests/test_gate.py::timed", "tests/test_b.py::x",
                     "tests/test_a.py::x", "tests/test_a.py::y", "tests/test_new.py::x", "tests/test_c.py::x"]
