"""The records a run produces: plain dataclasses, no I/O."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np

Params = dict[str, Any]


class Status(enum.StrEnum):
    """What became of one run; stored as its plain string value (``"ok"`` ...), so it compares
    equal to the strings that older result files and DataFrames hold."""

    OK = "ok"            # measured and scored
    ERROR = "error"      # failed: stored with its reason, never scored, re-run by the next sweep
    SKIPPED = "skipped"  # not measured: dominated by an earlier setting (see annbench.plan.early_stop)


class Reason(enum.StrEnum):
    """The ``reason`` attr of a run stored as an error or skipped, when it is not how the run's child
    ended: errors the parent records for a child that did not store a run carry the child's ending
    instead (:class:`annbench.plan.task.Ended`: ``timeout``, ``memory``, ``signal`` ...). Stored as
    its plain string value, like :class:`Status`."""

    EXCEPTION = "exception"  # error: the adapter (or the child's setup) raised; its traceback is stored
    DOMINATED = "dominated"  # skipped: an earlier exact setting dominates it (annbench.plan.early_stop)


#: The suffix of a batch-mode run's algorithm name (folders, logs, labels, figure files).
BATCH_SUFFIX = "-batch"


def batch_suffix(batch: bool) -> str:
    """``-batch`` for batch mode, ``""`` for single-query mode."""
    return BATCH_SUFFIX if batch else ""


def runbook_folder(runbook: str) -> str:
    """``runbook-<name>``: the results folder of one runbook's runs (characters other than letters, digits and
    ``=.+-`` as ``_``)."""
    return "runbook-" + re.sub(r"[^A-Za-z0-9=.+-]+", "_", runbook)


def run_name(algorithm: str, batch: bool) -> str:
    """``hnswlib`` / ``hnswlib-batch``: an algorithm in one mode, as folders, logs and labels name it."""
    return f"{algorithm}{batch_suffix(batch)}"


#: Version of what a stored measurement means. Bump it whenever the timing (what is inside or
#: around a timed pass, how passes are repeated or kept) or a metric's semantics change: every
#: result stored under another contract is then measured again instead of being reused.
#: 1: results written before the contract existed (no ``measurement`` attr); 2: this one.
MEASUREMENT_CONTRACT = 2

#: Fields of the run options (:class:`annbench.plan.grid.RunOptions`) that do not change what is
#: measured; every other field is part of a result's measurement identity automatically.
#: ``early_stop`` decides which runs are measured, not how (a skip is re-decided on its own terms);
#: ``filter_strategy`` decides how a filtered run filters, which its algorithm name already says
#: (``hnswlib`` native, ``hnswlib+post``: see annbench.backends.filtering), and is moot elsewhere.
#: The client options (``clients``, ``client_seconds``, ``client_kind``) are measured per run key instead:
#: a run's client level is in its key, and only runs of a level above 1 depend on how their clients ran
#: (:meth:`annbench.plan.grid.RunOptions.level_identity`), so adding levels never invalidates level 1.
#: ``runbook`` (its name) is in the run's key too; ``rebuild_fallback`` only lets adapters that cannot delete run.
UNMEASURED_OPTIONS = frozenset({"force", "early_stop", "filter_strategy", "clients", "client_seconds",
                                "client_kind", "runbook", "rebuild_fallback"})
#: Fields of the run options left out of a measurement while at the value they had before the option existed,
#: so that results stored before it still count: a runbook's digest (a static run has none), the measuring
#: processes (one: the build's own), no reference measured beside the settings.
LEGACY_OPTIONS: dict[str, Any] = {"runbook_digest": "", "processes": 1, "reference": ()}


def canonical(params: Params) -> str:
    """Stable JSON of a parameter mapping (sorted keys), as stored in result attrs."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=_plain)


def from_canonical(text: str | None) -> dict[str, Any]:
    """The mapping :func:`canonical` wrote as ``text`` (a stored key's parameters, a ``dominated_by``);
    ``{}`` for none. Raises ValueError on text that is not JSON."""
    return json.loads(text or "{}")


def _plain(value: Any) -> Any:
    """JSON form of option values json does not know: enums by value, paths and others as text."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value) if isinstance(value, PurePath) else repr(value)


def measurement(options: Any, dataset_checksum: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a run measured, beyond its :class:`RunKey`: the measurement contract, the dataset's
    content checksum and every field of the run options (a dataclass) except
    :data:`UNMEASURED_OPTIONS` — k, mode, threads, runs, the warm-up policy, and whatever
    option is added later — plus ``extra`` (what only some runs depend on, e.g. a client level's
    window). A stored result counts only for the same measurement."""
    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)
              if f.name not in UNMEASURED_OPTIONS
              and not (f.name in LEGACY_OPTIONS and getattr(options, f.name) == LEGACY_OPTIONS[f.name])}
    return json.loads(canonical({"contract": MEASUREMENT_CONTRACT, "dataset_checksum": dataset_checksum, **fields,
                                 **(extra or {})}))


def measurement_hash(identity: dict[str, Any]) -> str:
    """A short stable hash of a :func:`measurement` (for grouping; the JSON itself is what is compared)."""
    return hashlib.sha1(canonical(identity).encode()).hexdigest()[:16]


def measurement_attrs(options: Any, dataset_checksum: str, extra: dict[str, Any] | None = None) -> dict[str, str]:
    """The result attrs recording a run's :func:`measurement`: ``measurement`` (canonical JSON) and its hash."""
    identity = measurement(options, dataset_checksum, extra)
    return {"measurement": canonical(identity), "measurement_hash": measurement_hash(identity)}


def measurement_changes(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """How a stored measurement differs from the wanted one, field by field, in words:
    ``runs 1 → 3``, ``dataset checksum changed (xxh3:1f2e… → xxh3:9a8b…)``."""
    def text(mapping: dict[str, Any], name: str) -> str:
        return json.dumps(mapping[name]) if name in mapping else "unset"

    changes = []
    for name in sorted(set(stored) | set(wanted)):
        if name in stored and name in wanted and stored[name] == wanted[name]:
            continue
        if name == "dataset_checksum":
            changes.append(f"dataset checksum changed ({str(stored.get(name))[:13]}… → {str(wanted.get(name))[:13]}…)")
        elif name == "contract":
            changes.append(f"measurement contract {text(stored, name)} → {text(wanted, name)}")
        else:
            changes.append(f"{name} {text(stored, name)} → {text(wanted, name)}")
    return changes


@dataclass(frozen=True)
class RunKey:
    """What identifies one run: a result with the same key is the same measurement."""

    dataset: str
    k: int
    algorithm: str
    batch: bool
    build_params: Params
    query_params: Params
    threads: int = 1
    #: Concurrent clients sharing the index (1: single-query mode as it always was; see README: Concurrent clients).
    clients: int = 1
    #: The runbook the run followed (its name, ``<file stem>:<entry>``); "" for a static index.
    runbook: str = ""

    def file_name(self) -> str:
        """Readable and unique: ``n_trees=10_search_k=100.<hash>.hdf5``; a client level above 1 also
        in the readable part (``..._clients=4``). Level 1 hashes as before levels existed, so its files keep
        their names."""
        pairs = [*self.build_params.items(), *self.query_params.items()]
        pairs += [("clients", self.clients)] if self.clients != 1 else []
        readable = "_".join(f"{n}={v}" for n, v in pairs)
        readable = re.sub(r"[^A-Za-z0-9=.+-]+", "_", readable)[:100] or "default"
        ident = {"build": self.build_params, "query": self.query_params, "threads": self.threads}
        ident |= {"clients": self.clients} if self.clients != 1 else {}
        return f"{readable}.{hashlib.sha1(canonical(ident).encode()).hexdigest()[:10]}.hdf5"

    def label(self) -> str:
        level = f" clients={self.clients}" if self.clients != 1 else ""
        on = f" runbook {self.runbook}" if self.runbook else ""
        params = f"{canonical(self.build_params)} {canonical(self.query_params)}"
        return f"{run_name(self.algorithm, self.batch)} {params}{level}{on}"


@dataclass
class RunResult:
    """One (build setting, query setting) run: its metrics, provenance and kept arrays."""

    key: RunKey
    status: Status | str
    error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    neighbors: np.ndarray | None = None
    distances: np.ndarray | None = None
    latencies_ns: np.ndarray | None = None
    pass_times_ns: np.ndarray | None = None
    #: A runbook run's per-step table (a structured array, one row per step; see annbench.execute.streaming).
    steps: np.ndarray | None = None
