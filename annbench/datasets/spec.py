"""What a registered dataset is: its shape, where its upstream files come from, how it is built."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from annbench.core.errors import UserError

#: Dataset names are file names: letters, digits, ``.``, ``_``, ``-``; no path separators.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_name(name: str) -> str:
    """``name`` if it is a valid dataset name, else a :class:`UserError` saying what is valid."""
    if not NAME_PATTERN.fullmatch(name or "") or name.endswith((".hdf5", ".h5")):
        raise UserError(f"dataset name {name!r} is invalid; valid: letters, digits, '.', '_' and '-', starting "
                        f"with a letter or digit, no path separators and no .hdf5 suffix")
    return name


@dataclass
class RawData:
    """What a builder produces before ground truth: the split vectors and extras."""

    train: np.ndarray
    test: np.ndarray
    distance: str
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    keys: np.ndarray | list[str] | None = None
    test_keys: np.ndarray | list[str] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    #: Bits a row of packed bit rows (hamming); None: 8 a byte.
    bits: int | None = None
    #: A filtered dataset (see annbench.datasets.attributes): per-point tags (CSR or one label per row)
    #: and values, per-query required tags and [low, high) ranges; its ground truth is then filtered.
    train_tags: Any = None
    test_tags: Any = None
    train_values: np.ndarray | None = None
    test_ranges: np.ndarray | None = None


@dataclass(frozen=True)
class Upstream:
    """One file as its publisher distributes it.

    ``folder`` is the upstream's conventional folder: the key prefix in the checksum table
    and a sub-folder where a ``--source-dir`` mirror may keep the file. An archive lists the
    ``members`` the builder reads; a plain file provides itself.
    """

    folder: str
    name: str
    urls: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.folder}/{self.name}"

    @property
    def provides(self) -> tuple[str, ...]:
        """The input file names this download yields."""
        return tuple(Path(m).name for m in self.members) or (self.name,)


class Inputs:
    """Local paths of a builder's input files, by file name."""

    def __init__(self, paths: dict[str, Path], origin: str) -> None:
        self.paths = paths
        self.origin = origin

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset. ``build(inputs)`` returns its :class:`RawData`.

    ``upstream`` lists the published files the builder reads (none for generated sets);
    ``prebuilt_url`` is ann-benchmarks' ready-made HDF5, where one exists.
    """

    name: str
    distance: str
    dimension: int
    n_train: int
    n_test: int
    origin: str
    build: Callable[[Inputs], RawData]
    labels: bool = False
    keys: bool = False
    upstream: tuple[Upstream, ...] = ()
    prebuilt_url: str | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(n for u in self.upstream for n in u.provides)

    def how(self) -> str:
        """How it would be obtained, in a few words, for listings."""
        if not self.upstream:
            return self.origin
        files = ", ".join(u.name for u in self.upstream)
        steps = ["--source-dir"] + (["ann-benchmarks HDF5"] if self.prebuilt_url else [])
        if any(u.urls for u in self.upstream):
            steps.append(f"download {files}")
        else:
            steps.append(f"{files}: no direct download")
        return " > ".join(steps)
