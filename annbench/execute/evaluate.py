"""From a measurement to metrics: validates the answer, recomputes distances, scores it."""

from __future__ import annotations

import numpy as np

from annbench.datasets.format import Dataset
from annbench.execute.measure import PassMeasurement, ResultError
from annbench.quality import filtered as F
from annbench.quality import metrics as M
from annbench.quality.distances import distances_to_ids

#: ε values of the reported ε-recall columns (``eps_recall_0.01``, ``eps_recall_0.1``).
EPSILONS = (0.01, 0.1)


def quality(dataset: Dataset, neighbors: np.ndarray, k: int) -> tuple[dict[str, float], np.ndarray]:
    """Quality metrics of ``neighbors`` (nq×k, -1 padded) and the distances recomputed from them.

    Raises :class:`ResultError` for ids out of range, duplicate ids in a row, or NaN distances.
    """
    n = len(dataset.train)
    if neighbors.shape != (len(dataset.test), k):
        raise ResultError(f"result has shape {neighbors.shape}, expected {(len(dataset.test), k)}")
    bad = (neighbors < -1) | (neighbors >= n)
    if bad.any():
        raise ResultError(f"result has ids outside [0, {n}) in {int(bad.any(axis=1).sum())} queries")
    dup = M.duplicate_rows(neighbors)
    if len(dup):
        raise ResultError(f"result lists the same id twice in {len(dup)} queries (first: query {dup[0]})")
    found_d = distances_to_ids(dataset.test, dataset.train, neighbors, dataset.distance)
    if np.isnan(found_d).any():
        raise ResultError("recomputed distances contain NaN")
    if dataset.filters is not None:
        return filtered_quality(dataset, neighbors, found_d, k), found_d
    true_d, true_ids = dataset.distances, dataset.neighbors
    out = {
        "recall": float(M.recall(found_d, true_d, k).mean()),
        "id_recall": float(M.id_recall(neighbors, true_ids, true_d, k).mean()),
        **{f"eps_recall_{e:g}": float(M.epsilon_recall(found_d, true_d, k, e).mean()) for e in EPSILONS},
        **{M.one_recall_column(r): float(M.one_recall_at(found_d, true_d, r).mean())
           for r in M.ONE_RECALL_RS if r <= k},
        "rel": M.relative_error(found_d, true_d, k),
        **classification(dataset, neighbors, k),
    }
    return out, found_d


def filtered_quality(dataset: Dataset, neighbors: np.ndarray, found_d: np.ndarray, k: int) -> dict[str, float]:
    """The metrics of an answer on a filtered dataset (:func:`annbench.quality.filtered.filtered_quality`):
    recall over the neighbours each query can have, returned ids failing the predicate counted as
    ``filter_violations`` and never as hits."""
    f = dataset.filters
    assert f is not None
    expected = F.expected(f.selectivity, len(dataset.train), k)
    violations = F.violating(f.index, f.predicates, neighbors)
    return F.filtered_quality(found_d, neighbors, dataset.neighbors, dataset.distances, k, expected, violations,
                              EPSILONS)


def classification(dataset: Dataset, neighbors: np.ndarray, k: int) -> dict[str, float]:
    """``knn_accuracy`` of the returned neighbours and ``knn_accuracy_exact`` of the true ones,
    for datasets with ``train_labels`` and ``test_labels`` (none otherwise)."""
    if dataset.train_labels is None or dataset.test_labels is None:
        return {}
    return {"knn_accuracy": M.knn_accuracy(neighbors, dataset.train_labels, dataset.test_labels, k),
            "knn_accuracy_exact": M.knn_accuracy(dataset.neighbors, dataset.train_labels, dataset.test_labels, k)}


def speed(m: PassMeasurement) -> dict[str, float]:
    """QPS of the fastest and of the median pass (queries answered per pass, ``repeats · nq``,
    over its time), pass-time spread, latency percentiles of every timed query of the fastest pass."""
    times = m.pass_times_ns.astype(np.float64)
    answered = m.answered_per_pass()
    return {
        "qps": M.qps(answered, float(times.min())),
        "qps_median": M.qps(answered, float(np.median(times))),
        "pass_time_min_s": float(times.min()) * 1e-9,
        "pass_time_median_s": float(np.median(times)) * 1e-9,
        "pass_time_max_s": float(times.max()) * 1e-9,
        **M.latency_percentiles_ms(m.latencies_ns),
    }
