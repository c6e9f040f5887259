"""User embeddings: a dataset file from any supported vector file (lookups: :mod:`annbench.apps.lookup`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from annbench.core.errors import UserError
from annbench.datasets import attributes
from annbench.datasets.checksums import file_digests
from annbench.datasets.format import GROUND_TRUTH_K
from annbench.datasets.bigann import is_xbin
from annbench.datasets.readers import read_keys, read_labels, read_vectors
from annbench.datasets.registry import Prepared, dataset_path, materialize, registry
from annbench.datasets.spec import RawData, check_name
from annbench.quality.distances import METRICS
from annbench.quality.points import NUMERIC_METRICS


def _matrix(path: str | Path, what: str, rows: slice | None = None,
            keep_type: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The vectors of ``path`` as float32; with ``keep_type``, .u8bin / .i8bin rows stay uint8 / int8."""
    vectors = read_vectors(path)
    x = np.asarray(vectors.data)
    if rows is not None:  # a row range of a (memory-mapped) file: only those rows are read
        if (rows.stop or len(x)) > len(x) or (rows.start or 0) >= len(x):
            raise UserError(f"file {path}: row range {rows.start or 0}:{rows.stop} exceeds its {len(x)} rows; "
                            f"valid: a range within 0:{len(x)}")
        x = x[rows]
        vectors = type(vectors)(x, None if vectors.keys is None else vectors.keys[rows])
    if x.ndim != 2 or 0 in x.shape:
        raise UserError(f"file {path}: {what} must be a non-empty 2-D matrix, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise UserError(f"file {path}: {what} have dtype {x.dtype}; valid: numbers")
    keep = keep_type and is_xbin(path) and x.dtype.name in ("uint8", "int8")
    x = np.ascontiguousarray(x, dtype=x.dtype if keep else np.float32)
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
           force: bool = False, filters: dict[str, str | Path | None] | None = None,
           train_rows: slice | None = None, test_rows: slice | None = None) -> Prepared:
    """Write dataset ``name`` (train/test split or explicit queries, exact ground truth) into ``data_dir``.
    ``filters``: the files of a filtered dataset (``train_tags``, ``test_tags``, optional ``train_values``,
    ``test_ranges``; see :func:`filter_fields`); it needs explicit ``queries``. ``train_rows`` / ``test_rows``:
    only that row range of the vectors / queries (and of their tags, values and ranges)."""
    check_name(name)
    if name in registry():
        raise UserError(f"dataset name {name!r} is a registered dataset; choose another name")
    if distance not in NUMERIC_METRICS:
        known = "is unknown" if distance not in METRICS else "is not for vectors (it is for bits or sets)"
        raise UserError(f"--distance {distance!r} {known}; valid: {', '.join(NUMERIC_METRICS)}")
    if (test_size is None) == (queries is None):
        raise UserError("give exactly one of --test-size N (hold out N random rows as queries) or --queries FILE")
    filter_files = {k: v for k, v in (filters or {}).items() if v is not None}
    if filter_files and queries is None:
        raise UserError("--train-tags/--test-tags need --queries FILE (the test tags are one row per query); "
                        "valid: --queries instead of --test-size")
    path = dataset_path(name, data_dir)
    if path.exists() and not force:
        raise UserError(f"dataset {name} already exists at {path}; remove it first or pass --force")
    x, file_keys = _matrix(source, "vectors", train_rows, keep_type=True)  # .u8bin / .i8bin stay 8-bit
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
        if n <= GROUND_TRUTH_K:
            raise UserError(f"file {source}: {n} vectors cannot be split by --test-size; valid: at least "
                            f"{GROUND_TRUTH_K + 1} ({GROUND_TRUTH_K} stay as train points, one query), or --queries")
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
        q, _ = _matrix(queries, "queries", test_rows, keep_type=True)
        if q.dtype != x.dtype:
            raise UserError(f"file {queries}: queries are {q.dtype} but {source} is {x.dtype}; valid: the same type")
        if q.shape[1] != x.shape[1]:
            raise UserError(f"file {queries}: queries have dimension {q.shape[1]} but {source} has {x.shape[1]}")
        if n < GROUND_TRUTH_K:
            raise UserError(f"file {source}: {n} vectors; valid: at least {GROUND_TRUTH_K}")
        raw = RawData(train=x, test=q, distance=distance, train_labels=label_values, keys=key_values,
                      attrs={**attrs, "queries": f"{Path(queries).name}"}, **filter_fields(filter_files, n, len(q), train_rows, test_rows))
    materialize(raw, path, name)
    return Prepared(name, path, f"created from {source}")


def filter_fields(files: dict[str, str | Path], n_train: int, n_test: int, train_rows: slice | None = None,
                  test_rows: slice | None = None) -> dict[str, Any]:
    """:class:`RawData`'s filter fields read from the files of ``dataset.py create`` (``train_tags``,
    ``test_tags``: ``.npz`` sparse or ``.npy`` labels; ``train_values``: n ``.npy``; ``test_ranges``: nq × 2
    ``.npy``), each checked against the vectors' and queries' counts (one line naming the file)."""
    if not files:
        return {}
    for need, option in (("train_tags", "--train-tags"), ("test_tags", "--test-tags")):
        if need not in files:
            raise UserError(f"{option} is missing; a filtered dataset needs both --train-tags and --test-tags")
    if "test_ranges" in files and "train_values" not in files:
        raise UserError("--test-ranges needs --train-values (the value each point's range is checked on)")
    out: dict[str, Any] = {}
    for field, rows, cut in (("train_tags", n_train, train_rows), ("test_tags", n_test, test_rows)):
        tags = attributes.read_tags(files[field], field.replace("_", " "), cut)
        if tags.shape[0] != rows:
            raise UserError(f"file {files[field]}: {tags.shape[0]} rows of {field.replace('_', ' ')} for {rows} "
                            f"{'vectors' if field == 'train_tags' else 'queries'}; valid: one row per "
                            f"{'vector' if field == 'train_tags' else 'query'}")
        out[field] = tags
    for field, rows, columns, cut in (("train_values", n_train, None, train_rows), ("test_ranges", n_test, 2, test_rows)):
        if field in files:
            a = attributes.read_numbers(files[field], field.replace("_", " "), columns, cut)
            if len(a) != rows:
                raise UserError(f"file {files[field]}: {len(a)} rows for {rows} "
                                f"{'vectors' if field == 'train_values' else 'queries'}; valid: one row each")
            if columns:
                attributes.check_ranges(files[field], a, rows, True)
            out[field] = a
    return out


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
