"""The results folder: one HDF5 file per run, written atomically, read back as attrs or arrays.

Layout: ``<root>/<dataset>/<k>/<algorithm>[-batch]/<params>.<hash>.hdf5`` holding the
datasets ``neighbors``, ``distances``, ``latencies_ns`` and ``pass_times_ns`` and every
metric and provenance field as attrs. Mappings and lists are stored as JSON text and listed in the
attr ``json_attrs``; :func:`read_attrs` gives them back decoded. The key's parameters
(``build_params``, ``query_params``) and the ``measurement`` identity are canonical JSON text by design
(compared as text; :func:`annbench.core.results.from_canonical` reads one).
"""

from __future__ import annotations

import enum
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from annbench.core.processes import remove_orphaned_temporaries, temporary_name
from annbench.core.results import RunKey, RunResult, Status, canonical, measurement_changes, run_name, runbook_folder

log = logging.getLogger(__name__)

ARRAYS = ("neighbors", "distances", "latencies_ns", "pass_times_ns", "steps")
#: The attr naming (as a JSON list) the attrs :func:`result_attrs` wrote as JSON, which :func:`read_attrs` decodes.
JSON_ATTRS = "json_attrs"
#: Attrs holding canonical JSON text by design (identities compared as text): never decoded by :func:`read_attrs`.
CANONICAL_TEXT_ATTRS = frozenset({"build_params", "query_params", "measurement", "dominated_by"})


class StoredState(enum.Enum):
    """What the results folder holds for one run key, against the measurement wanted now."""

    MISSING = "missing"          # no file
    UNREADABLE = "unreadable"    # a file that cannot be read (warned)
    FAILED = "failed"            # a stored error: run again
    OTHER_WORK = "other work"    # an ok result of another measurement (dataset, runs, contract, ...): run again
    FINISHED = "finished"        # an ok result of exactly this measurement: skip


@dataclass(frozen=True)
class Stored:
    state: StoredState
    why: str = ""

    @property
    def finished(self) -> bool:
        return self.state is StoredState.FINISHED


class ResultStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def run_dir(self, dataset: str, k: int, algorithm: str, batch: bool) -> Path:
        return self.root / dataset / str(k) / run_name(algorithm, batch)

    def log_dir(self, dataset: str, k: int, algorithm: str, batch: bool) -> Path:
        """Where the child logs of one algorithm live: ``<dataset>/<k>/logs/<algorithm>[-batch]``."""
        return self.root / dataset / str(k) / "logs" / run_name(algorithm, batch)

    def remove_stale_temporaries(self, dataset: str | None = None) -> int:
        """Delete temporary files left by writers that no longer run (a killed sweep); their count."""
        base = self.root / dataset if dataset else self.root
        removed = remove_orphaned_temporaries(base)
        if removed:
            log.info("removed %d temporary files left by an interrupted sweep in %s", removed, base)
        return removed

    def path_for(self, key: RunKey) -> Path:
        if key.runbook:  # <dataset>/<k>/runbook-<name>/<algorithm>[-batch]/: beside, never among, the static runs
            return self.root / key.dataset / str(key.k) / runbook_folder(key.runbook) / run_name(
                key.algorithm, key.batch) / key.file_name()
        return self.run_dir(key.dataset, key.k, key.algorithm, key.batch) / key.file_name()

    def stored(self, key: RunKey, wanted: dict[str, Any]) -> Stored:
        """What is stored for ``key`` against the ``wanted`` measurement
        (:func:`annbench.core.results.measurement`). A corrupt file counts as missing (warned)."""
        path = self.path_for(key)
        if not path.is_file():
            return Stored(StoredState.MISSING)
        try:
            attrs = read_attrs(path)
        except (OSError, KeyError, ValueError) as e:
            log.warning("result %s is unreadable (%s); it will be run again", path, e)
            return Stored(StoredState.UNREADABLE, str(e))
        if attrs.get("status") != Status.OK:
            return Stored(StoredState.FAILED, str(attrs.get("error", "")))
        try:
            identity = json.loads(attrs["measurement"])
        except KeyError:
            return Stored(StoredState.OTHER_WORK, "stored without a measurement identity (written by an annbench "
                                                  "older than measurement contract 2)")
        except (TypeError, ValueError):
            return Stored(StoredState.OTHER_WORK, "its measurement attr is unreadable")
        changes = measurement_changes(identity, wanted)
        return Stored(StoredState.OTHER_WORK, ", ".join(changes)) if changes else Stored(StoredState.FINISHED)

    def finished(self, key: RunKey, wanted: dict[str, Any]) -> bool:
        """A readable result with status ``ok`` of exactly the ``wanted`` measurement exists."""
        return self.stored(key, wanted).finished

    def attrs_of(self, key: RunKey) -> dict[str, Any] | None:
        """The stored attrs of ``key``'s result; None when missing or unreadable."""
        try:
            return read_attrs(self.path_for(key))
        except (OSError, KeyError, ValueError):
            return None

    def write(self, result: RunResult) -> Path:
        """Write atomically and durably: temporary file, fsync, rename, fsync of the folder."""
        path = self.path_for(result.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(temporary_name(path.name))
        try:
            with h5py.File(tmp, "w") as f:
                for name, value in result_attrs(result).items():
                    f.attrs[name] = value
                for name in ARRAYS:
                    a = getattr(result, name)
                    if a is not None:
                        f.create_dataset(name, data=a)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return path

    def paths(self, dataset: str | None = None) -> Iterator[Path]:
        base = self.root / dataset if dataset else self.root
        if base.is_dir():
            yield from sorted(p for p in base.rglob("*.hdf5") if not p.name.startswith("."))


def result_attrs(result: RunResult) -> dict[str, Any]:
    k = result.key
    attrs: dict[str, Any] = {
        "dataset": k.dataset, "k": k.k, "algorithm": k.algorithm, "batch": k.batch, "threads": k.threads,
        "clients": k.clients,
        "build_params": canonical(k.build_params), "query_params": canonical(k.query_params),
        "status": str(result.status), "error": result.error,
        **({"runbook": k.runbook} if k.runbook else {}),
    }
    encoded = []
    for name, value in {**result.attrs, **result.metrics}.items():
        if isinstance(value, enum.Enum):  # Status, Reason, Ended ...: stored as their plain values
            value = value.value
        if isinstance(value, (dict, list, tuple)):
            value = json.dumps(value, sort_keys=True)
            encoded.append(name)
        attrs[name] = value
    attrs[JSON_ATTRS] = json.dumps(sorted(encoded))
    return attrs


def read_attrs(path: str | Path) -> dict[str, Any]:
    """A result's attrs: numbers as Python numbers, mappings and lists decoded (see the module)."""
    with h5py.File(path, "r") as f:
        out = {n: (v.decode() if isinstance(v, bytes) else v) for n, v in f.attrs.items()}
    for n, v in out.items():
        if isinstance(v, np.generic):
            out[n] = v.item()
    if "status" not in out:
        raise KeyError("no 'status' attr: not an annbench result")
    listed = out.pop(JSON_ATTRS, None)
    for name in json.loads(listed) if listed is not None else _legacy_json_attrs(out):
        out[name] = json.loads(out[name])
    return out


def _legacy_json_attrs(attrs: dict[str, Any]) -> list[str]:
    """The attrs a result written before ``json_attrs`` existed holds as JSON: text of a mapping or a list
    (no other attr's text starts with ``{`` or ``[``), the canonical text attrs apart."""
    found = []
    for name, value in attrs.items():
        if name not in CANONICAL_TEXT_ATTRS and isinstance(value, str) and value[:1] in ("{", "["):
            try:
                json.loads(value)
            except ValueError:
                continue
            found.append(name)
    return found


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {n: f[n][()] for n in ARRAYS if n in f}


#: Attrs :func:`result_attrs` derives from the key, status and error (not kept in ``RunResult.attrs``).
_KEY_ATTRS = ("dataset", "k", "algorithm", "batch", "threads", "clients", "build_params", "query_params", "status",
              "error", "runbook")


def read_result(path: str | Path, key: RunKey) -> RunResult:
    """The stored result of ``key`` at ``path`` as a :class:`RunResult` that :meth:`ResultStore.write`
    writes back unchanged (metrics stay among the attrs; mappings and lists are encoded again as they were)."""
    attrs = read_attrs(path)
    status, error = attrs["status"], attrs.get("error", "")
    rest = {n: v for n, v in attrs.items() if n not in _KEY_ATTRS}
    return RunResult(key, status, error=error, attrs=rest, **read_arrays(path))
