"""Point types: what one row of a dataset is, and which distances apply to it.

``float32``, ``float16``, ``uint8``, ``int8``: dense numeric vectors (euclidean, angular, ip);
``bit``: binary codes packed 8 bits a byte in a ``uint8`` array (numpy's ``packbits`` order, the
first bit in the high bit of the first byte; ``dimension`` = number of bits, padding bits 0), under
``hamming``; ``set``: sets of item ids in ``[0, dimension)``, a CSR matrix of 0/1 rows
(:class:`SetRows`), under ``jaccard``.

:func:`convert` is the one place a point type becomes another (the harness's conversion for an
adapter that does not take the dataset's type natively).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

#: Dense numeric point types, narrowest last; float64 data is read as float32.
NUMERIC_TYPES = ("float32", "float16", "uint8", "int8")
POINT_TYPES = (*NUMERIC_TYPES, "bit", "set")
#: The distances defined on each point type.
NUMERIC_METRICS = ("euclidean", "angular", "ip")
METRICS_OF: dict[str, tuple[str, ...]] = {**dict.fromkeys(NUMERIC_TYPES, NUMERIC_METRICS),
                                          "bit": ("hamming",), "set": ("jaccard",)}


class SetRows(sp.csr_matrix):
    """Rows of sets as a CSR 0/1 matrix (one row a set, ``shape[1]`` the universe), with ``len()``
    the number of rows as for a dense array (scipy's own ``len()`` refuses)."""

    def __len__(self) -> int:
        return int(self.shape[0])

    @property
    def sizes(self) -> np.ndarray:
        """The size of each set (int64)."""
        return np.diff(self.indptr).astype(np.int64)

    def read_only(self) -> SetRows:
        for a in (self.data, self.indices, self.indptr):
            a.setflags(write=False)
        return self


def set_rows(flat: np.ndarray, sizes: np.ndarray, universe: int) -> SetRows:
    """The sets of ann-benchmarks' sparse layout: ``flat`` item ids, set ``i`` the next ``sizes[i]``
    of them; duplicates within a set count once. Ids are not checked here (see :func:`set_problem`)."""
    indptr = np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))])
    m = SetRows((np.ones(len(flat), dtype=np.uint8), np.asarray(flat, dtype=np.int32), indptr),
                shape=(len(sizes), universe))
    m.sum_duplicates()  # sorts each row's ids and merges repeats (data then > 1)
    m.data[:] = 1
    return m


def sets_from_lists(sets: list[list[int]] | list[np.ndarray], universe: int) -> SetRows:
    """:class:`SetRows` of Python sets / id lists."""
    sizes = np.array([len(s) for s in sets], dtype=np.int64)
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sets]) if len(sets) else np.zeros(0, np.int64)
    return set_rows(flat, sizes, universe)


def point_type_of(a: Any, metric: str) -> str:
    """The point type of an in-memory array under ``metric``: bits under hamming, sets under
    jaccard, else the dtype's name (float64 and other numbers count as float32, as they are read)."""
    if metric == "hamming":
        return "bit"
    if metric == "jaccard":
        return "set"
    name = np.dtype(a.dtype).name
    return name if name in NUMERIC_TYPES else "float32"


def packed_width(bits: int) -> int:
    """Bytes a packed row of ``bits`` bits takes."""
    return (int(bits) + 7) // 8


def pack_bits(a: np.ndarray) -> np.ndarray:
    """Rows of 0/1 (or bool) values packed 8 a byte (C-contiguous uint8)."""
    return np.ascontiguousarray(np.packbits(np.asarray(a) != 0, axis=1))


def unpack_bits(a: np.ndarray, bits: int, dtype: Any = np.float32) -> np.ndarray:
    """Packed rows as 0/1 values of ``dtype``, ``bits`` columns (a 1-D row gives a 1-D result)."""
    return np.unpackbits(np.asarray(a, dtype=np.uint8), axis=-1, count=bits).astype(dtype)


def padding_set(a: np.ndarray, bits: int) -> bool:
    """Whether some packed row has a 1 in its padding (the bits past ``bits`` in the last byte)."""
    spare = a.shape[1] * 8 - bits
    return spare > 0 and bool((a[:, -1] & np.uint8((1 << spare) - 1)).any())


def dimension_of(a: Any, point_type: str, bits: int | None = None) -> int:
    """The dimension of rows ``a``: bits for ``bit`` (``bits`` when known, else 8 per byte), the
    universe for ``set``, else the number of columns."""
    if point_type == "bit" and bits is not None:
        return int(bits)
    return int(a.shape[1]) * (8 if point_type == "bit" else 1)


def convert(a: Any, source: str, target: str, dimension: int, single: bool = False) -> Any:
    """Rows ``a`` of point type ``source`` as point type ``target`` (``dimension``: bits or universe).

    Numbers widen to float32 exactly (uint8, int8 and float16 values are all float32 values);
    bits and sets become dense 0/1 rows of the target dtype. Narrowing (float32 to uint8) is never
    done: the harness does not change what is measured. uint8 becomes int8 shifted by -128 (only
    under euclidean, see :func:`conversion_target`). Sets become packed bits (their indicator
    rows) for libraries that serve jaccard as tanimoto over bits. ``single``: ``a`` is one query
    (a 1-D array, or a one-row CSR matrix): the result is 1-D."""
    if source == target:
        return a
    if (source, target) == ("uint8", "int8"):  # v XOR 0x80 read as int8 is v - 128: one pass, no widening
        return np.bitwise_xor(np.asarray(a, dtype=np.uint8), np.uint8(0x80)).view(np.int8)
    if target == "bit" and source == "set":
        bits = pack_bits(a.toarray())
        return bits[0] if single else bits
    if target in ("bit", "set") or (source in NUMERIC_TYPES and target != "float32"):
        raise ValueError(f"cannot convert {source} points to {target}")
    dtype = np.dtype(target)
    if source == "bit":
        return unpack_bits(a, dimension, dtype)
    if source == "set":
        dense = np.asarray(a.toarray(), dtype=dtype)
        return dense[0] if single else dense
    return np.asarray(a, dtype=dtype)


def exactly(v: np.ndarray, point_type: str) -> np.ndarray | None:
    """Numbers ``v`` as values of the numeric ``point_type``, where each of them is one exactly; None where
    one is not (a fraction, or a value out of range, for an integer type; a value float16 would round)."""
    v = np.asarray(v, dtype=np.float64)
    dtype = np.dtype(point_type)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        fits = bool(np.all(v == np.round(v))) and (not v.size or info.min <= v.min() and v.max() <= info.max)
        return v.astype(dtype) if fits else None
    with np.errstate(over="ignore"):
        cast = v.astype(dtype)
    return cast if np.array_equal(cast.astype(np.float64), v) else None


def conversion_target(source: str, accepted: tuple[str, ...], metric: str = "") -> str | None:
    """The point type an adapter taking ``accepted`` is given data of type ``source`` in: ``source``
    itself when accepted, else the first of ``accepted`` it converts to exactly (numbers to float32;
    bits and sets to dense 0/1 ``uint8`` or ``float32``, sets to packed bits); None when none does.

    One exception keeps 8-bit data 8-bit: under ``euclidean``, uint8 rows go to an adapter taking int8
    as int8 rows shifted by -128 (``x - 128``): every difference ``x_i - y_i``, so every euclidean
    distance, is unchanged (under angular and ip the shift changes the answer, so there: float32)."""
    if source in accepted:
        return source
    if source == "uint8" and metric == "euclidean" and "int8" in accepted:
        return "int8"
    allowed = ("float32",) if source in NUMERIC_TYPES else ("bit", "uint8", "float32") if source == "set" else \
        ("uint8", "float32")
    return next((t for t in accepted if t in allowed), None)


def nbytes(a: Any) -> int:
    """Bytes rows ``a`` take in memory (a CSR matrix: its three arrays)."""
    if sp.issparse(a):
        return int(a.data.nbytes + a.indices.nbytes + a.indptr.nbytes)
    return int(np.asarray(a).nbytes)
