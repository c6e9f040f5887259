"""How the suite shares the machine between its xdist workers (tests/conftest.py): the machine lock,
each worker on a core of its own, every core for an ``all_cores`` test."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest
from conftest import _CORES, MachineLock

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


def test_a_worker_runs_on_one_core_of_the_session(request: pytest.FixtureRequest) -> None:
    session = set(request.config.stash[_CORES])
    now = os.sched_getaffinity(0)
    assert (len(now) == 1 and now <= session) if WORKER else now == session


@pytest.mark.all_cores
def test_an_all_cores_test_runs_on_every_core_of_the_session(request: pytest.FixtureRequest) -> None:
    assert os.sched_getaffinity(0) == set(request.config.stash[_CORES])
