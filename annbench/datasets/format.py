"""The dataset file's schema: one HDF5 file in ann-benchmarks' layout, read, validated and written.

Its content checksum is :mod:`annbench.datasets.digest`; the raw block reads that hash while they
read, :mod:`annbench.datasets.rawread`.

Fields (ann-benchmarks): ``train`` (n×d), ``test`` (q×d), ``neighbors``
(q×100 int32), ``distances`` (q×100 float32); attrs ``distance``, ``point_type``
(``float``, ``float16``, ``uint8``, ``int8``, ``bit``), ``dimension``, ``type`` (``dense``, or ``sparse``
for sets with ``size_train``/``size_test``; how each point type is stored: :mod:`annbench.datasets.layout`).
Our optional extras: ``train_labels``, ``test_labels``, ``keys`` (one string per train row, e.g. GloVe's
words), ``test_keys`` and provenance attrs (``source``, ``checksum``, ``builder_version``, ...).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from annbench.core.errors import UserError
from annbench.core.processes import temporary_name
from annbench.datasets import attributes, layout
from annbench.datasets.audit import AUDIT_QUERIES, audit_queries, first_mismatch
from annbench.datasets.digest import (
    CHECKSUM_ALGORITHM,
    CHECKSUM_FIELDS,
    LEGACY_CHECKSUM_ALGORITHM,
    StreamingChecksum,
    content_checksum,
    legacy_checksum,
)
from annbench.datasets.rawread import read_hashed
from annbench.quality.distances import METRICS
from annbench.quality.points import dimension_of, nbytes

log = logging.getLogger(__name__)

#: Ground-truth depth written by our builders (as ann-benchmarks).
GROUND_TRUTH_K = 100
#: Bumped whenever a builder changes what it writes for the same inputs.
BUILDER_VERSION = 1


@dataclass(frozen=True)
class Dataset:
    """A loaded, validated dataset; every array is read-only. ``train``/``test`` are rows of
    ``point_type`` (:mod:`annbench.quality.points`): numbers in their dtype, packed bits, or sets."""

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
    #: A filtered dataset's tags, values, predicates and selectivities (:mod:`annbench.datasets.attributes`).
    filters: attributes.Filters | None = None
    point_type: str = "float32"
    bits: int | None = None

    @property
    def dimension(self) -> int:
        """Columns; for bits the number of bits, for sets the universe of item ids."""
        return dimension_of(self.train, self.point_type, self.bits)

    @property
    def memory_bytes(self) -> int:
        """Bytes ``train`` and ``test`` take in memory."""
        return nbytes(self.train) + nbytes(self.test)

    @property
    def ground_truth_k(self) -> int:
        return int(self.neighbors.shape[1])


def rebuild_hint(path: Path, attrs: dict[str, Any]) -> str:
    """How to make a good copy of the dataset file at ``path`` again, as a command."""
    where = f" --data-dir {path.parent}"
    obtained = str(attrs.get("obtained", ""))
    if obtained.startswith("dataset.py create"):
        return (f"re-create it: python {obtained} --name {path.stem} --distance {attrs.get('distance')} ... --force"
                f"{where}")
    return f"rebuild it: python dataset.py prepare {path.stem} --force{where}"


def _fail(path: Path, what: str) -> UserError:
    return UserError(f"dataset file {path}: {what}")


def _read_only(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        a.setflags(write=False)
    return a  # SetRows are made read-only as they are read


def _node(f: h5py.File, path: Path, key: str, required: bool) -> h5py.Dataset | None:
    if key not in f:
        if required:
            raise _fail(path, f"missing field '{key}' (a dataset file needs train, test, neighbors, distances)")
        return None
    node = f[key]
    if not isinstance(node, h5py.Dataset):
        raise _fail(path, f"field '{key}' is a group, expected an array")
    return node


def _check_finite(path: Path, key: str, a: np.ndarray) -> None:
    if not np.isfinite(a).all():
        raise _fail(path, f"field '{key}' contains NaN or inf")


def _strings(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise UserError(f"dataset file {path} does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise _fail(path, f"not a readable HDF5 file ({e})") from None


def _read_fields(f: h5py.File, path: Path, distance: str | None = None
                 ) -> tuple[dict[str, np.ndarray | None], str | None]:
    """Every field of :data:`CHECKSUM_FIELDS` as stored (None where absent; the first four are
    required) and, given the ``distance`` name, their :func:`content_checksum`, hashed as they are read."""
    hasher = None if distance is None else StreamingChecksum(distance)
    try:
        nodes = {k: _node(f, path, k, required=i < 4) for i, k in enumerate(CHECKSUM_FIELDS)}
        fields = {k: None if node is None else node[()] if hasher is None else read_hashed(node, k, hasher)
                  for k, node in nodes.items()}
    except OSError as e:
        raise _fail(path, f"unreadable data ({e})") from None
    finally:
        checksum = None if hasher is None else hasher.close()
    return fields, checksum


def read_dataset_arrays(path: str | Path, *, checksum: bool = True) -> tuple[dict[str, np.ndarray | None], str | None]:
    """Every array of the dataset file at ``path`` as :func:`load_dataset` reads it and, with
    ``checksum``, their :func:`content_checksum` as the load computes it (else None); nothing is
    verified or validated. For measuring what verification adds to a load's read."""
    path = Path(path)
    with _open(path) as f:
        return _read_fields(f, path, str(_attrs(f).get("distance")) if checksum else None)


def _attrs(f: h5py.File) -> dict[str, Any]:
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}


def file_attrs(path: str | Path) -> dict[str, Any]:
    """The attrs of the dataset file at ``path`` (strings decoded), without reading any array."""
    path = Path(path)
    with _open(path) as f:
        return _attrs(f)


def file_checksum(path: str | Path) -> str:
    """The content checksum of the dataset file at ``path``: its stored ``xxh3:`` attr (verified when
    the file is loaded), else computed from its arrays (files without one, or with a legacy checksum)."""
    path = Path(path)
    with _open(path) as f:
        attrs = _attrs(f)
        stored = str(attrs.get("checksum") or "")
        if stored.startswith(f"{CHECKSUM_ALGORITHM}:"):
            return stored
        computed = _read_fields(f, path, str(attrs.get("distance")))[1]
        assert computed is not None
        return computed


def _verify_checksum(path: Path, attrs: dict[str, Any], fields: dict[str, np.ndarray | None], computed: str,
                     distance: str, defect: str | None = None) -> None:
    """Compare the stored checksum with the content; a mismatch is the one-line error, naming the rebuild
    and the ``defect`` the layout's own check found in the arrays (bits in a packed row's padding, ...)."""
    stored = str(attrs.get("checksum") or "")
    algorithm = stored.split(":", 1)[0]
    if not stored:
        log.debug("dataset file %s has no checksum attr; its content checksum is %s", path, computed)
        return
    if algorithm == CHECKSUM_ALGORITHM:
        matches = stored == computed
    elif algorithm == LEGACY_CHECKSUM_ALGORITHM:
        matches = stored == legacy_checksum(fields["train"], fields["test"], distance)
        if matches:
            log.warning("dataset file %s was written by an earlier annbench: its checksum (sha256 of train and test) "
                        "does not cover the ground truth, which only the load's audit of %d queries checks; %s",
                        path, AUDIT_QUERIES, rebuild_hint(path, attrs))
    else:
        log.warning("dataset file %s has a checksum of unknown kind %r: not verified", path, stored[:40])
        return
    if not matches:
        raise _fail(path, f"{defect + ', and its ' if defect else ''}content does not match its checksum (stored "
                          f"{stored}, content {computed}): the file was damaged or changed after it was written; "
                          f"{rebuild_hint(path, attrs)}")


def load_dataset(path: str | Path, name: str | None = None, *, audit: bool = True) -> Dataset:
    """Read and validate a dataset file; any defect is a one-line :class:`UserError`.

    The content checksum (every array, see :func:`content_checksum`) is computed on every load and
    compared with the stored one; with ``audit`` the ground truth of :data:`AUDIT_QUERIES` seeded
    queries is recomputed (:mod:`annbench.datasets.audit`). ``audit=False`` only where the same
    content (same checksum) was audited already, e.g. in the child that re-opens the parent's file."""
    path = Path(path)
    with _open(path) as f:
        attrs = _attrs(f)
        distance = attrs.get("distance")
        if distance not in METRICS:
            raise _fail(path, f"attr 'distance' is {distance!r}; valid: {', '.join(METRICS)}")
        if attrs.get("type", "dense") not in ("dense", "sparse"):
            raise _fail(path, f"attr 'type' is {attrs['type']!r}; valid: 'dense', 'sparse' (sets)")
        layout.declared_type(attrs, distance, lambda what: _fail(path, what))  # before reading any array
        fields, checksum = _read_fields(f, path, distance)
        tag_widths = attributes.tag_widths(f)
    assert checksum is not None
    try:  # the layout's check first, so that a damaged file's message names what the damage broke
        train, test, point_type, dimension, scale = layout.decode(attrs, fields, distance, UserError)
        defect = None
    except UserError as e:
        defect = str(e)
    _verify_checksum(path, attrs, fields, checksum, distance, defect)
    if defect is not None:  # written so (no checksum, or one computed over the defect): the defect alone
        raise _fail(path, defect)
    neighbors, distances, train_labels, test_labels, keys, test_keys = (
        fields[k] for k in ("neighbors", "distances", "train_labels", "test_labels", "keys", "test_keys"))

    for key, a in (("neighbors", neighbors), ("distances", distances)):
        if a.ndim != 2 or 0 in a.shape:
            raise _fail(path, f"field '{key}' has shape {a.shape}, expected a non-empty 2-D array")
    if not (np.issubdtype(distances.dtype, np.floating) or np.issubdtype(distances.dtype, np.integer)):
        raise _fail(path, f"field 'distances' has dtype {distances.dtype}, expected float")
    if not np.issubdtype(neighbors.dtype, np.integer):
        raise _fail(path, f"field 'neighbors' has dtype {neighbors.dtype}, expected integer ids")
    if neighbors.shape[0] != test.shape[0]:
        raise _fail(path, f"neighbors has {neighbors.shape[0]} rows but test has {test.shape[0]}")
    if distances.shape != neighbors.shape:
        raise _fail(path, f"distances has shape {distances.shape} but neighbors has {neighbors.shape}")
    filters = attributes.from_fields(path, fields, tag_widths, len(train), len(test))
    if filters is None:
        _check_finite(path, "distances", distances)
        if neighbors.min() < 0 or neighbors.max() >= len(train):
            raise _fail(path, f"field 'neighbors' has ids outside [0, {len(train)})")
    else:  # the filtered ground truth: padded -1 / +inf where fewer points match
        attributes.check_ground_truth(path, neighbors, distances, len(train))
    for key, labels, n in (("train_labels", train_labels, len(train)), ("test_labels", test_labels, len(test))):
        if labels is not None and labels.shape != (n,):
            raise _fail(path, f"field '{key}' has shape {labels.shape}, expected ({n},)")
    for key, values, n in (("keys", keys, len(train)), ("test_keys", test_keys, len(test))):
        if values is not None and values.shape != (n,):
            raise _fail(path, f"field '{key}' has shape {values.shape}, expected ({n},)")
    if neighbors.shape[1] > len(train):
        raise _fail(path, f"neighbors has {neighbors.shape[1]} columns but train has only {len(train)} points")
    keys = None if keys is None else _strings(keys)
    test_keys = None if test_keys is None else _strings(test_keys)
    neighbors = np.ascontiguousarray(neighbors, dtype=np.int64)
    distances = np.ascontiguousarray(distances, dtype=np.float64)
    if scale != 1.0:  # ann-benchmarks' hamming fractions as bit counts
        distances = np.rint(distances * scale)
    if audit:
        if filters is None:
            bad = first_mismatch(train, test, neighbors, distances, distance, audit_queries(len(test)))
        else:
            bad = attributes.first_filtered_mismatch(train, test, neighbors, distances, distance, filters,
                                                     audit_queries(len(test)))
        if bad is not None:
            raise _fail(path, f"the stored ground truth is wrong at {bad} (audit of {AUDIT_QUERIES} seeded queries); "
                              f"{rebuild_hint(path, attrs)}")
    return Dataset(
        name=name or path.stem, path=path, distance=distance,
        train=_read_only(train), test=_read_only(test), point_type=point_type,
        bits=dimension if point_type == "bit" else None,
        neighbors=_read_only(neighbors), distances=_read_only(distances),
        checksum=checksum,
        train_labels=None if train_labels is None else _read_only(train_labels),
        test_labels=None if test_labels is None else _read_only(test_labels),
        keys=keys, test_keys=test_keys, attrs=attrs, filters=filters,
    )


def write_dataset(path: str | Path, *, train: np.ndarray, test: np.ndarray, distance: str,
                  neighbors: np.ndarray, distances: np.ndarray,
                  train_labels: np.ndarray | None = None, test_labels: np.ndarray | None = None,
                  keys: np.ndarray | list[str] | None = None, test_keys: np.ndarray | list[str] | None = None,
                  attrs: dict[str, Any] | None = None, filters: attributes.Filters | None = None,
                  bits: int | None = None) -> Path:
    """Write a dataset file atomically (temporary file in the same folder, fsync, rename).

    Names, dtypes and attrs are exactly ann-benchmarks' so its tools can read the file; rows keep
    their point type (:func:`annbench.datasets.layout.encode`; ``bits``: of packed bit rows); ``filters``
    adds a filtered dataset's fields (:mod:`annbench.datasets.attributes`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    points, layout_attrs = layout.encode(train, test, distance, bits)
    fields: dict[str, np.ndarray | None] = {
        **points,
        "neighbors": np.asarray(neighbors, dtype=np.int32), "distances": np.asarray(distances, dtype=np.float32),
        "train_labels": None if train_labels is None else np.asarray(train_labels),
        "test_labels": None if test_labels is None else np.asarray(test_labels),
        "keys": None if keys is None else np.array([str(k) for k in keys], dtype=object),
        "test_keys": None if test_keys is None else np.array([str(k) for k in test_keys], dtype=object),
        **(filters.fields() if filters is not None else {})}
    tmp = path.with_name(temporary_name(path.name))
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["distance"] = distance
            for k, v in {**(attrs or {}), **layout_attrs}.items():  # the layout's attrs always describe the arrays
                f.attrs[k] = v
            f.attrs["checksum"] = content_checksum(fields, distance)  # of exactly what is written, never a caller's
            f.attrs["builder_version"] = BUILDER_VERSION
            for field_name, a in fields.items():
                if a is not None:
                    f.create_dataset(field_name, data=a, dtype=h5py.string_dtype() if a.dtype == object else None)
            if filters is not None:
                attributes.write_widths(f, filters)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
