"""The records a run produces: plain dataclasses, no I/O."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Params = dict[str, Any]


class Status(enum.StrEnum):
    """What became of one run; stored as its plain string value (``"ok"`` ...), so it compares
    equal to the strings that older result files and DataFrames hold."""

    OK = "ok"            # measured and scored
    ERROR = "error"      # failed: stored with its reason, never scored, re-run by the next sweep
    SKIPPED = "skipped"  # not measured: dominated by an earlier setting (see annbench.early_stop)


STATUS_OK = Status.OK
STATUS_ERROR = Status.ERROR


def canonical(params: Params) -> str:
    """Stable JSON of a parameter mapping (sorted keys), as stored in result attrs."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


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

    def file_name(self) -> str:
        """Readable and unique: ``n_trees=10_search_k=100.<hash>.hdf5``."""
        readable = "_".join(f"{n}={v}" for n, v in [*self.build_params.items(), *self.query_params.items()])
        readable = re.sub(r"[^A-Za-z0-9=.+-]+", "_", readable)[:100] or "default"
        ident = canonical({"build": self.build_params, "query": self.query_params, "threads": self.threads})
        return f"{readable}.{hashlib.sha1(ident.encode()).hexdigest()[:10]}.hdf5"

    def label(self) -> str:
        return f"{self.algorithm}{'-batch' if self.batch else ''} {canonical(self.build_params)} {canonical(self.query_params)}"


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
