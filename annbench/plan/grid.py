"""config → plan: which indexes to build with which parameters, and which query settings to run.

Pure: reads configs and imports adapters to validate against them, runs nothing.
"""

from __future__ import annotations

import difflib
import enum
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from annbench.backends.adapter import served
from annbench.backends.discovery import AdapterUnavailable, adapter_file, load_adapter
from annbench.backends.filtering import STRATEGY_CHOICES, choose
from annbench.core.errors import UserError
from annbench.core.results import Params
from annbench.plan.config import AlgorithmConfig, all_configs, check_against, find_config, load_config

log = logging.getLogger(__name__)


#: ``RunOptions.warmup`` of ``--warmup full`` (every query, no time bound) and ``--warmup none``.
WARMUP_FULL = math.inf
WARMUP_NONE = 0.0


class ClientKind(enum.StrEnum):
    """How concurrent clients run (``--client-kind``); stored as its plain value in ``client_kind``."""

    THREAD = "thread"    # threads of the child process, one adapter handle each (Adapter.client())
    PROCESS = "process"  # processes forked by the child after the build: the index shared copy-on-write


#: ``RunOptions.client_seconds`` by default: the timed window of each client level.
CLIENT_SECONDS = 2.0
#: How client levels above 1 are timed, part of their measurement identity (levels stored under another are
#: measured again; level 1 is the single-query run, unaffected). 2: queries faster than 50 clock readings
#: time one query in ``client_latency_every`` (README: Concurrent clients).
CLIENT_TIMING = 2


@dataclass(frozen=True)
class RunOptions:
    """How every run of a sweep is measured (see README: What is measured).

    ``warmup``: seconds of untimed queries before the timed passes of each query setting
    (:data:`WARMUP_FULL` = every query once, :data:`WARMUP_NONE` = none); ``min_pass_time``:
    seconds a timed pass lasts at least, by repeating the whole query set (0 = one repetition).
    """

    k: int = 10
    #: Timed passes in each measuring process (README: What is measured): the default 3 processes of 1 pass
    #: each time as long as 1 process of 3 passes did, and sample the process-to-process spread.
    runs: int = 1
    batch: bool = False
    threads: int = 1
    force: bool = False
    warmup: float = 0.5
    min_pass_time: float = 0.2
    #: Store query settings dominated by an earlier exact one as skipped (see annbench.plan.early_stop).
    early_stop: bool = True
    #: On a filtered dataset: ``auto`` (native where the adapter filters natively, else post), ``native``
    #: or ``post`` (see annbench.backends.filtering).
    filter_strategy: str = "auto"
    #: Client levels of every query setting (README: Concurrent clients); level 1 is single-query mode and is
    #: always measured; each level above 1 is one more run, its clients sharing the index for ``client_seconds``.
    clients: tuple[int, ...] = (1,)
    client_seconds: float = CLIENT_SECONDS
    client_kind: ClientKind = ClientKind.THREAD
    #: A runbook sweep (see annbench.plan.runbook): the runbook's name and digest ("" for static indexes), and
    #: whether adapters that cannot delete are rebuilt from the live points at each delete or replace.
    runbook: str = ""
    runbook_digest: str = ""
    rebuild_fallback: bool = False
    #: Processes that measure each query setting, one after another, each its ``runs`` passes (README: What is
    #: measured); 1 = the build's own process, as before the option existed.
    processes: int = 3
    #: A setting measured beside every query setting in each measuring process, its index built there too and its
    #: passes interleaved with theirs (the regression gate's reference, annbench.gate.run): (algorithm, canonical
    #: build parameters, canonical query parameters); () none. Its QPS per process: ``reference_qps_processes``;
    #: per process and pass, its and the setting's: ``reference_pass_qps``, ``pass_qps_processes``.
    reference: tuple[str, str, str] | tuple[()] = ()

    def __post_init__(self) -> None:
        if isinstance(self.processes, bool) or not isinstance(self.processes, int) or self.processes < 1:
            raise UserError(f"processes {self.processes!r}; valid: an integer >= 1")
        if self.filter_strategy not in STRATEGY_CHOICES:
            raise UserError(f"filter strategy {self.filter_strategy!r}; valid: {', '.join(STRATEGY_CHOICES)}")
        if not (self.warmup >= 0):  # also NaN
            raise UserError(f"warm-up {self.warmup!r} s; valid: {WARMUP_CHOICES}")
        if not (0 <= self.min_pass_time < math.inf):
            raise UserError(f"minimum pass time {self.min_pass_time!r} s; valid: a finite number of seconds >= 0")
        levels = self.clients
        if not levels or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in levels) \
                or len(set(levels)) != len(levels):
            raise UserError(f"client levels {levels!r}; valid: {CLIENTS_CHOICES}")
        if not (0 < self.client_seconds < math.inf):
            raise UserError(f"client window {self.client_seconds!r} s; valid: a finite number of seconds > 0")
        if self.client_kind not in tuple(ClientKind):
            raise UserError(f"client kind {self.client_kind!r}; valid: {', '.join(ClientKind)}")
        if self.batch and self.concurrent:
            raise UserError(f"--clients {','.join(map(str, levels))} with --batch: clients send single queries; "
                            f"valid: drop --batch, or --clients 1")

    @property
    def levels(self) -> tuple[int, ...]:
        """Every client level measured, ascending: 1 (single-query mode, the reference) and those asked for."""
        return tuple(sorted({1, *self.clients}))

    @property
    def concurrent(self) -> bool:
        """Whether any level above 1 is measured."""
        return max(self.clients) > 1

    def child_cores(self, available: int) -> int:
        """Cores each build setting's child is pinned to (see :func:`child_cores`)."""
        return child_cores(self.threads, self.clients, available)

    def level_identity(self, clients: int) -> dict[str, object]:
        """What a run of ``clients`` clients depends on beyond the measured options (see
        :func:`annbench.core.results.measurement`): nothing at level 1, the window, the kind and the version
        of the clients' timing (:data:`CLIENT_TIMING`) above."""
        return {} if clients == 1 else {"client_seconds": self.client_seconds, "client_kind": str(self.client_kind),
                                        "client_timing": CLIENT_TIMING}

    def warmup_label(self) -> str:
        """The warm-up as ``--warmup`` spells it: ``full``, ``none`` or the seconds."""
        return warmup_label(self.warmup)


def child_cores(threads: int, clients: tuple[int, ...] | list[int], available: int) -> int:
    """Cores a build setting's child is pinned to: ``threads``; with client levels above 1, enough for the
    largest level's clients, ``threads`` each, at most the ``available`` ones (more clients share them)."""
    return threads if max(clients) == 1 else max(threads, min(threads * max(clients), available))


WARMUP_CHOICES = "full, none, or a number of seconds > 0"
CLIENTS_CHOICES = "N or N,N,... (distinct integers >= 1)"


def warmup_label(seconds: float) -> str:
    """``inf`` → ``full``, ``0`` → ``none``, else the seconds (``0.5``)."""
    return "full" if seconds == WARMUP_FULL else "none" if seconds == WARMUP_NONE else f"{seconds:g}"


def parse_warmup(text: str) -> float:
    """``--warmup full|none|SECONDS`` → :attr:`RunOptions.warmup`; ValueError naming what is valid."""
    word = text.strip().lower()
    if word == "full":
        return WARMUP_FULL
    if word == "none":
        return WARMUP_NONE
    try:
        seconds = float(word)
    except ValueError:
        raise ValueError(f"{text!r} is not a warm-up; valid: {WARMUP_CHOICES}") from None
    if not 0 < seconds < math.inf:
        raise ValueError(f"{text!r} is out of range; valid: {WARMUP_CHOICES}")
    return seconds


@dataclass(frozen=True)
class BuildSetting:
    """One index to build, and the query settings to run on it."""

    algorithm: str
    build_params: Params
    query_settings: tuple[Params, ...]
    #: On a filtered dataset, how its runs filter (``native`` / ``post``); "" on an unfiltered one.
    strategy: str = ""


@dataclass(frozen=True)
class Plan:
    dataset: str
    dataset_path: Path
    metric: str
    options: RunOptions
    builds: tuple[BuildSetting, ...]
    adapter_dirs: tuple[Path, ...]
    #: Algorithms that were asked for (or found) but whose library does not import: name → error.
    unavailable: dict[str, str] = field(default_factory=dict)
    #: Algorithms left out of a default selection (their grid's ``opt_in``): name → why.
    left_out: dict[str, str] = field(default_factory=dict)

    @property
    def n_runs(self) -> int:
        return sum(len(b.query_settings) for b in self.builds) * len(self.options.levels)


def _checked_config(algorithm: str, config_dirs: list[Path], adapter_dirs: list[Path]) -> AlgorithmConfig:
    path = find_config(algorithm, config_dirs)
    if path is None:
        known = sorted(set(all_configs(config_dirs)))
        close = difflib.get_close_matches(algorithm, known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"valid: {', '.join(known)}"
        raise UserError(f"unknown algorithm {algorithm!r} (no {algorithm}.yml in "
                        f"{', '.join(str(d) for d in config_dirs)}); {hint}")
    config = load_config(path)
    if config.algorithm != algorithm:
        raise UserError(f"config {config.where('algorithm')}: 'algorithm' is {config.algorithm!r} but the "
                        f"file is named {path.name}; they must agree")
    if adapter_file(algorithm, adapter_dirs) is None:
        raise UserError(f"config {path} names algorithm {algorithm!r} but there is no adapter "
                        f"{algorithm.replace('-', '_')}.py in {', '.join(str(d) for d in adapter_dirs)}")
    return config


#: ``--preset``'s default: each grid's first group of these it has (``demo``, else ``quick``).
DEFAULT_PRESETS = ("demo", "quick")


def group_of(config: AlgorithmConfig, preset: str | None) -> str:
    """The group a preset picks in ``config``: ``preset`` itself, or for ``None`` (the default) the first of
    :data:`DEFAULT_PRESETS` the grid has (the first of them when it has none, so a miss names it)."""
    if preset is not None:
        return preset
    return next((p for p in DEFAULT_PRESETS if p in config.groups), DEFAULT_PRESETS[0])


def _serves(name: str, adapter_dirs: list[Path]) -> str:
    """``; it takes <point types (distances)>`` of an adapter that imports, else ''."""
    try:
        return f"; it takes {served(load_adapter(name, adapter_dirs))}"
    except AdapterUnavailable:
        return ""


def make_plan(dataset: str, dataset_path: Path, metric: str, algorithms: list[str] | None, preset: str | None,
              options: RunOptions, config_dirs: list[Path], adapter_dirs: list[Path],
              filter_kinds: tuple[str, ...] | None = None, include_opt_in: bool = False,
              point_type: str | None = None) -> Plan:
    """Build the plan. With ``algorithms=None`` every algorithm with a grid is considered and
    the ones that cannot run here (metric, preset, import) are left out with a log line, as are
    those whose grid says ``opt_in`` unless ``include_opt_in`` (they are listed in ``Plan.left_out``);
    algorithms named explicitly must run, or the plan fails with the reason. ``preset=None``: see
    :func:`group_of`. ``filter_kinds``: a filtered dataset's filter kinds (its predicates'); each build
    setting then gets its strategy. ``point_type``: the dataset's (an adapter that cannot take it, even
    converted, cannot run)."""
    explicit = algorithms is not None
    names = algorithms if explicit else sorted(all_configs(config_dirs))
    builds: list[BuildSetting] = []
    unavailable: dict[str, str] = {}
    left_out: dict[str, str] = {}
    wanted = preset
    for name in names:
        config = _checked_config(name, config_dirs, adapter_dirs)
        if config.opt_in and not explicit and not include_opt_in:
            left_out[name] = config.opt_in
            log.debug("leaving out %s: %s", name, config.opt_in)
            continue
        preset = group_of(config, wanted)
        if metric not in config.metrics:
            msg = (f"algorithm {name!r} has no grid for distance {metric!r} (config {config.path} lists "
                   f"{', '.join(config.metrics)}){_serves(name, adapter_dirs)}")
            if explicit:
                raise UserError(msg)
            log.info("skipping: %s", msg)
            continue
        if preset not in config.groups:
            msg = f"config {config.path} has no group {preset!r}; valid: {', '.join(config.groups)}"
            if explicit:
                raise UserError(msg)
            log.info("skipping %s: %s", name, msg)
            continue
        try:
            adapter = load_adapter(name, adapter_dirs)
        except AdapterUnavailable as e:
            unavailable[name] = str(e)
            (log.error if explicit else log.warning)("%s", e)
            continue
        check_against(config, adapter)
        if point_type is not None and adapter.takes(metric, point_type) is None:
            msg = f"algorithm {name!r} cannot serve {metric} on {point_type} points; it takes {served(adapter)}"
            if explicit:
                raise UserError(msg)
            log.info("skipping: %s", msg)
            continue
        check_clients(name, adapter, options, filter_kinds)
        strategy = ""
        if filter_kinds is not None:
            try:
                strategy = choose(adapter, filter_kinds, options.filter_strategy).value
            except ValueError as e:
                if explicit:
                    raise UserError(f"--filter-strategy {options.filter_strategy} with algorithm {name!r}: "
                                    f"{e}") from None
                log.info("skipping %s: %s", name, e)
                continue
        group = config.groups[preset]
        queries = tuple(group.query_settings())
        builds += [BuildSetting(name, b, queries, strategy) for b in group.build_settings()]
    return Plan(dataset, dataset_path, metric, options, tuple(builds), tuple(adapter_dirs), unavailable, left_out)


def check_clients(algorithm: str, adapter: type, options: RunOptions, filter_kinds: tuple[str, ...] | None) -> None:
    """Client levels above 1 send unfiltered single queries, so not on a filtered dataset; ``--client-kind
    process`` needs an adapter whose built index can be forked (``fork_clients``)."""
    if not options.concurrent:
        return
    if filter_kinds is not None:
        raise UserError(f"--clients {','.join(map(str, options.clients))} on a filtered dataset: concurrent clients "
                        f"send unfiltered queries; valid: --clients 1")
    if options.client_kind != ClientKind.PROCESS:
        return
    why = adapter.fork_clients_reason or "its adapter says fork_clients = False"
    if not adapter.fork_clients:
        raise UserError(f"--client-kind process: {algorithm}'s index cannot be forked after its build ({why}); "
                        f"valid: --client-kind thread, or leave {algorithm} out")
    most = adapter.fork_clients_threads
    if most is not None and options.threads > most:
        raise UserError(f"--client-kind process with --threads {options.threads}: {algorithm}'s index cannot be "
                        f"forked after a build on more than {most} thread{'s' * (most > 1)} ({why}); valid: "
                        f"--client-kind thread, or --threads {most}")
