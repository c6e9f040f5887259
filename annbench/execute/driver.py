"""The one driver loop of a sweep: tasks → an executor → outcomes → stored results.

An :class:`Executor` runs tasks somewhere (child processes here, :mod:`annbench.execute.local`;
a Dask cluster, :mod:`annbench.execute.dask`) and hands back each finished task with how its child
ended. :func:`drive` is the loop every executor shares: it removes the temporary files an
interrupted sweep left (once per sweep), starts every task, records each outcome into the store
as it arrives (:func:`record_outcome`: the runs the child stored, every other one as an error with
the child's reason) and calls the per-task callback. A failing task never stops the sweep; an
exception (Ctrl-C) cancels what still runs and re-raises.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

from annbench.backends.filtering import run_algorithm
from annbench.core import provenance
from annbench.core.results import RunResult, Status, measurement_attrs
from annbench.execute.sharing import SharedFolder
from annbench.plan.task import Ended, Task, TaskOutcome
from annbench.store.folder import ResultStore

log = logging.getLogger(__name__)

#: Called in the driving thread after each task with its outcome and the runs recorded for it.
TaskCallback = Callable[[Task, TaskOutcome, list[RunResult]], None]


@dataclass(frozen=True)
class Finished:
    """A task an executor has finished: how its child ended and, when it ran on another host, that
    host's provenance (``machine``; None: this one's), recorded with the runs it did not store."""

    task: Task
    outcome: TaskOutcome
    machine: dict[str, str] | None = field(default=None, repr=False)


class Executor(Protocol):
    """Runs tasks and hands them back as they finish.

    Used as a context manager around one sweep: entering sets up what runs the tasks (a pool, a
    connection), leaving shuts it down. Inside, :meth:`start` is called once per task before
    :meth:`finished` is iterated; :meth:`cancel` stops whatever still runs (the driver calls it on
    an exception, before leaving).
    """

    @property
    def store(self) -> ResultStore:
        """Where the runs of its tasks are stored."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None: ...

    def start(self, task: Task) -> None:
        """Queue ``task`` to run (it may only start once the executor has room)."""

    def finished(self) -> Iterator[Finished]:
        """Every started task, as it finishes (in any order); ends when none is left."""

    def cancel(self) -> None:
        """Stop the running tasks and drop the queued ones (an interrupted sweep)."""


def log_path(store: ResultStore, task: Task) -> Path:
    """``<results>/<dataset>/<k>/logs/<algorithm>[-batch]/<build params>.<hash>.log``: a task's log."""
    o = task.options
    algorithm = run_algorithm(task.setting.algorithm, task.setting.strategy)
    return store.log_dir(task.dataset, o.k, algorithm, o.batch) / task.log_name()


def record_outcome(task: Task, outcome: TaskOutcome, store: ResultStore,
                   machine: dict[str, str] | None = None) -> list[RunResult]:
    """The task's runs as stored: those the child finished as it stored them (arrays left on
    disk), every other one stored now as an error with the child's reason and log.

    ``machine``: provenance of the host the child ran on (default: this one's), recorded with
    those errors."""
    machine = provenance.machine() if machine is None else machine
    results = []
    for key in task.keys:
        attrs = store.attrs_of(key)
        if attrs is not None and attrs.get("task_id") == task.task_id:
            metrics = {m: attrs[m] for m in ("recall", "qps") if m in attrs}
            results.append(RunResult(key, attrs["status"], error=attrs.get("error", ""), metrics=metrics, attrs=attrs))
            continue
        message = outcome.message if not outcome.ok else "the child ended without storing this run"
        result = RunResult(key, Status.ERROR, error=message, attrs={
            "task_id": task.task_id, "reason": outcome.reason, "log_path": str(outcome.log_path),
            "exit_code": -1 if outcome.exit_code is None else outcome.exit_code, "elapsed_s": outcome.elapsed_s,
            "peak_rss_bytes": outcome.peak_rss_bytes, "traceback": outcome.log_tail,
            "dataset_checksum": task.dataset_checksum, **measurement_attrs(task.options, task.dataset_checksum),
            "timestamp": provenance.timestamp(), **machine})
        store.write(result)
        log.error("%s: %s (log: %s)", key.label(), message, outcome.log_path)
        results.append(result)
    return results


def drive(executor: Executor, tasks: Iterable[Task], store: ResultStore, dataset: str,
          on_task: TaskCallback | None = None, on_wait: Callable[[str | None], None] | None = None
          ) -> list[RunResult]:
    """Run ``tasks`` (of the sweep of ``dataset``) on ``executor``; every run recorded, in the order
    the tasks finish. The only place a sweep removes stale temporaries from ``store``.

    The results folder may be shared with other sweeps (:class:`annbench.execute.sharing.SharedFolder`):
    a task starts only when the executor has room for it (its ``capacity``, if it has one), with the
    runs this sweep claimed; runs another sweep measures are waited for at the end and returned with
    the attr ``measured_by_sweep`` (those it did not store are measured here). ``on_wait`` shows (a
    line) or clears (None) what the sweep waits for.

    ``on_task`` is called in this thread after each task with the runs recorded for it. An
    exception (an interrupt, or one raised by the executor or ``on_task``) cancels the executor's
    remaining tasks and propagates.
    """
    store.remove_stale_temporaries(dataset)
    queue = deque(tasks)
    shared = SharedFolder(store, queue)
    capacity: int | None = getattr(executor, "capacity", None)
    results: list[RunResult] = []
    running = 0

    def tell(task: Task, recorded: list[RunResult], outcome: TaskOutcome | None = None) -> None:
        if on_task is not None and recorded:
            on_task(task, outcome or TaskOutcome(task.task_id, Ended.OK, "measured by another sweep",
                                                 log_path(store, task)), recorded)

    def start_more() -> None:
        nonlocal running
        while queue and (capacity is None or running < capacity):
            task = queue.popleft()
            admitted, theirs = shared.admit(task)
            results.extend(theirs)
            tell(task, theirs)
            if admitted is not None:
                executor.start(admitted)
                running += 1

    with executor:
        try:
            while True:
                start_more()
                for done in executor.finished():
                    running -= 1
                    recorded = record_outcome(done.task, done.outcome, store, done.machine)
                    shared.done(done.task)
                    results += recorded
                    tell(done.task, recorded, done.outcome)
                    start_more()
                if not shared.waiting:
                    break
                rerun, theirs = shared.settle(on_wait)
                for task, recorded in theirs:
                    results += recorded
                    tell(task, recorded)
                queue.extend(rerun)
                if not queue:
                    break
        except BaseException:
            executor.cancel()
            raise
        finally:
            shared.close()
    return results
