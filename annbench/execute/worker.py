"""The child process of isolation: ``python -m annbench.execute.worker`` runs one :class:`~annbench.plan.task.Task`.

This module is the child's entry (limits, log, the task); the work itself is
:func:`annbench.execute.child.run_task`. The parent (:func:`annbench.execute.isolation.run_task_isolated`)
starts it with its stdout and stderr going to the build setting's log file and the pickled task on stdin.
Before anything heavy is imported the child pins itself to its cores, caps its address space, asks the kernel
to kill it when the parent dies, and turns on :mod:`faulthandler` (a crash or a hang leaves
the Python stack in the log). Then it opens the dataset file itself, checks its checksum
against the parent's, builds the index and stores every run as it completes: each result
carries the task's id, which is how the parent learns what finished, even after a crash.

A child forked by a warm parent (:mod:`annbench.execute.forkserver`) runs :func:`forked_child` instead of
``main``: the same limits, log redirection and task, on a process whose libraries are imported.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import pickle
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from annbench.core.claims import BesideRef
    from annbench.plan.task import Task

log = logging.getLogger(__name__)

def apply_limits(parent_pid: int | None, cpus: list[int] | None, address_space: int | None) -> None:
    """Pin to ``cpus``, cap the address space (RLIMIT_AS), follow the parent's death, dump stacks on demand."""
    from annbench.core.processes import DUMP_SIGNAL, die_with_parent

    faulthandler.enable(all_threads=True)
    faulthandler.register(DUMP_SIGNAL, all_threads=True)
    if parent_pid is not None:
        die_with_parent(parent_pid)
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)
    if address_space is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = address_space if hard == resource.RLIM_INFINITY else min(address_space, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _log_to(log_path: Path) -> None:
    """This process's stdin from /dev/null, stdout and stderr (fds 1 and 2: C libraries' output too)
    appended to ``log_path``."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _start_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname).1s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    from annbench.core.logs import quiet_library_loggers

    quiet_library_loggers()


def forked_child(task: Task, log_path: Path, server_pid: int, cpus: list[int] | None,
                 address_space: int | None, beside: BesideRef | None = None) -> NoReturn:
    """The body of a child forked by a warm parent (:mod:`annbench.execute.forkserver`): what ``main`` does
    in a fresh interpreter, on a process that already has the adapter's library imported. Never
    returns: exits 0 when every run is stored, 1 after an exception (its traceback in the log)."""
    code = 1
    try:
        started = time.perf_counter()
        os.setsid()  # its own process group: the sweep kills the group
        for number in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        _log_to(log_path)
        apply_limits(server_pid, cpus, address_space)
        _start_logging()
        import numpy as np

        np.random.seed()  # noqa: NPY002 - as a fresh interpreter would: not the server's global random state
        log.info("worker pid %d for %s: %d runs, cpus %s, forked from warm parent %d in %.3f s", os.getpid(),
                 task.label(), len(task.keys), sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else "-", server_pid, time.perf_counter() - started)
        from annbench.execute.child import run_task

        run_task(task, log_path, beside)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m annbench.execute.worker", description=__doc__, allow_abbrev=False)
    p.add_argument("--parent", type=int, help="pid of the parent: die with it")
    p.add_argument("--cpus", help="comma-separated cores to pin to")
    p.add_argument("--address-space", type=int, help="RLIMIT_AS in bytes")
    p.add_argument("--log", type=Path, help="this child's log file (recorded in its results)")
    p.add_argument("--beside", help="this child's presence in the machine's claims registry (annbench.core.claims)")
    args = p.parse_args(argv)
    apply_limits(args.parent, [int(c) for c in args.cpus.split(",")] if args.cpus else None, args.address_space)
    _start_logging()
    started = time.perf_counter()
    task = pickle.loads(sys.stdin.buffer.read())  # imports annbench (and numpy) here, after the limits
    log.info("worker pid %d for %s: %d runs, cpus %s, imports %.3f s", os.getpid(), task.label(),
             len(task.keys), sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "-",
             time.perf_counter() - started)
    beside = None
    if args.beside:
        from annbench.core.claims import BesideRef

        beside = BesideRef.from_arg(args.beside)
    from annbench.execute.child import run_task

    run_task(task, args.log, beside)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # every result is already fsynced: skip the interpreter's teardown
