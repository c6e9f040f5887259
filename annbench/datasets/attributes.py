"""A filtered dataset's extra fields: per-point tags and values, per-query predicates, selectivities.

In the dataset file (all optional together; ``train_tags`` and ``test_tags`` make a dataset filtered):

* ``train_tags``: group with ``indptr`` (n+1 int64) and ``indices`` (int32), attr ``n_tags``: a CSR
  matrix, row i the tags point i carries;
* ``train_values``: n float64, one value per point (optional);
* ``test_tags``: group, same layout (nq rows, same ``n_tags``): the tags each query requires, all of them;
* ``test_ranges``: nq × 2 float64, a half-open value range ``[low, high)`` per query (optional; needs
  ``train_values``);
* ``test_selectivity``: nq float64, the fraction of train points matching each query's predicate.

``neighbors`` / ``distances`` then hold the filtered ground truth (padded -1 / +inf where fewer than
100 points match). Every array is under the content checksum; the audit on load recomputes the filtered
top-k and the selectivity of its sampled queries (:func:`first_filtered_mismatch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.sparse as sp

from annbench.core.errors import UserError
from annbench.datasets.audit import Mismatch, tolerance
from annbench.datasets.bigann import read_spmat
from annbench.quality.distances import distances_to_ids
from annbench.quality.filtered import filtered_knn
from annbench.quality.predicates import AttributeIndex, Attributes, Predicate, as_csr, kinds_of, predicates

#: The fields of a filtered dataset, in the order the content checksum hashes them (after the others).
FILTER_FIELDS = ("train_tags/indptr", "train_tags/indices", "train_values", "test_tags/indptr", "test_tags/indices",
                 "test_ranges", "test_selectivity")
#: The two tag groups (CSR matrices).
TAG_GROUPS = ("train_tags", "test_tags")


@dataclass(frozen=True)
class Filters:
    """A filtered dataset's attributes and predicates (every array read-only)."""

    train_tags: sp.csr_matrix
    test_tags: sp.csr_matrix
    selectivity: np.ndarray
    train_values: np.ndarray | None = None
    test_ranges: np.ndarray | None = None

    @property
    def n_tags(self) -> int:
        return int(self.train_tags.shape[1])

    @cached_property
    def attributes(self) -> Attributes:
        """What an adapter's ``fit_attributes`` is given."""
        return Attributes(self.train_tags, self.train_values)

    @cached_property
    def predicates(self) -> list[Predicate]:
        """One predicate per query."""
        return predicates(self.test_tags, self.test_ranges)

    @cached_property
    def index(self) -> AttributeIndex:
        """The harness's own index of the attributes (scoring, audit; never given to an adapter)."""
        return AttributeIndex(self.attributes)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The filter kinds the predicates use (``tags``, ``range``)."""
        return kinds_of(self.predicates)

    def first(self, n: int, q: int) -> dict[str, Any]:
        """The attributes of the first ``n`` points and predicates of the first ``q`` queries, as
        :class:`annbench.datasets.spec.RawData`'s fields (a quick subset; ground truth recomputed)."""
        return {"train_tags": self.train_tags[:n], "test_tags": self.test_tags[:q],
                "train_values": None if self.train_values is None else self.train_values[:n],
                "test_ranges": None if self.test_ranges is None else self.test_ranges[:q]}

    def fields(self) -> dict[str, np.ndarray | None]:
        """The arrays as the file stores them (:data:`FILTER_FIELDS`)."""
        return {"train_tags/indptr": self.train_tags.indptr.astype(np.int64),
                "train_tags/indices": self.train_tags.indices.astype(np.int32),
                "train_values": None if self.train_values is None else np.asarray(self.train_values, np.float64),
                "test_tags/indptr": self.test_tags.indptr.astype(np.int64),
                "test_tags/indices": self.test_tags.indices.astype(np.int32),
                "test_ranges": None if self.test_ranges is None else np.asarray(self.test_ranges, np.float64),
                "test_selectivity": np.asarray(self.selectivity, dtype=np.float64)}


def _fail(path: Path | str, what: str) -> UserError:
    return UserError(f"dataset file {path}: {what}")


def tag_widths(f: h5py.File) -> dict[str, Any]:
    """The ``n_tags`` attr of each tag group present in the open file."""
    return {g: f[g].attrs.get("n_tags") for g in TAG_GROUPS if g in f and isinstance(f[g], h5py.Group)}


def csr(where: Path | str, name: str, indptr: np.ndarray | None, indices: np.ndarray | None, rows: int,
        n_tags: Any) -> sp.csr_matrix:
    """The CSR tag matrix ``name`` (rows × n_tags) from its arrays, checked; a defect is a one-line error."""
    if indptr is None or indices is None:
        raise _fail(where, f"group '{name}' needs both 'indptr' and 'indices'")
    if n_tags is None or not np.issubdtype(np.asarray(n_tags).dtype, np.integer) or int(n_tags) < 1:
        raise _fail(where, f"group '{name}' has attr n_tags={n_tags!r}; valid: an int >= 1")
    n_tags = int(n_tags)
    if indptr.ndim != 1 or len(indptr) != rows + 1:
        raise _fail(where, f"'{name}/indptr' has shape {indptr.shape}, expected ({rows + 1},): one row per "
                           f"{'train point' if name.startswith('train') else 'query'} ({rows})")
    if not (np.issubdtype(indptr.dtype, np.integer) and np.issubdtype(indices.dtype, np.integer)):
        raise _fail(where, f"'{name}' has non-integer indptr or indices ({indptr.dtype}, {indices.dtype})")
    if indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != len(indices):
        raise _fail(where, f"'{name}/indptr' is not a CSR row pointer (0, non-decreasing, ending at "
                           f"len(indices) = {len(indices)})")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_tags):
        raise _fail(where, f"'{name}/indices' has tag {int(indices.max() if indices.max() >= n_tags else indices.min())}"
                           f" outside [0, n_tags={n_tags})")
    m = sp.csr_matrix((np.ones(len(indices), dtype=bool), indices.astype(np.int32), indptr.astype(np.int64)),
                      shape=(rows, n_tags))
    m.sum_duplicates()
    m.sort_indices()
    return m


def check_ranges(where: Path | str, ranges: np.ndarray, n_test: int, has_values: bool) -> None:
    """``ranges`` is nq × 2 of non-NaN [low, high) with low <= high, and the points have values."""
    if ranges.shape != (n_test, 2):
        raise _fail(where, f"'test_ranges' has shape {ranges.shape}, expected ({n_test}, 2): one [low, high) per query")
    if np.isnan(ranges).any():
        raise _fail(where, "'test_ranges' contains NaN")
    bad = np.flatnonzero(ranges[:, 0] > ranges[:, 1])
    if len(bad):
        raise _fail(where, f"'test_ranges' row {bad[0]} has low {ranges[bad[0], 0]:g} > high {ranges[bad[0], 1]:g}; "
                           "valid: low <= high (a half-open range [low, high))")
    if not has_values:
        raise _fail(where, "'test_ranges' needs 'train_values' (the value each point's range is checked on)")


def _read_only(a: Any) -> Any:
    """``a`` (an array, a CSR matrix's arrays, or None) made read-only."""
    for part in (a.data, a.indices, a.indptr) if sp.issparse(a) else () if a is None else (a,):
        part.setflags(write=False)
    return a


def from_fields(where: Path | str, fields: dict[str, np.ndarray | None], widths: dict[str, Any], n_train: int,
                n_test: int) -> Filters | None:
    """The :class:`Filters` of a loaded file (None where it has no tags), checked: tag matrices with one
    row per point / query and tags in ``[0, n_tags)``, the same ``n_tags`` on both, values and ranges of
    the right shapes, ``low <= high``, selectivities in [0, 1]. A defect is a one-line error."""
    present = [k for k in FILTER_FIELDS if fields.get(k) is not None]
    if not present:
        return None
    if "train_tags" not in widths or "test_tags" not in widths:
        raise _fail(where, f"has {', '.join(present)} but not both 'train_tags' and 'test_tags' groups")
    train_tags = csr(where, "train_tags", fields["train_tags/indptr"], fields["train_tags/indices"], n_train,
                     widths["train_tags"])
    test_tags = csr(where, "test_tags", fields["test_tags/indptr"], fields["test_tags/indices"], n_test,
                    widths["test_tags"])
    if test_tags.shape[1] != train_tags.shape[1]:
        raise _fail(where, f"'test_tags' has n_tags={test_tags.shape[1]} but 'train_tags' has {train_tags.shape[1]}")
    values = fields.get("train_values")
    if values is not None:
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (n_train,) or np.isnan(values).any():
            raise _fail(where, f"'train_values' has shape {values.shape} or NaN; expected ({n_train},) numbers")
    ranges = fields.get("test_ranges")
    if ranges is not None:
        ranges = np.asarray(ranges, dtype=np.float64)
        check_ranges(where, ranges, n_test, values is not None)
    selectivity = fields.get("test_selectivity")
    if selectivity is None or selectivity.shape != (n_test,) or not ((selectivity >= 0) & (selectivity <= 1)).all():
        raise _fail(where, f"'test_selectivity' is missing or not {n_test} fractions in [0, 1]")
    return Filters(_read_only(train_tags), _read_only(test_tags),
                   _read_only(np.asarray(selectivity, dtype=np.float64)), _read_only(values), _read_only(ranges))


def filtered_ground_truth(train: np.ndarray, test: np.ndarray, distance: str, train_tags: Any, test_tags: Any,
                          train_values: np.ndarray | None, test_ranges: np.ndarray | None, k: int,
                          where: Path | str) -> tuple[np.ndarray, np.ndarray, Filters]:
    """The filtered ground truth (top ``k``, padded) and the :class:`Filters` of a dataset being made:
    tags as CSR matrices or 1-D integer labels (one tag per row), checked as a load checks them."""
    n_tags = max(_width(where, "train", train_tags), _width(where, "test", test_tags))
    train_csr, test_csr = as_csr(train_tags, n_tags), as_csr(test_tags, n_tags)
    for what, tags, rows in (("train", train_csr, len(train)), ("test", test_csr, len(test))):
        if tags.shape[0] != rows:
            raise _fail(where, f"{what} tags have {tags.shape[0]} rows but there are {rows} {what} vectors; valid: "
                               "one row of tags per vector")
    values = None if train_values is None else np.asarray(train_values, dtype=np.float64).reshape(-1)
    if values is not None and (len(values) != len(train) or np.isnan(values).any()):
        raise _fail(where, f"train values: {len(values)} numbers (or NaN); valid: one number per train vector "
                           f"({len(train)})")
    ranges = None if test_ranges is None else np.asarray(test_ranges, dtype=np.float64)
    if ranges is not None:
        check_ranges(where, ranges, len(test), values is not None)
    index = AttributeIndex(Attributes(train_csr, values))
    ids, dists, selectivity = filtered_knn(train, test, distance, predicates(test_csr, ranges), index, k)
    return ids, dists, Filters(train_csr, test_csr, selectivity, values, ranges)


def _width(where: Path | str, what: str, tags: Any) -> int:
    """The tag ids a tag matrix or label array needs: its column count, or its largest label + 1."""
    if sp.issparse(tags):
        return int(tags.shape[1])
    labels = np.asarray(tags)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or (len(labels) and labels.min() < 0):
        raise _fail(where, f"{what} tags have shape {labels.shape} and dtype {labels.dtype}; valid: a sparse matrix "
                           "or one integer label >= 0 per row")
    return int(labels.max()) + 1 if len(labels) else 1


def write_widths(f: h5py.File, filters: Filters) -> None:
    """The ``n_tags`` attr of both tag groups (written after their arrays)."""
    for group in TAG_GROUPS:
        f[group].attrs["n_tags"] = filters.n_tags


def check_ground_truth(where: Path | str, neighbors: np.ndarray, distances: np.ndarray, n_train: int) -> None:
    """The stored filtered ground truth is well formed: ids in ``[0, n_train)`` or padding -1, padding
    (id -1 with distance +inf) only after every real neighbour, no NaN."""
    pad = neighbors == -1
    if neighbors.min() < -1 or neighbors.max() >= n_train:
        raise _fail(where, f"field 'neighbors' has ids outside [0, {n_train}) other than padding -1")
    if np.isnan(distances).any() or np.any(np.isinf(distances) != pad):
        raise _fail(where, "field 'distances' must be finite exactly where 'neighbors' is not padding -1 (+inf there)")
    if np.any(pad[:, :-1] & ~pad[:, 1:]):
        raise _fail(where, "field 'neighbors' has padding -1 before a real neighbour in some row")


def first_filtered_mismatch(train: np.ndarray, test: np.ndarray, neighbors: np.ndarray, distances: np.ndarray,
                            metric: str, filters: Filters, queries: np.ndarray, *, backend: str = "numpy",
                            threads: int = 1) -> Mismatch | None:
    """The first of ``queries`` whose stored filtered ground truth or selectivity is wrong, or None.

    Recomputed with :func:`annbench.quality.filtered.filtered_knn`; the checks of
    :mod:`annbench.datasets.audit` on the real neighbours (true distances within tolerance, each stored id
    at its stored distance, no id twice), plus: padding exactly where fewer points match, every stored id
    matches its predicate, the stored selectivity is the true one."""
    depth = neighbors.shape[1]
    queries = np.asarray(queries, dtype=np.int64)
    preds = [filters.predicates[i] for i in queries]
    q = np.ascontiguousarray(test[queries])
    true_ids, true_d, sel = filtered_knn(train, q, metric, preds, filters.index, depth, threads, backend)
    stored_ids = np.asarray(neighbors[queries], dtype=np.int64)
    stored_d = np.asarray(distances[queries], dtype=np.float64)
    finite = np.isfinite(true_d)
    tol = tolerance(np.where(finite, true_d, 0.0))
    actual = distances_to_ids(q, train, stored_ids, metric, threads=threads)
    for row, query in enumerate(queries):
        what = None
        ids, real = stored_ids[row], stored_ids[row] >= 0
        if sel[row] != filters.selectivity[query]:
            what = f"stored selectivity {filters.selectivity[query]:.6g}, the true one is {sel[row]:.6g}"
        elif not np.array_equal(real, finite[row]):
            what = f"{int(real.sum())} neighbours stored, but {int(finite[row].sum())} points match (up to {depth})"
        elif not filters.index.matches(preds[row], ids[real]).all():
            what = f"a stored neighbour does not match the predicate ({preds[row]})"
        elif np.any(np.abs(stored_d[row, real] - true_d[row, real]) > tol[row]):
            j = int(np.argmax(np.abs(stored_d[row, real] - true_d[row, real]) > tol[row]))
            what = f"stored distance {j} is {stored_d[row, j]:.6g}, the true {j + 1}-th nearest distance is " \
                   f"{true_d[row, j]:.6g}"
        elif np.any(np.abs(actual[row, real] - stored_d[row, real]) > tol[row]):
            j = int(np.argmax(np.abs(actual[row, real] - stored_d[row, real]) > tol[row]))
            what = f"stored neighbour {j} (id {ids[j]}) is at distance {actual[row, j]:.6g}, not the stored " \
                   f"{stored_d[row, j]:.6g}"
        elif len(np.unique(ids[real])) != int(real.sum()):
            what = "an id is listed twice among its neighbours"
        if what is not None:
            return Mismatch(int(query), what)
    return None


def read_tags(path: str | Path, what: str, rows: slice | None = None) -> Any:
    """Tags from a file: a scipy sparse matrix saved with ``scipy.sparse.save_npz`` (``.npz``; row i = the
    tags of row i), big-ann-benchmarks' ``.spmat`` (:func:`annbench.datasets.bigann.read_spmat`) or a 1-D
    integer array (``.npy``; one tag per row, e.g. a class label); ``rows``: only those rows."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file {path} does not exist")
    if path.suffix == ".spmat":
        return read_spmat(path, rows)
    cut = slice(None) if rows is None else rows
    try:
        if path.suffix == ".npz":
            return sp.load_npz(path).tocsr()[cut]
        if path.suffix == ".npy":
            labels = np.load(path, allow_pickle=False)
            if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
                raise UserError(f"file {path}: {what} has shape {labels.shape} and dtype {labels.dtype}; valid: a "
                                "1-D integer array (one tag per row) or a scipy sparse matrix saved as .npz")
            return labels[cut]
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"file {path}: {what} is not readable ({' '.join(str(e).split())}); valid: "
                        "scipy.sparse.save_npz .npz or a 1-D integer .npy") from None
    raise UserError(f"file {path}: {what} must be .npz (scipy.sparse.save_npz), .spmat (big-ann-benchmarks) or .npy "
                    "(one integer tag per row)")


def read_numbers(path: str | Path, what: str, columns: int | None, rows: slice | None = None) -> np.ndarray:
    """A float64 array from a ``.npy`` file: 1-D (``columns`` None) or n × ``columns``, no NaN; ``rows``:
    only those rows."""
    path = Path(path)
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"file {path}: {what} is not a readable .npy ({' '.join(str(e).split())})") from None
    shape = "n" if columns is None else f"n x {columns}"
    if (a.ndim != (1 if columns is None else 2) or (columns is not None and a.shape[1] != columns)
            or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer))):
        raise UserError(f"file {path}: {what} has shape {a.shape} and dtype {a.dtype}; valid: numbers, shape {shape}")
    a = a[slice(None) if rows is None else rows].astype(np.float64)
    if np.isnan(a).any():
        raise UserError(f"file {path}: {what} contains NaN")
    return a
