"""The in-process executor: every task runs in this process, one after another, without isolation.

For tests and debugging (``annbench run --executor inprocess``): a task runs exactly what an isolated
child runs (:func:`annbench.execute.child.run_task`: open and verify the dataset, then
:func:`annbench.execute.child.run_build_setting`), stores the same results (``concurrent_children``
0, ``parallelism`` 1, as a local sweep of one slot) and ends with the same kinds of outcome records,
but nothing holds it: no timeout, no memory limit, no core pinning, no warm parent. A crash (a
segfault in a library) takes the sweep down; an exception in a task is that task's failure only.

Each task's log lines (annbench's logging at the sweep's verbosity, not the libraries' own output)
go to the build setting's log file, as a child's would. The adapter file is loaded afresh and numpy's
global random state reseeded for every task, as in a fresh child (the library it imports stays imported).
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np

from annbench.backends.discovery import PACKAGE, module_name
from annbench.core.claims import BesideRef, Presence
from annbench.execute.child import run_task
from annbench.execute.driver import Finished, log_path
from annbench.execute.isolation import LOG_TAIL_CHARS
from annbench.plan.task import Ended, Task, TaskOutcome
from annbench.store.folder import ResultStore

log = logging.getLogger(__name__)


def _tail(text: str) -> str:
    return text[-LOG_TAIL_CHARS:]


class InProcessExecutor:
    """Tasks run in this process, in the order they are started, when :meth:`finished` is iterated."""

    def __init__(self, store: ResultStore) -> None:
        self._store = store
        self._queue: deque[Task] = deque()
        self._cancelled = False

    #: One task at a time: the driver starts the next (claiming its runs) when one has finished.
    capacity = 1

    @property
    def store(self) -> ResultStore:
        """Where the tasks store their runs (and write their logs)."""
        return self._store

    def __enter__(self) -> InProcessExecutor:
        # a registry of its own, unpinned and unclaimed: the results say 0 children beside, parallelism 1
        self._registry = tempfile.TemporaryDirectory(prefix="annbench-inprocess-")
        self._presence = Presence(Path(self._registry.name), ())
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._presence.release()
        self._registry.cleanup()

    def start(self, task: Task) -> None:
        self._queue.append(task)

    def finished(self) -> Iterator[Finished]:
        while self._queue and not self._cancelled:
            task = self._queue.popleft()
            yield Finished(task, self._run(task))

    def cancel(self) -> None:
        self._cancelled = True
        self._queue.clear()

    def _run(self, task: Task) -> TaskOutcome:
        path = log_path(self._store, task)
        path.parent.mkdir(parents=True, exist_ok=True)
        sys.modules.pop(f"{PACKAGE}.{module_name(task.setting.algorithm)}", None)  # load the adapter file afresh
        handler = logging.FileHandler(path, mode="w", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        start = time.monotonic()
        code, reason, message = 0, Ended.OK, "finished"
        try:
            logging.getLogger("annbench.execute.worker").info("in-process for %s: %d runs", task.label(),
                                                              len(task.keys))
            np.random.seed()  # noqa: NPY002 - as a fresh child would: not the previous task's global random state
            run_task(task, path, BesideRef(Path(self._registry.name), self._presence.name))
        except Exception as e:  # run_task stored the task's runs as errors with the traceback
            handler.stream.write(traceback.format_exc())
            code, reason = 1, Ended.EXIT
            message = " ".join(f"the task raised {type(e).__name__}: {e}".split())
        finally:
            root.removeHandler(handler)
            handler.close()
        elapsed = time.monotonic() - start
        tail = "" if reason == Ended.OK else _tail(path.read_text("utf-8", "replace"))
        return TaskOutcome(task.task_id, reason, message, path, code, elapsed, 0, tail)
