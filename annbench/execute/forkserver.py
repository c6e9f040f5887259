"""Warm parents: one fork server per algorithm per sweep, a fresh forked child per build setting.

A fresh interpreter per build setting costs ~200 ms before any work, and libraries that compile
(PyNNDescent's numba) pay their JIT in every child. A fork server (``python -m
annbench.execute.forkserver``, a fresh interpreter started by the sweep) instead imports the adapter's
library once, runs the adapter's untimed ``warm_up`` once on the sweep's dataset, then forks one
child per build setting; the child inherits the imported modules and the compiled code.

The server is single-threaded where it forks (its loop never starts a thread; see
:func:`serve`), so the sweep process, which runs its executor in threads, never forks. The
forked child does what a cold child does (:func:`annbench.execute.worker.forked_child`): new session,
stdout/stderr ``dup2``-ed onto the build setting's log, pinning, RLIMIT_AS, faulthandler, and
``PR_SET_PDEATHSIG`` towards the server, which itself dies with the sweep. The sweep holds the
child to its limits exactly as a cold one (:func:`annbench.execute.isolation.hold`): it samples the
child's ``/proc/<pid>``, signals and kills its process group; the server only reports the exit
status, which it reads without reaping (``waitid(WNOWAIT)``) so the pid cannot be reused until
the sweep has seen it.

Protocol, over a Unix socket in a private folder, one connection per child (pickled
messages framed by :mod:`multiprocessing.connection`): the sweep sends ``(task, log_path, cpus,
address_space, beside)``; the server answers ``("forked", pid)`` or ``("error", message)``, then
``("exit", code)`` once the child has ended (``-N`` for signal N); the sweep closes the
connection, and the server reaps the child. Closing the server's stdin shuts it down (any child
still running is killed).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import pickle
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Client, Connection
from pathlib import Path

from annbench.execute.isolation import (
    Child,
    Popened,
    address_space_limit,
    child_environment,
    hold,
    kill_group,
    resident_bytes,
)
from annbench.execute.occupancy import SlotRef
from annbench.execute.task import Limits, Task
from annbench.store.folder import process_alive

log = logging.getLogger(__name__)

#: Seconds the server's loop sleeps at most between two looks at its children.
LOOP_S = 0.5
#: Seconds a shut-down server gets to end its children and exit before it is killed.
SHUTDOWN_S = 2.0
#: The line a server writes on its stdout once it is warm and listening.
READY = b"ready\n"


@dataclass(frozen=True)
class WarmKey:
    """What one fork server is for: children of other keys need another server."""

    algorithm: str
    threads: int
    adapter_dirs: tuple[Path, ...]


@dataclass(frozen=True)
class WarmUp:
    """What the server needs to get warm: the key, and the dataset and build setting to warm up on."""

    key: WarmKey
    dataset: str
    dataset_path: Path
    build_params: dict


# --------------------------------------------------------------------------------------------
# server side (python -m annbench.execute.forkserver)

def _warm_up(spec: WarmUp) -> None:
    """Import the adapter's library and run its ``warm_up`` once; a failure is logged, not fatal
    (the children import and warm up again and record what goes wrong)."""
    from annbench.backends.discovery import load_adapter
    from annbench.core.logs import quiet_library_loggers
    from annbench.core.threads import limited_threads
    from annbench.datasets.format import load_dataset

    quiet_library_loggers()
    start = time.perf_counter()
    import annbench.execute.local  # noqa: F401 - what every child runs, imported once here
    from annbench.core import provenance

    provenance.machine()  # cached: the children inherit it (git commit, CPU model) instead of asking again
    try:
        cls = load_adapter(spec.key.algorithm, list(spec.key.adapter_dirs))
        provenance.library_versions(cls.libraries)
        log.info("%s imported in %.3f s", spec.key.algorithm, time.perf_counter() - start)
        dataset = load_dataset(spec.dataset_path, name=spec.dataset)
        with limited_threads(spec.key.threads):
            cls(dataset.distance, threads=spec.key.threads, **spec.build_params).warm_up(dataset.train)
        del dataset
        log.info("%s warm in %.3f s", spec.key.algorithm, time.perf_counter() - start)
    except Exception:
        log.warning("warm-up failed; children will import and warm up themselves:\n%s", traceback.format_exc())
    gc.collect()
    try:  # give freed heap back to the kernel: a child's resident set starts from this process's
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _fork_child(request: tuple, closing: list[int]) -> int:
    """Fork one child for ``request``; in the child, never return."""
    from annbench.execute.worker import forked_child

    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        for fd in closing:  # the server's sockets and pipes are not the child's
            try:
                os.close(fd)
            except OSError:
                pass
        task, log_path, cpus, address_space, beside = request
        forked_child(task, Path(log_path), os.getppid(), cpus, address_space, beside)  # never returns
    return pid


def _probe_fork() -> int:
    """Fork a child that does nothing and exits 0: its exit code (a library's fork handler may kill it)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _exit_code(pid: int) -> int | None:
    """The exit code of child ``pid`` once it has ended (``-N``: signal N), left unreaped; else None."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return -signal.SIGKILL
    if info is None or info.si_pid == 0:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


@dataclass
class _Forked:
    conn: Connection
    reported: bool = False


def serve(listener: socket.socket) -> None:
    """Accept fork requests until stdin closes; report each child's end; reap it once the sweep
    has read that. Single-threaded: the only thread of this process forks."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(wake_r, selectors.EVENT_READ, "wake")
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    children: dict[int, _Forked] = {}
    running = True
    while running:
        for selected, _ in sel.select(LOOP_S):
            what = selected.data
            if what == "accept":
                sock, _ = listener.accept()
                conn = Connection(sock.detach())
                try:
                    request = conn.recv()
                    closing = [listener.fileno(), wake_r, wake_w, conn.fileno(),
                               *(c.conn.fileno() for c in children.values())]  # fds 0-2: replaced by the child
                    pid = _fork_child(request, closing)
                    conn.send(("forked", pid))
                except Exception as e:  # a request that cannot be served: the sweep starts it cold
                    log.error("fork request failed: %s", e)
                    try:
                        conn.send(("error", f"{type(e).__name__}: {e}"))
                    except OSError:
                        pass
                    conn.close()
                    continue
                children[pid] = _Forked(conn)
                sel.register(conn.fileno(), selectors.EVENT_READ, pid)
                log.info("forked child %d for %s", pid, request[0].label())
            elif what == "wake":
                while True:
                    try:
                        if not os.read(wake_r, 512):
                            break
                    except BlockingIOError:
                        break
            elif what == "stdin":
                if not os.read(sys.stdin.fileno(), 512):
                    running = False
            else:  # the sweep closed a child's connection (it has read the exit code, or gave up)
                pid = what
                sel.unregister(selected.fileobj)
                forked = children.pop(pid)
                forked.conn.close()
                if not forked.reported:
                    kill_group(pid)
                os.waitpid(pid, 0)
        for pid, forked in children.items():
            if not forked.reported and (code := _exit_code(pid)) is not None:
                try:
                    forked.conn.send(("exit", code))
                except OSError:
                    pass
                forked.reported = True
    for pid in children:
        kill_group(pid)
        os.waitpid(pid, 0)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from annbench.execute.worker import apply_limits

    p = argparse.ArgumentParser(prog="python -m annbench.execute.forkserver", description=__doc__.splitlines()[0])
    p.add_argument("--parent", type=int, required=True, help="pid of the sweep: die with it")
    p.add_argument("--socket", type=Path, required=True, help="Unix socket to listen on once warm")
    p.add_argument("--cpus", help="comma-separated cores to warm up on")
    p.add_argument("--address-space", type=int, help="RLIMIT_AS in bytes while warming up")
    args = p.parse_args(argv)
    apply_limits(args.parent, [int(c) for c in args.cpus.split(",")] if args.cpus else None, args.address_space)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname).1s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    spec: WarmUp = pickle.loads(sys.stdin.buffer.read(int(sys.stdin.buffer.readline())))
    log.info("warm parent pid %d for %s, threads %d", os.getpid(), spec.key.algorithm, spec.key.threads)
    _warm_up(spec)
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    log.info("%d thread(s) running in this process after the warm-up", threads)
    if (code := _probe_fork()) != 0:  # e.g. numba on GNU OpenMP kills every forked child at once
        log.error("a child forked after the warm-up ended with %s at once: this process cannot fork safely", code)
        return 3
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(args.socket))
    listener.listen(64)
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    serve(listener)
    return 0


# --------------------------------------------------------------------------------------------
# sweep side

@dataclass
class Forked:
    """A child forked by a server, as the sweep holds it (see :class:`annbench.execute.isolation.Child`)."""

    conn: Connection
    pid: int
    code: int | None = None

    def wait(self, timeout: float) -> int | None:
        if self.code is not None:
            return self.code
        try:
            if not self.conn.poll(timeout):
                return None
            message = self.conn.recv()
            self.code = int(message[1])
        except (EOFError, OSError):  # the server died: PR_SET_PDEATHSIG kills the child too
            if resident_bytes(self.pid) is not None and process_alive(self.pid):
                return None
            self.code = -signal.SIGKILL
        self.conn.close()
        return self.code

    def kill(self) -> None:
        if self.code is None:
            kill_group(self.pid)


@dataclass
class _WarmingUp:
    """The server during its warm-up, as :func:`~annbench.execute.isolation.hold` waits on it: "ended" with
    0 once it says it is ready, with its exit code (or 1) if it exits first."""

    proc: subprocess.Popen
    pid: int = field(init=False)

    def __post_init__(self) -> None:
        self.pid = self.proc.pid

    def wait(self, timeout: float) -> int | None:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        if self.proc.stdout.readline() == READY:
            return 0
        code = self.proc.wait()
        return code or 1

    def kill(self) -> None:
        if self.proc.poll() is None:
            kill_group(self.pid)


#: A fork server's private folder (its socket) is ``<tmp>/annbench-forkserver-<sweep pid>-<random>``.
SOCKET_DIR_PREFIX = "annbench-forkserver-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_orphaned_socket_dirs(tmp: Path | None = None) -> list[Path]:
    """Remove the fork-server folders of sweeps that are gone (a sweep killed with SIGKILL cannot
    remove its own); a folder of a live process is left alone. Returns the folders removed."""
    removed = []
    for d in Path(tmp or tempfile.gettempdir()).glob(f"{SOCKET_DIR_PREFIX}*-*"):
        pid = d.name[len(SOCKET_DIR_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


class ForkServer:
    """The sweep's handle on one fork server (a :class:`~annbench.execute.isolation.Launcher`)."""

    def __init__(self, key: WarmKey, log_path: Path) -> None:
        self.key, self.log_path = key, log_path
        self._dir = Path(tempfile.mkdtemp(prefix=f"{SOCKET_DIR_PREFIX}{os.getpid()}-"))
        self.socket_path = self._dir / "socket"
        self._proc: subprocess.Popen | None = None
        self.failure = ""

    @property
    def ready(self) -> bool:
        return self._proc is not None and not self.failure

    def start(self, spec: WarmUp, limits: Limits, cancel: threading.Event | None = None) -> bool:
        """Start the server and wait until it is warm, held to ``limits`` (its warm-up runs on
        ``limits.cpus``). False, with :attr:`failure` saying why, when it did not get ready."""
        argv = [sys.executable, "-m", "annbench.execute.forkserver", "--parent", str(os.getpid()),
                "--socket", str(self.socket_path)]
        if limits.cpus:
            argv += ["--cpus", ",".join(map(str, limits.cpus))]
        if limits.memory_bytes:
            argv += ["--address-space", str(address_space_limit(limits.memory_bytes))]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        try:
            with open(self.log_path, "wb") as log_file:
                self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file,
                                              env=child_environment(self.key.threads), start_new_session=True)
            payload = pickle.dumps(spec)
            assert self._proc.stdin is not None
            self._proc.stdin.write(b"%d\n" % len(payload) + payload)
            self._proc.stdin.flush()
        except OSError as e:
            self.failure = f"could not start: {e}"
            return False
        held = hold(_WarmingUp(self._proc), limits, start, cancel)
        if held.killed or held.code != 0:
            self.failure = held.killed[1] if held.killed else f"it exited with code {held.code} while warming up"
            self.close()
            return False
        log.debug("warm parent for %s ready in %.2f s (pid %d, log %s)", self.key.algorithm,
                 time.monotonic() - start, self._proc.pid, self.log_path)
        return True

    def launch(self, task: Task, limits: Limits, log_path: Path, beside: SlotRef | None = None) -> Child | None:
        """Fork a child for ``task`` (its log truncated here); None when the server cannot."""
        if not self.ready:
            return None
        address_space = address_space_limit(limits.memory_bytes) if limits.memory_bytes else None
        try:
            log_path.write_bytes(b"")
            conn = Client(str(self.socket_path), family="AF_UNIX")
            conn.send((task, str(log_path), list(limits.cpus) if limits.cpus else None, address_space, beside))
            reply = conn.recv()
        except (OSError, EOFError) as e:
            self.failure = f"gone: {e}"
            log.warning("warm parent for %s %s; starting a fresh interpreter", self.key.algorithm, self.failure)
            return None
        if reply[0] != "forked":
            conn.close()
            log.warning("warm parent for %s could not fork (%s); starting a fresh interpreter", self.key.algorithm,
                        reply[1])
            return None
        return Forked(conn, int(reply[1]))

    def close(self) -> None:
        """Shut the server down (its children still running are killed) and remove its socket."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                assert proc.stdin is not None
                proc.stdin.close()
            except OSError:
                pass
            try:
                proc.wait(timeout=SHUTDOWN_S)
            except subprocess.TimeoutExpired:
                pass
            Popened(proc).kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        shutil.rmtree(self._dir, ignore_errors=True)


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ForkServer | None = None
    tried: bool = False


class WarmParents:
    """The fork servers of one sweep, started lazily per :class:`WarmKey` on the first task that
    needs one (from that task's thread, on its cores, held to its limits), shut down on
    :meth:`close`. An algorithm whose adapter says ``fork_safe = False``, or whose server failed
    to get warm, gets None: its children start as fresh interpreters."""

    def __init__(self, log_path: Callable[[WarmKey, Task], Path], enabled: bool = True) -> None:
        self._log_path, self.enabled = log_path, enabled
        self._lock = threading.Lock()
        self._slots: dict[WarmKey, _Slot] = {}
        if enabled:
            for d in remove_orphaned_socket_dirs():
                log.debug("removed %s, left by a sweep that is gone", d)

    def launcher(self, task: Task, limits: Limits, cancel: threading.Event | None = None) -> ForkServer | None:
        if not self.enabled:
            return None
        key = WarmKey(task.setting.algorithm, task.options.threads, task.adapter_dirs)
        with self._lock:
            if key not in self._slots:
                self._slots[key] = _Slot(tried=not fork_safe(task))
            slot = self._slots[key]
        with slot.lock:  # a second task of the same key waits for the first one's warm-up
            if not slot.tried:
                slot.tried = True
                server = ForkServer(key, self._log_path(key, task))
                spec = WarmUp(key, task.dataset, task.dataset_path, dict(task.setting.build_params))
                if server.start(spec, limits, cancel):
                    slot.server = server
                else:
                    log.warning("warm parent for %s failed (%s; log %s): its build settings start fresh "
                                "interpreters", key.algorithm, server.failure, server.log_path)
            return slot.server if slot.server is not None and slot.server.ready else None

    def close(self) -> None:
        with self._lock:
            slots = list(self._slots.values())
        for slot in slots:
            if slot.server is not None:
                slot.server.close()

    def __enter__(self) -> WarmParents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fork_safe(task: Task) -> bool:
    """Whether the task's adapter may run in a child forked after its library is imported."""
    from annbench.backends.discovery import load_adapter

    try:
        return bool(getattr(load_adapter(task.setting.algorithm, list(task.adapter_dirs)), "fork_safe", True))
    except Exception:  # unavailable here: a fresh child records why
        return False


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
