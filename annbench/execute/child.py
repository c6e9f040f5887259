"""The child's body: one :class:`~annbench.plan.task.Task` run in this process.

:func:`run_task` opens and verifies the dataset, then :func:`run_build_setting` builds the index,
measures each query setting on it, records the index size and stores every run as it completes
through a :class:`Recorder`. It is what an isolated child runs (started by
:mod:`annbench.execute.worker`, fresh or forked by a warm parent) and what the in-process executor
calls directly. Each result carries the task's id, which is how the parent learns what finished,
even after a crash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from annbench.backends.adapter import Adapter, saveable
from annbench.backends.discovery import load_adapter
from annbench.backends.filtering import FilteredSearch, Strategy, choose
from annbench.core import provenance
from annbench.core.claims import BesideRef, Look
from annbench.core.processes import probe_fork
from annbench.core.results import Reason, RunKey, RunResult, Status, canonical, measurement_attrs
from annbench.core.threads import limited_threads
from annbench.datasets.format import Dataset, load_dataset
from annbench.execute.client_levels import by_query_setting, measure_level
from annbench.execute.evaluate import pass_qps, process_speed, quality, speed
from annbench.execute.measure import (
    PassMeasurement,
    WarmUp,
    batch_answers,
    batch_passes,
    batch_steps,
    interleaved,
    peak_memory_growth,
    single_query_passes,
    single_query_steps,
    stack_answers,
)
from annbench.execute.process_passes import At, Fatal, in_processes, portable, restored
from annbench.execute.streaming import run_runbook
from annbench.plan.early_stop import dominated_by, is_exact, skipped, stored_exact
from annbench.plan.pending import run_keys
from annbench.plan.task import Task
from annbench.store.folder import ResultStore

log = logging.getLogger(__name__)


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


class IndexSize(StrEnum):
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


class Recorder:
    """The runs of one build setting as they are stored: each written as soon as it completes
    (:meth:`record`), all of them written again once the index size is known (:meth:`index_size`)."""

    def __init__(self, store: ResultStore, exact: bool) -> None:
        self.store, self.exact = store, exact
        self.results: list[RunResult] = []

    def record(self, r: RunResult) -> None:
        flag_exact_violation(r, self.exact)
        self.store.write(r)
        self.results.append(r)
        if r.status == Status.OK:
            log.info("%s: recall=%.4f qps=%.1f", r.key.label(), r.metrics["recall"], r.metrics["qps"])
        elif r.status == Status.SKIPPED:
            log.info("%s: skipped, %s", r.key.label(), r.attrs["note"])
        else:
            log.error("%s: %s", r.key.label(), r.error)

    def index_size(self, index_bytes: int, status: IndexSize, error: str) -> None:
        """Every run recorded, now with the size of the index it searched."""
        for r in self.results:
            (r.metrics if r.status == Status.OK else r.attrs)["index_bytes"] = index_bytes
            r.attrs["index_bytes_status"] = status.value
            if error:
                r.attrs["index_bytes_error"] = error
            self.store.write(r)


class ProcessIndex(StrEnum):
    """``process_index`` of a run measured in several processes: what each measuring process searched."""

    LOADED = "loaded"    # the index the build's child saved (untimed), loaded into memory of the process's own
    REBUILT = "rebuilt"  # built again in the process (untimed), from the same build parameters and seeds
    #: none: the adapter is not fork-safe (Adapter.fork_safe), or a process forked after its warm-up died at once
    #: (a library's fork handler), so the build's child measured alone
    CHILD = "child"


def made(adapter_cls: type[Adapter], dataset: Dataset, threads: int, build_params: dict[str, Any],
         strategy: Strategy | None) -> tuple[Adapter, Any]:
    """An adapter made for the dataset, not built yet (given its rows converted where it does not take them
    as they are): the adapter and what is searched (itself, or its filtered search under ``strategy``)."""
    adapter = adapter_cls(dataset.distance, threads=threads, **build_params)
    adapter.accept(dataset.point_type, dataset.dimension)
    return adapter, adapter if strategy is None else FilteredSearch(adapter, strategy)


def fitted(adapter: Adapter, search: Any, dataset: Dataset) -> None:
    """Build the index (and a filtered search's attributes index, part of the build)."""
    if isinstance(search, FilteredSearch):
        search.fit(dataset.train, dataset.filters.attributes)  # type: ignore[union-attr]
    else:
        adapter.fit(dataset.train)


@contextlib.contextmanager
def saved_index(adapter: Adapter, adapter_cls: type[Adapter]) -> Iterator[Path]:
    """The built index saved (untimed) into a temporary folder that each measuring process loads, removed
    afterwards."""
    with tempfile.TemporaryDirectory(prefix="annbench-index-") as folder:
        adapter.save(Path(folder))
        yield Path(folder)


def build_failed(task: Task, recorder: Recorder, e: BaseException, attrs: dict[str, Any]) -> list[RunResult]:
    """Every run of the task recorded as failed at the build."""
    for key in task.keys:
        recorder.record(_error(key, "build", e, {**attrs, "timestamp": provenance.timestamp()}))
    return recorder.results


#: One query setting's outcome over the measuring processes: every process's measurement, or the exception
#: that failed it (stored as the setting's error, as one process would store it).
Outcome = list[PassMeasurement] | BaseException


@dataclasses.dataclass
class ProcessOutcomes:
    """What the measuring processes of one build gave: canonical query parameters → :data:`Outcome`, and the
    :class:`Fatal` end of a process (the settings from ``fatal.at`` on have no outcome: one process measuring
    alone would have died there), None if none ended so."""

    outcomes: dict[str, Outcome]
    fatal: Fatal | None = None


def in_processes_or_error(measure: Callable[[], ProcessOutcomes], settings: list[dict[str, Any]]
                          ) -> ProcessOutcomes:
    """``measure()``, or the exception that failed a process outside any query setting (loading the index) for
    every setting (each is then stored as failed with it)."""
    try:
        return measure()
    except Exception as e:
        return ProcessOutcomes({canonical(params): e for params in settings})


def searcher(saved: Path | None, adapter_cls: type[Adapter], dataset: Dataset, threads: int,
             build_params: dict[str, Any], strategy: Strategy | None) -> Callable[[], tuple[Any, Adapter]]:
    """What a measuring process searches, and the adapter whose query parameters it sets, in memory of the
    process's own: a fresh adapter loading the saved index, or (``saved`` None) building it again, untimed.
    A rebuild answers as the child's index only where the build is deterministic (every shipped library's is
    seeded or has no randomness, databases' HNSW graphs aside): :func:`answers_differ` checks it."""

    def load() -> tuple[Any, Adapter]:
        fresh, search = made(adapter_cls, dataset, threads, build_params, strategy)
        if saved is None:  # built as the child builds: warm_up (a fresh adapter's one-off work), then fit
            fresh.warm_up(dataset.train)
            fitted(fresh, search, dataset)
        else:
            fresh.load(saved, dataset.dimension)  # bits: the number of bits, not of packed bytes
        return search, fresh

    return load


#: The key of :func:`measure_in_processes`' outcomes under which the reference's measurements are (query settings'
#: keys are canonical JSON objects, never this).
REFERENCE = "reference"


def reference_index(o: Any, adapter_dirs: list[Path], dataset: Dataset,
                    strategy: Strategy | None) -> Callable[[], Any] | None:
    """What builds ``o.reference`` (:class:`annbench.plan.grid.RunOptions`) in a measuring process, untimed, its
    query parameters set: what is searched; None without a reference."""
    if not o.reference:
        return None
    algorithm, build, query = o.reference

    def build_it() -> Any:
        adapter, search = made(load_adapter(algorithm, adapter_dirs), dataset, o.threads, json.loads(build), strategy)
        adapter.warm_up(dataset.train)
        fitted(adapter, search, dataset)
        adapter.set_query_params(**json.loads(query))
        return search

    return build_it


def answers_differ(ms: list[PassMeasurement]) -> int:
    """How many measuring processes answered otherwise than the first (a rebuilt index that is not the same)."""
    return sum(not np.array_equal(m.neighbors, ms[0].neighbors) for m in ms[1:])


def answered(index: Any, queries: Any, k: int, batch: bool) -> np.ndarray:
    """Every query answered once, untimed, as the timed passes call the index: ``(nq, k)`` ids, checked alike."""
    if batch:
        return batch_answers(index.batch_query(queries, k), len(queries), k)
    return stack_answers([index.query(q, k) for q in queries], k)


def measure_in_processes(load: Callable[[], tuple[Any, Adapter]], dataset: Dataset, queries: Any, o: Any,
                         settings: list[dict[str, Any]], exact: list[dict[str, Any]],
                         grid: tuple[dict[str, Any], ...], reference: Callable[[], Any] | None = None
                         ) -> ProcessOutcomes:
    """Every query setting of a build measured in ``o.processes`` processes, each making every setting's
    passes interleaved (:func:`annbench.execute.measure.interleaved`), recorded as one process would record
    them (:mod:`annbench.execute.process_passes`):

    - with early stop the first process first answers each setting once, untimed, in grid order; a setting
      dominated by an exact one before it (:func:`dominated_by`) gets no warm-up and no pass in any process
      (it is stored as skipped, as without processes); the exact settings it found are added to ``exact``
      and the later processes inherit its decision;
    - a setting whose queries raise (in that answer pass or in its passes) is that setting's failure only,
      with the exception as raised; the later processes leave it out;
    - a process that dies at setting ``j`` (:class:`Fatal`): the settings before ``j`` are measured again in
      ``o.processes`` fresh processes (one process measuring alone would have measured and stored them before
      it died at ``j``), and the death is returned with their outcomes;
    - with a ``reference`` (:func:`reference_index`), each process builds it too and its passes lead each cycle
      of the interleaving (a pass of the reference, then one of every setting, ...), its measurements under
      :data:`REFERENCE`: the machine as each setting's passes saw it, moments apart; a reference that fails
      fails every setting.
    """
    start_exact = list(exact)
    try:
        return ProcessOutcomes(_outcomes(load, dataset, queries, o, settings, exact, grid, reference))
    except Fatal as fatal:
        exact[:] = start_exact
        before = settings[:max(fatal.at, 0)]
        if not before:
            return ProcessOutcomes({}, fatal)
        again = measure_in_processes(load, dataset, queries, o, before, exact, grid, reference)
        return ProcessOutcomes(again.outcomes, again.fatal or fatal)  # an earlier death (flaky) wins


@dataclasses.dataclass
class _Measured:
    """One measuring process's answer: the settings it measured (indices into the build's settings), the
    exact settings it knew of, the settings that raised (with :func:`portable` exceptions), its measurements."""

    todo: list[int]
    exact: list[dict[str, Any]]
    failed: dict[int, tuple[BaseException | None, str, str, str]]
    measured: dict[int, PassMeasurement]
    reference: PassMeasurement | None = None


def _outcomes(load: Callable[[], tuple[Any, Adapter]], dataset: Dataset, queries: Any, o: Any,
              settings: list[dict[str, Any]], exact: list[dict[str, Any]], grid: tuple[dict[str, Any], ...],
              reference: Callable[[], Any] | None) -> dict[str, Outcome | list[PassMeasurement]]:
    first: list[_Measured] = []  # the first process's answer, once there is one

    def decide(index: Any, tuned: Adapter, at: At) -> tuple[list[int], dict[int, Any]]:
        todo, failed = [], {}
        for j, params in enumerate(settings):
            if o.early_stop:
                if dominated_by(grid, params, exact) is not None:
                    continue
                at(j)
                try:
                    tuned.set_query_params(**params)
                    if is_exact(quality(dataset, answered(index, queries, o.k, o.batch), o.k)[0]):
                        exact.append(params)
                except Exception as e:
                    failed[j] = portable(e)
                    continue
            todo.append(j)
        return todo, failed

    steps = batch_steps if o.batch else single_query_steps

    def select(tuned: Adapter, at: At, j: int) -> None:
        at(j)
        tuned.set_query_params(**settings[j])

    def measure(target: tuple[Any, Adapter], at: At) -> _Measured:
        index, tuned = target
        todo, failed = (first[0].todo, {}) if first else decide(index, tuned, at)
        todo = [j for j in todo if j not in failed]
        timed = functools.partial(steps, queries=queries, k=o.k, runs=o.runs, warmup_s=o.warmup,
                                  min_pass_s=o.min_pass_time)
        beside = [] if reference is None else [(lambda: None, functools.partial(timed, reference()))]
        results = interleaved([*beside, *((functools.partial(select, tuned, at, j), functools.partial(timed, index))
                                          for j in todo)])
        lead = results[0] if beside else None
        if isinstance(lead, Exception):
            raise lead  # without its reference no setting is measured as asked
        results = results[len(beside):]
        failed.update({j: portable(r) for j, r in zip(todo, results) if isinstance(r, Exception)})
        return _Measured([j for j in todo if j not in failed], exact, failed,
                         {j: r for j, r in zip(todo, results) if not isinstance(r, Exception)}, lead)

    failures: dict[int, BaseException] = {}

    def learnt(result: _Measured) -> None:
        for j, sent in result.failed.items():
            failures.setdefault(j, restored(sent))
        if not first:  # the child and the later processes take the first process's decision
            first.append(result)
            exact[:] = result.exact
        else:
            first[0].todo = [j for j in first[0].todo if j not in result.failed]

    per_process = in_processes(o.processes, measure, load, learnt)
    out: dict[str, Outcome | list[PassMeasurement]] = {canonical(settings[j]): e for j, e in failures.items()}
    for j in first[0].todo if first else []:
        out[canonical(settings[j])] = [p.measured[j] for p in per_process]
    if reference is not None:
        out[REFERENCE] = [p.reference for p in per_process if p.reference is not None]
    return out


def combined(ms: list[PassMeasurement]) -> PassMeasurement:
    """One measurement of several processes' (:func:`annbench.execute.process_passes.in_processes`): the first
    process's answers and repeats (every process answers a setting alike), every pass time and the latencies
    of every process's fastest pass, pooled; the warm-ups' queries and time summed (what was run untimed)."""
    latencies = None if any(m.latencies_ns is None for m in ms) else np.concatenate([m.latencies_ns for m in ms])
    warm = WarmUp(sum(m.warm_up.queries for m in ms), sum(m.warm_up.elapsed_ns for m in ms), ms[0].warm_up.per_query_ns)
    return dataclasses.replace(ms[0], latencies_ns=latencies, warm_up=warm,
                               pass_times_ns=np.concatenate([m.pass_times_ns for m in ms]))


def run_build_setting(task: Task, dataset: Dataset, store: ResultStore,
                      extra_attrs: dict[str, Any] | None = None) -> list[RunResult]:
    """Build the task's index, run its query settings on it, store each result as it completes, in
    this process.

    The index size is measured after the last query setting (serializing can re-map or flush
    the index, which would change what the timed passes see), so each result is first stored
    with ``index_bytes = -1`` and ``index_bytes_status = pending`` and rewritten with the size
    once it is known; a child that dies before that leaves its finished runs stored, pending.

    An exception inside the adapter (or an invalid answer) makes the affected runs errors;
    they are stored with their reason and the sweep goes on. ``extra_attrs`` go into every result.
    """
    o, setting = task.options, task.setting
    adapter_cls = load_adapter(setting.algorithm, list(task.adapter_dirs))
    attrs: dict[str, Any] = {
        **(extra_attrs or {}), "dataset_checksum": dataset.checksum, **measurement_attrs(o, dataset.checksum),
        "dataset_path": str(Path(dataset.path).resolve()),  # where plot --per-query and the report look first
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
    recorder = Recorder(store, adapter_cls.exact)
    passes: Callable[..., PassMeasurement] = batch_passes if o.batch else single_query_passes
    with limited_threads(o.threads), contextlib.ExitStack() as stack:
        try:
            adapter, search = made(adapter_cls, dataset, o.threads, setting.build_params, strategy)
            attrs.update(adapter.conversion())  # the harness converts inside the timed calls: the tables say so
            adapter.warm_up(dataset.train)
        except Exception as e:
            return build_failed(task, recorder, e, attrs)
        done = [k for k in run_keys(task.dataset, o, setting) if k not in task.keys]
        exact = stored_exact(store, done, dataset.checksum) if o.early_stop else []
        groups = by_query_setting(task.keys)
        settings = [g[0].query_params for g in groups]
        measured = ProcessOutcomes({})
        # a library that is not fork-safe (its runtime's threads start at import), or whose fork handler kills forked
        # processes, is measured in the child alone
        can_fork = adapter_cls.fork_safe
        if can_fork and (o.processes > 1 or o.reference) and (code := probe_fork()) != 0:
            log.warning("a process forked after the warm-up ended with %s at once: the build's process measures "
                        "alone", code)
            can_fork = False
        processes = o.processes if can_fork else 1
        if processes < o.processes:
            attrs["process_index"] = ProcessIndex.CHILD.value
        reference = reference_index(o, list(task.adapter_dirs), dataset, strategy)
        if reference is not None and not can_fork:
            return build_failed(task, recorder, RuntimeError(
                f"a reference measured beside {setting.algorithm} needs measuring processes forked from its child, "
                f"and {setting.algorithm} cannot have them (not fork-safe, or its forks die at once)"), attrs)
        # measured in processes forked from this one: several, or one beside which the reference is measured
        forked = processes > 1 or reference is not None
        rebuilt = forked and (strategy is not None or not saveable(adapter_cls))
        if rebuilt:  # forked before the child builds: a library that does not survive a fork once used (a
            # database's runtime threads) is still fresh in them; each builds its own index, untimed
            attrs["process_index"] = ProcessIndex.REBUILT.value
            load = searcher(None, adapter_cls, dataset, o.threads, setting.build_params, strategy)
            measured = in_processes_or_error(lambda: measure_in_processes(
                load, dataset, queries, o, settings, exact, setting.query_settings, reference), settings)
        try:
            with peak_memory_growth() as memory:
                start = time.perf_counter_ns()
                fitted(adapter, search, dataset)  # the attributes' index is part of the build
                build_ns = time.perf_counter_ns() - start
            parts = adapter.build_stats()
        except Exception as e:
            return build_failed(task, recorder, e, attrs)
        build = {"build_s": build_ns * 1e-9, "index_bytes": -1, "build_peak_rss_bytes": memory["bytes"], **parts}
        attrs["index_bytes_status"] = IndexSize.PENDING.value
        if forked and not rebuilt:  # every setting's passes at once, interleaved, in each process
            saved = stack.enter_context(saved_index(adapter, adapter_cls))
            attrs["process_index"] = ProcessIndex.LOADED.value
            load = searcher(saved, adapter_cls, dataset, o.threads, setting.build_params, strategy)
            measured = in_processes_or_error(lambda: measure_in_processes(
                load, dataset, queries, o, settings, exact, setting.query_settings, reference), settings)
        if forked and isinstance(store, BesideStore):
            store.measured_together()
        for g, group in enumerate(groups):
            if measured.fatal is not None and g >= measured.fatal.at:
                break  # one process measuring alone died here: so does this one, below, once the index is removed
            key = group[0]
            run_attrs = {**attrs, "timestamp": provenance.timestamp()}
            if o.early_stop and (by := dominated_by(setting.query_settings, key.query_params, exact)) is not None:
                for level_key in group:
                    recorder.record(skipped(level_key, by, run_attrs))
                continue
            try:
                adapter.set_query_params(**key.query_params)
                process_attrs: dict[str, Any] = {}
                if forked:
                    ms = measured.outcomes[canonical(key.query_params)]
                    if isinstance(ms, BaseException):
                        raise ms
                    m = combined(ms)
                    timing, process_attrs = process_speed(ms)
                    if isinstance(beside := measured.outcomes.get(REFERENCE), list):  # pass i of each: moments apart
                        process_attrs.update(reference_qps_processes=[speed(r)["qps"] for r in beside],
                                             reference_pass_qps=[pass_qps(r) for r in beside],
                                             pass_qps_processes=[pass_qps(m) for m in ms])
                    if differ := answers_differ(ms):  # the scores are the first process's answers'
                        process_attrs["process_answers_differ"] = differ
                        log.warning("%s: %d of %d measuring processes answered otherwise than the first (a %s "
                                    "index that is not the same)", key.label(), differ, len(ms),
                                    attrs["process_index"])
                else:
                    m = passes(search, queries, o.k, o.runs, o.warmup, o.min_pass_time)
                    timing = speed(m)
                stats = adapter.stats()
                scores, found_d = quality(dataset, m.neighbors, o.k)
            except Exception as e:
                for level_key in group:
                    recorder.record(_error(level_key, "query", e, {**run_attrs, **build}))
                continue
            if key.clients == 1:  # else level 1 is stored already: measured again as the levels' reference
                recorder.record(RunResult(
                    key, Status.OK, metrics={**scores, **timing, **build},
                    attrs={**run_attrs, **process_attrs, "best_pass": m.best_pass, "repeats": m.repeats, "stats": stats,
                           "warmup_queries": m.warm_up.queries, "warmup_s": m.warm_up.elapsed_ns * 1e-9},
                    neighbors=m.neighbors.astype("int32"), distances=found_d.astype("float32"),
                    latencies_ns=m.latencies_ns, pass_times_ns=m.pass_times_ns))
            if is_exact(scores):
                exact.append(key.query_params)
            for level_key in group[1:] if key.clients == 1 else group:
                level_attrs = {**attrs, "timestamp": provenance.timestamp()}
                try:
                    result = measure_level(adapter, dataset, o, level_key, m, level_attrs)
                except Exception as e:
                    recorder.record(_error(level_key, "clients", e, {**level_attrs, **build}))
                    continue
                result.metrics.update(build)
                recorder.record(result)
        if measured.fatal is None:
            index_bytes, status, error = measure_index_size(adapter)
    if measured.fatal is not None:  # as a child that died in a query: its stored runs stay pending
        measured.fatal.reproduce()
    if status is IndexSize.FAILED:
        log.error("%s %s: index size not measured: %s", setting.algorithm, setting.build_params, error)
    recorder.index_size(index_bytes, status, error)
    return recorder.results


class BesideStore(ResultStore):
    """A result store that adds ``concurrent_children`` (other measuring processes of any sweep on the
    machine, children or warm parents warming up, that ran at some moment while this run was built or
    measured, see :mod:`annbench.core.claims`), ``parallelism`` (the sweep's) and ``cores_shared``
    (measured on cores another sweep had claimed: ``--share-cores``) to every result it writes. A run
    written again (its index size, known after the build's last query setting) keeps the count of its
    first write."""

    def __init__(self, root: Path, beside: BesideRef) -> None:
        super().__init__(root)
        self.ref = beside
        self.beside = Look(beside)
        self.counted: dict[Path, int] = {}
        self.together: int | None = None

    def measured_together(self) -> None:
        """The runs written from now on were measured over one stretch of time (their passes interleaved in
        the same measuring processes): each gets the count of one look covering all of them (and the build
        before), not the first of them alone."""
        self.together = self.beside.since_last()

    def write(self, result: RunResult) -> Path:
        path = self.path_for(result.key)
        if path not in self.counted:
            self.counted[path] = self.beside.since_last() if self.together is None else self.together
        attrs = {**result.attrs, "concurrent_children": self.counted[path], "parallelism": self.ref.parallelism,
                 "cores_shared": self.ref.shared}
        return super().write(dataclasses.replace(result, attrs=attrs))


def run_task(task: Task, log_path: Path | None = None, beside: BesideRef | None = None) -> list[RunResult]:
    """Open the dataset, build the index, run and store the task's runs (in this process).

    Anything that stops the build setting as a whole (an adapter that fails to import, a
    dataset file changed since the parent checked it) is stored as an error for every run of
    the task, with its traceback, and re-raised.
    """
    store = ResultStore(task.results_root) if beside is None else BesideStore(task.results_root, beside)
    extra = {"task_id": task.task_id, "log_path": str(log_path or "")}
    try:
        start = time.perf_counter()
        # the checksum is verified (recomputed over every array) here too; the ground-truth audit is
        # not repeated: equal checksums mean the content the parent audited
        dataset = load_dataset(task.dataset_path, name=task.dataset, audit=False)
        if dataset.checksum != task.dataset_checksum:
            raise RuntimeError(f"dataset file {task.dataset_path} changed since the sweep started (checksum "
                               f"{dataset.checksum}, expected {task.dataset_checksum})")
        log.info("dataset %s opened in %.3f s", task.dataset_path, time.perf_counter() - start)
        if not task.keys:
            return []
        if task.runbook is not None:  # one index changed by the runbook's steps (annbench.execute.streaming)
            recorder = Recorder(store, load_adapter(task.setting.algorithm, list(task.adapter_dirs)).exact)
            run_runbook(task, dataset, recorder.record, extra_attrs=extra)
            return recorder.results
        return run_build_setting(task, dataset, store, extra_attrs=extra)
    except Exception as e:
        message = " ".join(f"setup: {type(e).__name__}: {e}".split())
        for key in task.keys:
            if (store.attrs_of(key) or {}).get("task_id") == task.task_id:
                continue  # stored by this attempt before the failure
            store.write(RunResult(key, Status.ERROR, error=message,
                                  attrs={**extra, "reason": Reason.EXCEPTION, "traceback": traceback.format_exc()}))
        raise
