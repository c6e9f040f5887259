"""Whether a process still runs, what runs below it and its memory, and the clean-up of what dead
processes left behind.

Every file or folder annbench creates for the lifetime of one process carries that process's id in
its name (a store's ``.<name>.<pid>.tmp``, a fork server's ``annbench-forkserver-<pid>-*`` socket
folder, a Dask task's ``annbench-task-<pid>-*`` scratch folder). A process killed with SIGKILL cannot
remove its own; the next one to look removes those whose process is gone (:func:`remove_orphans`).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs. A zombie (dead, not yet reaped by its parent) does not:
    a killed worker's files must be removable before its parent gets round to waiting for it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]  # the field after "(command name)"
    except FileNotFoundError:
        return not os.path.isdir("/proc/self")  # reaped since kill(pid, 0), unless there is no /proc
    except (OSError, IndexError):
        return True  # /proc unreadable: trust kill(pid, 0)
    return state not in ("Z", "X")


def die_with_parent(parent_pid: int) -> None:
    """Linux: SIGKILL this process when its parent dies (a killed sweep leaves no orphan running); exits at
    once (70) if the parent died before the request took effect."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        os._exit(70)


#: The signal that asks a child for every thread's stack in its log (faulthandler), sent before a child that ran
#: out of time is killed.
DUMP_SIGNAL = signal.SIGUSR1


def probe_fork() -> int:
    """Fork a child that does nothing and exits 0: its exit code (a library's fork handler may kill it, as
    numba's GNU OpenMP layer does once its threads started)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (any of its threads may have started them); [] once it is gone."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            pass
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, theirs, ...), parents before their children."""
    found: list[int] = []
    todo = children(pid)
    while todo:
        p = todo.pop(0)
        if p not in found:
            found.append(p)
            todo += children(p)
    return found


def status_bytes(pid: int | str, field: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``) in bytes; None if gone or unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def tree_resident_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` plus every process below it (a database's server and its workers);
    shared pages count once per process. None once ``pid`` is gone."""
    own = status_bytes(pid, "VmRSS")
    if own is None:
        return None
    return own + sum(status_bytes(p, "VmRSS") or 0 for p in descendants(pid))


def kill_group(pid: int) -> None:
    """SIGKILL the process group ``pid`` leads (a child started in its own session); quiet if gone."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def owner_pid(name: str, prefix: str) -> int | None:
    """The process id in a name ``<prefix><pid>-<anything>`` (None when the name is not of that form)."""
    if not name.startswith(prefix):
        return None
    pid = name[len(prefix):].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def remove_orphans(folder: Path, prefix: str) -> list[Path]:
    """Remove every ``<folder>/<prefix><pid>-*`` folder whose process ``pid`` is gone; those of live
    processes are left alone. Returns the folders removed."""
    removed = []
    for d in Path(folder).glob(f"{prefix}*-*"):
        pid = owner_pid(d.name, prefix)
        if pid is not None and d.is_dir() and not process_alive(pid):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
            log.debug("removed %s, left by process %d that is gone", d, pid)
    return removed


def temporary_name(name: str) -> str:
    """The name of the temporary file a process writes before renaming it to ``name``: ``.<name>.<pid>.tmp``."""
    return f".{name}.{os.getpid()}.tmp"


def remove_orphaned_temporaries(folder: Path) -> int:
    """Delete the :func:`temporary_name` files under ``folder`` (at any depth) whose writer is gone;
    their count."""
    removed = 0
    for tmp in Path(folder).rglob(".*.tmp") if Path(folder).is_dir() else ():
        try:
            pid = int(tmp.name.rsplit(".", 2)[-2])
        except (ValueError, IndexError):
            continue
        if not process_alive(pid):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed
