"""How each point type lies in a dataset file, read and written (the ``train``/``test`` part of
:mod:`annbench.datasets.format`).

* numbers (``point_type`` ``float``/``float32``, ``float16``, ``uint8``, ``int8``): ``train``/``test``
  n×d in their own dtype; float64 and other numbers are read as float32 (as always);
* bits (``point_type = "bit"``, dense): annbench writes them packed, uint8 rows of ``ceil(d/8)``
  bytes, attrs ``dimension`` = d bits and ``bit_packing = "packbits"``; ann-benchmarks writes
  one bool (or 0/1 number) per bit, n×d, and stores its hamming distances as the *fraction* of
  differing bits (``np.mean(a ^ b)``). Both are read; in memory bits are always packed and
  distances are bit counts;
* sets (``type = "sparse"``, ann-benchmarks' layout): ``train``/``test`` one flat array of item ids,
  ``size_train``/``size_test`` the size of each set, ``dimension`` the universe; in memory a
  :class:`~annbench.quality.points.SetRows` CSR matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from annbench.core.errors import UserError
from annbench.quality.points import (
    METRICS_OF,
    SetRows,
    pack_bits,
    packed_width,
    padding_set,
    point_type_of,
    set_rows,
)

#: ``point_type`` attr values read as each in-memory point type (``float`` is ann-benchmarks').
ATTR_TYPES = {"float": "float32", "float32": "float32", "float16": "float16", "uint8": "uint8", "int8": "int8",
              "bit": "bit"}
#: The ``bit_packing`` attr of annbench's packed bit files.
PACKBITS = "packbits"
#: The extra fields of the sparse layout.
SIZE_FIELDS = ("size_train", "size_test")

Fail = Callable[[str], UserError]


def declared_type(attrs: dict[str, Any], distance: str, fail: Fail) -> str:
    """The in-memory point type the file's attrs declare (ann-benchmarks' files: from ``type``)."""
    if attrs.get("type", "dense") == "sparse":
        point_type = "set"
    else:
        raw = str(attrs.get("point_type", "float"))
        if raw not in ATTR_TYPES:
            raise fail(f"attr 'point_type' is {raw!r}; valid: {', '.join(ATTR_TYPES)}")
        point_type = ATTR_TYPES[raw]
    if distance not in METRICS_OF[point_type]:
        raise fail(f"attr 'distance' is {distance!r}, which is not defined on {point_type} points; valid there: "
                   f"{', '.join(METRICS_OF[point_type])}")
    return point_type


def _numbers(key: str, a: np.ndarray, point_type: str, fail: Fail) -> np.ndarray:
    if a.ndim != 2 or 0 in a.shape:
        raise fail(f"field '{key}' has shape {a.shape}, expected a non-empty 2-D array")
    if a.dtype.kind not in "biuf":
        raise fail(f"field '{key}' has dtype {a.dtype}, expected numbers")
    want = point_type if point_type != "float32" else None
    if want is not None and a.dtype != np.dtype(want):
        valid = repr(a.dtype.name) if a.dtype.name in ATTR_TYPES else "'float' (read as float32)"
        raise fail(f"field '{key}' has dtype {a.dtype} but attr 'point_type' is {want!r}; they must agree (valid "
                   f"for these rows: point_type {valid})")
    # point_type float: float32 whatever the stored numbers (ann-benchmarks' integer files, as always)
    a = np.ascontiguousarray(a if want is not None else a.astype(np.float32, copy=False))
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise fail(f"field '{key}' contains NaN or inf")
    return a


def _bits(key: str, a: np.ndarray, attrs: dict[str, Any], fail: Fail) -> tuple[np.ndarray, int]:
    if a.ndim != 2 or 0 in a.shape:
        raise fail(f"field '{key}' has shape {a.shape}, expected a non-empty 2-D array")
    if attrs.get("bit_packing") == PACKBITS:
        if a.dtype != np.uint8:
            raise fail(f"field '{key}' has dtype {a.dtype}; packed bits are uint8")
        bits = int(attrs.get("dimension", 0))
        if packed_width(bits) != a.shape[1] or bits <= 0:
            raise fail(f"attr 'dimension' is {attrs.get('dimension')} bits but '{key}' holds {a.shape[1]} bytes a row, "
                       f"i.e. {a.shape[1] * 8 - 7} to {a.shape[1] * 8} bits")
        if padding_set(a, bits):
            raise fail(f"field '{key}' has 1s past bit {bits} (the padding of its last byte must be 0)")
        return np.ascontiguousarray(a), bits
    if a.dtype != np.bool_ and (a.dtype.kind not in "biuf" or not np.isin(a, (0, 1)).all()):
        raise fail(f"field '{key}' of a bit dataset holds values other than 0 and 1 (dtype {a.dtype}); valid: bool "
                   f"or 0/1 per bit, or packed uint8 with attr bit_packing='{PACKBITS}'")
    if "dimension" in attrs and int(attrs["dimension"]) != a.shape[1]:
        raise fail(f"attr 'dimension' is {attrs['dimension']} but '{key}' has {a.shape[1]} bits a row")
    return pack_bits(a), int(a.shape[1])


def _sets(key: str, flat: np.ndarray, sizes: np.ndarray | None, universe: int, fail: Fail) -> SetRows:
    size_key = f"size_{key}"
    if sizes is None:
        raise fail(f"missing field '{size_key}' (a sparse dataset lists its sets' sizes)")
    if flat.ndim != 1 or sizes.ndim != 1 or flat.dtype.kind not in "iu" or sizes.dtype.kind not in "iu":
        raise fail(f"fields '{key}' and '{size_key}' must be 1-D integer arrays (flat item ids, set sizes)")
    if len(sizes) == 0 or (sizes < 0).any() or int(sizes.sum()) != len(flat):
        raise fail(f"field '{size_key}' sums to {int(sizes.sum()) if len(sizes) else 0} but '{key}' holds {len(flat)} "
                   f"item ids (sizes must be >= 0 and add up to them)")
    if len(flat) and (int(flat.min()) < 0 or int(flat.max()) >= universe):
        bad = int(flat.min()) if int(flat.min()) < 0 else int(flat.max())
        raise fail(f"field '{key}' has item id {bad} outside the universe [0, {universe}) of attr 'dimension'")
    return set_rows(flat, sizes, universe).read_only()


def decode(attrs: dict[str, Any], fields: dict[str, np.ndarray | None], distance: str,
           fail: Fail) -> tuple[Any, Any, str, int, float]:
    """``(train, test, point_type, dimension, distance_scale)`` of a file's fields as stored: rows
    in their in-memory form (validated; any defect is ``fail(message)``), and the factor its stored
    distances are multiplied by to be annbench's (ann-benchmarks' hamming fractions: the bits)."""
    point_type = declared_type(attrs, distance, fail)
    train, test = fields["train"], fields["test"]
    assert train is not None and test is not None
    if point_type == "set":
        if "dimension" not in attrs:
            raise fail("attr 'dimension' (the universe of item ids) is missing; a sparse dataset needs it")
        universe = int(attrs["dimension"])
        return (_sets("train", train, fields.get("size_train"), universe, fail),
                _sets("test", test, fields.get("size_test"), universe, fail), point_type, universe, 1.0)
    if point_type == "bit":
        (train, bits), (test, test_bits) = _bits("train", train, attrs, fail), _bits("test", test, attrs, fail)
        if bits != test_bits:
            raise fail(f"train has {bits} bits a row but test has {test_bits}")
        return train, test, point_type, bits, 1.0 if attrs.get("bit_packing") == PACKBITS else float(bits)
    train, test = _numbers("train", train, point_type, fail), _numbers("test", test, point_type, fail)
    if train.dtype != test.dtype:
        raise fail(f"train has dtype {train.dtype} but test has {test.dtype}")
    if train.shape[1] != test.shape[1]:
        raise fail(f"train has dimension {train.shape[1]} but test has {test.shape[1]}")
    if "dimension" in attrs and int(attrs["dimension"]) != train.shape[1]:
        raise fail(f"attr 'dimension' is {attrs['dimension']} but train has {train.shape[1]} columns")
    return train, test, point_type, int(train.shape[1]), 1.0


def encode(train: Any, test: Any, distance: str, dimension: int | None = None
           ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The fields and attrs that store in-memory rows ``train``/``test`` (as :func:`decode` reads them
    back): numbers in their own dtype (float64 as float32), bits packed, sets in the sparse layout.
    ``dimension`` is the number of bits of packed rows (default: 8 a byte)."""
    if distance == "jaccard":
        train, test = SetRows(train), SetRows(test)
        fields = {"train": train.indices.astype(np.int32), "test": test.indices.astype(np.int32),
                  "size_train": train.sizes.astype(np.int32), "size_test": test.sizes.astype(np.int32)}
        return fields, {"type": "sparse", "point_type": "bit", "dimension": int(train.shape[1])}
    if distance == "hamming":
        train, test = np.ascontiguousarray(train, dtype=np.uint8), np.ascontiguousarray(test, dtype=np.uint8)
        bits = int(dimension or train.shape[1] * 8)
        for key, a in (("train", train), ("test", test)):  # never write what the load would refuse
            if a.ndim != 2 or packed_width(bits) != a.shape[1]:
                raise ValueError(f"{key} has shape {a.shape}; {bits} bits are {packed_width(bits)} bytes a row")
            if padding_set(a, bits):
                raise ValueError(f"{key} has 1s past bit {bits} (the padding of its last byte must be 0)")
        return ({"train": train, "test": test},
                {"type": "dense", "point_type": "bit", "bit_packing": PACKBITS, "dimension": bits})
    train, test = np.asarray(train), np.asarray(test)
    point_type = point_type_of(train, distance)
    dtype = np.dtype(point_type)
    return ({"train": np.ascontiguousarray(train, dtype=dtype), "test": np.ascontiguousarray(test, dtype=dtype)},
            {"type": "dense", "point_type": "float" if point_type == "float32" else point_type,
             "dimension": int(train.shape[1])})
