"""plan → measurements → stored results. Orchestration only: timing lives in
:mod:`annbench.execute.measure`, scoring in :mod:`annbench.execute.evaluate`, files in :mod:`annbench.store.folder`,
child processes in :mod:`annbench.execute.isolation`.

Every build setting runs in its own child process (:func:`execute`); the child's body is
:func:`run_build_setting`. Runs the child stored carry the task's id; every run of the task
without such a result afterwards is stored by the parent as an error with the child's reason.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

from annbench.backends.adapter import Adapter
from annbench.backends.discovery import load_adapter
from annbench.backends.filtering import FilteredSearch, Strategy, choose, run_algorithm
from annbench.core import provenance
from annbench.core.results import Reason, RunKey, RunResult, Status, canonical, measurement, measurement_attrs
from annbench.core.threads import limited_threads
from annbench.datasets.format import Dataset
from annbench.execute.driver import Finished, TaskCallback, drive
from annbench.execute.evaluate import quality, speed
from annbench.execute.forkserver import WarmKey, WarmParents
from annbench.execute.isolation import core_slots, run_task_isolated
from annbench.execute.measure import PassMeasurement, batch_passes, peak_memory_growth, single_query_passes
from annbench.execute.occupancy import Occupancy
from annbench.execute.task import Limits, Task, TaskOutcome
from annbench.plan.early_stop import dominated_by, is_exact, skipped, standing_skips, stored_exact
from annbench.plan.grid import BuildSetting, Plan
from annbench.store.folder import ResultStore, StoredState

log = logging.getLogger(__name__)


def run_keys(plan: Plan, setting: BuildSetting) -> list[RunKey]:
    o = plan.options
    algorithm = run_algorithm(setting.algorithm, setting.strategy)
    return [RunKey(plan.dataset, o.k, algorithm, o.batch, setting.build_params, q, o.threads)
            for q in setting.query_settings]


def pending_keys(plan: Plan, setting: BuildSetting, store: ResultStore, dataset_checksum: str) -> list[RunKey]:
    """The runs of this build setting still to do (all of them with ``--force``): those without a
    result of exactly this measurement (:func:`annbench.core.results.measurement`). Stored results of
    other work are logged with what differs; they are replaced (same file) when re-run. With early
    stop, a run stored as skipped is done while the exact run that dominates it is done."""
    keys = run_keys(plan, setting)
    if plan.options.force:
        return keys
    wanted = measurement(plan.options, dataset_checksum)
    stored = [store.stored(k, wanted) for k in keys]
    stale = Counter(s.why for s in stored if s.state is StoredState.OTHER_WORK)
    for why, n in stale.items():
        log.info("%s %s: %d of %d stored runs measured other work, run again: %s", setting.algorithm,
                 canonical(setting.build_params), n, len(keys), why)
    done = [s.finished for s in stored]
    if plan.options.early_stop:
        done = [d or s for d, s in zip(done, standing_skips(store, keys, done))]
    return [k for k, d in zip(keys, done) if not d]


def flag_exact_violation(result: RunResult, exact: bool) -> bool:
    """Mark a successful run of an adapter that claims ``exact = True`` but scored recall < 1.0 with
    the attr ``exact_violation`` (a wrong answer from an exact method: the library, the adapter or the
    ground truth is broken). Returns whether it was marked."""
    violated = exact and result.status == Status.OK and float(result.metrics.get("recall", 1.0)) < 1.0
    if violated:
        result.attrs["exact_violation"] = True
        log.warning("%s: the adapter says exact = True but recall is %.4f < 1.0", result.key.label(),
                    result.metrics["recall"])
    return violated


def _error(key: RunKey, stage: str, exc: BaseException, attrs: dict[str, Any]) -> RunResult:
    message = f"{stage}: {type(exc).__name__}: {exc}"
    return RunResult(key, Status.ERROR, error=" ".join(message.split()),
                     attrs={**attrs, "reason": Reason.EXCEPTION, "traceback": traceback.format_exc()})


class IndexSize(str, Enum):
    """``index_bytes_status`` of a result: whether its ``index_bytes`` was measured."""

    MEASURED = "measured"        # the library's serialized size
    UNSUPPORTED = "unsupported"  # the adapter cannot serialize: index_bytes = -1
    FAILED = "failed"            # serializing raised (message in index_bytes_error): index_bytes = -1
    PENDING = "pending"          # not measured yet: the child died after this run, before the measurement


def measure_index_size(adapter: Adapter) -> tuple[int, IndexSize, str]:
    """``(index_bytes, status, error message)`` of the built index; -1 where not measured."""
    try:
        size = adapter.index_size_bytes()
    except Exception as e:
        return -1, IndexSize.FAILED, " ".join(f"{type(e).__name__}: {e}".split())
    return (-1, IndexSize.UNSUPPORTED, "") if size is None else (int(size), IndexSize.MEASURED, "")


def run_build_setting(plan: Plan, dataset: Dataset, setting: BuildSetting, store: ResultStore,
                      keys: list[RunKey], extra_attrs: dict[str, Any] | None = None) -> list[RunResult]:
    """Build one index, run the query settings of ``keys`` on it, store each result as it completes,
    in this process (the body of an isolated child: see :mod:`annbench.execute.worker`).

    The index size is measured after the last query setting (serializing can re-map or flush
    the index, which would change what the timed passes see), so each result is first stored
    with ``index_bytes = -1`` and ``index_bytes_status = pending`` and rewritten with the size
    once it is known; a child that dies before that leaves its finished runs stored, pending.

    An exception inside the adapter (or an invalid answer) makes the affected runs errors;
    they are stored with their reason and the sweep goes on. ``extra_attrs`` go into every result.
    """
    o = plan.options
    adapter_cls = load_adapter(setting.algorithm, list(plan.adapter_dirs))
    attrs: dict[str, Any] = {
        **(extra_attrs or {}), "dataset_checksum": dataset.checksum, **measurement_attrs(o, dataset.checksum),
        "distance": dataset.distance, "runs": o.runs,
        "warmup": o.warmup_label(), "min_pass_time": o.min_pass_time,
        "n_queries": len(dataset.test), "n_train": len(dataset.train), "mode": "batch" if o.batch else "single",
        "library_versions": provenance.library_versions(adapter_cls.libraries), **provenance.machine(),
    }
    filters = dataset.filters
    strategy = None if filters is None else Strategy(setting.strategy or choose(adapter_cls, filters.kinds, "auto"))
    if strategy is not None:
        attrs["strategy"] = strategy.value
    # a filtered dataset's queries are (vector, predicate) pairs, made before any timing
    queries = dataset.test if filters is None else list(zip(dataset.test, filters.predicates))
    results: list[RunResult] = []

    def store_result(r: RunResult) -> None:
        flag_exact_violation(r, adapter_cls.exact)
        store.write(r)
        results.append(r)
        if r.status == Status.OK:
            log.info("%s: recall=%.4f qps=%.1f", r.key.label(), r.metrics["recall"], r.metrics["qps"])
        elif r.status == Status.SKIPPED:
            log.info("%s: skipped, %s", r.key.label(), r.attrs["note"])
        else:
            log.error("%s: %s", r.key.label(), r.error)

    passes: Callable[..., PassMeasurement] = batch_passes if o.batch else single_query_passes
    with limited_threads(o.threads):
        try:
            adapter = adapter_cls(dataset.distance, threads=o.threads, **setting.build_params)
            search = adapter if strategy is None else FilteredSearch(adapter, strategy)
            adapter.warm_up(dataset.train)
            with peak_memory_growth() as memory:
                start = time.perf_counter_ns()
                adapter.fit(dataset.train)
                if isinstance(search, FilteredSearch):  # the attributes' index is part of the build
                    search.fit_attributes(filters.attributes)  # type: ignore[union-attr]
                build_ns = time.perf_counter_ns() - start
        except Exception as e:
            for key in keys:
                store_result(_error(key, "build", e, {**attrs, "timestamp": provenance.timestamp()}))
            return results
        build = {"build_s": build_ns * 1e-9, "index_bytes": -1, "build_peak_rss_bytes": memory["bytes"]}
        attrs["index_bytes_status"] = IndexSize.PENDING.value
        done = [k for k in run_keys(plan, setting) if k not in keys]
        exact = stored_exact(store, done, dataset.checksum) if o.early_stop else []
        for key in keys:
            run_attrs = {**attrs, "timestamp": provenance.timestamp()}
            if o.early_stop and (by := dominated_by(setting.query_settings, key.query_params, exact)) is not None:
                store_result(skipped(key, by, run_attrs))
                continue
            try:
                adapter.set_query_params(**key.query_params)
                m = passes(search, queries, o.k, o.runs, o.warmup, o.min_pass_time)
                stats = adapter.stats()
                scores, found_d = quality(dataset, m.neighbors, o.k)
            except Exception as e:
                store_result(_error(key, "query", e, {**run_attrs, **build}))
                continue
            store_result(RunResult(
                key, Status.OK, metrics={**scores, **speed(m), **build},
                attrs={**run_attrs, "best_pass": m.best_pass, "repeats": m.repeats, "stats": stats,
                       "warmup_queries": m.warm_up.queries, "warmup_s": m.warm_up.elapsed_ns * 1e-9},
                neighbors=m.neighbors.astype("int32"), distances=found_d.astype("float32"),
                latencies_ns=m.latencies_ns, pass_times_ns=m.pass_times_ns))
            if is_exact(scores):
                exact.append(key.query_params)
        index_bytes, status, error = measure_index_size(adapter)
    if status is IndexSize.FAILED:
        log.error("%s %s: index size not measured: %s", setting.algorithm, setting.build_params, error)
    for r in results:  # every run of this build, now with the size of the index it searched
        (r.metrics if r.status == Status.OK else r.attrs)["index_bytes"] = index_bytes
        r.attrs["index_bytes_status"] = status.value
        if error:
            r.attrs["index_bytes_error"] = error
        store.write(r)
    return results


def make_tasks(plan: Plan, dataset: Dataset, store: ResultStore) -> list[Task]:
    """One task per build setting with runs still to do (absolute paths: the child may run elsewhere)."""
    tasks = []
    for i, setting in enumerate(plan.builds, 1):
        keys = pending_keys(plan, setting, store, dataset.checksum)
        if not keys:
            log.debug("[%d/%d] %s %s: all %d runs already stored, skipped", i, len(plan.builds), setting.algorithm,
                     setting.build_params, len(setting.query_settings))
            continue
        tasks.append(Task(uuid.uuid4().hex, plan.dataset, Path(dataset.path).resolve(), dataset.checksum,
                          plan.options, setting, tuple(keys), tuple(Path(d).resolve() for d in plan.adapter_dirs),
                          store.root.resolve()))
    return tasks


def log_path(store: ResultStore, task: Task) -> Path:
    """``<results>/<dataset>/<k>/logs/<algorithm>[-batch]/<build params>.<hash>.log``."""
    o = task.options
    algorithm = run_algorithm(task.setting.algorithm, task.setting.strategy)
    return store.log_dir(task.dataset, o.k, algorithm, o.batch) / task.log_name()


def warm_parent_log(store: ResultStore, key: WarmKey, task: Task) -> Path:
    """``<results>/<dataset>/<k>/logs/<algorithm>[-batch]/warm-parent.threads=<T>.log``: a fork server's log."""
    o = task.options
    return store.log_dir(task.dataset, o.k, key.algorithm, o.batch) / f"warm-parent.threads={key.threads}.log"


class LocalExecutor:
    """Tasks in child processes on this machine, up to ``parallelism`` at once, each child pinned to
    its own ``threads`` cores (:func:`annbench.execute.isolation.core_slots`) and held to ``limits``.

    ``warm``: children are forked by one warm parent per algorithm (:mod:`annbench.execute.forkserver`;
    fresh interpreters for adapters that are not ``fork_safe``), shut down when the sweep ends;
    False: every child is a fresh interpreter. Tasks start in the order they are given, each on the
    first free slot; who ran beside whom is counted per slot (:mod:`annbench.execute.occupancy`).

    Entering is re-entrant: entered around several sweeps (as the regression gate does with its
    rounds), the warm parents, pool and slots live until the outermost ``with`` ends, so each
    algorithm imports and warms up once for all of them.
    """

    def __init__(self, store: ResultStore, limits: Limits, parallelism: int, threads: int, warm: bool = True) -> None:
        self._store = store
        self._limits = limits
        self._parallelism = parallelism
        self._warm = warm
        self._slots: queue.Queue[tuple[int, tuple[int, ...]]] = queue.Queue()
        for i, cores in enumerate(core_slots(parallelism, threads)):
            self._slots.put((i, cores))
        self._cancel = threading.Event()
        self._running: dict[Future[TaskOutcome], Task] = {}
        self._stack = contextlib.ExitStack()
        self._depth = 0

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
            self._occupancy = stack.enter_context(contextlib.closing(Occupancy(self._parallelism)))
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
        """One task in a pool thread: wait for a free slot, run the child on its cores, free the slot."""
        slot, cores = self._slots.get()
        self._occupancy.mark(slot)  # busy from the warm-up (if this task starts a warm parent) to the child's end
        try:
            log.debug("%s: starting on cores %s, %d runs", task.label(), ",".join(map(str, cores)), len(task.keys))
            limits = self._limits
            pinned = Limits(limits.timeout_s, limits.memory_bytes, limits.cpus or cores)
            launcher = self._parents.launcher(task, pinned, self._cancel)
            return run_task_isolated(task, pinned, log_path(self._store, task), self._cancel, launcher,
                                     self._occupancy.ref(slot))
        finally:
            self._occupancy.mark(slot)
            self._slots.put((slot, cores))


def execute(plan: Plan, dataset: Dataset, store: ResultStore, limits: Limits | None = None, parallelism: int = 1,
            on_task: TaskCallback | None = None, tasks: list[Task] | None = None, warm: bool = True,
            executor: LocalExecutor | None = None) -> list[RunResult]:
    """Run every pending build setting of the plan (or ``tasks``), each in its own child process, up to
    ``parallelism`` at once (:class:`LocalExecutor`; or on ``executor``, one for ``store`` that the
    caller entered around several sweeps), through the sweep's driver loop
    (:func:`annbench.execute.driver.drive`).

    ``on_task`` is called in this thread after each task with the runs it recorded. A failing
    child never stops the sweep; an interrupt (Ctrl-C) kills the running children and re-raises.
    """
    if executor is None:
        executor = LocalExecutor(store, limits or Limits(), parallelism, plan.options.threads, warm)
    todo = make_tasks(plan, dataset, store) if tasks is None else tasks
    return drive(executor, todo, store, plan.dataset, on_task)
