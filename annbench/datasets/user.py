"""User embeddings: a dataset file from any supported vector file (lookups: :mod:`annbench.datasets.lookup`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from annbench.core.errors import UserError
from annbench.datasets.checksums import file_digests
from annbench.datasets.format import GROUND_TRUTH_K
from annbench.datasets.readers import read_keys, read_labels, read_vectors
from annbench.datasets.registry import Prepared, dataset_path, materialize, registry
from annbench.datasets.spec import RawData, check_name
from annbench.quality.distances import METRICS
from annbench.quality.points import NUMERIC_METRICS


def _matrix(path: str | Path, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    vectors = read_vectors(path)
    x = np.asarray(vectors.data)
    if x.ndim != 2 or 0 in x.shape:
        raise UserError(f"file {path}: {what} must be a non-empty 2-D matrix, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise UserError(f"file {path}: {what} have dtype {x.dtype}; valid: numbers")
    x = np.ascontiguousarray(x, dtype=np.float32)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise UserError(f"file {path}: row {int(np.flatnonzero(bad)[0])} contains NaN or inf "
                        f"({int(bad.sum())} such rows); valid: finite numbers only")
    return x, vectors.keys


def _check_unique(keys: np.ndarray, origin: str | Path) -> None:
    uniq, first, counts = np.unique(keys.astype(str), return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = str(uniq[np.flatnonzero(counts > 1)[0]])
        rows = np.flatnonzero(keys.astype(str) == dup)[:2]
        raise UserError(f"file {origin}: duplicate key {dup!r} (rows {rows[0]} and {rows[1]}); valid: unique keys")


def create(source: str | Path, name: str, distance: str, data_dir: Path, *, test_size: int | None = None,
           queries: str | Path | None = None, labels: str | Path | None = None, keys: str | Path | None = None,
           force: bool = False) -> Prepared:
    """Write dataset ``name`` (train/test split or explicit queries, exact ground truth) into ``data_dir``."""
    check_name(name)
    if name in registry():
        raise UserError(f"dataset name {name!r} is a registered dataset; choose another name")
    if distance not in NUMERIC_METRICS:
        known = "is unknown" if distance not in METRICS else "is not for vectors (it is for bits or sets)"
        raise UserError(f"--distance {distance!r} {known}; valid: {', '.join(NUMERIC_METRICS)}")
    if (test_size is None) == (queries is None):
        raise UserError("give exactly one of --test-size N (hold out N random rows as queries) or --queries FILE")
    path = dataset_path(name, data_dir)
    if path.exists() and not force:
        raise UserError(f"dataset {name} already exists at {path}; remove it first or pass --force")
    x, file_keys = _matrix(source, "vectors")
    n = len(x)
    key_values = read_keys(keys) if keys is not None else file_keys
    if key_values is not None:
        if len(key_values) != n:
            raise UserError(f"file {keys or source}: {len(key_values)} keys for {n} vectors in {source}; "
                            f"valid: one key per vector")
        _check_unique(key_values, keys or source)
    label_values = None
    if labels is not None:
        label_values = read_labels(labels)
        if len(label_values) != n:
            raise UserError(f"file {labels}: {len(label_values)} labels for {n} vectors in {source}; "
                            f"valid: one label per vector")
    attrs: dict[str, Any] = {"source": f"{Path(source).name} sha256:{file_digests(source, ('sha256',))['sha256']}",
                             "obtained": f"dataset.py create --from {source}"}
    if test_size is not None:
        if not 1 <= test_size <= n - GROUND_TRUTH_K:
            raise UserError(f"--test-size {test_size} is out of range for the {n} vectors of {source}; valid: "
                            f"1..{n - GROUND_TRUTH_K} (at least {GROUND_TRUTH_K} must stay as train points)")
        from sklearn.model_selection import train_test_split

        index = np.arange(n)
        train_idx, test_idx = train_test_split(index, test_size=test_size, random_state=1)
        pick = lambda a, i: None if a is None else np.asarray(a)[i]  # noqa: E731
        raw = RawData(train=x[train_idx], test=x[test_idx], distance=distance,
                      train_labels=pick(label_values, train_idx), test_labels=pick(label_values, test_idx),
                      keys=pick(key_values, train_idx), test_keys=pick(key_values, test_idx),
                      attrs={**attrs, "split": f"train_test_split(test_size={test_size}, random_state=1)"})
    else:
        q, _ = _matrix(queries, "queries")
        if q.shape[1] != x.shape[1]:
            raise UserError(f"file {queries}: queries have dimension {q.shape[1]} but {source} has {x.shape[1]}")
        if n < GROUND_TRUTH_K:
            raise UserError(f"file {source}: {n} vectors; valid: at least {GROUND_TRUTH_K}")
        raw = RawData(train=x, test=q, distance=distance, train_labels=label_values, keys=key_values,
                      attrs={**attrs, "queries": f"{Path(queries).name}"})
    materialize(raw, path, name)
    return Prepared(name, path, f"created from {source}")


def parse_params(text: str | None, what: str) -> dict[str, Any]:
    """``"a=1,b=x"`` → ``{"a": 1, "b": "x"}`` (values parsed as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        if "=" not in item:
            raise UserError(f"{what} {item!r} is not NAME=VALUE; valid: e.g. M=16,ef_construction=200")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out
