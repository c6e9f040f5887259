"""The local executor: each task in a child process on this machine, up to ``parallelism`` at once.

Timing lives in :mod:`annbench.execute.measure`, the child's body in :mod:`annbench.execute.child`,
child processes in :mod:`annbench.execute.isolation` (fresh) and :mod:`annbench.execute.forkclient`
(forked by warm parents). Runs the child stored carry the task's id; every run of the task without
such a result afterwards is stored by the driver (:func:`annbench.execute.driver.record_outcome`) as
an error with the child's reason.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from types import TracebackType

from annbench.core.claims import BesideRef, CoreClaims
from annbench.execute.driver import Finished, log_path
from annbench.execute.forkclient import WarmParents
from annbench.execute.forkproto import WarmKey
from annbench.execute.isolation import available_cores, core_slots, run_task_isolated
from annbench.plan.task import Limits, Task, TaskOutcome
from annbench.store.folder import ResultStore

log = logging.getLogger(__name__)


def warm_parent_log(store: ResultStore, key: WarmKey, task: Task) -> Path:
    """``<results>/<dataset>/<k>/logs/<algorithm>[-batch]/warm-parent.threads=<T>.log``: a fork server's log."""
    o = task.options
    return store.log_dir(task.dataset, o.k, key.algorithm, o.batch) / f"warm-parent.threads={key.threads}.log"


class LocalExecutor:
    """Tasks in child processes on this machine, up to ``parallelism`` at once, each child pinned to
    ``threads`` cores of its own and held to ``limits``. The cores are claimed machine-wide for the
    child's life (``claims``, :mod:`annbench.core.claims`; default: claims of this results folder
    that wait for free cores), free cores first, so no other sweep measures on them meanwhile.

    ``warm``: children are forked by one warm parent per algorithm (:mod:`annbench.execute.forkserver`;
    fresh interpreters for adapters that are not ``fork_safe``), shut down when the sweep ends;
    False: every child is a fresh interpreter. Tasks start in the order they are given, each on the
    first free cores; who ran beside whom is counted machine-wide (:class:`annbench.core.claims.Look`).

    Entering is re-entrant: entered around several sweeps (as the regression gate does with its
    rounds), the warm parents, pool and slots live until the outermost ``with`` ends, so each
    algorithm imports and warms up once for all of them.
    """

    def __init__(self, store: ResultStore, limits: Limits, parallelism: int, threads: int, warm: bool = True,
                 claims: CoreClaims | None = None) -> None:
        self._store = store
        self._limits = limits
        self._parallelism = parallelism
        self._threads = threads
        self._warm = warm
        core_slots(parallelism, threads)  # they fit in this process's cores, or nothing runs
        self._claims = claims or CoreClaims(store.root, available_cores())
        self._cancel = threading.Event()
        self._running: dict[Future[TaskOutcome], Task] = {}
        self._stack = contextlib.ExitStack()
        self._depth = 0

    @property
    def capacity(self) -> int:
        """Tasks that run at once: the driver starts no more (each claims its runs as it starts)."""
        return self._parallelism

    @property
    def store(self) -> ResultStore:
        """Where this executor's children store their runs (and write their logs)."""
        return self._store

    def __enter__(self) -> LocalExecutor:
        self._depth += 1
        if self._depth > 1:
            return self
        # The pool's threads start the fork servers, whose PR_SET_PDEATHSIG follows the starting thread:
        # the servers are shut down (entered after the pool, so left before it) before the pool's threads end.
        with contextlib.ExitStack() as stack:
            self._pool = stack.enter_context(
                ThreadPoolExecutor(max_workers=self._parallelism, thread_name_prefix="annbench-task"))
            self._parents = stack.enter_context(
                WarmParents(lambda key, task: warm_parent_log(self._store, key, task), enabled=self._warm))
            self._stack = stack.pop_all()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._stack.__exit__(kind, error, traceback)

    def start(self, task: Task) -> None:
        self._running[self._pool.submit(self._run, task)] = task

    def finished(self) -> Iterator[Finished]:
        while self._running:
            done, _ = wait(self._running, return_when=FIRST_COMPLETED)
            for future in done:
                task = self._running.pop(future)
                yield Finished(task, future.result())

    def cancel(self) -> None:
        self._cancel.set()
        for future in self._running:
            future.cancel()

    def _run(self, task: Task) -> TaskOutcome:
        """One task in a pool thread: claim free cores (from the warm-up, if this task starts a warm
        parent, to the child's end), run the child on them, release them."""
        with self._claims.claimed(self._threads, self._cancel) as claim:
            cores = claim.cores
            log.debug("%s: starting on cores %s%s, %d runs", task.label(), ",".join(map(str, cores)),
                      " (shared with another sweep)" if claim.shared else "", len(task.keys))
            limits = self._limits
            pinned = Limits(limits.timeout_s, limits.memory_bytes, limits.cpus or cores)
            launcher = self._parents.launcher(task, pinned, self._cancel)
            beside = BesideRef(self._claims.folder, claim.presence.name, claim.shared, self._parallelism)
            return run_task_isolated(task, pinned, log_path(self._store, task), self._cancel, launcher, beside)
