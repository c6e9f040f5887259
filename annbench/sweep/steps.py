"""One sweep of a dataset, in steps: :func:`prepare` (load the dataset, check k, read the runbook, plan, size the
limits, the pending tasks) and :func:`run` (make the executor, execute the tasks, read back what was stored),
giving a :class:`SweepOutcome`; :func:`run_sweep` does both. ``annbench run`` is these steps plus printing
(:mod:`annbench.cli.run`).

    import annbench
    outcome = annbench.run_sweep(annbench.SweepRequest("random-xs-20-euclidean", algorithms=("annoy",)))
    outcome.frame        # one row per stored single-client run of this sweep's k, mode and threads
    outcome.exit_code    # 0, or 1 when runs failed or a named algorithm is unavailable
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from annbench.analyse.concurrency import at_level
from annbench.analyse.frames import results_frame
from annbench.core import paths
from annbench.core.errors import UserError
from annbench.core.results import RunResult, Status
from annbench.datasets.format import Dataset
from annbench.datasets.registry import load
from annbench.execute.driver import TaskCallback
from annbench.execute.executors import ExecutorKind, execute, make_executor
from annbench.execute.isolation import available_cores, core_slots, memory_share
from annbench.execute.remote import RemoteOptions
from annbench.execute.sharing import MEASURED_BY
from annbench.plan.grid import Plan, RunOptions, child_cores, make_plan
from annbench.plan.pending import make_tasks
from annbench.plan.runbook import Runbook
from annbench.plan.runbook_fit import capable, sweep_runbook
from annbench.plan.task import DEFAULT_TIMEOUT_S, Limits, Task
from annbench.store.folder import ResultStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepRequest:
    """What to sweep and how: the options of ``annbench run`` (defaults as there).

    ``algorithms`` None: every algorithm with a grid for the dataset's distance (opt-in grids only with
    ``include_opt_in``). ``preset`` None: each grid's ``demo`` group, else ``quick``. ``options``: how each run
    is measured (k, runs, batch, threads, warm-up, early stop, client levels, ``rebuild_fallback``; its runbook
    fields are filled from ``runbook``). ``runbook``: ``FILE[:ENTRY]`` of ``--runbook``. ``memory_bytes``
    None: each child's share of the available memory. ``data_dir`` / ``results_dir`` None: the defaults
    (``$ANNBENCH_DATA_DIR`` / ``$ANNBENCH_RESULTS_DIR``, else ``./datasets`` / ``./results``). ``client``: a
    ``distributed.Client`` for the ``dask`` executor."""

    dataset: str = "random-xs-20-euclidean"
    algorithms: tuple[str, ...] | None = None
    preset: str | None = None
    options: RunOptions = field(default_factory=RunOptions)
    runbook: str | None = None
    include_opt_in: bool = False
    data_dir: Path | None = None
    results_dir: Path | None = None
    source_dir: Path | None = None
    max_train: int | None = None
    max_test: int | None = None
    adapter_dirs: tuple[Path, ...] = ()
    config_dirs: tuple[Path, ...] = ()
    executor: ExecutorKind | str = ExecutorKind.LOCAL
    parallelism: int = 1
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_bytes: int | None = None
    warm: bool = True
    share_cores: bool = False
    client: Any = None
    remote: RemoteOptions = field(default_factory=RemoteOptions)


@dataclass
class PreparedSweep:
    """A sweep ready to run: its dataset, runbook, plan (``left_alone``: lines on algorithms left out because
    they cannot follow the runbook), the children's limits, the pending tasks and the store."""

    request: SweepRequest
    dataset: Dataset
    runbook: Runbook | None
    plan: Plan
    left_alone: list[str]
    limits: Limits
    tasks: list[Task]
    store: ResultStore


@dataclass
class SweepOutcome:
    """What a sweep did: the runs it recorded (in the order they finished) and, read back from the results
    folder, every stored run of this sweep's dataset, k, mode and threads (``every_level``; ``frame``: the
    single-client ones, those of the plot and the operating points). A runbook sweep's frames are empty:
    its runs are read with ``results_frame(..., runbook=NAME)``."""

    prepared: PreparedSweep
    results: list[RunResult]
    every_level: pd.DataFrame
    frame: pd.DataFrame

    @property
    def mine(self) -> list[RunResult]:
        """The runs this sweep measured (not those another sweep measured meanwhile, see
        :mod:`annbench.execute.sharing`)."""
        return [r for r in self.results if MEASURED_BY not in r.attrs]

    @property
    def by_others(self) -> Counter[int]:
        """Runs another sweep measured meanwhile, by that sweep's pid (-1: unknown)."""
        return Counter(int(r.attrs[MEASURED_BY]) for r in self.results if MEASURED_BY in r.attrs)

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.mine if r.status == Status.ERROR]

    @property
    def skipped(self) -> list[RunResult]:
        """Runs stored as skipped, dominated by an exact setting of the same build (early stop)."""
        return [r for r in self.mine if r.status == Status.SKIPPED]

    @property
    def already_stored(self) -> int:
        return self.prepared.plan.n_runs - len(self.results)

    @property
    def exit_code(self) -> int:
        """0; 1 when some run failed or an algorithm named in the request is unavailable."""
        p = self.prepared
        named_unavailable = p.runbook is None and p.request.algorithms is not None and p.plan.unavailable
        return 1 if self.failed or named_unavailable else 0


def check_cores(parallelism: int, threads: int, clients: tuple[int, ...] | list[int]) -> None:
    """``parallelism`` children, each on the cores of ``threads`` (and of its clients), fit the cores this
    process may use; else a :class:`UserError` saying what fits."""
    cores = available_cores()
    width = child_cores(threads, clients, len(cores))
    if width > threads and parallelism * width > len(cores):
        raise UserError(f"--parallelism {parallelism} with --clients {max(clients)}: each child runs its "
                        f"clients on {width} cores, this machine gives {len(cores)}; valid: --parallelism "
                        f"{max(1, len(cores) // width)} with these clients")
    core_slots(parallelism, width)


def prepare(request: SweepRequest) -> PreparedSweep:
    """Load the dataset (getting or building it), check k, read the runbook, plan the sweep, size each child's
    limits and find the pending tasks; raises :class:`UserError` for anything wrong before any run starts."""
    o = request.options
    dataset = load(request.dataset, request.data_dir or paths.default_data_dir(), request.source_dir,
                   max_train=request.max_train, max_test=request.max_test)
    if o.k > dataset.ground_truth_k:
        raise UserError(f"-k {o.k} exceeds the {dataset.ground_truth_k} neighbours stored in "
                        f"{dataset.path}; valid: 1..{dataset.ground_truth_k}")
    if o.k > len(dataset.train):
        raise UserError(f"-k {o.k} exceeds the {len(dataset.train)} train points of {dataset.path}")
    if request.algorithms is not None and not request.algorithms:
        raise UserError("--algorithm is empty; give one or more names (see --list-algorithms)")
    runbook = sweep_runbook(request.runbook, dataset, o.k, str(ExecutorKind(request.executor)), o.clients,
                            o.rebuild_fallback)  # validated before anything is built
    if runbook is not None:
        o = dataclasses.replace(o, early_stop=False, runbook=runbook.name, runbook_digest=runbook.digest)
    explicit = request.algorithms is not None
    plan = make_plan(dataset.name, dataset.path, dataset.distance, list(request.algorithms) if explicit else None,
                     request.preset, o, paths.config_dirs(list(request.config_dirs)),
                     paths.algorithm_dirs(list(request.adapter_dirs)),
                     None if dataset.filters is None else dataset.filters.kinds, include_opt_in=request.include_opt_in,
                     point_type=dataset.point_type)
    left_alone: list[str] = []
    if runbook is not None:
        plan, left_alone = capable(plan, runbook, o.rebuild_fallback, explicit)
    if not plan.builds and not plan.unavailable:
        raise UserError(f"nothing to run: no algorithm has a {request.preset or 'demo or quick'!r} grid for distance "
                        f"{dataset.distance!r}")
    memory = request.memory_bytes
    local = ExecutorKind(request.executor) is not ExecutorKind.DASK
    if local:
        check_cores(request.parallelism, o.threads, o.clients)  # fails early when they do not fit
        if memory is None:
            memory = memory_share(request.parallelism)
    log.debug("each child: timeout %g s, memory limit %s, %s", request.timeout_s,
              f"{memory / 2**30:.2f} GiB" if memory else "none" if local else "each worker's share",
              f"{request.parallelism} at once" if local else "on the Dask cluster")
    store = ResultStore(request.results_dir or paths.default_results_dir())
    truth = None
    if runbook is not None and plan.builds:  # the runbook's ground truth beside the dataset, computed unless stored
        from annbench.datasets.step_truth import load_or_compute

        truth = load_or_compute(dataset, runbook.digest, runbook.live_sets)[1]
    # the driver removes stale temporaries, once, as the sweep starts
    tasks = make_tasks(plan, dataset, store, runbook, truth)
    return PreparedSweep(request, dataset, runbook, plan, left_alone, Limits(request.timeout_s, memory), tasks, store)


def run(prepared: PreparedSweep, on_task: TaskCallback | None = None,
        on_wait: Callable[[str | None], None] | None = None) -> SweepOutcome:
    """Run the prepared sweep's tasks (``on_task`` after each, in this thread; ``on_wait`` says what the sweep
    waits for, see :class:`annbench.core.claims.CoreClaims`) and read the stored runs back."""
    p, request = prepared, prepared.request
    o = p.plan.options
    claims = None
    if ExecutorKind(request.executor) is ExecutorKind.LOCAL:
        from annbench.core.claims import CoreClaims

        claims = CoreClaims(p.store.root, available_cores(), share=request.share_cores, on_wait=on_wait)
    cores = o.child_cores(len(available_cores()))  # each child's cores: its clients' too (--clients)
    executor = make_executor(request.executor, p.store, limits=p.limits, parallelism=request.parallelism,
                             threads=cores, warm=request.warm, client=request.client, remote=request.remote,
                             claims=claims)
    results = execute(executor, p.plan, p.dataset, on_task, p.tasks, on_wait)
    if p.runbook is not None:
        empty = pd.DataFrame()
        return SweepOutcome(p, results, empty, empty)
    frame = results_frame(p.store.root, p.dataset.name)
    every_level = frame[(frame["k"] == o.k) & (frame["batch"] == o.batch) & (frame["threads"] == o.threads)]
    # the plot and operating points: single-client runs (README: Concurrent clients)
    return SweepOutcome(p, results, every_level, at_level(every_level, 1))


def run_sweep(request: SweepRequest, on_task: TaskCallback | None = None) -> SweepOutcome:
    """Prepare and run one sweep (see :class:`SweepRequest`); the outcome. Bad input raises
    :class:`~annbench.core.errors.UserError` before anything runs; a failing run is in ``outcome.failed``."""
    return run(prepare(request), on_task)
