"""plan → measurements → stored results. Orchestration only: timing lives in
:mod:`annbench.measure`, scoring in :mod:`annbench.evaluate`, files in :mod:`annbench.store`."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from annbench import provenance
from annbench.datasets.format import Dataset
from annbench.discovery import load_adapter
from annbench.evaluate import quality, speed
from annbench.measure import batch_passes, peak_memory_growth, single_query_passes
from annbench.plan import BuildSetting, Plan
from annbench.results import STATUS_ERROR, STATUS_OK, RunKey, RunResult
from annbench.store import ResultStore
from annbench.threads import limited_threads

log = logging.getLogger(__name__)


def run_keys(plan: Plan, setting: BuildSetting) -> list[RunKey]:
    o = plan.options
    return [RunKey(plan.dataset, o.k, setting.algorithm, o.batch, setting.build_params, q, o.threads)
            for q in setting.query_settings]


def pending_keys(plan: Plan, setting: BuildSetting, store: ResultStore) -> list[RunKey]:
    """The runs of this build setting still to do (all of them with ``--force``)."""
    return [k for k in run_keys(plan, setting) if plan.options.force or not store.finished(k)]


def _error(key: RunKey, stage: str, exc: BaseException, attrs: dict[str, Any]) -> RunResult:
    message = f"{stage}: {type(exc).__name__}: {exc}"
    return RunResult(key, STATUS_ERROR, error=" ".join(message.split()),
                     attrs={**attrs, "traceback": traceback.format_exc()})


def run_build_setting(plan: Plan, dataset: Dataset, setting: BuildSetting, store: ResultStore,
                      keys: list[RunKey]) -> list[RunResult]:
    """Build one index, run the query settings of ``keys`` on it, store each result as it completes.

    An exception inside the adapter (or an invalid answer) makes the affected runs errors;
    they are stored with their reason and the sweep goes on.
    """
    o = plan.options
    adapter_cls = load_adapter(setting.algorithm, list(plan.adapter_dirs))
    attrs: dict[str, Any] = {
        "dataset_checksum": dataset.checksum, "distance": dataset.distance, "runs": o.runs,
        "n_queries": len(dataset.test), "n_train": len(dataset.train), "mode": "batch" if o.batch else "single",
        "library_versions": provenance.library_versions(adapter_cls.libraries), **provenance.machine(),
    }
    results: list[RunResult] = []

    def store_result(r: RunResult) -> None:
        store.write(r)
        results.append(r)
        if r.status == STATUS_OK:
            log.info("%s: recall=%.4f qps=%.1f", r.key.label(), r.metrics["recall"], r.metrics["qps"])
        else:
            log.error("%s: %s", r.key.label(), r.error)

    passes: Callable[..., Any] = batch_passes if o.batch else single_query_passes
    with limited_threads(o.threads):
        try:
            adapter = adapter_cls(dataset.distance, threads=o.threads, **setting.build_params)
            with peak_memory_growth() as memory:
                start = time.perf_counter_ns()
                adapter.fit(dataset.train)
                build_ns = time.perf_counter_ns() - start
            index_bytes = adapter.index_size_bytes()
        except Exception as e:
            for key in keys:
                store_result(_error(key, "build", e, {**attrs, "timestamp": provenance.timestamp()}))
            return results
        build = {"build_s": build_ns * 1e-9, "index_bytes": -1 if index_bytes is None else int(index_bytes),
                 "build_peak_rss_bytes": memory["bytes"]}
        for key in keys:
            run_attrs = {**attrs, "timestamp": provenance.timestamp()}
            try:
                adapter.set_query_params(**key.query_params)
                m = passes(adapter, dataset.test, o.k, o.runs)
                stats = adapter.stats()
                scores, found_d = quality(dataset, m.neighbors, o.k)
            except Exception as e:
                store_result(_error(key, "query", e, {**run_attrs, **build}))
                continue
            store_result(RunResult(
                key, STATUS_OK, metrics={**scores, **speed(m, len(dataset.test)), **build},
                attrs={**run_attrs, "best_pass": m.best_pass, "stats": stats},
                neighbors=m.neighbors.astype("int32"), distances=found_d.astype("float32"),
                latencies_ns=m.latencies_ns, pass_times_ns=m.pass_times_ns))
    return results


def execute(plan: Plan, dataset: Dataset, store: ResultStore) -> list[RunResult]:
    """Run every pending build setting of the plan in this process, in order."""
    results: list[RunResult] = []
    for i, setting in enumerate(plan.builds, 1):
        keys = pending_keys(plan, setting, store)
        if not keys:
            log.info("[%d/%d] %s %s: all %d runs already stored, skipped", i, len(plan.builds), setting.algorithm,
                     setting.build_params, len(setting.query_settings))
            continue
        log.info("[%d/%d] %s %s: building, then %d query settings", i, len(plan.builds), setting.algorithm,
                 setting.build_params, len(keys))
        results += run_build_setting(plan, dataset, setting, store, keys)
    return results
