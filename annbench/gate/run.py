"""Measuring a suite for the regression gate, through plan → execute → store.

A session has ``rounds`` rounds; in each, the build settings of the suite run one after another
(in reverse order in odd rounds). Every run measures in ``processes`` processes (``run --processes``), and
each of them also builds the *reference* setting (the first build and query setting of the reference
algorithm's grid group: ``RunOptions.reference``) and measures it beside the suite's settings, its passes
interleaved with theirs (reference, every setting, reference, every setting, ...): each pass's QPS over the
reference's pass just before it in the same process is what the verdicts compare
(:mod:`annbench.gate.verdicts`). Everything is freshly measured (``force``; no early stop: every setting)
into a private results folder and read back from it; rounds repeat the builds, so build-to-build variation
is measured too.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annbench.analyse.processes import process_values
from annbench.core import provenance
from annbench.core.errors import UserError
from annbench.core.results import RunKey, Status, canonical
from annbench.datasets.format import Dataset
from annbench.execute.driver import Executor
from annbench.execute.executors import ExecutorKind, execute, make_executor
from annbench.gate import verdicts
from annbench.gate.verdicts import Comparison, Round, Session, SettingRecord, Tolerances
from annbench.plan.grid import BuildSetting, Plan, RunOptions, make_plan
from annbench.plan.pending import run_keys
from annbench.store.folder import ResultStore, read_arrays, read_attrs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Suite:
    """What a gate session runs; stored in the baseline so the comparison runs the same suite."""

    dataset: str
    algorithms: tuple[str, ...] | None  # None: every algorithm with a grid for the dataset
    preset: str = "quick"
    k: int = 10
    batch: bool = False
    threads: int = 1
    #: Passes of the setting and of the reference in each process, interleaved; each side's fastest counts.
    runs: int = 3
    #: Rounds are the replicates of the verdicts' interval (see annbench.gate.verdicts); the processes of a
    #: round average its process noise.
    rounds: int = 10
    reference: str = "bruteforce"
    processes: int = 1

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["algorithms"] = None if self.algorithms is None else list(self.algorithms)
        return d


def _plans(suite: Suite, dataset: Dataset, options: RunOptions, config_dirs: list[Path],
           adapter_dirs: list[Path]) -> tuple[Plan | None, dict[str, str]]:
    """The suite's plan and the algorithms that cannot run (name → reason): an algorithm named in
    the suite that has no grid, no adapter or no importable library is *missing*, not an error."""
    args = (dataset.name, dataset.path, dataset.distance)
    if suite.algorithms is None:
        plan = make_plan(*args, None, suite.preset, options, config_dirs, adapter_dirs, include_opt_in=True)
        return plan, dict(plan.unavailable)
    builds: list[BuildSetting] = []
    unavailable: dict[str, str] = {}
    plan = None
    for name in suite.algorithms:
        try:
            plan = make_plan(*args, [name], suite.preset, options, config_dirs, adapter_dirs)
        except UserError as e:
            unavailable[name] = str(e)
            continue
        unavailable.update(plan.unavailable)
        builds += plan.builds
    if plan is None:
        return None, unavailable
    return dataclasses.replace(plan, builds=tuple(builds), unavailable=unavailable), unavailable


def _reference(suite: Suite, dataset: Dataset, options: RunOptions, config_dirs: list[Path],
               adapter_dirs: list[Path]) -> tuple[str, str, str]:
    """The reference setting (``RunOptions.reference``): the first build and query setting of its grid group."""
    try:
        plan = make_plan(dataset.name, dataset.path, dataset.distance, [suite.reference], suite.preset, options,
                         config_dirs, adapter_dirs)
    except UserError as e:
        raise UserError(f"reference algorithm {suite.reference!r} cannot run: {e}") from None
    if plan.unavailable or not plan.builds:
        raise UserError(f"reference algorithm {suite.reference!r} cannot run: "
                        f"{plan.unavailable.get(suite.reference, 'its grid has no setting')}; "
                        f"choose another with --reference")
    first = plan.builds[0]
    return first.algorithm, canonical(first.build_params), canonical(first.query_settings[0])


@dataclass(frozen=True)
class Timing:
    """What a gate session keeps of one successful run's speed."""

    pass_times_ns: np.ndarray       # every timed pass of every process, per repetition of the query set
    process_qps: np.ndarray         # each measuring process's QPS
    reference_qps: np.ndarray       # each measuring process's QPS of the reference, measured beside it
    pass_qps: np.ndarray            # (processes, passes) every pass's QPS
    reference_pass_qps: np.ndarray  # (processes, passes) the reference's, pass i just before the setting's pass i


def _timing(path: Path, attrs: dict[str, Any]) -> Timing:
    """Pass times are per repetition of the query set (a calibrated pass repeats it ``repeats`` times, and
    the count can differ from round to round), so they compare across rounds and ``n_queries / time`` stays
    the QPS."""
    times = read_arrays(path)["pass_times_ns"] / int(attrs.get("repeats", 1))
    per, reference = process_values(attrs.get("qps_processes")), process_values(attrs.get("reference_qps_processes"))
    passes, reference_passes = (np.asarray(attrs.get(n, []), dtype=np.float64)
                                for n in ("pass_qps_processes", "reference_pass_qps"))
    if not len(per) or len(reference) != len(per) or passes.ndim != 2 or passes.shape != reference_passes.shape \
            or len(passes) != len(per):
        raise UserError(f"run {path} has no reference measured beside it in each process, pass by pass "
                        f"(qps_processes {attrs.get('qps_processes')}, reference_qps_processes "
                        f"{attrs.get('reference_qps_processes')})")
    return Timing(times, per, reference, passes, reference_passes)


def _run(plan: Plan, dataset: Dataset, executor: Executor) -> list[tuple[RunKey, dict[str, Any], Timing | None]]:
    """Execute a one-build plan; its runs as (key, attrs, timing or None where it failed), read from the store."""
    store = executor.store
    execute(executor, plan, dataset)
    out = []
    for key in run_keys(plan.dataset, plan.options, plan.builds[0]):
        path = store.path_for(key)
        try:
            attrs = read_attrs(path)
        except (OSError, KeyError) as e:
            out.append((key, {"status": Status.ERROR, "error": f"no readable result ({e})"}, None))
            continue
        out.append((key, attrs, _timing(path, attrs) if attrs.get("status") == Status.OK else None))
    return out


#: Per-run provenance attrs kept in a session for each setting.
PROVENANCE_ATTRS = ("library_versions", "annbench_commit", "mode", "threads", "build_s", "index_bytes")


def _provenance(suite: Suite, dataset: Dataset, started: str, load_start: list[float]) -> dict[str, Any]:
    return {**provenance.machine(), "dataset_name": dataset.name, "dataset_checksum": dataset.checksum,
            "distance": dataset.distance, "n_queries": len(dataset.test), "n_train": len(dataset.train),
            "started": started, "finished": provenance.timestamp(), "load_average_start": load_start,
            "load_average_end": list(os.getloadavg()),
            "command": " ".join(sys.argv)}


def measure_suite(suite: Suite, dataset: Dataset, config_dirs: list[Path], adapter_dirs: list[Path],
                  work_dir: Path | None = None) -> Session:
    """Run the suite ``suite.rounds`` times, the reference measured beside every setting in each process."""
    started, load_start = provenance.timestamp(), list(os.getloadavg())
    # Every setting measured: a baseline never lacks a setting because it was skipped as dominated.
    options = RunOptions(k=suite.k, runs=suite.runs, batch=suite.batch, threads=suite.threads, force=True,
                         early_stop=False, processes=suite.processes)
    options = dataclasses.replace(options, reference=_reference(suite, dataset, options, config_dirs, adapter_dirs))
    plan, unavailable = _plans(suite, dataset, options, config_dirs, adapter_dirs)
    builds = plan.builds if plan is not None else ()
    records: dict[tuple[str, str, str], SettingRecord] = {}
    with tempfile.TemporaryDirectory(prefix="annbench-gate-") as tmp:
        root = Path(work_dir) if work_dir is not None else Path(tmp)
        # One executor for the whole session: each algorithm's warm parent imports and warms up once, and every
        # round's build settings are children forked from it.
        with make_executor(ExecutorKind.LOCAL, ResultStore(root / "suite"), threads=suite.threads) as executor:
            _rounds(suite, dataset, plan, builds, records, executor)
    return Session(suite.as_dict(), _provenance(suite, dataset, started, load_start), list(records.values()),
                   unavailable)


def confirm_regressions(baseline: Session, comparisons: list[Comparison], tol: Tolerances, times: int,
                        measure: Callable[[tuple[str, ...]], Session]) -> list[Comparison]:
    """Re-judge timing-only regressions by up to ``times`` further sessions, each of only the
    algorithms that still have one (``measure(algorithms)`` runs such a session): a regression
    stands only if every further session finds it too (:func:`annbench.gate.verdicts.confirm`)."""
    for i in range(times):
        todo = tuple(sorted({c.algorithm for c in comparisons if c.verdict == verdicts.REGRESSION and c.timing_only}))
        if not todo:
            break
        log.warning("timing-only regression in %s: confirmation session %d of %d", ", ".join(todo), i + 1, times)
        comparisons = verdicts.confirm(comparisons, verdicts.compare(baseline, measure(todo), tol))
    return comparisons


def _rounds(suite: Suite, dataset: Dataset, plan: Plan | None, builds: tuple[BuildSetting, ...],
            records: dict[tuple[str, str, str], SettingRecord], executor: Executor) -> None:
    """Every round of the session into ``records``."""
    for r in range(suite.rounds):
        order = builds if r % 2 == 0 else builds[::-1]  # alternate so no setting always runs first
        for i, setting in enumerate(order, 1):
            log.info("gate round %d/%d, build %d/%d: %s %s", r + 1, suite.rounds, i, len(order),
                     setting.algorithm, setting.build_params)
            assert plan is not None
            for key, attrs, timing in _run(dataclasses.replace(plan, builds=(setting,)), dataset, executor):
                rec = SettingRecord(key.algorithm, key.build_params, key.query_params, len(dataset.test))
                rec = records.setdefault(rec.key, rec)
                if timing is None:
                    rec.error = rec.error or str(attrs.get("error") or "failed")
                    continue
                rec.attrs = {n: attrs[n] for n in PROVENANCE_ATTRS if n in attrs}
                rec.rounds.append(Round(float(attrs["recall"]), timing.pass_times_ns, timing.process_qps,
                                        timing.reference_qps, timing.pass_qps, timing.reference_pass_qps,
                                        str(attrs.get("timestamp"))))
