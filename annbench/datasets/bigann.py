"""big-ann-benchmarks' binary formats, as its NeurIPS'23 filter track stores YFCC-10M.

* ``.u8bin`` / ``.i8bin`` / ``.fbin``: header ``n, d`` (two uint32), then ``n × d`` uint8 / int8 / float32
  values, row-major (``benchmark/dataset_io.py``: ``xbin_mmap``);
* ``.spmat``: a CSR matrix, header ``nrow, ncol, nnz`` (three int64), then ``indptr`` (nrow + 1 int64),
  ``indices`` (nnz int32), ``data`` (nnz float32) (``read_sparse_matrix``). In the filter track row i of
  ``base.metadata.*.spmat`` holds the tags of point i, and of ``query.metadata.*.spmat`` the tags a query
  requires, all of them.

Both are memory-mapped and cut to a row range before anything is copied, so a slice of a 10M-point file
costs the slice. A header that disagrees with the file's size is a one-line error.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from annbench.core.errors import UserError
from annbench.core.processes import temporary_name

#: Element type of each vector suffix (``.ibin``: int32 ids, e.g. ground truth).
XBIN_DTYPES = {".u8bin": np.uint8, ".i8bin": np.int8, ".fbin": np.float32, ".ibin": np.int32}


def is_xbin(path: str | Path) -> bool:
    return Path(path).suffix.lower() in XBIN_DTYPES


def parse_rows(text: str | None) -> slice | None:
    """``START:STOP`` (either may be empty) → a slice of rows; None for None."""
    if text is None:
        return None
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError
        s = slice(int(start) if start else None, int(stop) if stop else None)
    except ValueError:
        raise UserError(f"row range {text!r}; valid: START:STOP (0-based, STOP excluded, e.g. 0:100000)") from None
    if (s.start or 0) < 0 or (s.stop is not None and s.stop <= (s.start or 0)):
        raise UserError(f"row range {text!r}; valid: 0 <= START < STOP")
    return s


def _rows(path: Path, rows: slice | None, n: int) -> range:
    r = range(n)[rows] if rows is not None else range(n)
    if rows is not None and ((rows.stop or n) > n or (rows.start or 0) >= n):
        raise UserError(f"file {path}: row range {rows.start or 0}:{rows.stop} exceeds its {n} rows; valid: a range "
                        f"within 0:{n}")
    return r


def read_xbin(path: str | Path, rows: slice | None = None) -> np.ndarray:
    """The rows ``rows`` (default all) of a ``.u8bin`` / ``.i8bin`` / ``.fbin`` file, memory-mapped."""
    path = Path(path)
    dtype = np.dtype(XBIN_DTYPES[path.suffix.lower()])
    size = path.stat().st_size
    if size < 8:
        raise UserError(f"file {path}: {size} bytes, shorter than the 8-byte header (n, d)")
    n, d = (int(v) for v in np.fromfile(path, dtype=np.uint32, count=2))
    if size != 8 + n * d * dtype.itemsize:
        raise UserError(f"file {path}: header says {n} x {d} {dtype} values ({8 + n * d * dtype.itemsize} bytes with "
                        f"the header) but the file has {size} bytes; valid: a complete {path.suffix} file")
    r = _rows(path, rows, n)
    return np.memmap(path, dtype=dtype, mode="r", offset=8, shape=(n, d))[r.start:r.stop]


def write_xbin(path: str | Path, a: np.ndarray) -> Path:
    """Write the 2-D ``a`` as a ``.u8bin`` / ``.i8bin`` / ``.fbin`` / ``.ibin`` file (the header, then the
    rows), atomically; values the suffix's type cannot hold exactly are a one-line error."""
    path = Path(path)
    dtype = np.dtype(XBIN_DTYPES[path.suffix.lower()])
    a = np.asarray(a)
    out = a.astype(dtype)
    if a.ndim != 2 or not np.array_equal(out, a):
        raise UserError(f"file {path}: cannot hold this {a.dtype} {a.shape} array exactly; valid: 2-D {dtype} values")
    tmp = path.with_name(temporary_name(path.name))
    try:
        with open(tmp, "wb") as fh:
            np.array(a.shape, dtype=np.uint32).tofile(fh)
            np.ascontiguousarray(out).tofile(fh)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_spmat(path: str | Path, rows: slice | None = None) -> sp.csr_matrix:
    """The rows ``rows`` (default all) of a ``.spmat`` CSR file, as a boolean CSR matrix (nonzero = tag)."""
    path = Path(path)
    size = path.stat().st_size
    if size < 24:
        raise UserError(f"file {path}: {size} bytes, shorter than the 24-byte header (nrow, ncol, nnz)")
    nrow, ncol, nnz = (int(v) for v in np.fromfile(path, dtype=np.int64, count=3))
    want = 24 + (nrow + 1) * 8 + nnz * 8
    if min(nrow, ncol, nnz) < 0 or size != want:
        raise UserError(f"file {path}: header says {nrow} rows, {ncol} columns, {nnz} nonzeros ({want} bytes) but "
                        f"the file has {size} bytes; valid: a complete .spmat file")
    indptr = np.memmap(path, dtype=np.int64, mode="r", offset=24, shape=nrow + 1)
    indices = np.memmap(path, dtype=np.int32, mode="r", offset=24 + (nrow + 1) * 8, shape=nnz)
    if indptr[0] != 0 or indptr[-1] != nnz:
        raise UserError(f"file {path}: indptr runs from {indptr[0]} to {indptr[-1]}; valid: 0 to nnz = {nnz}")
    r = _rows(path, rows, nrow)
    lo, hi = int(indptr[r.start]), int(indptr[r.stop])
    part = np.array(indices[lo:hi])
    if len(part) and (part.min() < 0 or part.max() >= ncol):
        raise UserError(f"file {path}: a column index outside [0, {ncol}) in rows {r.start}:{r.stop}")
    return sp.csr_matrix((np.ones(hi - lo, dtype=bool), part, np.array(indptr[r.start:r.stop + 1]) - lo),
                         shape=(len(r), ncol))
