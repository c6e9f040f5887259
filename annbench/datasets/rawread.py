"""Raw reads of a dataset file's arrays, hashed while they are read.

An array HDF5 stores as one contiguous block is read by us with ``os.preadv`` in blocks, each fed to
the content checksum (:class:`annbench.datasets.digest.StreamingChecksum`) while the next is read;
any other array is read by h5py, then hashed. ``benchmarks/dataset_integrity.py`` measures what this
saves.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from annbench.datasets.digest import StreamingChecksum, field_header, hashable

#: A numeric array stored as one raw block is read in blocks, each hashed while the next is read:
#: blocks in the page cache small enough to be hashed from the CPU's cache (best at 2-4 MiB here),
#: blocks from the disk large enough to keep it busy (16-32 MiB here; 4 MiB reads were 11 % slower).
CACHED_BLOCK_BYTES = 4 * 2**20
DISK_BLOCK_BYTES = 32 * 2**20


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


def _read_raw(fd: int, offset: int, out: np.ndarray, hasher: StreamingChecksum) -> None:
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


def read_hashed(node: h5py.Dataset, name: str, hasher: StreamingChecksum) -> np.ndarray:
    """The whole of ``node``, fed to ``hasher`` (header and bytes) as
    :func:`annbench.datasets.digest.content_checksum` hashes it: an array stored as one raw block is read
    by us, block by block, each hashed while the next is read; any other (chunked, compressed, strings,
    never written) is read by h5py, then hashed."""
    offset = _raw_extent(node)
    if offset is None:
        a = node[()]
        block = hashable(a)
        hasher.feed(field_header(name, block))
        hasher.feed(block.reshape(-1).view(np.uint8))
        return a
    a = np.empty(node.shape, dtype=node.dtype)
    hasher.feed(field_header(name, a))
    _read_raw(node.file.id.get_vfd_handle(), offset, a, hasher)
    return a
