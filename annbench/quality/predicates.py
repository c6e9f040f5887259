"""Filter predicates over per-point attributes: which train points a query may return.

Each train point carries a set of integer **tags** (a CSR matrix, n × n_tags) and optionally one
numeric **value**. A query's :class:`Predicate` lists the tags a point must all carry and an
optional half-open value range ``[low, high)``; a point matches when it carries every required tag
and, where a range is given, its value lies in it. A predicate with neither matches every point.

:class:`AttributeIndex` answers predicates from an inverted index (tag → sorted point ids, scipy's
CSC of the tag matrix) and the points sorted by value: the matching ids of a predicate, whether given
ids match, and an estimate of its selectivity from the posting-list lengths alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

#: The filter kinds an adapter can declare (``Adapter.filters``) and a dataset can need.
FILTER_KINDS = ("tags", "range")


@dataclass(frozen=True)
class Attributes:
    """The train points' attributes: ``tags`` (CSR, n × n_tags, nonzero = carries the tag) and
    ``values`` (n float64, or None)."""

    tags: sp.csr_matrix
    values: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.tags.shape[0])

    @property
    def n_tags(self) -> int:
        return int(self.tags.shape[1])


@dataclass(frozen=True)
class Predicate:
    """What one query asks of a point: every tag of ``tags`` (sorted, unique) and, where ``low`` and
    ``high`` are not None, a value in ``[low, high)``."""

    tags: tuple[int, ...] = ()
    low: float | None = None
    high: float | None = None

    @property
    def has_range(self) -> bool:
        return self.low is not None

    def bounds(self) -> tuple[float | None, float | None]:
        """``(low, high)`` as a database's filter states them: an absent or infinite bound is None (no clause)."""
        low, high = (None if v is None or not np.isfinite(v) else float(v) for v in (self.low, self.high))
        return low, high

    def kinds(self) -> tuple[str, ...]:
        """The filter kinds this predicate uses (see :data:`FILTER_KINDS`)."""
        return tuple(k for k, used in zip(FILTER_KINDS, (bool(self.tags), self.has_range)) if used)

    def __str__(self) -> str:
        parts = [f"tags {{{', '.join(map(str, self.tags))}}}"] if self.tags else []
        parts += [f"value in [{self.low:g}, {self.high:g})"] if self.has_range else []
        return " and ".join(parts) or "every point"


def predicates(test_tags: sp.csr_matrix, test_ranges: np.ndarray | None = None) -> list[Predicate]:
    """One predicate per query row: its tags (a CSR row) and, with ``test_ranges`` (nq × 2), its range;
    the range ``[-inf, inf)`` is no range (a dataset where only some queries have one)."""
    tags = sp.csr_matrix(test_tags)
    out = []
    for i in range(tags.shape[0]):
        row = tuple(int(t) for t in np.unique(tags.indices[tags.indptr[i]:tags.indptr[i + 1]]))
        if test_ranges is None or (test_ranges[i, 0] == -np.inf and test_ranges[i, 1] == np.inf):
            out.append(Predicate(row))
        else:
            out.append(Predicate(row, float(test_ranges[i, 0]), float(test_ranges[i, 1])))
    return out


def kinds_of(preds: list[Predicate]) -> tuple[str, ...]:
    """The filter kinds any of ``preds`` uses, in :data:`FILTER_KINDS` order."""
    used = {k for p in preds for k in p.kinds()}
    return tuple(k for k in FILTER_KINDS if k in used)


def as_csr(tags: sp.spmatrix | np.ndarray, n_tags: int | None = None) -> sp.csr_matrix:
    """A canonical boolean CSR tag matrix (sorted unique indices) of a sparse matrix, or of a 1-D integer
    array of one tag per row (a class label: row i carries tag ``tags[i]``)."""
    if sp.issparse(tags):
        m = sp.csr_matrix(tags, dtype=np.int8)
        m.data[:] = 1
        m.eliminate_zeros()
    else:
        labels = np.asarray(tags, dtype=np.int64)
        width = int(labels.max()) + 1 if n_tags is None and len(labels) else (n_tags or 0)
        m = sp.csr_matrix((np.ones(len(labels), dtype=np.int8), labels, np.arange(len(labels) + 1)),
                          shape=(len(labels), width))
    m.sum_duplicates()
    m.data[:] = 1
    m.sort_indices()
    if n_tags is not None and m.shape[1] != n_tags:
        m = sp.csr_matrix((m.data, m.indices, m.indptr), shape=(m.shape[0], n_tags))
    return m.astype(bool)


class AttributeIndex:
    """An inverted index of the tags (scipy CSC: each tag's sorted point ids) and the points sorted by
    value, answering predicates without a scan of the tag matrix."""

    def __init__(self, attrs: Attributes) -> None:
        self.n = attrs.n
        csc = sp.csc_matrix(attrs.tags)
        csc.sort_indices()
        self._indptr = csc.indptr.astype(np.int64)
        self._posting_ids = csc.indices.astype(np.int64)
        self.values = None if attrs.values is None else np.asarray(attrs.values, dtype=np.float64)
        self._by_value = None if self.values is None else np.argsort(self.values, kind="stable")
        self._sorted_values = None if self.values is None else self.values[self._by_value]

    def posting(self, tag: int) -> np.ndarray:
        """The sorted ids of the points carrying ``tag`` (empty for a tag beyond the matrix)."""
        if tag < 0 or tag + 1 >= len(self._indptr):
            return self._posting_ids[:0]
        return self._posting_ids[self._indptr[tag]:self._indptr[tag + 1]]

    def _checked_values(self, p: Predicate) -> np.ndarray:
        if self.values is None:
            raise ValueError(f"predicate {p} has a value range but the points have no values")
        return self.values

    def _range_slice(self, p: Predicate) -> tuple[int, int]:
        self._checked_values(p)
        lo, hi = np.searchsorted(self._sorted_values, [p.low, p.high], side="left")  # type: ignore[arg-type]
        return int(lo), int(max(lo, hi))

    def rows(self, p: Predicate) -> np.ndarray:
        """The sorted ids of every point matching ``p``: the shortest posting list intersected with the
        others, then the range; a range alone is a slice of the points sorted by value."""
        if p.tags:
            lists = sorted((self.posting(t) for t in p.tags), key=len)
            rows = lists[0]
            for other in lists[1:]:
                if not len(rows):
                    break
                rows = rows[_contains(other, rows)]
            if p.has_range:
                v = self._checked_values(p)[rows]
                rows = rows[(v >= p.low) & (v < p.high)]
            return rows
        if p.has_range:
            lo, hi = self._range_slice(p)
            return np.sort(self._by_value[lo:hi])
        return np.arange(self.n, dtype=np.int64)

    def count(self, p: Predicate) -> int:
        return len(self.rows(p))

    def matches(self, p: Predicate, ids: np.ndarray) -> np.ndarray:
        """Per id, whether that point matches ``p`` (ids < 0 or >= n, padding, never match)."""
        ids = np.asarray(ids, dtype=np.int64)
        ok = (ids >= 0) & (ids < self.n)
        for t in p.tags:
            ok &= _contains(self.posting(t), ids)
        if p.has_range:
            v = self._checked_values(p)[np.where(ok, ids, 0)]
            ok &= (v >= p.low) & (v < p.high)
        return ok

    def mask(self, p: Predicate) -> np.ndarray:
        """A boolean mask over every point: True where it matches ``p``."""
        out = np.zeros(self.n, dtype=bool)
        out[self.rows(p)] = True
        return out

    def estimate(self, p: Predicate) -> float:
        """The fraction of points matching ``p`` as estimated from the index alone, without intersecting:
        the product of each required tag's fraction (as if tags were independent) times the exact
        fraction inside the range. 0 only where no point can match (a tag no point carries, an empty range)."""
        s = 1.0
        for t in p.tags:
            s *= len(self.posting(t)) / max(1, self.n)
        if p.has_range:
            lo, hi = self._range_slice(p)
            s *= (hi - lo) / max(1, self.n)
        return s


def _contains(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Per element of ``ids``, whether it is in ``sorted_ids`` (binary search)."""
    if not len(sorted_ids):
        return np.zeros(len(ids), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return sorted_ids[at] == ids


def grouped(preds: list[Predicate]) -> Iterator[tuple[Predicate, np.ndarray]]:
    """Each distinct predicate once, with the sorted indices of the queries asking it."""
    groups: dict[Predicate, list[int]] = {}
    for i, p in enumerate(preds):
        groups.setdefault(p, []).append(i)
    for p, members in groups.items():
        yield p, np.asarray(members, dtype=np.int64)
