"""The dataset file: one HDF5 file in ann-benchmarks' layout, read, validated and written.

Fields (ann-benchmarks): ``train`` (n×d float32), ``test`` (q×d float32), ``neighbors``
(q×100 int32), ``distances`` (q×100 float32); attrs ``distance``, ``point_type``
(``float``), ``dimension``, ``type`` (``dense``). Our optional extras: ``train_labels``,
``test_labels``, ``keys`` (one string per train row, e.g. GloVe's words), ``test_keys`` and provenance attrs (``source``, ``checksum``,
``builder_version``, ...).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from annbench.distances import METRICS
from annbench.errors import UserError

#: Ground-truth depth written by our builders (as ann-benchmarks).
GROUND_TRUTH_K = 100
#: Bumped whenever a builder changes what it writes for the same inputs.
BUILDER_VERSION = 1


@dataclass(frozen=True)
class Dataset:
    """A loaded, validated dataset; every array is read-only."""

    name: str
    path: Path
    distance: str
    train: np.ndarray
    test: np.ndarray
    neighbors: np.ndarray
    distances: np.ndarray
    checksum: str
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    keys: np.ndarray | None = None
    test_keys: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def dimension(self) -> int:
        return int(self.train.shape[1])

    @property
    def ground_truth_k(self) -> int:
        return int(self.neighbors.shape[1])


def content_checksum(train: np.ndarray, test: np.ndarray, distance: str) -> str:
    """``sha256:`` of the train and test bytes (float32, C order) and the distance name."""
    h = hashlib.sha256(distance.encode())
    for a in (train, test):
        a = np.ascontiguousarray(a, dtype=np.float32)
        h.update(str(a.shape).encode())
        h.update(memoryview(a).cast("B"))
    return "sha256:" + h.hexdigest()


def _fail(path: Path, what: str) -> UserError:
    return UserError(f"dataset file {path}: {what}")


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _read(f: h5py.File, path: Path, key: str, required: bool = True) -> np.ndarray | None:
    if key not in f:
        if required:
            raise _fail(path, f"missing field '{key}' (a dataset file needs train, test, neighbors, distances)")
        return None
    node = f[key]
    if not isinstance(node, h5py.Dataset):
        raise _fail(path, f"field '{key}' is a group, expected an array")
    return node[()]


def _check_finite(path: Path, key: str, a: np.ndarray) -> None:
    if not np.isfinite(a).all():
        raise _fail(path, f"field '{key}' contains NaN or inf")


def _strings(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)


def load_dataset(path: str | Path, name: str | None = None) -> Dataset:
    """Read and validate a dataset file; any defect is a one-line :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"dataset file {path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise _fail(path, f"not a readable HDF5 file ({e})") from None
    with f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        distance = attrs.get("distance")
        if distance not in METRICS:
            raise _fail(path, f"attr 'distance' is {distance!r}; valid: {', '.join(METRICS)}")
        if attrs.get("type", "dense") != "dense":
            raise _fail(path, f"attr 'type' is {attrs['type']!r}; only 'dense' datasets are supported")
        try:
            train, test, neighbors, distances = (_read(f, path, k) for k in ("train", "test", "neighbors", "distances"))
            train_labels = _read(f, path, "train_labels", required=False)
            test_labels = _read(f, path, "test_labels", required=False)
            keys = _read(f, path, "keys", required=False)
            test_keys = _read(f, path, "test_keys", required=False)
        except OSError as e:
            raise _fail(path, f"unreadable data ({e})") from None

    for key, a in (("train", train), ("test", test), ("neighbors", neighbors), ("distances", distances)):
        if a.ndim != 2 or 0 in a.shape:
            raise _fail(path, f"field '{key}' has shape {a.shape}, expected a non-empty 2-D array")
    for key, a in (("train", train), ("test", test), ("distances", distances)):
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise _fail(path, f"field '{key}' has dtype {a.dtype}, expected float")
    if not np.issubdtype(neighbors.dtype, np.integer):
        raise _fail(path, f"field 'neighbors' has dtype {neighbors.dtype}, expected integer ids")
    if train.shape[1] != test.shape[1]:
        raise _fail(path, f"train has dimension {train.shape[1]} but test has {test.shape[1]}")
    if "dimension" in attrs and int(attrs["dimension"]) != train.shape[1]:
        raise _fail(path, f"attr 'dimension' is {attrs['dimension']} but train has {train.shape[1]} columns")
    if neighbors.shape[0] != test.shape[0]:
        raise _fail(path, f"neighbors has {neighbors.shape[0]} rows but test has {test.shape[0]}")
    if distances.shape != neighbors.shape:
        raise _fail(path, f"distances has shape {distances.shape} but neighbors has {neighbors.shape}")
    train = np.ascontiguousarray(train, dtype=np.float32)
    test = np.ascontiguousarray(test, dtype=np.float32)
    _check_finite(path, "train", train)
    _check_finite(path, "test", test)
    _check_finite(path, "distances", distances)
    if neighbors.min() < 0 or neighbors.max() >= len(train):
        raise _fail(path, f"field 'neighbors' has ids outside [0, {len(train)})")
    for key, labels, n in (("train_labels", train_labels, len(train)), ("test_labels", test_labels, len(test))):
        if labels is not None and labels.shape != (n,):
            raise _fail(path, f"field '{key}' has shape {labels.shape}, expected ({n},)")
    for key, values, n in (("keys", keys, len(train)), ("test_keys", test_keys, len(test))):
        if values is not None and values.shape != (n,):
            raise _fail(path, f"field '{key}' has shape {values.shape}, expected ({n},)")
    keys = None if keys is None else _strings(keys)
    test_keys = None if test_keys is None else _strings(test_keys)

    checksum = attrs.get("checksum") or content_checksum(train, test, distance)
    return Dataset(
        name=name or path.stem, path=path, distance=distance,
        train=_read_only(train), test=_read_only(test),
        neighbors=_read_only(np.ascontiguousarray(neighbors, dtype=np.int64)),
        distances=_read_only(np.ascontiguousarray(distances, dtype=np.float64)),
        checksum=checksum,
        train_labels=None if train_labels is None else _read_only(train_labels),
        test_labels=None if test_labels is None else _read_only(test_labels),
        keys=keys, test_keys=test_keys, attrs=attrs,
    )


def write_dataset(path: str | Path, *, train: np.ndarray, test: np.ndarray, distance: str,
                  neighbors: np.ndarray, distances: np.ndarray,
                  train_labels: np.ndarray | None = None, test_labels: np.ndarray | None = None,
                  keys: np.ndarray | list[str] | None = None, test_keys: np.ndarray | list[str] | None = None,
                  attrs: dict[str, Any] | None = None) -> Path:
    """Write a dataset file atomically (temporary file in the same folder, fsync, rename).

    Names, dtypes and attrs are exactly ann-benchmarks' so its tools can read the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    train = np.ascontiguousarray(train, dtype=np.float32)
    test = np.ascontiguousarray(test, dtype=np.float32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["type"] = "dense"
            f.attrs["distance"] = distance
            f.attrs["dimension"] = train.shape[1]
            f.attrs["point_type"] = "float"
            f.attrs["checksum"] = content_checksum(train, test, distance)
            f.attrs["builder_version"] = BUILDER_VERSION
            for k, v in (attrs or {}).items():
                f.attrs[k] = v
            f.create_dataset("train", data=train)
            f.create_dataset("test", data=test)
            f.create_dataset("neighbors", data=np.asarray(neighbors, dtype=np.int32))
            f.create_dataset("distances", data=np.asarray(distances, dtype=np.float32))
            if train_labels is not None:
                f.create_dataset("train_labels", data=np.asarray(train_labels))
            if test_labels is not None:
                f.create_dataset("test_labels", data=np.asarray(test_labels))
            for field_name, values in (("keys", keys), ("test_keys", test_keys)):
                if values is not None:
                    f.create_dataset(field_name, data=[str(k) for k in values], dtype=h5py.string_dtype())
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
