"""The parent side of isolation: start one child per task, hold it to its limits, say how it ended.

:func:`run_task_isolated` is the only place a child is launched; it blocks until the child
has ended and returns a :class:`~annbench.task.TaskOutcome`. It is safe to call from several
threads at once (the local executor does), and it is what a remote executor runs on its
workers. How each limit is enforced:

- time: the parent measures wall time from the start; past ``timeout_s`` it sends
  SIGUSR1 (the child's faulthandler writes every thread's stack to the log), waits briefly,
  then SIGKILLs the child's whole process group;
- memory: the parent samples the child's resident set (``/proc/<pid>/status`` VmRSS) every
  :data:`POLL_S` seconds and SIGKILLs the group above ``memory_bytes``; as a hard backstop
  against allocations faster than the sampling, the child's address space (RLIMIT_AS) is
  capped at :func:`address_space_limit` (an allocation beyond it fails in the child);
- cores: the child pins itself (``sched_setaffinity``) to ``cpus`` before importing any
  library, so thread pools started later stay on them.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from annbench.errors import UserError
from annbench.paths import PROJECT_ROOT
from annbench.task import (ENDED_EXIT, ENDED_MEMORY, ENDED_OK, ENDED_SIGNAL, ENDED_START, ENDED_TIMEOUT, Limits,
                           Task, TaskOutcome)
from annbench.threads import THREAD_ENV_VARS

#: Seconds between two checks of a child's clock and resident memory.
POLL_S = 0.02
#: Seconds a timed-out child gets to dump its stacks before it is killed.
DUMP_GRACE_S = 0.3
#: Characters of the log's end kept with a failure recorded by the parent.
LOG_TAIL_CHARS = 4000


def available_cores() -> list[int]:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def core_slots(parallelism: int, threads: int, cores: list[int] | None = None) -> list[tuple[int, ...]]:
    """``parallelism`` disjoint groups of ``threads`` cores each, one per concurrent child.

    Raises :class:`UserError` when they do not fit in the cores there are.
    """
    cores = available_cores() if cores is None else cores
    if parallelism < 1 or threads < 1:
        raise UserError(f"--parallelism {parallelism} / --threads {threads}: valid: integers >= 1")
    if parallelism * threads > len(cores):
        raise UserError(f"--parallelism {parallelism} with --threads {threads} needs {parallelism * threads} cores, "
                        f"this machine gives {len(cores)}; valid: parallelism × threads <= {len(cores)}")
    return [tuple(cores[i * threads:(i + 1) * threads]) for i in range(parallelism)]


def available_memory() -> int | None:
    """MemAvailable from ``/proc/meminfo`` in bytes (None where unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def address_space_limit(memory_bytes: int) -> int:
    """The RLIMIT_AS backstop for a resident-memory cap: libraries reserve address space they
    never touch (thread stacks, allocator arenas, mapped files), so twice the cap plus 1 GiB."""
    return 2 * memory_bytes + (1 << 30)


def resident_bytes(pid: int) -> int | None:
    """Current resident set of ``pid`` (None once it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - LOG_TAIL_CHARS))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def child_environment(threads: int) -> dict[str, str]:
    """The child's environment: thread counts pinned, annbench importable, unbuffered output."""
    env = dict(os.environ)
    for var in THREAD_ENV_VARS:
        env[var] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_task_isolated(task: Task, limits: Limits, log_path: Path,
                      cancel: threading.Event | None = None) -> TaskOutcome:
    """Run ``task`` in a fresh ``python -m annbench.worker`` process held to ``limits``.

    The child's stdout and stderr go to ``log_path`` (truncated first). Returns once the child
    has ended, however it ended; never raises for anything the child does. ``cancel`` set by
    another thread ends the child early (recorded as a signal).
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "annbench.worker", "--parent", str(os.getpid()), "--log", str(log_path)]
    if limits.cpus:
        argv += ["--cpus", ",".join(map(str, limits.cpus))]
    if limits.memory_bytes:
        argv += ["--address-space", str(address_space_limit(limits.memory_bytes))]
    start = time.monotonic()

    def outcome(reason: str, message: str, code: int | None = None, peak: int = 0) -> TaskOutcome:
        return TaskOutcome(task.task_id, reason, message, log_path, code, time.monotonic() - start, peak,
                           "" if reason == ENDED_OK else _tail(log_path))

    with open(log_path, "wb") as log_file:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT,
                                    env=child_environment(task.options.threads), start_new_session=True)
        except OSError as e:
            return outcome(ENDED_START, f"could not start the child: {e}")
    peak = 0
    killed: tuple[str, str] | None = None
    try:
        try:
            assert proc.stdin is not None
            proc.stdin.write(pickle.dumps(task))
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # the child died at once; its exit code says why
        while True:
            try:
                code = proc.wait(timeout=POLL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.monotonic() - start
            rss = resident_bytes(proc.pid) or 0
            peak = max(peak, rss)
            if limits.memory_bytes and rss > limits.memory_bytes:
                killed = (ENDED_MEMORY, f"memory cap: resident memory {rss / 2**20:.0f} MiB exceeded the limit "
                                        f"of {limits.memory_bytes / 2**20:.0f} MiB; killed")
                _kill_group(proc)
            elif limits.timeout_s is not None and elapsed > limits.timeout_s:
                killed = (ENDED_TIMEOUT, f"timeout: still running after {limits.timeout_s:g} s; killed "
                                         f"(stacks at the end of the log)")
                try:
                    os.kill(proc.pid, signal.SIGUSR1)  # faulthandler: dump the stacks
                    proc.wait(timeout=DUMP_GRACE_S)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    pass
                _kill_group(proc)
            elif cancel is not None and cancel.is_set():
                killed = (ENDED_SIGNAL, "cancelled: the sweep was interrupted")
                _kill_group(proc)
            if killed:
                code = proc.wait()
                break
    finally:
        if proc.poll() is None:  # an exception in this thread (e.g. KeyboardInterrupt): leave no child behind
            _kill_group(proc)
            proc.wait()
    if killed:
        return outcome(killed[0], killed[1], code, peak)
    if code == 0:
        return outcome(ENDED_OK, "finished", code, peak)
    if code < 0:
        name = _signal_name(-code)
        return outcome(ENDED_SIGNAL, f"crash: the child was killed by {name}", code, peak)
    return outcome(ENDED_EXIT, f"the child exited with code {code}", code, peak)
