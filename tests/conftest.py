"""Shared fixtures: built-in datasets built once per session, and in-process CLI calls; how the suite
shares the machine between its pytest-xdist workers (each with a core-claims registry of its own,
``$ANNBENCH_CLAIMS_DIR``: see ``no_default_folders``).

The suite runs on one pytest-xdist worker per core (``-n auto``, at most ``MAX_WORKERS``), handed
out a module at a time (``--dist loadscope``), so a module's fixtures are built once. Each worker is
pinned to a core of its own, so the benchmark children of one worker's sweeps (pinned to the first
core they may use) never share a core with another worker's. Two markers:

- ``all_cores``: the test's sweeps use more than one core (``--parallelism 2``, ``--threads 1,2``):
  it runs on every core of the session, not only its worker's.
- ``exclusive``: the test compares timings measured at different times (the regression gate): no
  other test runs meanwhile, on any worker, since on this machine load on one core slows the
  others. Every test holds ``MachineLock`` shared; an exclusive test holds it alone.

The tiers (:func:`pytest_collection_modifyitems`): each test is marked from what it uses, read from
its code, the helpers of its module it calls and its fixtures' code: ``slow`` (sweeps in child
processes, the regression gate, numba, torch training, Chromium, wheel builds and other
subprocesses, Dask clusters, the shared upstream files), ``needs_chromium``, ``needs_torch``,
``needs_shared_data``. ``pytest -m "not slow"`` is the fast tier.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gc
import inspect
import io
import json
import os
import statistics
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, redirect_stderr, redirect_stdout
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

#: Workers of ``-n auto``: one per core the session may use, at most this many.
MAX_WORKERS = 4
#: What a test's in-process sweeps measure with unless it is marked ``measured`` (see ``brief_measurement``).
BRIEF = {"min_pass_time": 0.0, "processes": 1}
#: The cores the session may use (before a worker pins itself to one of them).
_CORES = pytest.StashKey[list[int]]()
_LOCK = pytest.StashKey["MachineLock | None"]()
#: The test module at whose first test the heap was last frozen (see ``pytest_runtest_setup``).
_FROZEN_AT = pytest.StashKey[object]()

REPO = Path(__file__).resolve().parent.parent
#: Seconds each test module took in a full run, for the order modules are handed to workers in
#: (:func:`modules_in_schedule_order`); ``python benchmarks/test_suite.py --save-durations`` records them again.
DURATIONS = REPO / "tests" / "durations.json"
#: The shared upstream files beside the checkout; $ANNBENCH_SHARED_DATA for a checkout elsewhere (a git worktree).
SHARED_DATA = Path(os.environ.get("ANNBENCH_SHARED_DATA") or REPO.parent / "shared" / "data")


def _cache_bytecode() -> None:
    """Under ``PYTHONDONTWRITEBYTECODE`` (set in some containers, this machine's included) nothing is cached:
    every run, in every worker, compiles the package again and rewrites every test module's asserts (a third
    of the collection time here). The suite then keeps its bytecode in ``.pytest_cache/pycache`` instead,
    outside the source tree the setting keeps clean, and so do the processes the tests start (sweeps'
    children, fork servers, CLI runs): in a fresh virtual environment (the README's commands compile no
    bytecode at install) each of them would otherwise compile numpy, scipy and the libraries it imports
    from source (about 2 s for numpy and scipy alone, hundreds of processes a run)."""
    if sys.dont_write_bytecode and sys.pycache_prefix is None:
        sys.pycache_prefix = str(REPO / ".pytest_cache" / "pycache")
        sys.dont_write_bytecode = False
        os.environ["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


_cache_bytecode()  # before the package's first import (no module of it is imported above)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def call(main, *args: str) -> CliResult:
    """Run a CLI ``main`` in-process, capturing its output."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: without xdist (-p no:xdist) it is not called
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    from annbench.execute.isolation import available_cores

    return max(1, min(MAX_WORKERS, len(available_cores())))


class MachineLock:
    """A readers-writer lock of the session's workers (``flock`` on two files of its base temporary
    folder): tests hold it shared, an exclusive test alone. The turnstile, taken first by both,
    keeps new readers out while a writer waits, so an exclusive test is not starved."""

    def __init__(self, folder: Path) -> None:
        self._turnstile = open(folder / "turnstile.lock", "a")  # held for the session
        self._machine = open(folder / "machine.lock", "a")
        self._kept = False  # held alone since the block before, which was told to keep it

    @contextmanager
    def hold(self, exclusive: bool, keep: bool = False) -> Iterator[None]:
        """Held shared, or alone if ``exclusive``. An exclusive hold told to ``keep`` it stays held after the
        block, for the next exclusive one: consecutive exclusive tests run back to back. Handed over between
        each two, the lock let another worker's test in, and the next exclusive test waited, its core idle,
        until that test ended."""
        if not (exclusive and self._kept):
            fcntl.flock(self._turnstile, fcntl.LOCK_EX)
            try:
                fcntl.flock(self._machine, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            finally:
                fcntl.flock(self._turnstile, fcntl.LOCK_UN)
        self._kept = False
        try:
            yield
        finally:
            if exclusive and keep:
                self._kept = True
            else:
                fcntl.flock(self._machine, fcntl.LOCK_UN)


#: What a test uses (a module, function or class, by qualified-name prefix; or a global's name) → the
#: markers it gets. "slow": whatever takes seconds, not milliseconds.
USES: dict[str, tuple[str, ...]] = {
    "annbench.cli.run.main": ("slow",),  # a sweep: children per build setting, unless in-process (INPROCESS)
    "annbench.execute.executors": ("slow",),
    "annbench.execute.local": ("slow",),
    "annbench.execute.isolation.run_task_isolated": ("slow",),
    "annbench.execute.forkclient": ("slow",),
    "annbench.execute.clients": ("slow",),
    "annbench.execute.dask": ("slow",),
    "distributed": ("slow",),
    "dask": ("slow",),
    "annbench.cli.gate": ("slow",),
    "annbench.gate.run": ("slow",),
    "subprocess": ("slow",),  # child processes, wheel builds, virtual environments
    "venv": ("slow",),
    "pynndescent": ("slow",),  # numba compiles (the module, or the algorithm's name anywhere in the test)
    "ngt-qg": ("slow",),  # quantizes at every build
    "annbench.backends.postgres": ("slow",),  # database servers
    "annbench.report.html": ("slow",),  # the whole HTML report, every figure drawn
    "--report": ("slow",),  # plot.py --report: the same
    "annbench.apps.encode": ("slow",),  # network training
    "annbench.apps.encoders": ("slow",),
    "annbench.cli.encode": ("slow",),
    "torch": ("slow", "needs_torch"),
    "annbench.apps.encoders.cnn": ("slow", "needs_torch"),
    "annbench.apps.encoders.gru": ("slow", "needs_torch"),
    "annbench.apps.encoders.torch_loop": ("slow", "needs_torch"),
    "chromium_cdp": ("slow", "needs_chromium"),
    "SHARED_DATA": ("slow", "needs_shared_data"),  # the upstream files (Fashion-MNIST, GloVe, ...)
}
#: Algorithms whose builds take seconds (numba, quantization) or start a database: a test naming one of
#: them (a string constant or parameter value starting with the name) is slow. Milvus Lite starts a gRPC
#: server per database file (threads of this process) and builds in Python: ~2 s a contract case.
SLOW_ALGORITHMS = ("pynndescent", "ngt-qg", "pgvector", "duckdb", "lancedb", "sqlite-vec", "milvus")
#: A string constant in the test's code that makes its sweeps run in this process: not slow for that,
#: unless the test also runs the local executor (LOCAL).
INPROCESS, LOCAL = "inprocess", "local"
TIER_MARKERS = {
    "slow": "takes seconds (sweeps in children, gate, numba, torch, Chromium, subprocesses, Dask, shared data, "
            "databases); "
            "pytest -m 'not slow' is the fast tier",
    "needs_chromium": "drives Chromium (apt-get install chromium)",
    "needs_torch": "trains or loads a torch network (the torch extra)",
    "needs_shared_data": "reads the upstream files of ../shared/data ($ANNBENCH_SHARED_DATA)",
}


def _qualified(name: str, value: object) -> str:
    """What a global of a test module stands for, by qualified name (its own name when unknown)."""
    if isinstance(value, types.ModuleType):
        return value.__name__
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and not isinstance(value, (str, bytes, Path)):
        return f"{module}.{qualname}"
    if isinstance(value, Path) and value.is_relative_to(SHARED_DATA):  # a module's constant made from it
        return "SHARED_DATA"
    return name


def _code_uses(code: types.CodeType, namespace: dict, found: set[str], seen: set[int]) -> None:
    """Every name ``code`` (nested functions and lambdas included) refers to, qualified; helpers defined
    in test files are followed into."""
    if id(code) in seen:
        return
    seen.add(id(code))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_uses(const, namespace, found, seen)
        elif isinstance(const, str) and (const in (INPROCESS, LOCAL) or const in USES
                                         or const.startswith(SLOW_ALGORITHMS)):
            found.add(const)
    modules = [n for n in code.co_names if "." in n]  # what ``import a.b`` / ``from a.b import c`` name
    for name in code.co_names:
        found.add(name)  # an imported module's dotted name, or a global's name
        found.update(f"{module}.{name}" for module in modules)  # from a.b import c: a.b.c
        if name in namespace:
            value = namespace[name]
            found.add(_qualified(name, value))
            for cell in getattr(value, "__closure__", None) or ():  # a decorated function: what it wraps
                with contextlib.suppress(ValueError):
                    found.add(_qualified(name, cell.cell_contents))
            if isinstance(value, types.FunctionType) and _in_tests(value):
                _code_uses(value.__code__, value.__globals__, found, seen)
            elif isinstance(value, type) and _in_tests(value):
                for member in vars(value).values():
                    if isinstance(member, types.FunctionType):
                        _code_uses(member.__code__, member.__globals__, found, seen)


def _in_tests(value: object) -> bool:
    """Whether ``value`` (a function or class) is a helper of the tests: defined in a file of this folder
    other than this one (whose marker rules name what they look for, and are not what a test uses)."""
    try:
        return _in_tests_folder(inspect.getfile(value))  # type: ignore[arg-type]
    except (TypeError, OSError):
        return False


@functools.cache
def _in_tests_folder(filename: str) -> bool:  # cached: resolving a path costs a system call per part
    path, here = Path(filename).resolve(), Path(__file__).resolve()
    return path.parent == here.parent and path != here


@functools.cache
def _function_uses(function: types.FunctionType) -> frozenset[str]:
    """What a test or fixture function uses (see :func:`_code_uses`), once per function: the cases of a
    parametrized test share it."""
    found: set[str] = set()
    _code_uses(function.__code__, function.__globals__, found, set())
    return frozenset(found)


def uses(item: pytest.Item) -> set[str]:
    """What ``item`` uses: names from its code, its module's helpers it calls and its fixtures' code."""
    found: set[str] = set()
    callspec = getattr(item, "callspec", None)  # parametrized: the algorithm names among its values too
    for value in (callspec.params.values() if callspec is not None else ()):
        if isinstance(value, str):
            found.add(value)
    function = getattr(item, "function", None)
    if isinstance(function, types.FunctionType):
        found |= _function_uses(function)
    info = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        for fixture in (info.name2fixturedefs.get(name, ()) if info is not None else ()):
            func = inspect.unwrap(fixture.func)
            if isinstance(func, types.FunctionType) and _in_tests(func):
                found |= _function_uses(func)
    return found


def tier_markers(used: set[str]) -> set[str]:
    """The markers of a test that uses ``used`` (see :data:`USES`): a name matches a key of ``USES`` that is
    the name itself or one of its dotted prefixes (``annbench.apps.encode.train`` matches ``annbench.apps.encode``,
    ``annbench.apps.encoders`` does not match ``annbench.apps.encode``)."""
    markers: set[str] = {"slow"} if any(name.startswith(SLOW_ALGORITHMS) for name in used) else set()
    for name in used:
        parts = name.split(".")
        for prefix in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
            marks = USES.get(prefix)
            if marks is None or (prefix == "annbench.cli.run.main" and INPROCESS in used and LOCAL not in used):
                continue
            markers.update(marks)
    return markers


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in sorted(tier_markers(uses(item)) - {m.name for m in item.iter_markers()}):
            item.add_marker(marker)
    items[:] = modules_in_schedule_order(items, json.loads(DURATIONS.read_text(encoding="utf-8")))


def modules_in_schedule_order(items: list[pytest.Item], durations: dict[str, float]) -> list[pytest.Item]:
    """The items, each module's kept together in its own order, modules with an ``exclusive`` test first,
    then the rest by their recorded duration (``DURATIONS``), longest first; a module the record lacks
    counts as the median. ``--dist loadscope`` (with ``--no-loadscope-reorder``) hands modules out in this
    order, each to the first worker free: the longest ones do not start last and leave one worker alone at
    the end (by test count, xdist's own order, the gate's and the databases' few long tests came late), and
    the exclusive tests, which leave the other worker idle while they run, do not also wait for whatever
    long test it is in the middle of."""
    median = statistics.median(durations.values()) if durations else 0.0
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)

    def key(module: str) -> tuple[bool, float]:
        exclusive = any(i.get_closest_marker("exclusive") for i in modules[module])
        return not exclusive, -durations.get(Path(module).stem, median)

    return [item for module in sorted(modules, key=key) for item in modules[module]]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """At a module's first test, the objects every earlier test left alive (imported modules: numpy, pandas,
    the adapters' libraries; caches; session fixtures: ~400k objects in a worker) are moved out of the garbage
    collector's reach (``gc.freeze``), after a collection of the garbage they left. Each measured pass begins
    with ``gc.collect()`` (``execute/measure.py``), which otherwise scans them all, 0.3 to 0.9 s a time; this
    collection scans only what the previous module made. A test's own garbage is collected as before."""
    module = getattr(item, "module", None)
    if module is not item.config.stash.get(_FROZEN_AT, None):
        item.config.stash[_FROZEN_AT] = module
        gc.collect()
        gc.freeze()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "all_cores: uses more than one core: runs on every core of the session")
    config.addinivalue_line("markers", "exclusive: compares timings: no other test runs meanwhile, on any worker")
    config.addinivalue_line("markers", "measured: about how sweeps measure: its in-process sweeps keep run's "
                            "default warm-up, pass time and measuring processes (see brief_measurement)")
    for name, text in TIER_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    from annbench.execute.isolation import available_cores

    cores = available_cores() if hasattr(os, "sched_setaffinity") else []  # [] where cores cannot be pinned
    config.stash[_CORES] = cores
    config.stash[_LOCK] = None
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw"):  # basetemp: <the session's base temporary folder>/popen-gwN
        config.stash[_LOCK] = MachineLock(Path(config.option.basetemp).parent)
        if cores:
            os.sched_setaffinity(0, {cores[int(worker[2:]) % len(cores)]})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Setup, call and teardown (fixtures included: a module's Dask cluster, the gate's baseline) under
    the machine lock, and for an ``all_cores`` test on every core of the session."""
    lock, cores = item.config.stash[_LOCK], item.config.stash[_CORES]
    exclusive = item.get_closest_marker("exclusive") is not None
    keep = exclusive and nextitem is not None and nextitem.get_closest_marker("exclusive") is not None
    with lock.hold(exclusive, keep) if lock else nullcontext():
        if not (item.get_closest_marker("all_cores") and cores):
            return (yield)
        own = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cores)
        try:
            return (yield)
        finally:
            os.sched_setaffinity(0, own)


def write_backend(folder: Path, name: str, source: str | None = None, groups: str | None = None,
                  metrics: str = "[euclidean]") -> Path:
    """The one way the tests write a test adapter and its grid: ``<name>.py`` holding ``source`` and/or
    ``<name>.yml`` whose ``groups`` mapping is ``groups`` (YAML lines indented two spaces, e.g.
    ``"  quick:\n    build: {n: [1, 2]}"``), in ``folder`` (made if missing). Returns ``folder``, to give as
    both ``--algorithms-dir`` and ``--configs-dir``."""
    folder.mkdir(parents=True, exist_ok=True)
    if source is not None:
        (folder / f"{name.replace('-', '_')}.py").write_text(source, encoding="utf-8")
    if groups is not None:
        grid = f"algorithm: {name}\nmetrics: {metrics}\ngroups:\n{groups}\n"
        (folder / f"{name}.yml").write_text(grid, encoding="utf-8")
    return folder


@pytest.fixture(scope="session", autouse=True)
def no_default_folders(tmp_path_factory):
    """The default data and results folders (``./datasets``, ``./results``) point at empty folders of
    the session, so no test reads or writes the checkout's own (a dataset left in ``./datasets``
    by a developer's run would otherwise change what a CLI called without ``--data-dir`` finds)."""
    from annbench.core.claims import ENV_CLAIMS_DIR
    from annbench.core.paths import ENV_DATA_DIR, ENV_RESULTS_DIR

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_DATA_DIR, str(tmp_path_factory.mktemp("default-datasets")))
        mp.setenv(ENV_RESULTS_DIR, str(tmp_path_factory.mktemp("default-results")))
        # Each worker claims cores in a registry of its own: its sweeps are pinned to its own core anyway,
        # and the runs of one worker's tests then count only their own sweep's children beside them (the
        # other worker's would make concurrent_children depend on what runs there); the machine's own
        # registry would make the suite wait for whatever else measures on the machine.
        mp.setenv(ENV_CLAIMS_DIR, str(tmp_path_factory.mktemp("core-claims")))
        yield


@pytest.fixture(autouse=True)
def brief_measurement(request: pytest.FixtureRequest) -> Iterator[None]:
    """The sweeps a test starts in-process (``run``'s ``main``) measure as briefly as ``run`` allows unless the
    test is marked ``measured``: no warm-up, timed passes of one repetition of the query set, one measuring
    process (the build's). Everything else of a sweep (planning, children, isolation, storing, resuming) runs as
    a user's does; only the timed seconds are fewer. A test about how sweeps measure (warm-up, calibrated
    passes, measuring processes, early stop, the gate) is marked ``measured`` and gets ``run``'s own defaults;
    an option a test passes is used as given either way. Sweeps in subprocesses keep ``run``'s defaults."""
    if request.node.get_closest_marker("measured") is not None:
        yield
        return
    from annbench.cli import run
    from annbench.plan.grid import WARMUP_NONE

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run, "DEFAULT_OPTIONS", replace(run.DEFAULT_OPTIONS, **BRIEF, warmup=WARMUP_NONE))
        yield


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A data folder with the small built-ins made once for the whole session."""
    from annbench.datasets.registry import resolve

    d = tmp_path_factory.mktemp("data")
    for name in ("random-xs-20-euclidean", "random-xs-20-angular", "digits-64-euclidean"):
        resolve(name, d)
    return d


@pytest.fixture
def results_dir(tmp_path) -> Path:
    return tmp_path / "results"

