"""The one way to get an executor and run a plan on it.

:func:`make_executor` builds the executor of an :class:`ExecutorKind` (``local``: isolated children
of this process; ``inprocess``: this process, no isolation; ``dask``: a Dask cluster);
:func:`execute` runs the pending build settings of a plan on it through the sweep's driver loop
(:func:`annbench.execute.driver.drive`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from annbench.core.claims import CoreClaims
from annbench.core.results import RunResult
from annbench.datasets.format import Dataset
from annbench.execute.dask import DaskExecutor
from annbench.execute.driver import Executor, TaskCallback, drive
from annbench.execute.inprocess import InProcessExecutor
from annbench.execute.local import LocalExecutor
from annbench.execute.remote import RemoteOptions
from annbench.plan.grid import Plan
from annbench.plan.pending import make_tasks
from annbench.plan.task import Limits, Task
from annbench.store.folder import ResultStore


class ExecutorKind(enum.StrEnum):
    """Where a sweep's tasks run (``--executor``)."""

    LOCAL = "local"          # child processes of this one, isolated (timeout, memory cap, pinning)
    DASK = "dask"            # tasks on a Dask cluster, each in an isolated child on a worker
    INPROCESS = "inprocess"  # this process, one after another, no isolation: tests and debugging


def make_executor(kind: ExecutorKind | str, store: ResultStore, *, limits: Limits | None = None, parallelism: int = 1,
                  threads: int = 1, warm: bool = True, client: Any = None,
                  remote: RemoteOptions | None = None, claims: CoreClaims | None = None) -> Executor:
    """The executor of ``kind`` storing into ``store``.

    ``local``: up to ``parallelism`` children at once, each pinned to ``threads`` cores and held to
    ``limits``, forked by warm parents unless ``warm`` is False, its cores claimed by ``claims``
    (default: claims that wait for free cores, :mod:`annbench.core.claims`). ``dask``: on the cluster of ``client``
    (``limits`` hold on each worker; ``memory_bytes`` None: each worker's fair share), ``remote`` says
    how workers find datasets and return results. ``inprocess`` takes none of these.
    """
    kind = ExecutorKind(kind)
    if kind is ExecutorKind.LOCAL:
        return LocalExecutor(store, limits or Limits(), parallelism, threads, warm, claims)
    if kind is ExecutorKind.INPROCESS:
        return InProcessExecutor(store)
    if client is None:
        raise ValueError("the dask executor needs a client (annbench.execute.dask.dask_client)")
    return DaskExecutor(client, store, limits or Limits(memory_bytes=None), remote or RemoteOptions(), threads)


def execute(executor: Executor, plan: Plan, dataset: Dataset, on_task: TaskCallback | None = None,
            tasks: list[Task] | None = None, on_wait: Callable[[str | None], None] | None = None) -> list[RunResult]:
    """Run every pending build setting of ``plan`` (or ``tasks``) on ``executor``; every run recorded
    (runs another sweep on the same results folder measured: with the attr ``measured_by_sweep``).

    ``on_task`` is called in this thread after each task with the runs it recorded; ``on_wait`` with
    what the sweep waits for (None: no longer). A failing task never stops the sweep; an interrupt
    (Ctrl-C) stops the running tasks and re-raises.
    """
    todo = make_tasks(plan, dataset, executor.store) if tasks is None else tasks
    return drive(executor, todo, executor.store, plan.dataset, on_task, on_wait)
