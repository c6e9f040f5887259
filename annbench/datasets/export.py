"""A dataset written out for other tools: big-ann-benchmarks' binary files, or ann-benchmarks' HDF5."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from annbench.core.errors import UserError
from annbench.core.processes import temporary_name
from annbench.datasets.bigann import write_xbin
from annbench.datasets.format import Dataset
from annbench.quality.points import unpack_bits

#: Export formats: a big-ann-benchmarks suffix (base, query and ``.gt.ibin`` ground-truth ids), or
#: ann-benchmarks' HDF5 layout.
FORMATS = ("u8bin", "i8bin", "fbin", "ab-hdf5")


def export(ds: Dataset, fmt: str, out_dir: Path, force: bool = False) -> list[Path]:
    """Write ``ds`` in ``fmt`` into ``out_dir``; the paths written. Existing files are refused
    unless ``force``; values a format cannot hold exactly are refused (one line, nothing written)."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is unknown; valid: {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    names = ([f"{ds.name}.hdf5"] if fmt == "ab-hdf5" else
             [f"{ds.name}.base.{fmt}", f"{ds.name}.query.{fmt}", f"{ds.name}.gt.ibin"])
    paths = [out_dir / n for n in names]
    if not force and (there := [p for p in paths if p.exists()]):
        raise UserError(f"file {there[0]} exists; pass --force to overwrite it")
    if fmt == "ab-hdf5":
        return [_ab_hdf5(ds, paths[0])]
    if ds.point_type in ("bit", "set"):
        raise UserError(f"dataset {ds.name} holds {ds.point_type} points; --format {fmt} holds vectors, valid for "
                        f"it: ab-hdf5")
    for a, what in ((ds.train, "train"), (ds.test, "test")):  # checked before anything is written
        if not np.array_equal(a.astype(_dtype(fmt)), a):
            raise UserError(f"dataset {ds.name}: its {what} values ({ds.point_type}) are not all {_dtype(fmt).name} "
                            f"values; valid formats for it: {', '.join(_formats_for(ds))}")
    write_xbin(paths[0], ds.train)
    write_xbin(paths[1], ds.test)
    write_xbin(paths[2], ds.neighbors.astype(np.int32))
    return paths


def _dtype(fmt: str) -> np.dtype:
    return np.dtype({"u8bin": "u1", "i8bin": "i1", "fbin": "<f4"}[fmt])


def _formats_for(ds: Dataset) -> list[str]:
    return [f for f in FORMATS[:3] if np.array_equal(ds.train.astype(_dtype(f)), ds.train)] + ["ab-hdf5"]


def _ab_hdf5(ds: Dataset, path: Path) -> Path:
    """ann-benchmarks' layout, as its ``write_output`` / ``write_sparse_output`` make it: numbers as
    float32 (``point_type = "float"``), bits one bool per bit with hamming distances as fractions of
    the bits, sets as flat ids with ``size_train``/``size_test``."""
    attrs = {"distance": ds.distance, "dimension": ds.dimension, "type": "dense", "point_type": "float"}
    distances = ds.distances
    if ds.point_type == "set":
        fields = {"train": ds.train.indices, "test": ds.test.indices, "size_train": ds.train.sizes,
                  "size_test": ds.test.sizes}
        attrs.update(type="sparse", point_type="bit")
    elif ds.point_type == "bit":
        fields = {"train": unpack_bits(ds.train, ds.dimension, bool), "test": unpack_bits(ds.test, ds.dimension, bool)}
        attrs["point_type"] = "bit"
        distances = distances / ds.dimension
    else:
        fields = {"train": ds.train.astype(np.float32), "test": ds.test.astype(np.float32)}
    tmp = path.with_name(temporary_name(path.name))
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(attrs)
            for name, a in {**fields, "neighbors": ds.neighbors.astype(np.int32), "distances": distances}.items():
                f.create_dataset(name, data=a)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
