"""The worker side of a distributed sweep: run one task on whatever machine this process is on.

:func:`run_remote` is what a Dask worker executes for each build setting (it imports no Dask:
any executor able to call a picklable function could use it). It

1. finds the dataset: the sweep's own file when this host sees it (a shared path) with the
   sweep's checksum, else the worker's data folder, where the registry gets or builds it
   (:func:`annbench.datasets.registry.prepare`, one builder per host at a time);
2. claims cores for the child in the machine's claims registry (:mod:`annbench.core.claims`), so
   several worker processes on one host, or a worker and a local sweep, never run two benchmarks
   on one core (the kernel drops the locks of a process that dies);
3. runs the task exactly as the local executor does, through
   :func:`annbench.execute.isolation.run_task_isolated` (fresh child, timeout, memory cap, pinning);
4. ships the results back: with ``ship_results`` the child stores into a private temporary
   folder and the runs it stored (arrays included) and its log travel back in the
   :class:`RemoteResult`, for the submitting side to store; otherwise (a results folder
   shared at the same path) the child stores them in place, as it does locally.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from annbench.core import paths, provenance
from annbench.core.claims import CoreClaims
from annbench.core.processes import remove_orphans
from annbench.core.results import RunResult
from annbench.execute.isolation import available_cores, memory_share, run_task_isolated
from annbench.plan.task import Ended, Limits, Task, TaskOutcome
from annbench.store.folder import ResultStore, read_result

log = logging.getLogger(__name__)

#: Name prefix of the temporary folder a shipping task's child stores into.
SCRATCH_PREFIX = "annbench-task-"
#: Seconds between two looks at the stop flag.
STOP_POLL_S = 1.0


class StopFlag(Protocol):
    """Anything with ``is_set()``: a ``threading.Event`` or a ``distributed.Event``."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True)
class RemoteOptions:
    """How a worker finds datasets and returns results (the same for every task of a sweep).

    ``data_dir`` / ``source_dir``: where the worker looks for and builds datasets its host
    does not see at the sweep's path (None: the worker's ``$ANNBENCH_DATA_DIR`` or
    ``./datasets``, and ``$ANNBENCH_SOURCE_DIR``). ``lock_dir``: the machine's claims registry
    (None: :func:`annbench.core.claims.registry_dir`)."""

    ship_results: bool = True
    data_dir: Path | None = None
    source_dir: Path | None = None
    lock_dir: Path | None = None


@dataclass
class RemoteResult:
    """What comes back from a worker: how the child ended, where, and (shipping) what it stored."""

    outcome: TaskOutcome
    machine: dict[str, str]
    dataset_how: str = ""
    results: list[RunResult] = field(default_factory=list)
    log: bytes = b""


@contextlib.contextmanager
def host_cores(n: int, lock_dir: Path | None = None, stop: StopFlag | None = None,
               results: str = "-") -> Iterator[tuple[int, ...]]:
    """Claim ``n`` of this process's cores in the machine's claims registry (``lock_dir``, default
    :func:`annbench.core.claims.registry_dir`), as every local sweep does; wait until they are free.
    Held until the block ends (or the process dies)."""
    cores = available_cores()
    if n > len(cores):
        raise ValueError(f"{n} cores asked for, this worker may use {len(cores)}")
    claims = CoreClaims(results, cores, folder=lock_dir)
    with claims.claimed(n, stop) as claim:  # type: ignore[arg-type]  # anything with is_set()
        yield claim.cores


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _stored_checksum(path: Path) -> str | None:
    """The file's content checksum (:func:`annbench.datasets.format.file_checksum`), None if unreadable."""
    from annbench.core.errors import UserError
    from annbench.datasets.format import file_checksum

    try:
        return file_checksum(path)
    except UserError:
        return None


def locate_dataset(task: Task, options: RemoteOptions) -> tuple[Path, str]:
    """The dataset file for ``task`` on this host and how it was found: the sweep's path when
    it is here with the sweep's checksum, else the registry's file in the worker's data folder
    (got or built now, one process per host at a time). Raises ``ValueError`` (or the
    registry's ``UserError``) when neither gives the sweep's dataset."""
    from annbench.datasets.registry import dataset_path, prepare

    if task.dataset_path.is_file() and _stored_checksum(task.dataset_path) == task.dataset_checksum:
        return task.dataset_path, f"sweep's path {task.dataset_path}"
    data_dir = Path(options.data_dir or paths.default_data_dir()).resolve()
    with _file_lock(data_dir / f".{task.dataset}.lock"):
        source_dir = options.source_dir if options.source_dir is not None and options.source_dir.is_dir() else None
        prepared = prepare(task.dataset, data_dir, source_dir)
    found = _stored_checksum(prepared.path)
    if found != task.dataset_checksum:
        raise ValueError(f"dataset {task.dataset} on this worker ({prepared.path}) has checksum {found}, the "
                         f"sweep's has {task.dataset_checksum}; valid: the sweep's file at a shared path, or a "
                         f"worker data folder holding the same build (copy {dataset_path(task.dataset, data_dir)})")
    return prepared.path, prepared.how


def worker_adapter_dirs(dirs: tuple[Path, ...]) -> tuple[Path, ...]:
    """The sweep's adapter folders that exist here, then this installation's built-in folder."""
    here = [d for d in dirs if d.is_dir()]
    return tuple(here if paths.ALGORITHMS_DIR in here else [*here, paths.ALGORITHMS_DIR])


@contextlib.contextmanager
def _watch(stop: StopFlag | None) -> Iterator[threading.Event]:
    """A local event set once ``stop`` is (checked every :data:`STOP_POLL_S` seconds)."""
    cancel, done = threading.Event(), threading.Event()

    def poll() -> None:
        while not done.wait(STOP_POLL_S):
            try:
                if stop is not None and stop.is_set():
                    cancel.set()
                    return
            except Exception as e:  # the scheduler went away: keep running, the worker decides
                log.debug("stop flag unreadable: %s", e)

    watcher = threading.Thread(target=poll, name="annbench-stop-watch", daemon=True)
    if stop is not None:
        try:  # first look from the calling thread: a Dask Event binds to the task's worker client here
            if stop.is_set():
                cancel.set()
        except Exception as e:
            log.debug("stop flag unreadable: %s", e)
        watcher.start()
    try:
        yield cancel
    finally:
        done.set()


def remove_dead_scratch() -> None:
    """Delete the temporary result folders of worker processes that died mid-task (``<tmp>/annbench-task-<pid>-*``)."""
    remove_orphans(Path(tempfile.gettempdir()), SCRATCH_PREFIX)


def _failed(task: Task, log_path: Path, message: str, machine: dict[str, str]) -> RemoteResult:
    return RemoteResult(TaskOutcome(task.task_id, Ended.START, message, log_path), machine)


def run_remote(task: Task, limits: Limits, options: RemoteOptions, log_relpath: str,
               stop: StopFlag | None = None) -> RemoteResult:
    """Run ``task`` on this host in an isolated child (see the module's docstring).

    ``log_relpath``: the log's path relative to the results folder. ``limits.cpus`` is ignored
    (cores are claimed here); ``limits.memory_bytes`` None means this host's available memory
    divided by the benchmarks that fit on its cores. Never raises for what the child does or
    for a dataset this host cannot get: those come back as a failed outcome.
    """
    machine = provenance.machine()
    threads = task.options.threads
    if options.ship_results:
        remove_dead_scratch()
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")) if options.ship_results else None
    root = scratch if scratch is not None else task.results_root
    log_path = root / log_relpath
    try:
        if scratch is None and not task.results_root.is_dir():
            return _failed(task, log_path, f"shared results folder {task.results_root} does not exist on host "
                                           f"{machine['host']}; valid: a folder shared at the same path, or "
                                           f"--dask-results ship", machine)
        try:
            dataset_path, how = locate_dataset(task, options)
        except Exception as e:
            return _failed(task, log_path, f"dataset {task.dataset} not available on host {machine['host']}: "
                                           f"{' '.join(str(e).split())}", machine)
        here = dataclasses.replace(task, dataset_path=dataset_path, results_root=root,
                                   adapter_dirs=worker_adapter_dirs(task.adapter_dirs))
        memory = limits.memory_bytes
        if memory is None:  # a share per benchmark that fits on this host's cores
            memory = memory_share(len(available_cores()) // threads)
        try:
            with _watch(stop) as cancel, host_cores(threads, options.lock_dir, cancel, str(task.results_root)) as cores:
                log.info("%s on %s: cores %s, dataset from %s", task.label(), machine["host"], cores, how)
                outcome = run_task_isolated(here, Limits(limits.timeout_s, memory, cores), log_path, cancel)
        except InterruptedError as e:
            return _failed(task, log_path, f"cancelled: {e}", machine)
        except ValueError as e:  # more cores asked for than this worker has
            return _failed(task, log_path, f"on host {machine['host']}: {e}", machine)
        if scratch is None:
            return RemoteResult(outcome, machine, how)
        store = ResultStore(scratch)
        shipped = []
        for key in task.keys:
            path = store.path_for(key)
            if path.is_file() and (store.attrs_of(key) or {}).get("task_id") == task.task_id:
                shipped.append(read_result(path, key))
        return RemoteResult(outcome, machine, how, shipped, log_path.read_bytes() if log_path.is_file() else b"")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
            # and again once this task has run: a worker killed mid-task may still have been dying when its
            # rerun (this task, perhaps the sweep's last) looked at the start, and no later task would look
            remove_dead_scratch()

