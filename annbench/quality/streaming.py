"""Exact ground truth of an index that changes: per search step, the top-k among the points live then.

A step's live points are given as :class:`Piece` s: ``length`` consecutive tags (the ids an adapter
returns) from ``tag`` on, holding the consecutive train rows from ``row`` on. A runbook's inserts and
deletes keep tags equal to rows; a replace moves a tag range onto other rows
(:mod:`annbench.plan.runbook` turns a runbook into pieces).

Shared computation, instead of one full scan per search step: the row axis is cut at every piece
boundary of every step into elementary segments, each segment's exact top-k (at full precision,
:func:`annbench.quality.groundtruth.exact_neighbours`) is computed once, kept while a later step
needs it, and a step's answer is the merge of its live segments' lists: the top-k of a union lies in
the union of the parts' top-k (a step that only adds points to the last one merges the last one's answer
with the added segments' lists). The merge ranks by (distance, tag), so ties go to the smaller tag, as
the static ground truth breaks them by the smaller id. When the segments held at once would exceed
``memory_bytes``, each step is computed by its own scan over its live rows instead (same answer).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from annbench.quality.groundtruth import exact_neighbours

log = logging.getLogger(__name__)

#: Bytes the kept segment lists may take (ids int64 + distances float64 per query and neighbour).
MEMORY_BYTES = 2 * 2**30


@dataclass(frozen=True)
class Piece:
    """``length`` live tags ``tag, tag + 1, ...`` holding the train rows ``row, row + 1, ...``."""

    tag: int
    row: int
    length: int


LiveSet = tuple[Piece, ...]


def live_count(live: LiveSet) -> int:
    return sum(p.length for p in live)


def live_rows(live: LiveSet) -> tuple[np.ndarray, np.ndarray]:
    """``(tags, rows)`` of every live point, int64."""
    tags = np.concatenate([np.arange(p.tag, p.tag + p.length) for p in live] or [np.empty(0, np.int64)])
    rows = np.concatenate([np.arange(p.row, p.row + p.length) for p in live] or [np.empty(0, np.int64)])
    return tags.astype(np.int64), rows.astype(np.int64)


def _segments(live_sets: Sequence[LiveSet]) -> tuple[np.ndarray, list[list[tuple[int, int]]]]:
    """The cut points of the row axis and, per live set, its ``(segment, tag - row offset)`` pairs."""
    cuts = np.unique(np.array([b for live in live_sets for p in live for b in (p.row, p.row + p.length)]
                              or [0], dtype=np.int64))
    uses = []
    for live in live_sets:
        pairs = []
        for p in live:
            first, last = np.searchsorted(cuts, [p.row, p.row + p.length])
            pairs += [(int(s), p.tag - p.row) for s in range(first, last)]
        uses.append(pairs)
    return cuts, uses


def _merge(parts: list[tuple[np.ndarray, np.ndarray]], nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top-``k`` by (distance, tag) of the concatenated candidate lists, ``-1`` / ``inf`` padded."""
    ids = np.concatenate([p[0] for p in parts], axis=1) if parts else np.empty((nq, 0), np.int64)
    dist = np.concatenate([p[1] for p in parts], axis=1) if parts else np.empty((nq, 0), np.float64)
    order = np.lexsort((ids, dist), axis=-1)[:, :k]
    out_ids = np.full((nq, k), -1, dtype=np.int64)
    out_d = np.full((nq, k), np.inf, dtype=np.float64)
    out_ids[:, :order.shape[1]] = np.take_along_axis(ids, order, axis=1)
    out_d[:, :order.shape[1]] = np.take_along_axis(dist, order, axis=1)
    return out_ids, out_d


def step_ground_truth(train: np.ndarray, test: np.ndarray, metric: str, live_sets: Sequence[LiveSet], k: int = 100,
                      threads: int | None = None, memory_bytes: int = MEMORY_BYTES
                      ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per live set (one per search step), the exact top-``k`` tags and distances of every test row,
    ``(ids int64 (nq, k), distances float64 (nq, k))`` nearest first, ``-1`` / ``inf`` padded where
    fewer than ``k`` points are live. Yields them in order."""
    nq = len(test)
    cuts, uses = _segments(live_sets)
    last_use = {s: i for i, pairs in enumerate(uses) for s, _ in pairs}
    held, peak = set(), 0
    for i, pairs in enumerate(uses):
        held |= {s for s, _ in pairs}
        peak = max(peak, len(held))
        held -= {s for s, last in last_use.items() if last == i}
    shared = peak * nq * k * 16 <= memory_bytes
    if not shared:
        log.info("ground truth per step: %d segments held at once exceed %d MiB; one scan per step", peak,
                 memory_bytes >> 20)
    lists: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    previous: tuple[set[tuple[int, int]], tuple[np.ndarray, np.ndarray]] | None = None
    for i, (live, pairs) in enumerate(zip(live_sets, uses)):
        if not shared:
            tags, rows = live_rows(live)
            if len(rows) == 0:
                yield _merge([], nq, k)
                continue
            local, dist = exact_neighbours(train[rows], test, metric, min(k, len(rows)), threads)
            yield _merge([(tags[local], dist)], nq, k)
            continue
        parts, todo = [], set(pairs)
        if previous is not None and previous[0] <= todo:  # only points added since the last step: merge those in
            parts.append(previous[1])
            todo -= previous[0]
        for s, offset in sorted(todo):
            if s not in lists:
                start, end = int(cuts[s]), int(cuts[s + 1])
                local, dist = exact_neighbours(train[start:end], test, metric, min(k, end - start), threads)
                lists[s] = (local + start, dist)
            rows, dist = lists[s]
            parts.append((rows + offset, dist))
        merged = _merge(parts, nq, k)
        previous = (set(pairs), merged)
        yield merged
        for s in [s for s in lists if last_use[s] == i]:
            del lists[s]
