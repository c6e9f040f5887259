"""Datasets by name: what each is, whether it is here, and how to get it.

``resolve`` turns a ``--dataset`` argument (a registered name or a file path) into a
file on disk, building a registered dataset the first time it is asked for.
"""

from __future__ import annotations

import difflib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from annbench.datasets.format import GROUND_TRUTH_K, Dataset, load_dataset, write_dataset
from annbench.errors import UserError
from annbench.groundtruth import exact_knn

log = logging.getLogger(__name__)


@dataclass
class RawData:
    """What a builder produces before ground truth: the split vectors and extras."""

    train: np.ndarray
    test: np.ndarray
    distance: str
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    keys: np.ndarray | list[str] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset. ``build(source_dir)`` returns its :class:`RawData`."""

    name: str
    distance: str
    dimension: int
    n_train: int
    n_test: int
    origin: str
    build: Callable[[Path | None], RawData]
    labels: bool = False


def registry() -> dict[str, DatasetSpec]:
    """Every registered dataset by name."""
    from annbench.datasets.builtin import BUILTIN_SPECS

    return {s.name: s for s in BUILTIN_SPECS}


def dataset_path(name: str, data_dir: Path) -> Path:
    return Path(data_dir) / f"{name}.hdf5"


def materialize(raw: RawData, path: Path, name: str) -> Path:
    """Compute exact ground truth for ``raw`` and write it as a dataset file."""
    if len(raw.train) < GROUND_TRUTH_K:
        raise UserError(f"dataset {name}: {len(raw.train)} train points, need at least {GROUND_TRUTH_K}")
    t0 = time.perf_counter()
    ids, dists = exact_knn(raw.train, raw.test, raw.distance, GROUND_TRUTH_K)
    log.info("ground truth for %s: %d × %d queries in %.1f s", name, len(raw.test), GROUND_TRUTH_K,
             time.perf_counter() - t0)
    return write_dataset(path, train=raw.train, test=raw.test, distance=raw.distance, neighbors=ids,
                         distances=dists, train_labels=raw.train_labels, test_labels=raw.test_labels,
                         keys=raw.keys, attrs={"name": name, **raw.attrs})


def _unknown(name: str, known: list[str]) -> UserError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; valid: {', '.join(sorted(known))}"
    return UserError(f"unknown dataset {name!r} (not a registered name nor an existing .hdf5 file){hint}")


def resolve(name_or_path: str, data_dir: Path, source_dir: Path | None = None) -> tuple[str, Path]:
    """``(dataset name, file path)`` for a registered name, the name of a file in ``data_dir``
    (``<name>.hdf5``, e.g. an encoded dataset) or a dataset file path.

    A registered dataset missing from ``data_dir`` is built there first.
    """
    candidate = Path(name_or_path)
    if candidate.suffix in (".hdf5", ".h5") or candidate.is_file():
        if not candidate.is_file():
            raise UserError(f"dataset file {candidate} does not exist")
        return candidate.stem, candidate
    specs = registry()
    if "/" in name_or_path or "\\" in name_or_path or name_or_path in ("", ".", ".."):
        raise UserError(f"dataset name {name_or_path!r} is not a registered name nor an existing file")
    path = dataset_path(name_or_path, data_dir)
    if name_or_path not in specs:
        if path.is_file():  # made here by a command (e.g. encode.py), not registered
            return name_or_path, path
        raise _unknown(name_or_path, list(specs))
    if not path.is_file():
        spec = specs[name_or_path]
        log.info("building %s in %s (%s)", spec.name, data_dir, spec.origin)
        materialize(spec.build(source_dir), path, spec.name)
    return name_or_path, path


def load(name_or_path: str, data_dir: Path, source_dir: Path | None = None) -> Dataset:
    """Resolve, then load and validate."""
    name, path = resolve(name_or_path, data_dir, source_dir)
    return load_dataset(path, name=name)
