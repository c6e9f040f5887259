"""The sweep's side of warm parents: start one fork server per algorithm (:mod:`annbench.execute.forkserver`),
have it fork each build setting's child, hold that child as a cold one, shut the servers down.

The messages: :mod:`annbench.execute.forkproto`.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Client, Connection
from pathlib import Path

from annbench.core.claims import BesideRef
from annbench.core.processes import kill_group, process_alive, remove_orphans
from annbench.execute.forkproto import READY, SOCKET_DIR_PREFIX, ForkRequest, WarmKey, WarmUp
from annbench.execute.isolation import Child, Popened, address_space_limit, child_environment, hold
from annbench.plan.task import Limits, Task

log = logging.getLogger(__name__)

#: Seconds a shut-down server gets to end its children and exit before it is killed.
SHUTDOWN_S = 2.0



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
            if process_alive(self.pid):
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


def remove_orphaned_socket_dirs(tmp: Path | None = None) -> list[Path]:
    """Remove the fork-server folders of sweeps that are gone (a sweep killed with SIGKILL cannot
    remove its own); a folder of a live process is left alone. Returns the folders removed."""
    return remove_orphans(Path(tmp or tempfile.gettempdir()), SOCKET_DIR_PREFIX)


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

    def launch(self, task: Task, limits: Limits, log_path: Path, beside: BesideRef | None = None) -> Child | None:
        """Fork a child for ``task`` (its log truncated here); None when the server cannot."""
        if not self.ready:
            return None
        address_space = address_space_limit(limits.memory_bytes) if limits.memory_bytes else None
        try:
            log_path.write_bytes(b"")
            conn = Client(str(self.socket_path), family="AF_UNIX")
            conn.send(ForkRequest(task, log_path, list(limits.cpus) if limits.cpus else None, address_space, beside))
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
            remove_orphaned_socket_dirs()

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


