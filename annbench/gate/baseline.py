"""The gate's baseline file: a measured :class:`~annbench.gate.verdicts.Session` as JSON, with full provenance.

Layout (``format: annbench-gate-baseline``, ``version: 3``; version 1 kept no process values, version 2 a
reference measured in runs of its own, bracketing each setting's)::

    {"format": ..., "version": 3,
     "suite": {"dataset", "algorithms", "preset", "k", "batch", "threads", "runs", "rounds", "reference",
               "processes"},
     "provenance": {cpu_model, host, platform, python, annbench_version, annbench_commit, dataset_name,
                    dataset_checksum, distance, n_queries, n_train, started, finished, command, ...},
     "unavailable": {algorithm: reason},
     "settings": [{"algorithm", "build_params", "query_params", "n_queries", "error",
                   "provenance": {library_versions, ...},
                   "rounds": [{"recall", "pass_times_ns": [...], "process_qps": [...],
                               "reference_qps": [...], "pass_qps": [[...], ...],
                               "reference_pass_qps": [[...], ...], "timestamp"}]}]}

``reference_qps[j]`` is the reference's QPS measured in the same process as ``process_qps[j]``;
``pass_qps[j][i]`` and ``reference_pass_qps[j][i]`` the QPS of pass i of the setting and of the reference
just before it in process j.

Written atomically (temporary file, then rename); read with validation that names the file
and the key at fault.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from annbench.core.errors import UserError
from annbench.gate.verdicts import Round, Session, SettingRecord

FORMAT = "annbench-gate-baseline"
VERSION = 3
SUITE_KEYS = ("dataset", "algorithms", "preset", "k", "batch", "threads", "runs", "rounds", "reference", "processes")


def session_to_json(session: Session) -> dict[str, Any]:
    return {
        "format": FORMAT, "version": VERSION, "suite": session.suite, "provenance": session.provenance,
        "unavailable": session.unavailable,
        "settings": [{
            "algorithm": s.algorithm, "build_params": s.build_params, "query_params": s.query_params,
            "n_queries": s.n_queries, "error": s.error, "provenance": s.attrs,
            "rounds": [{"recall": r.recall, "pass_times_ns": [int(t) for t in r.pass_times_ns],
                        "process_qps": [float(q) for q in r.process_qps],
                        "reference_qps": [float(q) for q in r.reference_qps],
                        "pass_qps": r.pass_qps.tolist(), "reference_pass_qps": r.reference_pass_qps.tolist(),
                        "timestamp": r.timestamp} for r in s.rounds],
        } for s in session.settings],
    }


def write_baseline(session: Session, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(session_to_json(session), indent=1, sort_keys=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_json(path: str | Path) -> dict[str, Any]:
    """The raw baseline document, checked for format and version (no numpy needed)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"baseline {path} does not exist; create one with --save-baseline {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"baseline {path} is not readable JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(f"baseline {path}: 'format' must be {FORMAT!r}; this is not a gate baseline file")
    if doc.get("version") != VERSION:
        raise UserError(f"baseline {path}: version {doc.get('version')!r} is not supported; valid: {VERSION} "
                        f"(save a new baseline with --save-baseline)")
    suite = doc.get("suite")
    if not isinstance(suite, dict) or any(k not in suite for k in SUITE_KEYS):
        missing = [k for k in SUITE_KEYS if not isinstance(suite, dict) or k not in suite]
        raise UserError(f"baseline {path}: 'suite' lacks {', '.join(missing)}; valid keys: {', '.join(SUITE_KEYS)}")
    return doc


def _times(path: Path, where: str, value: Any) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != 1 or len(a) == 0 or a.dtype.kind not in "iu" or (a <= 0).any():
        raise UserError(f"baseline {path}: {where} must be a non-empty list of positive integers (ns)")
    return a.astype(np.int64)


def _qps(path: Path, where: str, value: Any) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != 1 or len(a) == 0 or a.dtype.kind not in "iuf" or not (np.isfinite(a) & (a > 0)).all():
        raise UserError(f"baseline {path}: {where} must be a non-empty list of positive numbers (queries per second)")
    return a.astype(np.float64)


def _passes(path: Path, where: str, value: Any, processes: int) -> np.ndarray:
    try:
        a = np.asarray(value)
    except ValueError:  # ragged
        a = np.empty(0)
    if a.ndim != 2 or a.shape[0] != processes or a.shape[1] == 0 or a.dtype.kind not in "iuf" \
            or not (np.isfinite(a) & (a > 0)).all():
        raise UserError(f"baseline {path}: {where} must be {processes} equally long non-empty lists (one per "
                        f"measuring process) of positive numbers (queries per second)")
    return a.astype(np.float64)


def _round(path: Path, where: str, r: dict[str, Any]) -> Round:
    per, reference = _qps(path, f"{where}.process_qps", r["process_qps"]), _qps(path, f"{where}.reference_qps",
                                                                                   r["reference_qps"])
    if len(per) != len(reference):
        raise UserError(f"baseline {path}: {where}.reference_qps has {len(reference)} values, process_qps "
                        f"{len(per)}; valid: one reference QPS per measuring process")
    passes = _passes(path, f"{where}.pass_qps", r["pass_qps"], len(per))
    reference_passes = _passes(path, f"{where}.reference_pass_qps", r["reference_pass_qps"], len(per))
    if passes.shape != reference_passes.shape:
        raise UserError(f"baseline {path}: {where}.reference_pass_qps has {reference_passes.shape[1]} passes a "
                        f"process, pass_qps {passes.shape[1]}; valid: as many")
    return Round(float(r["recall"]), _times(path, f"{where}.pass_times_ns", r["pass_times_ns"]), per, reference,
                 passes, reference_passes, str(r.get("timestamp", "")))


def session_from_json(doc: dict[str, Any], path: str | Path) -> Session:
    path = Path(path)
    settings = []
    for i, s in enumerate(doc.get("settings") or []):
        where = f"settings[{i}]"
        try:
            rounds = [_round(path, f"{where}.rounds[{j}]", r) for j, r in enumerate(s.get("rounds") or [])]
            settings.append(SettingRecord(str(s["algorithm"]), dict(s["build_params"]), dict(s["query_params"]),
                                          int(s["n_queries"]), rounds, str(s.get("error") or ""),
                                          dict(s.get("provenance") or {})))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"baseline {path}: {where} is malformed ({type(e).__name__}: {e}); each setting needs "
                            f"algorithm, build_params, query_params, n_queries and rounds (each with recall, "
                            f"pass_times_ns, process_qps, reference_qps, pass_qps and reference_pass_qps)") from None
    return Session(dict(doc["suite"]), dict(doc.get("provenance") or {}), settings,
                   dict(doc.get("unavailable") or {}))


def read_baseline(path: str | Path) -> Session:
    return session_from_json(read_json(path), path)
