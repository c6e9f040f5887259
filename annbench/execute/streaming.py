"""A runbook in the child: one index changed step by step, every query setting measured at every search step.

The task's build setting starts with no index; its runbook's steps run in order (:mod:`annbench.plan.runbook`):
an insert gives the adapter the train rows under their tags, a delete removes tags, a replace gives live tags
other rows' vectors, each timed alone (wall time, ``perf_counter_ns``). At a search step every query setting
of the task is applied in turn and measured exactly as a static run is (warm-up, calibrated passes, fastest
pass kept: :mod:`annbench.execute.measure`); searches change no index, so the query settings share the
changes and each still sees the index its runbook made. The answers are tags; each is scored against that
step's ground truth (:mod:`annbench.datasets.step_truth`) with distances recomputed from the row the tag
holds then. A tag that is not live is never a hit and is counted (``deleted_returned``).

Each query setting's run is stored once the runbook ends, one result file with its per-step table
(:data:`STEP_FIELDS`) as the array ``steps`` and its summary as metrics. An adapter whose library cannot
delete runs a delete or replace, under ``--rebuild-fallback``, as a rebuild: a fresh index into which the
points live after the step are inserted, timed as that step (``rebuilt`` in its row).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from annbench.backends.adapter import Adapter, adapter_for, replace_method
from annbench.backends.discovery import load_adapter
from annbench.core import provenance
from annbench.core.results import Reason, RunResult, Status, measurement_attrs
from annbench.core.threads import limited_threads
from annbench.datasets import step_truth
from annbench.datasets.format import Dataset
from annbench.execute.evaluate import check_answer
from annbench.execute.measure import PassMeasurement, batch_passes, peak_memory_growth, single_query_passes
from annbench.plan.runbook import Operation, Step
from annbench.plan.task import Task
from annbench.quality import metrics as M
from annbench.quality.distances import distances_to_ids

log = logging.getLogger(__name__)

#: The per-step table stored in each runbook run (``steps``): one row per step, NaN / -1 where a field does
#: not apply. ``count``: points inserted, deleted or replaced (queries for a search); ``live``: points live
#: after the step; ``seconds``: the step's wall time (a search: one answer per query, the fastest pass's
#: time over its repetitions); ``per_s``: vectors per second (a search: QPS).
STEP_FIELDS = [("step", "i4"), ("operation", "S8"), ("count", "i8"), ("live", "i8"), ("seconds", "f8"),
               ("per_s", "f8"), ("recall", "f8"), ("id_recall", "f8"), ("qps", "f8"), ("p50_ms", "f8"),
               ("p95_ms", "f8"), ("p99_ms", "f8"), ("deleted_returned", "i8"), ("rebuilt", "?")]


def step_row(step: Step, count: int, live: int, seconds: float, **fields: Any) -> tuple:
    values = {"step": step.number, "operation": step.operation.value.encode(), "count": count, "live": live,
              "seconds": seconds, "per_s": count / seconds if seconds > 0 else float("inf"), "recall": np.nan,
              "id_recall": np.nan, "qps": np.nan, "p50_ms": np.nan, "p95_ms": np.nan, "p99_ms": np.nan,
              "deleted_returned": -1, "rebuilt": False, **fields}
    return tuple(values[name] for name, _ in STEP_FIELDS)


def score_search(dataset: Dataset, row_of: np.ndarray, neighbors: np.ndarray, true_ids: np.ndarray,
                 true_d: np.ndarray, k: int) -> dict[str, float]:
    """Recall (ann-benchmarks' rule), id recall (big-ann-benchmarks' ties) and the ids returned that are not
    live, of one search step's answers (tags) against its ground truth; ``row_of`` maps tag → row (-1: not live)."""
    check_answer(neighbors, len(dataset.test), len(row_of), k)
    rows = np.where(neighbors >= 0, row_of[np.maximum(neighbors, 0)], -1)
    dead = int(np.count_nonzero((neighbors >= 0) & (rows < 0)))
    found_d = distances_to_ids(dataset.test, dataset.train, rows, dataset.distance)
    return {"recall": float(M.recall(found_d, true_d, k).mean()),
            "id_recall": float(M.id_recall(neighbors, true_ids, true_d, k).mean()), "deleted_returned": dead}


class LivePoints:
    """The tag → row map of the points live now, changed as the runbook's steps are."""

    def __init__(self, n_tags: int) -> None:
        self.row_of = np.full(n_tags, -1, dtype=np.int64)

    def apply(self, step: Step) -> None:
        if step.operation is Operation.INSERT:
            self.row_of[step.start:step.end] = np.arange(step.start, step.end)
        elif step.operation is Operation.DELETE:
            self.row_of[step.start:step.end] = -1
        elif step.operation is Operation.REPLACE:
            self.row_of[step.tags_start:step.tags_end] = np.arange(step.ids_start, step.ids_end)

    def tags_and_rows(self) -> tuple[np.ndarray, np.ndarray]:
        tags = np.flatnonzero(self.row_of >= 0)
        return tags, self.row_of[tags]

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self.row_of >= 0))


def change(adapter: Adapter, step: Step, train: np.ndarray) -> None:
    """The step's insert, delete or replace through the adapter's own calls (tags as int64)."""
    if step.operation is Operation.INSERT:
        adapter.insert(train[step.start:step.end], np.arange(step.start, step.end, dtype=np.int64))
    elif step.operation is Operation.DELETE:
        adapter.delete(np.arange(step.start, step.end, dtype=np.int64))
    else:
        adapter.replace(train[step.ids_start:step.ids_end], np.arange(step.tags_start, step.tags_end, dtype=np.int64))


def summary(rows: np.ndarray) -> dict[str, float]:
    """A run's metrics from its step table: mean and minimum recall over the search steps (the mean is
    big-ann-benchmarks' figure), mean QPS, mean p50 and worst p99 latency, total time, vectors per second of
    each change (all its points over all its time), deleted ids returned."""
    search = rows[rows["operation"] == b"search"]

    def throughput(op: str) -> float:
        part = rows[rows["operation"] == op.encode()]
        return float(part["count"].sum() / part["seconds"].sum()) if len(part) and part["seconds"].sum() > 0 \
            else float("nan")

    return {"recall": float(search["recall"].mean()), "recall_min": float(search["recall"].min()),
            "id_recall": float(search["id_recall"].mean()), "qps": float(search["qps"].mean()),
            "p50_ms": float(np.nanmean(search["p50_ms"])) if np.isfinite(search["p50_ms"]).any() else float("nan"),
            "p99_ms": float(np.nanmax(search["p99_ms"])) if np.isfinite(search["p99_ms"]).any() else float("nan"),
            "total_s": float(rows["seconds"].sum()), "insert_per_s": throughput("insert"),
            "delete_per_s": throughput("delete"), "replace_per_s": throughput("replace"),
            "deleted_returned": int(search["deleted_returned"].sum()), "search_steps": len(search)}


def run_runbook(task: Task, dataset: Dataset, record: Callable[[RunResult], None],
                extra_attrs: dict[str, Any] | None = None) -> None:
    """Follow the task's runbook on one index of its build setting, measure each of its query settings at every
    search step, and ``record`` one result per query setting (an error for each when a change fails)."""
    o, setting, runbook = task.options, task.setting, task.runbook
    assert runbook is not None and task.truth_path is not None
    adapter_cls = load_adapter(setting.algorithm, list(task.adapter_dirs))
    truth = step_truth.read(task.truth_path)
    if truth is None or truth.checksum != dataset.checksum or truth.digest != runbook.digest:
        raise RuntimeError(f"runbook ground truth {task.truth_path} is missing or not for this dataset and runbook")
    rebuild = o.rebuild_fallback and "delete" not in adapter_cls.changes
    attrs: dict[str, Any] = {
        **(extra_attrs or {}), "dataset_checksum": dataset.checksum, **measurement_attrs(o, dataset.checksum),
        "distance": dataset.distance, "runs": o.runs, "warmup": o.warmup_label(), "min_pass_time": o.min_pass_time,
        "n_queries": len(dataset.test), "n_train": len(dataset.train), "mode": "batch" if o.batch else "single",
        "runbook_digest": runbook.digest, "runbook_path": runbook.path, "max_pts": runbook.max_pts,
        "replace": ("rebuild" if rebuild else replace_method(adapter_cls))
        if Operation.REPLACE in runbook.operations else "", "rebuild_fallback": rebuild,
        "library_versions": provenance.library_versions(adapter_cls.libraries), **provenance.machine(),
    }
    passes: Callable[..., PassMeasurement] = batch_passes if o.batch else single_query_passes
    tables: list[list[tuple]] = [[] for _ in task.keys]  # per run (query setting), in the task's order
    failed: dict[int, tuple[str, str]] = {}  # run → its error and traceback
    live = LivePoints(len(dataset.train))

    def fail(run: int, stage: str, e: Exception) -> None:
        failed.setdefault(run, (" ".join(f"{stage}: {type(e).__name__}: {e}".split()), traceback.format_exc()))

    def fail_all(stage: str, e: Exception) -> None:
        for run in range(len(task.keys)):
            fail(run, stage, e)

    def make() -> Adapter:  # an index of the build setting, given the dataset's points as a static run's is
        return adapter_for(adapter_cls, dataset.distance, dataset.point_type, dataset.dimension, o.threads,
                           **setting.build_params)

    with limited_threads(o.threads):
        try:
            adapter = make()
            attrs.update(adapter.conversion())  # its inserts, replaces and queries convert inside the timed calls
            adapter.warm_up(dataset.train)
        except Exception as e:
            fail_all("build", e)
        search = 0
        with peak_memory_growth() as memory:
            for step in runbook.steps if not failed else ():
                if step.operation is not Operation.SEARCH:
                    live.apply(step)
                    rebuilt = rebuild and step.operation is not Operation.INSERT
                    try:
                        start = time.perf_counter_ns()
                        if rebuilt:  # a fresh index of the points live after the step
                            tags, rows = live.tags_and_rows()
                            adapter = make()
                            adapter.insert(dataset.train[rows], tags)
                        else:
                            change(adapter, step, dataset.train)
                        seconds = (time.perf_counter_ns() - start) * 1e-9
                    except Exception as e:
                        fail_all(f"step {step.number} ({step.operation})", e)
                        break
                    row = step_row(step, step.count, live.count, seconds, rebuilt=rebuilt)
                    for table in tables:
                        table.append(row)
                    continue
                for run, key in enumerate(task.keys):
                    if run in failed:
                        continue
                    try:
                        adapter.set_query_params(**key.query_params)
                        m = passes(adapter, dataset.test, o.k, o.runs, o.warmup, o.min_pass_time)
                        scores = score_search(dataset, live.row_of, m.neighbors, truth.neighbors[search],
                                              truth.distances[search], o.k)
                    except Exception as e:
                        fail(run, f"query at step {step.number}", e)
                        continue
                    best = float(m.pass_times_ns[m.best_pass]) * 1e-9 / m.repeats  # one answer per query
                    latency = M.latency_percentiles_ms(m.latencies_ns, (50.0, 95.0, 99.0))
                    tables[run].append(step_row(step, len(dataset.test), live.count, best,
                                                qps=M.qps(m.answered_per_pass(), float(m.pass_times_ns[m.best_pass])),
                                                **latency, **scores))
                search += 1
        size = -1
        if len(failed) < len(task.keys):
            try:
                size = int(adapter.index_size_bytes() or -1)
            except Exception as e:  # the runs stand; only their size is unknown
                log.error("%s: index size not measured: %s", task.label(), e)
    for run, key in enumerate(task.keys):
        run_attrs = {**attrs, "timestamp": provenance.timestamp()}
        if run in failed:
            error, trace = failed[run]
            record(RunResult(key, Status.ERROR, error=error,
                             attrs={**run_attrs, "reason": Reason.EXCEPTION, "traceback": trace}))
            continue
        rows = np.array(tables[run], dtype=STEP_FIELDS)
        metrics = {**summary(rows), "index_bytes": size, "peak_rss_bytes": memory["bytes"]}
        record(RunResult(key, Status.OK, metrics=metrics, attrs=run_attrs, steps=rows))
