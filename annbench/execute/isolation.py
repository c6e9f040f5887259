"""The parent side of isolation: start one child per task, hold it to its limits, say how it ended.

:func:`run_task_isolated` is the one entry point: it has the child forked by a warm parent
(a :class:`Launcher`, see :mod:`annbench.execute.forkclient`) or starts a fresh interpreter
(:func:`start_cold`), holds either to its limits with the same loop (:func:`hold`), blocks until
the child has ended and returns a :class:`~annbench.plan.task.TaskOutcome`. It is safe to call from several
threads at once (the local executor does), and it is what a remote executor runs on its
workers. How each limit is enforced:

- time: the parent measures wall time from the start; past ``timeout_s`` it sends
  SIGUSR1 (the child's faulthandler writes every thread's stack to the log), waits briefly,
  then SIGKILLs the child's whole process group;
- memory: the parent samples the resident set of the child and every process below it (a
  database's server; ``/proc/<pid>/status`` VmRSS) every :data:`POLL_S` seconds and SIGKILLs
  the group above ``memory_bytes``; as a hard backstop
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from annbench.core.claims import BesideRef
from annbench.core.errors import UserError
from annbench.core.paths import PROJECT_ROOT
from annbench.core.processes import DUMP_SIGNAL, kill_group, tree_resident_bytes
from annbench.core.threads import THREAD_ENV_VARS, available_cores
from annbench.plan.task import Ended, Limits, Task, TaskOutcome

#: Seconds between two checks of a child's clock and resident memory.
POLL_S = 0.02
#: Seconds a timed-out child gets to dump its stacks before it is killed.
DUMP_GRACE_S = 0.3
#: Characters of the log's end kept with a failure recorded by the parent.
LOG_TAIL_CHARS = 4000


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


def memory_share(children: int) -> int | None:
    """Each child's share of this machine's available memory when ``children`` run at once (the default
    memory cap of a local sweep and of a Dask worker's child); None where the available memory is unknown."""
    free = available_memory()
    return None if free is None else free // max(1, children)


def address_space_limit(memory_bytes: int) -> int:
    """The RLIMIT_AS backstop for a resident-memory cap: libraries reserve address space they
    never touch (thread stacks, allocator arenas, mapped files), so twice the cap plus 1 GiB."""
    return 2 * memory_bytes + (1 << 30)


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


class Child(Protocol):
    """A running child as the parent holds it to its limits: a fresh interpreter or a forked one."""

    pid: int

    def wait(self, timeout: float) -> int | None:
        """Its exit code once it has ended (``-N`` for signal N), else None after ``timeout`` seconds."""

    def kill(self) -> None:
        """SIGKILL its whole process group."""


class Launcher(Protocol):
    """Starts a task's child some other way than a fresh interpreter (a warm fork server)."""

    def launch(self, task: Task, limits: Limits, log_path: Path, beside: BesideRef | None = None) -> Child | None:
        """The started child, or None when this launcher cannot start it (the caller starts it cold)."""


@dataclass
class Popened:
    """A child started with :class:`subprocess.Popen` in its own session."""

    proc: subprocess.Popen
    pid: int = field(init=False)

    def __post_init__(self) -> None:
        self.pid = self.proc.pid

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            kill_group(self.pid)


@dataclass(frozen=True)
class Held:
    """How :func:`hold` ended: the exit code, ``(reason, message)`` if the parent killed the child, the peak RSS."""

    code: int | None
    killed: tuple[Ended, str] | None
    peak_rss_bytes: int


def hold(child: Child, limits: Limits, start: float, cancel: threading.Event | None = None) -> Held:
    """Wait for ``child`` to end, holding it to ``limits`` (wall time from ``start``, resident memory);
    the one waiting loop of every child, cold or forked. Never leaves the child running: an exception
    in this thread (e.g. KeyboardInterrupt) kills it before it propagates."""
    peak = 0
    killed: tuple[Ended, str] | None = None
    code: int | None = None
    try:
        while (code := child.wait(POLL_S)) is None:
            rss = tree_resident_bytes(child.pid) or 0  # a database's server counts too
            peak = max(peak, rss)
            if limits.memory_bytes and rss > limits.memory_bytes:
                killed = (Ended.MEMORY, f"memory cap: resident memory {rss / 2**20:.0f} MiB exceeded the limit "
                                        f"of {limits.memory_bytes / 2**20:.0f} MiB; killed")
                child.kill()
            elif limits.timeout_s is not None and time.monotonic() - start > limits.timeout_s:
                killed = (Ended.TIMEOUT, f"timeout: still running after {limits.timeout_s:g} s; killed "
                                         f"(stacks at the end of the log)")
                try:
                    os.kill(child.pid, DUMP_SIGNAL)  # faulthandler: dump the stacks
                    child.wait(DUMP_GRACE_S)
                except ProcessLookupError:
                    pass
                child.kill()
            elif cancel is not None and cancel.is_set():
                killed = (Ended.SIGNAL, "cancelled: the sweep was interrupted")
                child.kill()
            if killed:
                while (code := child.wait(POLL_S)) is None:
                    pass
                break
    finally:
        if code is None:
            child.kill()
            while child.wait(POLL_S) is None:
                pass
    return Held(code, killed, peak)


def child_environment(threads: int) -> dict[str, str]:
    """The child's environment: thread counts pinned, annbench importable, unbuffered output, a
    fork-safe numba threading layer (unless ``$NUMBA_THREADING_LAYER`` says otherwise)."""
    env = dict(os.environ)
    for var in THREAD_ENV_VARS:
        env[var] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    # numba's default layer here is GNU OpenMP, which kills a process forked after using it; workqueue
    # (or TBB where installed) is fork-safe. Set for cold children too, so both measure the same code.
    env.setdefault("NUMBA_THREADING_LAYER", "forksafe")
    return env


def start_cold(task: Task, limits: Limits, log_path: Path, beside: BesideRef | None = None) -> Child:
    """Start ``python -m annbench.execute.worker`` for ``task`` in its own session, output to ``log_path``
    (truncated), the pickled task on its stdin. Raises OSError when it cannot be started."""
    argv = [sys.executable, "-m", "annbench.execute.worker", "--parent", str(os.getpid()), "--log", str(log_path)]
    if limits.cpus:
        argv += ["--cpus", ",".join(map(str, limits.cpus))]
    if limits.memory_bytes:
        argv += ["--address-space", str(address_space_limit(limits.memory_bytes))]
    if beside is not None:
        argv += ["--beside", beside.to_arg()]
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log_file, stderr=subprocess.STDOUT,
                                env=child_environment(task.options.threads), start_new_session=True)
    try:
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps(task))
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass  # the child died at once; its exit code says why
    return Popened(proc)


def run_task_isolated(task: Task, limits: Limits, log_path: Path, cancel: threading.Event | None = None,
                      launcher: Launcher | None = None, beside: BesideRef | None = None) -> TaskOutcome:
    """Run ``task`` in a child process held to ``limits``: forked by ``launcher`` (a warm fork
    server, see :mod:`annbench.execute.forkserver`) when it gives one, else a fresh ``python -m
    annbench.execute.worker`` process.

    The child's stdout and stderr go to ``log_path`` (truncated first). Returns once the child
    has ended, however it ended; never raises for anything the child does. ``cancel`` set by
    another thread ends the child early (recorded as a signal). ``beside``: the child's presence in
    the machine's claims registry; each result it stores then says how many other measuring
    processes ran beside it (:mod:`annbench.core.claims`).
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()

    def outcome(reason: Ended, message: str, code: int | None = None, peak: int = 0) -> TaskOutcome:
        return TaskOutcome(task.task_id, reason, message, log_path, code, time.monotonic() - start, peak,
                           "" if reason == Ended.OK else _tail(log_path))

    child = launcher.launch(task, limits, log_path, beside) if launcher is not None else None
    if child is None:
        try:
            child = start_cold(task, limits, log_path, beside)
        except OSError as e:
            return outcome(Ended.START, f"could not start the child: {e}")
    held = hold(child, limits, start, cancel)
    code = held.code
    if held.killed:
        return outcome(held.killed[0], held.killed[1], code, held.peak_rss_bytes)
    if code == 0:
        return outcome(Ended.OK, "finished", code, held.peak_rss_bytes)
    if code is not None and code < 0:
        return outcome(Ended.SIGNAL, f"crash: the child was killed by {_signal_name(-code)}", code,
                       held.peak_rss_bytes)
    return outcome(Ended.EXIT, f"the child exited with code {code}", code, held.peak_rss_bytes)
