"""The content checksum of a dataset file: what it covers, how it is computed (at once, or while the
arrays are being read), and the checksum earlier annbench versions wrote.

Verified on every load (:func:`annbench.datasets.format.load_dataset`); written by
:func:`annbench.datasets.format.write_dataset`. The checksums of upstream files are another matter:
:mod:`annbench.datasets.checksums`.
"""

from __future__ import annotations

import hashlib
import queue
import threading

import numpy as np
import xxhash

from annbench.datasets import attributes, layout

#: The arrays the content checksum covers, in hashing order (those present in the file).
CHECKSUM_FIELDS = ("train", "test", "neighbors", "distances", "train_labels", "test_labels", "keys", "test_keys",
                   *attributes.FILTER_FIELDS, *layout.SIZE_FIELDS)
#: Prefix of the content checksum (the hash's name); earlier annbench versions wrote ``sha256:``.
CHECKSUM_ALGORITHM = "xxh3"
LEGACY_CHECKSUM_ALGORITHM = "sha256"


def hashable(a: np.ndarray) -> np.ndarray:
    """``a`` as one C-contiguous block of bytes to hash: numbers as stored, strings as UTF-8."""
    a = np.asarray(a)
    if a.dtype.kind in "OU":
        try:
            a = a.astype("S")  # bytes (as h5py reads strings) and ASCII text, in one C loop
        except UnicodeEncodeError:
            a = np.array([v if isinstance(v, bytes) else str(v).encode() for v in a.ravel()], dtype="S")
    return np.ascontiguousarray(a)


def field_header(name: str, a: np.ndarray) -> bytes:
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
        a = hashable(a)
        h.update(field_header(name, a))
        h.update(a.reshape(-1).view(np.uint8))
    return f"{CHECKSUM_ALGORITHM}:{h.hexdigest()}"


class StreamingChecksum:
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
