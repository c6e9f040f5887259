"""The dataset file: one HDF5 file in ann-benchmarks' layout, read, validated and written.

Fields (ann-benchmarks): ``train`` (n×d), ``test`` (q×d), ``neighbors``
(q×100 int32), ``distances`` (q×100 float32); attrs ``distance``, ``point_type``
(``float``, ``float16``, ``uint8``, ``int8``, ``bit``), ``dimension``, ``type`` (``dense``, or ``sparse``
for sets with ``size_train``/``size_test``; how each point type is stored: :mod:`annbench.datasets.layout`). Our optional extras: ``train_labels``,
``test_labels``, ``keys`` (one string per train row, e.g. GloVe's words), ``test_keys`` and provenance attrs (``source``, ``checksum``,
``builder_version``, ...).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import xxhash

from annbench.core.errors import UserError
from annbench.datasets import attributes, layout
from annbench.datasets.audit import AUDIT_QUERIES, audit_queries, first_mismatch
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


#: The arrays the content checksum covers, in hashing order (those present in the file).
CHECKSUM_FIELDS = ("train", "test", "neighbors", "distances", "train_labels", "test_labels", "keys", "test_keys",
                   *attributes.FILTER_FIELDS, *layout.SIZE_FIELDS)
#: Prefix of the content checksum (the hash's name); earlier annbench versions wrote ``sha256:``.
CHECKSUM_ALGORITHM = "xxh3"
LEGACY_CHECKSUM_ALGORITHM = "sha256"


def _hashable(a: np.ndarray) -> np.ndarray:
    """``a`` as one C-contiguous block of bytes to hash: numbers as stored, strings as UTF-8."""
    a = np.asarray(a)
    if a.dtype.kind in "OU":
        try:
            a = a.astype("S")  # bytes (as h5py reads strings) and ASCII text, in one C loop
        except UnicodeEncodeError:
            a = np.array([v if isinstance(v, bytes) else str(v).encode() for v in a.ravel()], dtype="S")
    return np.ascontiguousarray(a)


def _field_header(name: str, a: np.ndarray) -> bytes:
    return f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode()


def content_checksum(arrays: dict[str, np.ndarray | None], distance: str) -> str:
    """``xxh3:`` + the 128-bit XXH3 of the distance name and, for every field of
    :data:`CHECKSUM_FIELDS` present, its name, dtype, shape and bytes (C order; strings UTF-8
    encoded). Non-cryptographic: it detects damage and changes, not tampering meant to hide."""
    h = xxhash.xxh3_128(distance.encode())
    for name in CHECKSUM_FIELDS:
        a = arrays.get(name)
        if a is None:
            continue
        a = _hashable(a)
        h.update(_field_header(name, a))
        h.update(a.reshape(-1).view(np.uint8))
    return f"{CHECKSUM_ALGORITHM}:{h.hexdigest()}"


#: A numeric array stored as one raw block is read in blocks, each hashed while the next is read:
#: blocks in the page cache small enough to be hashed from the CPU's cache (best at 2-4 MiB here),
#: blocks from the disk large enough to keep it busy (16-32 MiB here; 4 MiB reads were 11 % slower).
CACHED_BLOCK_BYTES = 4 * 2**20
DISK_BLOCK_BYTES = 32 * 2**20


class _StreamingChecksum:
    """:func:`content_checksum` computed in a second thread while the arrays are still being read.

    Blocks are hashed in the order they are fed, so the digest is exactly ``content_checksum``'s.
    XXH3 and ``os.preadv`` release the GIL, so with a second core free hashing block *i* overlaps
    reading block *i+1* and a load pays little more than its read
    (``benchmarks/dataset_integrity.py`` measures it)."""

    def __init__(self, distance: str) -> None:
        self._hash = xxhash.xxh3_128(distance.encode())
        self._blocks: queue.SimpleQueue[bytes | np.ndarray | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._consume, name="dataset-checksum", daemon=True)
        self._thread.start()

    def _consume(self) -> None:
        while (block := self._blocks.get()) is not None:
            self._hash.update(block)

    def feed(self, block: bytes | np.ndarray) -> None:
        self._blocks.put(block)

    def close(self) -> str:
        """Wait for every fed block to be hashed; the checksum (``xxh3:<hex>``)."""
        self._blocks.put(None)
        self._thread.join()
        return f"{CHECKSUM_ALGORITHM}:{self._hash.hexdigest()}"


def legacy_checksum(train: np.ndarray, test: np.ndarray, distance: str) -> str:
    """What annbench wrote before the content checksum covered every array: ``sha256:`` of the
    distance name and the train and test bytes (float32, C order). Only verified, never written."""
    h = hashlib.sha256(distance.encode())
    for a in (train, test):
        a = np.ascontiguousarray(a, dtype=np.float32)
        h.update(str(a.shape).encode())
        h.update(memoryview(a).cast("B"))
    return f"{LEGACY_CHECKSUM_ALGORITHM}:" + h.hexdigest()


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


def _raw_extent(node: h5py.Dataset) -> int | None:
    """The file offset of ``node``'s bytes where they lie there as one block exactly as numpy holds
    them (contiguous, no filter, storage allocated, a fixed-size numeric dtype), else None."""
    if (node.dtype.kind not in "biuf" or node.ndim == 0 or node.size == 0 or node.file.driver != "sec2"
            or not hasattr(os, "preadv")):
        return None
    offset = node.id.get_offset()
    if offset is None or node.id.get_storage_size() != node.size * node.dtype.itemsize:
        return None
    return int(offset)


def _pread_cached(fd: int, view: memoryview, offset: int) -> int:
    """Bytes read into ``view`` from ``fd`` at ``offset`` without waiting for the disk: what the page
    cache holds there (0 where it holds nothing, or where the OS cannot say)."""
    if not hasattr(os, "RWF_NOWAIT"):
        return 0
    try:
        return os.preadv(fd, [view], offset, os.RWF_NOWAIT)
    except OSError:  # EAGAIN: not cached; EOPNOTSUPP: this file system cannot tell
        return 0


def _pread_fully(fd: int, view: memoryview, offset: int) -> None:
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            raise OSError(f"the file ends {len(view) - done} bytes short of an array's end (truncated?)")
        done += n


def _read_raw(fd: int, offset: int, out: np.ndarray, hasher: _StreamingChecksum) -> None:
    """Fill ``out`` from ``fd`` at ``offset``, feeding each block to ``hasher`` as soon as it is read
    (``os.preadv`` and XXH3 release the GIL, so both run at once). Blocks the page cache holds are
    :data:`CACHED_BLOCK_BYTES`, hashed from the CPU's cache; where the disk must be read, blocks are
    :data:`DISK_BLOCK_BYTES`, as large reads keep the disk busy."""
    flat = out.reshape(-1).view(np.uint8)
    view = memoryview(flat)
    start = 0
    while start < len(flat):
        end = min(start + CACHED_BLOCK_BYTES, len(flat))
        got = _pread_cached(fd, view[start:end], offset + start)
        if got < end - start:
            end = min(start + DISK_BLOCK_BYTES, len(flat))
            _pread_fully(fd, view[start + got:end], offset + start + got)
        hasher.feed(flat[start:end])
        start = end


def _read_hashed(node: h5py.Dataset, name: str, hasher: _StreamingChecksum) -> np.ndarray:
    """The whole of ``node``, fed to ``hasher`` (header and bytes) as :func:`content_checksum` hashes
    it: an array stored as one raw block is read by us, block by block, each hashed while the next is
    read; any other (chunked, compressed, strings, never written) is read by h5py, then hashed."""
    offset = _raw_extent(node)
    if offset is None:
        a = node[()]
        hashable = _hashable(a)
        hasher.feed(_field_header(name, hashable))
        hasher.feed(hashable.reshape(-1).view(np.uint8))
        return a
    a = np.empty(node.shape, dtype=node.dtype)
    hasher.feed(_field_header(name, a))
    _read_raw(node.file.id.get_vfd_handle(), offset, a, hasher)
    return a


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
    hasher = None if distance is None else _StreamingChecksum(distance)
    try:
        nodes = {k: _node(f, path, k, required=i < 4) for i, k in enumerate(CHECKSUM_FIELDS)}
        fields = {k: None if node is None else node[()] if hasher is None else _read_hashed(node, k, hasher)
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
                     distance: str) -> None:
    """Compare the stored checksum with the content; a mismatch is the one-line error, naming the rebuild."""
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
        raise _fail(path, f"content does not match its checksum (stored {stored}, content {computed}): the file was "
                          f"damaged or changed after it was written; {rebuild_hint(path, attrs)}")


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
    _verify_checksum(path, attrs, fields, checksum, distance)
    train, test, point_type, dimension, scale = layout.decode(attrs, fields, distance, lambda what: _fail(path, what))
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
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
