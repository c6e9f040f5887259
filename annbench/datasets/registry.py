"""Datasets by name: what each is, whether it is here, and how to get it.

``prepare`` turns a ``--dataset`` argument (a registered name, a dataset made with
``dataset.py create``, a quick-subset name, or a file path) into a file on disk, trying
in order: (1) the data folder; (2) the source folder (``--source-dir`` or
``$ANNBENCH_SOURCE_DIR``): a copy of the published HDF5 or the upstream files; (3) the
HDF5 ann-benchmarks publishes; (4) the upstream files, downloaded, then built.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import h5py

from annbench.core import paths
from annbench.core.errors import UserError
from annbench.datasets.attributes import filtered_ground_truth
from annbench.datasets.checksums import CHECKSUMS
from annbench.datasets.download import DownloadError, download
from annbench.datasets.format import GROUND_TRUTH_K, Dataset, file_attrs, load_dataset, rebuild_hint, write_dataset
from annbench.datasets.sources import fetch, locate, provenance
from annbench.datasets.spec import DatasetSpec, Inputs, RawData, Upstream, check_name
from annbench.quality.groundtruth import exact_knn

log = logging.getLogger(__name__)

__all__ = ["DatasetSpec", "Prepared", "RawData", "Upstream", "dataset_path", "load", "local_datasets", "materialize",
           "prepare", "registry", "resolve", "subset_name"]

#: Where downloaded upstream files and extracted archive members are kept, inside the data folder.
CACHE_FOLDER = ".sources"
#: ``<base>-train<N>`` and/or ``-test<M>``: the first N train / M test rows of ``<base>``.
SUBSET = re.compile(r"(?P<base>.+?)(?:-train(?P<n>\d+))?(?:-test(?P<q>\d+))?")


@dataclass(frozen=True)
class Prepared:
    """A dataset file on disk and how it got there."""

    name: str
    path: Path
    how: str


def registry() -> dict[str, DatasetSpec]:
    """Every registered dataset by name: the built-ins, then the real datasets."""
    from annbench.datasets.builtin import BUILTIN_SPECS
    from annbench.datasets.filtered_sets import FILTERED_SPECS
    from annbench.datasets.surnames import SURNAMES_SPECS
    from annbench.datasets.upstream import UPSTREAM_SPECS

    return {s.name: s for s in (*BUILTIN_SPECS, *UPSTREAM_SPECS, *SURNAMES_SPECS, *FILTERED_SPECS)}


def dataset_path(name: str, data_dir: Path) -> Path:
    return Path(data_dir) / f"{name}.hdf5"


def writes_into(name_or_path: str, data_dir: Path, max_train: int | None = None, max_test: int | None = None) -> bool:
    """Whether :func:`prepare` would write into ``data_dir``: the file it makes there is not there yet
    (a dataset given by its path is written only as a subset)."""
    candidate = Path(name_or_path)
    given_file = candidate.suffix in (".hdf5", ".h5") or candidate.is_file()
    if given_file and not (max_train or max_test):
        return False
    base = candidate.stem if given_file else name_or_path
    return not dataset_path(subset_name(base, max_train, max_test), data_dir).is_file()


def local_datasets(data_dir: Path) -> dict[str, Path]:
    """Dataset files in the data folder, by name."""
    d = Path(data_dir)
    return {p.stem: p for p in sorted(d.glob("*.hdf5"))} if d.is_dir() else {}


def materialize(raw: RawData, path: Path, name: str) -> Path:
    """Compute exact ground truth for ``raw`` and write it as a dataset file."""
    if len(raw.train) < GROUND_TRUTH_K:
        raise UserError(f"dataset {name}: {len(raw.train)} train points, need at least {GROUND_TRUTH_K}")
    t0 = time.perf_counter()
    filters = None
    if raw.train_tags is None:
        ids, dists = exact_knn(raw.train, raw.test, raw.distance, GROUND_TRUTH_K)
    else:
        ids, dists, filters = filtered_ground_truth(raw.train, raw.test, raw.distance, raw.train_tags, raw.test_tags,
                                                    raw.train_values, raw.test_ranges, GROUND_TRUTH_K, name)
    log.info("ground truth for %s: %d × %d queries in %.1f s", name, len(raw.test), GROUND_TRUTH_K,
             time.perf_counter() - t0)
    return write_dataset(path, train=raw.train, test=raw.test, distance=raw.distance, neighbors=ids,
                         distances=dists, train_labels=raw.train_labels, test_labels=raw.test_labels,
                         keys=raw.keys, test_keys=raw.test_keys, attrs={"name": name, **raw.attrs}, bits=raw.bits,
                         filters=filters)


def subset_name(base: str, max_train: int | None = None, max_test: int | None = None) -> str:
    return base + (f"-train{max_train}" if max_train else "") + (f"-test{max_test}" if max_test else "")


def _unknown(name: str, known: list[str]) -> UserError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; valid: {', '.join(sorted(known))}"
    return UserError(f"unknown dataset {name!r} (not a registered name, a dataset in the data folder nor an "
                     f"existing .hdf5 file){hint}")


def _offline_hint(spec: DatasetSpec) -> str:
    files = ", ".join(f"{u.folder}/{u.name}" for u in spec.upstream)
    notes = "".join(f"; {u.note}" for u in spec.upstream if u.note)
    return (f"to build it offline, put its upstream files ({files}) in a folder DIR (as DIR/<folder>/<file> or "
            f"DIR/<file>) and pass --source-dir DIR or set ${paths.ENV_SOURCE_DIR}{notes}")


def _build(spec: DatasetSpec, found: dict[str, Path], path: Path, how: str) -> Prepared:
    log.info("building %s (%s)", spec.name, how)
    raw = spec.build(Inputs(found, how))
    raw.attrs = {**raw.attrs, "obtained": how, "inputs": provenance(found)}
    materialize(raw, path, spec.name)
    return Prepared(spec.name, path, how)


def _install(tmp: Path, path: Path, how: str, name: str) -> Prepared:
    """Validate a ready-made dataset file ``tmp``, note how it was obtained, rename it into place.
    ``tmp`` is removed whatever happens."""
    try:
        load_dataset(tmp, name=name)
        with h5py.File(tmp, "r+") as f:
            f.attrs["obtained"] = how
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return Prepared(name, path, how)


def _prebuilt(spec: DatasetSpec, path: Path) -> Prepared:
    assert spec.prebuilt_url
    download_to = path.with_name(f".{path.name}.download")
    download(spec.prebuilt_url, download_to, CHECKSUMS.get(f"ann-benchmarks/{spec.name}.hdf5"))
    return _install(download_to, path, f"downloaded ann-benchmarks' prebuilt {spec.prebuilt_url}", spec.name)


def obtain(spec: DatasetSpec, data_dir: Path, source_dir: Path | None) -> Prepared:
    """Get a registered dataset that is not in the data folder yet (sources 2-4)."""
    path = dataset_path(spec.name, data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not spec.upstream:
        return _build(spec, {}, path, spec.origin)
    cache = Path(data_dir) / CACHE_FOLDER
    dirs = [source_dir] if source_dir else []
    notes = []
    if source_dir is not None:
        if not source_dir.is_dir():
            raise UserError(f"source folder {source_dir} does not exist; valid: a folder holding upstream files")
        copy = source_dir / f"{spec.name}.hdf5"
        if copy.is_file():
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            shutil.copyfile(copy, tmp)
            return _install(tmp, path, f"copied from {copy}", spec.name)
    found, missing = locate(spec, dirs, cache)
    if not missing:
        where = f"source folder {source_dir}" if source_dir and any(
            str(p).startswith(str(source_dir)) for p in found.values()) else f"cached upstream files in {cache}"
        return _build(spec, found, path, f"built from {where}")
    if source_dir is not None:
        notes.append(f"{source_dir} lacks {', '.join(u.name for u in missing)}")
    if spec.prebuilt_url:
        try:
            return _prebuilt(spec, path)
        except DownloadError as e:
            notes.append(str(e))
    try:
        for up in missing:
            fetch(up, cache)
    except DownloadError as e:
        notes.append(str(e))
        raise UserError(f"dataset {spec.name} is not in {data_dir} and could not be obtained: {'; '.join(notes)}; "
                        f"{_offline_hint(spec)}") from None
    found, missing = locate(spec, dirs, cache)
    return _build(spec, found, path, "built from downloaded upstream files " + ", ".join(u.name for u in spec.upstream))


def _subset(parent: Prepared, name: str, path: Path, max_train: int | None, max_test: int | None) -> Prepared:
    ds = load_dataset(parent.path, name=parent.name)
    n, q = max_train or len(ds.train), max_test or len(ds.test)
    for flag, value, total, what in (("--max-train", n, len(ds.train), "train"), ("--max-test", q, len(ds.test), "test")):
        if value > total:
            raise UserError(f"{flag} {value} exceeds the {total} {what} points of {parent.name}; valid: 1..{total}")
    if n < GROUND_TRUTH_K:
        raise UserError(f"--max-train {n} is too small; valid: {GROUND_TRUTH_K}..{len(ds.train)} "
                        f"(ground truth keeps {GROUND_TRUTH_K} neighbours)")
    cut = lambda a, m: None if a is None else a[:m]  # noqa: E731
    raw = RawData(train=ds.train[:n], test=ds.test[:q], distance=ds.distance,
                  train_labels=cut(ds.train_labels, n), test_labels=cut(ds.test_labels, q),
                  keys=cut(ds.keys, n), test_keys=cut(ds.test_keys, q), bits=ds.bits,
                  **({} if ds.filters is None else ds.filters.first(n, q)),
                  attrs={"source": f"first {n} train and {q} test rows of {parent.name} ({ds.checksum}); "
                                   f"ground truth recomputed", "parent": parent.name, "parent_checksum": ds.checksum,
                         "parent_path": str(Path(parent.path).resolve()),
                         "obtained": f"subset of {parent.path}",
                         **{k: ds.attrs[k] for k in ("label_names",) if k in ds.attrs}})
    materialize(raw, path, name)
    return Prepared(name, path, f"subset of {parent.name}: {n} train, {q} test, ground truth recomputed")


def prepare(name_or_path: str, data_dir: Path, source_dir: Path | None = None, *,
            max_train: int | None = None, max_test: int | None = None, force: bool = False) -> Prepared:
    """The dataset file for ``name_or_path``, obtained (or built) first when missing; with ``force``
    obtained or built again even when present (the old file is replaced atomically)."""
    data_dir = Path(data_dir)
    if source_dir is None:
        source_dir = paths.default_source_dir()
    candidate = Path(name_or_path)
    if candidate.suffix in (".hdf5", ".h5") or candidate.is_file():
        if not candidate.is_file():
            raise UserError(f"dataset file {candidate} does not exist")
        parent = Prepared(candidate.stem, candidate, f"file {candidate}")
        if not (max_train or max_test):
            if force:
                raise UserError(f"--force: {candidate} is a file given by its path, which annbench cannot rebuild; "
                                f"valid: a registered name or a subset (see dataset.py list)")
            return parent
        name = subset_name(candidate.stem, max_train, max_test)
        path = dataset_path(name, data_dir)
        return Prepared(name, path, f"already in {data_dir}") if path.is_file() and not force else \
            _subset(parent, name, path, max_train, max_test)
    if any(sep in name_or_path for sep in ("/", "\\", os.sep)):
        raise UserError(f"dataset {name_or_path!r} is not an existing file and a dataset name has no path "
                        f"separators; valid: a registered name (see --list-datasets) or a dataset .hdf5 path")
    check_name(name_or_path)
    specs = registry()
    name = subset_name(name_or_path, max_train, max_test)
    path = dataset_path(name, data_dir)
    if path.is_file() and not force:
        return Prepared(name, path, f"already in {data_dir}")
    if name in specs:
        return obtain(specs[name], data_dir, source_dir)
    m = SUBSET.fullmatch(name)
    if m and (m["n"] or m["q"]) and (m["base"] in specs or dataset_path(m["base"], data_dir).is_file()):
        parent = prepare(m["base"], data_dir, source_dir)
        return _subset(parent, name, path, int(m["n"]) if m["n"] else None, int(m["q"]) if m["q"] else None)
    if path.is_file():  # force, but not a dataset annbench knows how to make
        raise UserError(f"--force: dataset {name} in {data_dir} is not registered (made with dataset.py create, or "
                        f"copied there), so it cannot be rebuilt from its sources; {_recreate_hint(path)}")
    raise _unknown(name_or_path, list(dict.fromkeys([*specs, *local_datasets(data_dir)])))


def _recreate_hint(path: Path) -> str:
    try:
        attrs = file_attrs(path)
    except UserError:
        attrs = {}
    return rebuild_hint(path, attrs) if str(attrs.get("obtained", "")).startswith("dataset.py create") else \
        f"remove it (dataset.py remove {path.stem}) or replace the file"


def resolve(name_or_path: str, data_dir: Path, source_dir: Path | None = None, *,
            max_train: int | None = None, max_test: int | None = None) -> tuple[str, Path]:
    """``(dataset name, file path)`` for a registered name or a dataset file path (see :func:`prepare`)."""
    p = prepare(name_or_path, data_dir, source_dir, max_train=max_train, max_test=max_test)
    return p.name, p.path


def load(name_or_path: str, data_dir: Path, source_dir: Path | None = None, *,
         max_train: int | None = None, max_test: int | None = None) -> Dataset:
    """Resolve, then load and validate."""
    name, path = resolve(name_or_path, data_dir, source_dir, max_train=max_train, max_test=max_test)
    return load_dataset(path, name=name)
