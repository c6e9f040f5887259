"""A database's watchdog: the process that owns a database's data folder and server processes.

Run as ``python -m annbench.backends.watchdog FOLDER`` by :class:`annbench.backends.workspace.Workspace`
in a session of its own (so the sweep's kill of the child's process group does not reach it), with
its end of a socket pair as standard input; the adapter's process holds the other end. It is a
child subreaper (``PR_SET_CHILD_SUBREAPER``): the servers it starts are its children, and so are
their workers once a server dies, so it can always find and reap every one of them.

Requests are JSON lines (``spawn``, ``wait``, ``adopt``, ``stop``), each answered by one JSON line.
When the socket reaches end of file without a ``stop`` (the adapter's process died: a crash, a
timeout or memory-limit kill, a SIGKILL of the whole sweep), the watchdog SIGKILLs every process it
started or adopted and all their descendants, reaps them, removes the folder and exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from annbench.core.processes import children, descendants, process_alive

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
#: Seconds the watchdog keeps killing and reaping before it gives up on a process (never in practice).
KILL_DEADLINE_S = 30.0


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _die_with_watchdog() -> None:
    """In a started server (before exec): SIGKILL it if the watchdog itself is killed."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_tree(pid: int) -> None:
    """Stop ``pid`` (so it starts no new process), then SIGKILL it and everything below it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGSTOP)
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


class Watchdog:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: dict[int, subprocess.Popen] = {}
        self.adopted: list[int] = []

    def spawn(self, argv: list[str], log: str, user: str | None = None, env: dict[str, str] | None = None) -> int:
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env={**os.environ, **(env or {})}, user=user, group=_group_of(user),
                                    extra_groups=[] if user else None, preexec_fn=_die_with_watchdog)
        self.started[proc.pid] = proc
        return proc.pid

    def wait(self, pid: int, timeout: float) -> int | None:
        try:
            return self.started[pid].wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int, grace_s: float) -> None:
        """Ask what is still running to stop (``sig``), wait up to ``grace_s``, then kill everything."""
        running = [p for p in self.started.values() if p.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        deadline = time.monotonic() + grace_s
        for proc in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
        self.kill_all()

    def kill_all(self) -> None:
        """SIGKILL every adopted process and every process below this one; reap; remove the folder."""
        for pid in self.adopted:
            _kill_tree(pid)
        deadline = time.monotonic() + KILL_DEADLINE_S
        while time.monotonic() < deadline:
            below = children(os.getpid())
            alive = [p for p in self.adopted if process_alive(p)]
            if not below and not alive:
                break
            for pid in below:
                _kill_tree(pid)
            _reap()
            time.sleep(0.01)
        _reap()
        shutil.rmtree(self.folder, ignore_errors=True)

    def serve(self, conn: socket.socket) -> None:
        stream = conn.makefile("rwb")
        for line in stream:
            request: dict[str, Any] = json.loads(line)
            op = request.pop("op")
            try:
                if op == "spawn":
                    answer: dict[str, Any] = {"pid": self.spawn(**request)}
                elif op == "wait":
                    answer = {"code": self.wait(**request)}
                elif op == "adopt":
                    self.adopted.append(int(request["pid"]))
                    answer = {}
                elif op == "stop":
                    self.stop(int(request["signal"]), float(request["grace_s"]))
                    stream.write(b"{}\n")
                    stream.flush()
                    return
                else:
                    answer = {"error": f"unknown request {op!r}"}
            except Exception as e:  # the adapter raises it in its own process
                answer = {"error": f"{type(e).__name__}: {e}"}
            stream.write(json.dumps(answer).encode() + b"\n")
            stream.flush()
        self.kill_all()  # end of file: the adapter's process is gone


def _group_of(user: str | None) -> int | None:
    if user is None:
        return None
    import pwd

    return pwd.getpwnam(user).pw_gid


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0])
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the sweep's to handle
    watchdog = Watchdog(folder)
    signal.signal(signal.SIGTERM, lambda *_: (watchdog.kill_all(), os._exit(0)))
    (folder / "watchdog.pid").write_text(str(os.getpid()))
    conn = socket.socket(fileno=os.dup(0))
    os.close(0)
    try:
        watchdog.serve(conn)
    except BaseException:
        watchdog.kill_all()
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
