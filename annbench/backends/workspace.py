"""A database's data folder and server processes, owned by a watchdog so nothing outlives the child.

A database adapter makes one :class:`Workspace` in ``fit``: a fresh folder in the temporary
directory, ``annbench-db-<pid>-<random>``, guarded by a watchdog process (:mod:`annbench.backends.watchdog`)
started in a session of its own. Servers the database runs are started through the workspace, so
they are the watchdog's children; a server a library starts itself is handed to it with
:meth:`Workspace.adopt`. When the adapter's process dies, however it dies, the watchdog's end of
their socket reaches end of file and it kills every such process and removes the folder; while the
process lives, the watchdog and its servers are below it, so the sweep's memory limit and the peak
memory of the build count them. :meth:`Workspace.close` (also run when the workspace is garbage
collected or the process exits) stops the servers gracefully and removes the folder the same way.

Leftovers of a watchdog that was itself killed (it would have to be killed on its own: it is in no
group the sweep kills) are removed by the next workspace made on the machine (:func:`remove_stale`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path
from typing import Any

from annbench.core.paths import PROJECT_ROOT
from annbench.core.processes import owner_pid, process_alive

log = logging.getLogger("annbench.backends.workspace")

PREFIX = "annbench-db-"
#: The unprivileged user servers run as when annbench runs as root (PostgreSQL refuses root).
SERVICE_USER = "nobody"


def service_user() -> str | None:
    """The user a server must run as: None (this process's own) unless this process is root."""
    return SERVICE_USER if os.geteuid() == 0 else None


def remove_stale(tmp: Path | None = None) -> list[Path]:
    """Remove the workspaces of processes that are gone and whose watchdog is gone too, killing any
    process still running on them (found by the folder in its command line). Returns what was removed."""
    removed = []
    for folder in Path(tmp or tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        owner = owner_pid(folder.name, PREFIX)
        if owner is None or process_alive(owner):
            continue
        with contextlib.suppress(OSError, ValueError):
            if process_alive(int((folder / "watchdog.pid").read_text())):
                continue  # still being cleaned up by its watchdog
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError, ProcessLookupError, PermissionError):
                if str(folder).encode() in (proc / "cmdline").read_bytes():
                    os.kill(int(proc.name), signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
        log.warning("removed the leftover database folder %s", folder)
    return removed


def folder_bytes(folder: Path) -> int:
    """Bytes on disk of every file below ``folder`` (allocated blocks, as ``du``)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def _close(conn: socket.socket, stream: Any, sig: int, grace_s: float, watchdog: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError, ValueError):
        stream.write(json.dumps({"op": "stop", "signal": int(sig), "grace_s": grace_s}).encode() + b"\n")
        stream.flush()
        stream.readline()  # the watchdog answers once everything is stopped and the folder removed
    with contextlib.suppress(OSError):
        stream.close()
        conn.close()
    with contextlib.suppress(subprocess.TimeoutExpired):  # reaped, also when the workspace is collected unclosed
        watchdog.wait(5)


class Workspace:
    """A temporary data folder and the processes working on it, guarded by a watchdog."""

    def __init__(self, kind: str, owner: str | None = None, stop_signal: int = signal.SIGTERM,
                 grace_s: float = 10.0) -> None:
        remove_stale()
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-{kind}-"))
        if owner is not None:  # the folder is the server's: PostgreSQL insists on owning its data
            import pwd

            entry = pwd.getpwnam(owner)
            os.chown(self.path, entry.pw_uid, entry.pw_gid)
            closed = [p for p in self.path.parents if not os.stat(p).st_mode & 0o001]
            if closed:
                shutil.rmtree(self.path, ignore_errors=True)
                raise RuntimeError(f"the server runs as {owner!r} (not as root), who cannot reach {closed[0]} "
                                   f"(mode {os.stat(closed[0]).st_mode & 0o777:o}); valid: a $TMPDIR that every "
                                   f"user may traverse (chmod o+x)")
        mine, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
        self.watchdog = subprocess.Popen([sys.executable, "-m", "annbench.backends.watchdog", str(self.path)],
                                         stdin=theirs, start_new_session=True, env=env)
        theirs.close()
        self._conn = mine
        self._stream = mine.makefile("rwb")
        self._closer = weakref.finalize(self, _close, mine, self._stream, stop_signal, grace_s, self.watchdog)
        log.debug("workspace %s, watchdog pid %d", self.path, self.watchdog.pid)

    def _ask(self, op: str, **fields: Any) -> dict[str, Any]:
        self._stream.write(json.dumps({"op": op, **fields}).encode() + b"\n")
        self._stream.flush()
        line = self._stream.readline()
        if not line:
            raise RuntimeError(f"the watchdog of {self.path} died (exit code {self.watchdog.poll()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the watchdog of {self.path}: {answer['error']}")
        return answer

    def spawn(self, argv: list[str], log_path: Path, user: str | None = None,
              env: dict[str, str] | None = None) -> int:
        """Start ``argv`` as the watchdog's child (as ``user``), output appended to ``log_path``; its pid."""
        return int(self._ask("spawn", argv=[str(a) for a in argv], log=str(log_path), user=user, env=env)["pid"])

    def wait(self, pid: int, timeout: float) -> int | None:
        """Exit code of a process :meth:`spawn` started, None if it still runs after ``timeout`` seconds."""
        return self._ask("wait", pid=pid, timeout=timeout)["code"]

    def adopt(self, pid: int) -> None:
        """Have the watchdog kill ``pid`` and everything below it when this process dies."""
        self._ask("adopt", pid=pid)

    def size_bytes(self) -> int:
        return folder_bytes(self.path)

    def close(self) -> None:
        """Stop the servers (the stop signal, then SIGKILL after the grace time) and remove the folder."""
        self._closer()
