"""The unit of isolated work and what comes back from it: plain picklable dataclasses, no I/O.

A :class:`Task` is one build setting (one index and the query settings still to run on it);
:class:`Limits` are what the child running it is held to; :class:`TaskOutcome` is how that
child ended. The same three travel unchanged to a local child process or to a remote worker.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from annbench.core.results import RunKey, canonical, run_name
from annbench.plan.grid import BuildSetting, RunOptions
from annbench.plan.runbook import Runbook


class Ended(enum.StrEnum):
    """How a child ended (``TaskOutcome.reason``); the ``reason`` attr, as its plain string value, of
    each run the parent records as failed because the child did not store it."""

    OK = "ok"            # exit code 0; the child stored every run itself
    EXIT = "exit"        # non-zero exit code
    SIGNAL = "signal"    # killed by a signal it did not ask for (segfault, abort, OOM killer, ...)
    TIMEOUT = "timeout"  # ran past Limits.timeout_s; killed by the parent
    MEMORY = "memory"    # resident memory above Limits.memory_bytes; killed by the parent
    START = "start"      # the child could not be started
    WORKER = "worker"    # the (Dask) worker running the child died, on every attempt


@dataclass(frozen=True)
class Task:
    """One build setting to run in a fresh process: everything the child needs, by value.

    The dataset travels as its path and checksum: the child opens the file itself.
    ``task_id`` is written into every result the child stores, so the parent can tell which
    runs this attempt finished (and which it must record as failed) even after a crash.
    """

    task_id: str
    dataset: str
    dataset_path: Path
    dataset_checksum: str
    options: RunOptions
    setting: BuildSetting
    keys: tuple[RunKey, ...]
    adapter_dirs: tuple[Path, ...]
    results_root: Path
    #: A runbook task: the runbook its child follows and its ground truth's file (annbench.datasets.step_truth).
    runbook: Runbook | None = None
    truth_path: Path | None = None

    def label(self) -> str:
        on = f" runbook {self.runbook.name}" if self.runbook else ""
        return f"{run_name(self.setting.algorithm, self.options.batch)} {canonical(self.setting.build_params)}{on}"

    def log_name(self) -> str:
        """File name of this build setting's log: readable parameters and a stable hash."""
        readable = "_".join(f"{n}={v}" for n, v in self.setting.build_params.items())
        readable = "".join(c if c.isalnum() or c in "=.+-" else "_" for c in readable)[:80] or "default"
        ident = canonical({"build": self.setting.build_params, "threads": self.options.threads,
                           **({"runbook": self.runbook.name} if self.runbook else {})})
        return f"{readable}.{hashlib.sha1(ident.encode()).hexdigest()[:10]}.log"


#: Wall time a child may run by default (``--timeout``).
DEFAULT_TIMEOUT_S = 7200.0


@dataclass(frozen=True)
class Limits:
    """What a child is held to. ``cpus``: the cores it is pinned to (None: not pinned)."""

    timeout_s: float | None = DEFAULT_TIMEOUT_S
    memory_bytes: int | None = None
    cpus: tuple[int, ...] | None = None


@dataclass(frozen=True)
class TaskOutcome:
    """How one child ended: ``reason`` how (:class:`Ended`), ``message`` says it in words."""

    task_id: str
    reason: Ended
    message: str
    log_path: Path
    exit_code: int | None = None
    elapsed_s: float = 0.0
    peak_rss_bytes: int = 0
    log_tail: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        return self.reason == Ended.OK
