"""Where and with what a measurement was made."""

from __future__ import annotations

import datetime as _dt
import functools
import platform
import socket
import subprocess
from importlib import metadata

from annbench.core.paths import PROJECT_ROOT
from annbench.core.version import __version__


@functools.cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.cache
def git_commit() -> str:
    """The annbench checkout's commit (``+dirty`` with uncommitted changes), or ``unknown``."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions(distributions: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for name in ("numpy", *distributions):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> dict[str, str]:
    return {
        "cpu_model": cpu_model(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "annbench_version": __version__,
        "annbench_commit": git_commit(),
    }


def timestamp() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
