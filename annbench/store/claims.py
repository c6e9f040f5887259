"""A run is measured by one sweep: claims on runs, next to their results.

Two sweeps of one grid on one results folder (started a second apart, or a second one started to
"help") would otherwise both measure the same runs and overwrite each other's results. So before a
child starts a build setting, the sweep claims each of its runs: an exclusive ``flock`` on
``.<result file name>.claim`` beside the result file, holding the claiming sweep's pid. The claim
is held until the sweep has recorded the task's outcome; the kernel drops it if the sweep dies.

A sweep that finds a run claimed leaves it to the other sweep and, once its own runs are done, waits
for the claim to go: a result stored meanwhile by another sweep counts as that sweep's ("3 measured by
sweep 1234"; a failure there is not this sweep's failure); a run the other sweep did not store (it
died, or was stopped) is claimed and measured here. The claim files stay (empty of meaning once
unlocked: the last claimant's pid), hidden beside the results.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from annbench.core.results import RunKey
from annbench.store.folder import ResultStore


class RunClaims:
    """This sweep's claims on runs of ``store``."""

    def __init__(self, store: ResultStore) -> None:
        self.store = store
        self._held: dict[Path, int] = {}  # by claim file: a key holds dicts, it does not hash

    def path(self, key: RunKey) -> Path:
        result = self.store.path_for(key)
        return result.with_name(f".{result.name}.claim")

    def claim(self, key: RunKey) -> bool:
        """Claim ``key`` now (True), or False when another sweep holds it. Claiming a run this sweep
        holds already is True."""
        path = self.path(key)
        if path in self._held:
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._held[path] = fd
        return True

    def holder(self, key: RunKey) -> int | None:
        """The pid of the last sweep that claimed ``key`` (the holder, while it is claimed); None if unknown."""
        try:
            text = self.path(key).read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self, key: RunKey) -> None:
        fd = self._held.pop(self.path(key), None)
        if fd is not None:
            os.close(fd)

    def release_all(self) -> None:
        for fd in self._held.values():
            os.close(fd)
        self._held.clear()

    def __enter__(self) -> RunClaims:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.release_all()
