"""Filtered search: exact filtered ground truth and the quality of a filtered answer.

Ground truth (:func:`filtered_knn`): the exact top-k among the train points that match each query's
predicate (:mod:`annbench.quality.predicates`), padded with id -1 / distance +inf where fewer match.
Queries are grouped by predicate, so each distinct predicate's matching points are found once (from
the inverted index) and searched for all its queries together:

* a narrow predicate (at most :data:`NARROW_FRACTION` of the points, their rows at most
  :data:`GATHER_BYTES`): its matching rows are gathered and searched exactly
  (:func:`annbench.quality.groundtruth.exact_knn` on the gathered rows, faiss or numpy BLAS);
* a broad one: a masked blocked scan of every row (``exact_knn(..., mask=...)``), no copy;
* a predicate every point matches: the unfiltered search.

Either way candidates are re-ranked by distances recomputed exactly (float64 sums) and ties go to the
smaller id, as in the unfiltered ground truth (the gathered rows keep their ids' order).

Quality: with ``m_q`` the number of points matching query q and ``e_q = min(k, m_q)``, every metric
is the unfiltered one with ``e_q`` in place of ``k`` as the number of neighbours expected: recall
``= hits / e_q`` where a hit is a returned point within the ``e_q``-th true distance (plus the usual
slack). A returned id that fails the predicate is a **violation**: its distance counts as +inf, so it
is never a hit. A query no point matches (``m_q = 0``) expects the empty answer and scores 1.0 on every
recall: there is nothing to miss (any id it returns is still counted as a violation).
"""

from __future__ import annotations

import numpy as np

from annbench.quality import metrics as M
from annbench.quality.groundtruth import exact_knn
from annbench.quality.predicates import AttributeIndex, Predicate, grouped

#: A predicate matching at most this fraction of the points is searched by gathering its rows.
NARROW_FRACTION = 0.25
#: ... and only while those rows take at most this many bytes (float32): memory stays bounded.
GATHER_BYTES = 512 * 2**20
#: Metrics whose exact search has no masked scan (bits, sets): their matching rows are always gathered.
BITSET_METRICS = ("hamming", "jaccard")


def filtered_knn(train: np.ndarray, test: np.ndarray, metric: str, preds: list[Predicate], index: AttributeIndex,
                 k: int = 100, threads: int | None = None,
                 backend: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact filtered top-``k`` of each test row: ``(ids int32 (nq, k), distances float32 (nq, k),
    selectivity float64 (nq,))``, nearest first, padded with -1 / +inf where fewer than ``k`` points match;
    the selectivity of a query is the fraction of train points matching its predicate."""
    nq, n = len(test), len(train)
    ids = np.full((nq, k), -1, dtype=np.int32)
    dist = np.full((nq, k), np.inf, dtype=np.float32)
    selectivity = np.zeros(nq, dtype=np.float64)
    row_bytes = 4 * train.shape[1]
    for p, members in grouped(preds):
        rows = index.rows(p)
        m = len(rows)
        selectivity[members] = m / n
        if m == 0:
            continue
        q = np.ascontiguousarray(test[members])
        depth = min(k, m)
        if m == n:
            found, d = exact_knn(train, q, metric, depth, threads, backend)
        elif metric in BITSET_METRICS or (m <= NARROW_FRACTION * n and m * row_bytes <= GATHER_BYTES):
            found, d = exact_knn(train[rows], q, metric, depth, threads, backend)
            found = rows[found]  # rows are sorted, so the tie rule (smaller id first) holds for the real ids
        else:
            mask = np.zeros(n, dtype=bool)
            mask[rows] = True
            found, d = exact_knn(train, q, metric, depth, threads, backend, mask=mask)
        ids[members, :depth] = found
        dist[members, :depth] = d
    return ids, dist, selectivity


def expected(selectivity: np.ndarray, n_train: int, k: int) -> np.ndarray:
    """Per query, the number of neighbours a correct answer holds: ``min(k, m_q)`` with ``m_q`` the
    matching points (``selectivity · n_train``, exact: the selectivity is stored as ``m_q / n_train``)."""
    return np.minimum(k, np.rint(np.asarray(selectivity, dtype=np.float64) * n_train)).astype(np.int64)


def violating(index: AttributeIndex, preds: list[Predicate], ids: np.ndarray) -> np.ndarray:
    """Per returned slot, whether it holds an id (not padding -1) that fails its query's predicate."""
    ids = np.asarray(ids)
    out = np.zeros(ids.shape, dtype=bool)
    for p, members in grouped(preds):
        block = ids[members]
        out[members] = (block >= 0) & ~index.matches(p, block.reshape(-1)).reshape(block.shape)
    return out


def _as_if_k(true_d: np.ndarray, e: np.ndarray, k: int) -> np.ndarray:
    """``true_d`` with its k-th column replaced by the ``e``-th true distance (``e >= 1``): the unfiltered
    metrics, which read the threshold from column k-1, then judge against the ``e``-th neighbour."""
    shifted = np.array(true_d, dtype=np.float64)
    shifted[:, k - 1] = true_d[np.arange(len(true_d)), np.maximum(e, 1) - 1]
    return shifted


def _per_expected(values: np.ndarray, e: np.ndarray, k: int) -> np.ndarray:
    """A per-query fraction of ``k`` as a fraction of ``e`` (1.0 where nothing is expected)."""
    return np.where(e > 0, values * k / np.maximum(e, 1), 1.0)


def per_query_scores(found_d: np.ndarray, found_ids: np.ndarray, true_ids: np.ndarray, true_d: np.ndarray, k: int,
                     e: np.ndarray, violations: np.ndarray, epsilons: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Per query, the quality of a filtered answer (see the module's docstring): ``recall``,
    ``id_recall``, ``eps_recall_<ε>``, ``filter_violations`` (its returned ids failing the predicate), and
    ``found_sum`` / ``true_sum`` (the sums of its ``e_q`` nearest returned and true distances, for ``rel``).
    ``violations`` is :func:`violating`'s mask."""
    d = np.where(violations, np.inf, found_d[:, :k])
    ids = np.where(violations, -1, found_ids[:, :k])
    truth = _as_if_k(true_d, e, k)
    with np.errstate(invalid="ignore"):  # inf - inf of padded columns: never a tie
        id_recall = M.id_recall(ids, true_ids, truth, k)
    cols = np.arange(k)[None, :] < e[:, None]  # nothing expected beyond e_q: 0 there
    return {
        "recall": _per_expected(M.recall(d, truth, k), e, k),
        "id_recall": _per_expected(id_recall, e, k),
        **{f"eps_recall_{eps:g}": _per_expected(M.epsilon_recall(d, truth, k, eps), e, k) for eps in epsilons},
        "filter_violations": np.count_nonzero(violations, axis=1),
        "found_sum": np.where(cols, np.sort(d, axis=1), 0.0).sum(axis=1),
        "true_sum": np.where(cols, true_d[:, :k], 0.0).sum(axis=1),
    }


def summary(scores: dict[str, np.ndarray]) -> dict[str, float]:
    """A run's quality metrics from its :func:`per_query_scores`: the means over queries, ``rel`` of the
    summed distances, and ``filter_violations`` summed over all queries."""
    scores = dict(scores)
    found_sum, true_sum = scores.pop("found_sum"), scores.pop("true_sum")
    out: dict[str, float] = {name: float(v.mean()) for name, v in scores.items()}
    out["filter_violations"] = int(scores["filter_violations"].sum())
    out["rel"] = M.relative_error(found_sum[:, None], true_sum[:, None], 1)
    return out
