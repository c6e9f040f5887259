"""The Dask executor: the sweep's build settings as tasks on a Dask cluster, results stored here.

Each build setting is one Dask task calling :func:`annbench.execute.remote.run_remote` on a worker,
which runs it in an isolated child exactly as the local executor does. The task asks for
``threads`` units of the worker resource ``benchmark`` (workers offer one per core they give
to benchmarks); no more tasks are in flight than the cluster has free benchmark slots, so a
task only reaches a worker that can start it. Results come back with the task (or are stored
in place with a shared results folder) and are stored and recorded here exactly as local ones.

A task whose worker dies is rerun once on another worker (the scheduler's
``allowed-failures`` is 1), then recorded as failed with reason ``worker``; the sweep goes on.
Dask is an optional dependency, imported only here and only when this executor is chosen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from annbench.core import provenance
from annbench.core.errors import UserError
from annbench.core.logs import quiet_library_loggers
from annbench.execute.driver import Finished, log_path
from annbench.execute.remote import RemoteOptions, RemoteResult, run_remote
from annbench.plan.task import Ended, Limits, Task, TaskOutcome
from annbench.store.folder import ResultStore

log = logging.getLogger(__name__)

#: The worker resource a task asks for, ``threads`` units of it.
RESOURCE = "benchmark"
#: Worker deaths a task survives: rerun once, then failed.
ALLOWED_FAILURES = 1
#: Seconds between two looks at the cluster's free slots while tasks run.
POLL_S = 0.5
INSTALL_HINT = "pip install -e '.[dask]'"


def _import_dask() -> Any:
    try:
        import distributed
    except ImportError as e:
        raise UserError(f"--executor dask needs Dask ({e.name} does not import); install the extra: "
                        f"{INSTALL_HINT}") from None
    return distributed


def benchmark_slots(client: Any, threads: int) -> int:
    """Tasks of ``threads`` cores the cluster's workers can run at once."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return sum(int(w.get("resources", {}).get(RESOURCE, 0) // threads) for w in workers)


def _wait_for_slots(client: Any, threads: int, timeout_s: float, where: str) -> int:
    deadline = time.monotonic() + timeout_s
    while (slots := benchmark_slots(client, threads)) == 0:
        if time.monotonic() > deadline:
            raise UserError(f"no worker of the Dask scheduler {where} offers the resource {RESOURCE}={threads} "
                            f"within {timeout_s:g} s; valid: workers started with --nthreads 1 --resources "
                            f"{RESOURCE}=1 (per core; --threads {threads} needs {RESOURCE}>={threads})")
        time.sleep(POLL_S)
    return slots


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int, threads: int, timeout_s: float) -> Iterator[Any]:
    """A connected ``distributed.Client``, closed (with any cluster started here) on exit.

    ``scheduler``: an address (``tcp://host:8786``) or a scheduler file (``.json``); None uses
    Dask's configuration (``scheduler-address``, e.g. ``$DASK_SCHEDULER_ADDRESS``), and failing
    that starts a ``LocalCluster`` of ``workers`` single-threaded worker processes offering
    ``benchmark=threads`` each. Raises :class:`UserError` (one line) when the scheduler cannot be
    reached or no worker offers the resource within ``timeout_s``.
    """
    distributed = _import_dask()
    import dask

    quiet_library_loggers(logging.getLogger().getEffectiveLevel())  # importing distributed set its loggers to INFO
    scheduler = scheduler or dask.config.get("scheduler-address", None)
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
                cluster = stack.enter_context(distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, resources={RESOURCE: threads},
                    memory_limit=0, dashboard_address=None, scheduler_port=0))
            where = f"local cluster {cluster.scheduler_address}"
            client = stack.enter_context(distributed.Client(cluster, timeout=timeout_s))
        else:
            is_file = scheduler.endswith(".json") or Path(scheduler).is_file()
            where = f"file {scheduler}" if is_file else scheduler
            try:
                client = distributed.Client(scheduler_file=scheduler, timeout=timeout_s) if is_file else \
                    distributed.Client(scheduler, timeout=timeout_s)
            except (OSError, TimeoutError, ValueError) as e:
                raise UserError(f"cannot reach the Dask scheduler at {where} within {timeout_s:g} s "
                                f"({type(e).__name__}: {e}); valid: the address of a running `dask scheduler` "
                                f"(tcp://HOST:8786), its scheduler file, or no --scheduler for a local cluster") \
                    from None
            stack.enter_context(client)
            _check_annbench(client, where)
            _set_allowed_failures(client)
        log.info("Dask scheduler %s: %d benchmark slots", where, _wait_for_slots(client, threads, timeout_s, where))
        yield client


def _check_annbench(client: Any, where: str) -> None:
    """The scheduler (it unpickles the tasks) and every worker must import annbench."""
    def version(dask_scheduler: Any = None) -> str:  # sent by value: runs even where annbench is missing
        try:
            from annbench.core.version import __version__
        except ImportError as e:
            return f"missing: {e}"
        return __version__

    found = {"the scheduler": client.run_on_scheduler(version)}
    found.update({f"worker {address}": v for address, v in client.run(version, on_error="return").items()})
    missing = [who for who, v in found.items() if not isinstance(v, str) or v.startswith("missing")]
    if missing:
        raise UserError(f"annbench does not import on {', '.join(missing)} of the Dask cluster {where}; valid: "
                        f"annbench installed (`{INSTALL_HINT}` in a checkout) wherever the scheduler and workers run")


def _set_allowed_failures(client: Any) -> None:
    """Make the scheduler rerun a task once when its worker dies (Dask's default is 3 times)."""
    def set_on(dask_scheduler: Any) -> int:  # the name is how Dask passes the scheduler in
        before = dask_scheduler.allowed_failures
        dask_scheduler.allowed_failures = ALLOWED_FAILURES
        return before

    try:
        before = client.run_on_scheduler(set_on)
    except Exception as e:  # a scheduler that refuses pickled functions
        log.warning("could not set the scheduler's allowed-failures to %d (%s); start it with "
                    "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=%d", ALLOWED_FAILURES, e, ALLOWED_FAILURES)
        return
    if before != ALLOWED_FAILURES:
        log.info("scheduler allowed-failures set from %s to %d", before, ALLOWED_FAILURES)


def install(task: Task, remote: RemoteResult, store: ResultStore) -> TaskOutcome:
    """Store here what a worker shipped back (results, the child's log); the outcome with the log's
    local path (where nothing came back, e.g. the dataset was missing there, the reason is the log)."""
    local_log = log_path(store, task)
    local_log.parent.mkdir(parents=True, exist_ok=True)
    if remote.log:
        local_log.write_bytes(remote.log)
    elif not local_log.is_file():
        local_log.write_text(f"{remote.outcome.message}\n")
    for result in remote.results:
        store.write(dataclasses.replace(result, attrs={**result.attrs, "log_path": str(local_log)}))
    return dataclasses.replace(remote.outcome, log_path=local_log)


def worker_hostnames(client: Any) -> dict[str, str]:
    """Host name (as provenance records it) by the address host (IP) of each connected worker."""
    import socket
    from urllib.parse import urlsplit

    try:
        names = client.run(socket.gethostname, on_error="ignore")
    except Exception as e:  # a worker going away during the call
        log.debug("could not ask the workers their host names: %s", e)
        return {}
    return {urlsplit(address).hostname or address: name for address, name in names.items()}


def failed_on_worker(task: Task, error: BaseException, store: ResultStore, hostnames: dict[str, str],
                     killed: bool) -> tuple[TaskOutcome, dict[str, str]]:
    """The outcome of a task that brought nothing back: its workers died (``KilledWorker``), or
    the worker could not run it (``error``); the reason also goes into its local log."""
    last = getattr(error, "last_worker", None)
    host = hostnames.get(last.host, last.host) if last is not None else "unknown"
    if killed:
        message = (f"worker lost: the Dask worker running this build setting died {ALLOWED_FAILURES + 1} times "
                   f"(last {getattr(last, 'address', 'unknown')}); the child's log stayed on the worker")
    else:
        message = " ".join(f"the Dask worker could not run the task: {type(error).__name__}: {error}".split())
    path = log_path(store, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(message + "\n")
    return TaskOutcome(task.task_id, Ended.WORKER if killed else Ended.START, message, path), {"host": host}


class DaskExecutor:
    """Tasks on the Dask cluster of ``client``: each a call of :func:`annbench.execute.remote.run_remote`
    asking for ``threads`` units of :data:`RESOURCE`, submitted only while the cluster has a free
    slot for it, in the order given. What a worker ships back is stored here (:func:`install`); a
    task whose workers died, or that no worker could run, finishes as failed (:func:`failed_on_worker`)
    with the host it was last on."""

    def __init__(self, client: Any, store: ResultStore, limits: Limits, options: RemoteOptions, threads: int) -> None:
        _import_dask()
        store.root.mkdir(parents=True, exist_ok=True)
        self._client = client
        self._store = store
        self._limits = limits
        self._options = options
        self._threads = threads
        self._pending: deque[Task] = deque()
        self._running: dict[Any, Task] = {}

    @property
    def store(self) -> ResultStore:
        """Where the runs are stored (shipped back here, or written by the workers into a shared folder)."""
        return self._store

    def __enter__(self) -> DaskExecutor:
        distributed = _import_dask()
        self._stop = distributed.Event(f"annbench-stop-{uuid.uuid4().hex}", client=self._client)
        self._here = provenance.machine()
        self._hostnames = worker_hostnames(self._client)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        return None  # the client (and its cluster) belongs to the caller

    def start(self, task: Task) -> None:
        self._pending.append(task)

    def finished(self) -> Iterator[Finished]:
        distributed = _import_dask()
        while self._pending or self._running:
            self._submit()
            if not self._running:
                time.sleep(POLL_S)  # no worker offers a slot right now: wait for one
                continue
            try:
                done = distributed.wait(list(self._running), timeout=POLL_S, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                continue
            for future in done:
                yield self._finish(self._running.pop(future), future)

    def cancel(self) -> None:
        with contextlib.suppress(Exception):
            self._stop.set()
            self._client.cancel(list(self._running))

    def _submit(self) -> None:
        """Submit queued tasks while the cluster has free benchmark slots."""
        free = benchmark_slots(self._client, self._threads) - len(self._running)
        while self._pending and free > 0:
            task = self._pending.popleft()
            relative = str(log_path(self._store, task).relative_to(self._store.root))
            future = self._client.submit(run_remote, task, self._limits, self._options, relative, self._stop,
                                         pure=False, key=f"annbench-{task.setting.algorithm}-{task.task_id}",
                                         resources={RESOURCE: self._threads})
            self._running[future] = task
            free -= 1

    def _finish(self, task: Task, future: Any) -> Finished:
        from distributed.scheduler import KilledWorker

        try:
            remote: RemoteResult = future.result()
            outcome, machine = install(task, remote, self._store), remote.machine
            if machine.get("annbench_commit") != self._here["annbench_commit"]:
                log.warning("%s ran on %s with annbench %s (here: %s)", task.label(), machine.get("host"),
                            machine.get("annbench_commit"), self._here["annbench_commit"])
        except Exception as e:  # KilledWorker; or annbench missing or different on the worker
            self._hostnames |= worker_hostnames(self._client)
            outcome, machine = failed_on_worker(task, e, self._store, self._hostnames, isinstance(e, KilledWorker))
        return Finished(task, outcome, machine)
