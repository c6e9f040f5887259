"""Sweeps sharing a results folder: which of a sweep's runs it measures, which it leaves to another.

The driver (:func:`annbench.execute.driver.drive`) asks :class:`SharedFolder` before starting each
task: the task's runs are claimed (:class:`annbench.store.claims.RunClaims`); a run another sweep
holds is left to it, and a run another sweep stored since this one planned it is that sweep's. The
task starts with the runs left (or not at all). When the sweep's own tasks are done,
:meth:`SharedFolder.settle` waits for the runs left to other sweeps: each one stored there (with
this sweep's measurement) is counted as theirs, the others are measured here after all.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annbench.core.results import RunKey, RunResult, measurement_attrs
from annbench.plan.task import Task
from annbench.store.claims import RunClaims
from annbench.store.folder import ResultStore

log = logging.getLogger(__name__)

#: Seconds between two looks at runs another sweep holds.
POLL_S = 0.2
#: The attr of a run a sweep did not measure itself: the pid of the sweep that did (-1: unknown).
MEASURED_BY = "measured_by_sweep"


@dataclass(frozen=True)
class _Left:
    """A run left to another sweep: its task, what was stored for it when this sweep planned it."""

    key: RunKey
    task: Task
    pid: int | None


def _stored_id(attrs: dict[str, Any] | None) -> str | None:
    """Which attempt stored a result (its task id); None when nothing is stored."""
    return None if attrs is None else str(attrs.get("task_id", ""))


class SharedFolder:
    """One sweep's view of runs shared with other sweeps on its results folder (see the module)."""

    def __init__(self, store: ResultStore, tasks: Iterable[Task]) -> None:
        self.store = store
        self.claims = RunClaims(store)
        # by result file (a key holds dicts: it does not hash)
        self._before = {store.path_for(k): _stored_id(store.attrs_of(k)) for t in tasks for k in t.keys}
        self._left: dict[Path, _Left] = {}
        self.theirs: list[RunResult] = []

    def _stored_elsewhere(self, task: Task, key: RunKey, attrs: dict[str, Any] | None) -> bool:
        """Whether another sweep stored ``key`` since this one planned it, measuring what this one would."""
        wanted = measurement_attrs(task.options, task.dataset_checksum)["measurement"]
        before = self._before.get(self.store.path_for(key))
        return attrs is not None and _stored_id(attrs) != before and attrs.get("measurement") == wanted

    def _theirs(self, key: RunKey, attrs: dict[str, Any], pid: int | None) -> RunResult:
        metrics = {m: attrs[m] for m in ("recall", "qps") if m in attrs}
        result = RunResult(key, attrs["status"], error=attrs.get("error", ""), metrics=metrics,
                           attrs={**attrs, MEASURED_BY: -1 if pid is None else pid})
        self.theirs.append(result)
        return result

    def admit(self, task: Task) -> tuple[Task | None, list[RunResult]]:
        """``task`` with only the runs this sweep claimed and must measure (None: none), and the runs
        another sweep stored since this one planned them (counted as theirs)."""
        mine, theirs = [], []
        for key in task.keys:
            if not self.claims.claim(key):
                self._left[self.store.path_for(key)] = _Left(key, task, self.claims.holder(key))
                continue
            attrs = self.store.attrs_of(key)
            if self._stored_elsewhere(task, key, attrs):
                theirs.append(self._theirs(key, attrs or {}, self.claims.holder(key)))
                self.claims.release(key)
                continue
            mine.append(key)
        if self._left and len(mine) < len(task.keys):
            by = Counter(e.pid for e in self._left.values() if e.task is task)
            for pid, n in by.items():
                log.info("%s: %d runs are being measured by sweep %s: left to it", task.label(), n, pid or "?")
        return (dataclasses.replace(task, keys=tuple(mine)) if mine else None), theirs

    def done(self, task: Task) -> None:
        """The task's outcome is recorded: its runs' claims go."""
        for key in task.keys:
            self.claims.release(key)

    @property
    def waiting(self) -> bool:
        return bool(self._left)

    def settle(self, on_wait: Callable[[str | None], None] | None = None
               ) -> tuple[list[Task], list[tuple[Task, list[RunResult]]]]:
        """Wait until no other sweep holds a run left to it; returns the tasks of the runs it did not
        store (claimed again by the driver when they start) and, per task, the runs it stored."""
        left, self._left = self._left, {}
        by = Counter(e.pid for e in left.values())
        text = "waiting for " + ", ".join(f"{n} runs measured by sweep {pid or '?'}" for pid, n in by.items())
        log.info("%s", text)
        if on_wait is not None:
            on_wait(text)
        rerun: dict[int, tuple[Task, list[RunKey]]] = {}
        theirs: dict[int, tuple[Task, list[RunResult]]] = {}
        try:
            while left:
                for path, e in list(left.items()):
                    key = e.key
                    if not self.claims.claim(key):
                        continue
                    del left[path]
                    attrs = self.store.attrs_of(key)
                    if self._stored_elsewhere(e.task, key, attrs):
                        theirs.setdefault(id(e.task), (e.task, []))[1].append(self._theirs(key, attrs or {}, e.pid))
                    else:  # the other sweep died or stopped before storing it: measured here
                        log.info("%s: sweep %s did not store it; measuring it here", key.label(), e.pid or "?")
                        self._before[path] = _stored_id(attrs)
                        rerun.setdefault(id(e.task), (e.task, []))[1].append(key)
                    self.claims.release(key)
                if left:
                    time.sleep(POLL_S)
        finally:
            if on_wait is not None:
                on_wait(None)
        tasks = [dataclasses.replace(task, task_id=uuid.uuid4().hex, keys=tuple(keys)) for task, keys in rerun.values()]
        return tasks, list(theirs.values())

    def close(self) -> None:
        self.claims.release_all()
