"""Which runs of a plan are still to do, and the tasks that do them.

A run is done when the results folder holds a result of exactly the measurement wanted now
(:func:`annbench.core.results.measurement`); :func:`make_tasks` turns every build setting with runs
still to do into one :class:`~annbench.plan.task.Task`, the unit an executor runs.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from pathlib import Path

from annbench.backends.filtering import run_algorithm
from annbench.core.results import RunKey, canonical, measurement
from annbench.datasets.format import Dataset
from annbench.plan.early_stop import standing_skips
from annbench.plan.grid import BuildSetting, Plan, RunOptions
from annbench.plan.runbook import Runbook
from annbench.plan.task import Task
from annbench.store.folder import ResultStore, StoredState

log = logging.getLogger(__name__)


def run_keys(dataset: str, options: RunOptions, setting: BuildSetting) -> list[RunKey]:
    """Every run of one build setting of a sweep of ``dataset``, in the grid's order of query settings, one
    per client level of each (README: Concurrent clients)."""
    o = options
    algorithm = run_algorithm(setting.algorithm, setting.strategy)
    return [RunKey(dataset, o.k, algorithm, o.batch, setting.build_params, q, o.threads, n, runbook=o.runbook)
            for q in setting.query_settings for n in o.levels]


def pending_keys(plan: Plan, setting: BuildSetting, store: ResultStore, dataset_checksum: str) -> list[RunKey]:
    """The runs of this build setting still to do (all of them with ``--force``): those without a
    result of exactly this measurement (:func:`annbench.core.results.measurement`). Stored results of
    other work are logged with what differs; they are replaced (same file) when re-run. With early
    stop, a run stored as skipped is done while the exact run that dominates it is done."""
    keys = run_keys(plan.dataset, plan.options, setting)
    if plan.options.force:
        return keys
    o = plan.options
    stored = [store.stored(k, measurement(o, dataset_checksum, o.level_identity(k.clients))) for k in keys]
    stale = Counter(s.why for s in stored if s.state is StoredState.OTHER_WORK)
    for why, n in stale.items():
        log.info("%s %s: %d of %d stored runs measured other work, run again: %s", setting.algorithm,
                 canonical(setting.build_params), n, len(keys), why)
    done = [s.finished for s in stored]
    if plan.options.early_stop:
        done = [d or s for d, s in zip(done, standing_skips(store, keys, done))]
    return [k for k, d in zip(keys, done) if not d]


def make_tasks(plan: Plan, dataset: Dataset, store: ResultStore, runbook: Runbook | None = None,
               truth_path: Path | None = None) -> list[Task]:
    """One task per build setting with runs still to do (absolute paths: the child may run elsewhere); on a
    runbook sweep each task carries the runbook and the path of its ground truth (a child runs it once for
    all the task's query settings)."""
    tasks = []
    for i, setting in enumerate(plan.builds, 1):
        keys = pending_keys(plan, setting, store, dataset.checksum)
        if not keys:
            log.debug("[%d/%d] %s %s: all %d runs already stored, skipped", i, len(plan.builds), setting.algorithm,
                      setting.build_params, len(setting.query_settings))
            continue
        tasks.append(Task(uuid.uuid4().hex, plan.dataset, Path(dataset.path).resolve(), dataset.checksum,
                          plan.options, setting, tuple(keys), tuple(Path(d).resolve() for d in plan.adapter_dirs),
                          store.root.resolve(), runbook, truth_path and Path(truth_path).resolve()))
    return tasks
