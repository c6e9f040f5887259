"""Quality and speed metrics of one run: short, vectorised, pure numpy functions.

Conventions: ``found_d`` / ``true_d`` are ``(nq, >=k)`` distance arrays where smaller is
nearer (see :mod:`annbench.distances`); padded result slots (id ``-1``) have distance
``+inf``. Quality functions return one value per query; callers average.
"""

from __future__ import annotations

import numpy as np

#: ann-benchmarks' slack on the k-th true distance.
RECALL_EPSILON = 1e-3
#: big-ann-benchmarks' tolerance for ties with the k-th true distance.
TIE_TOLERANCE = 1e-6
#: Latency percentiles reported (``p50_ms`` ... ``p99.9_ms``).
PERCENTILES = (50.0, 95.0, 99.0, 99.9)


def recall(found_d: np.ndarray, true_d: np.ndarray, k: int, epsilon: float = RECALL_EPSILON) -> np.ndarray:
    """ann-benchmarks' recall@k per query.

    ``recall = |{j < k : found_d[j] <= true_d[k-1] + epsilon}| / k``
    """
    threshold = true_d[:, k - 1:k] + epsilon
    return np.count_nonzero(found_d[:, :k] <= threshold, axis=1) / k


def epsilon_recall(found_d: np.ndarray, true_d: np.ndarray, k: int, eps: float) -> np.ndarray:
    """(1+eps)-approximate recall@k per query.

    ``recall_eps = |{j < k : found_d[j] <= true_d[k-1] * (1 + eps)}| / k``
    """
    threshold = true_d[:, k - 1:k] * (1.0 + eps)
    return np.count_nonzero(found_d[:, :k] <= threshold, axis=1) / k


def id_recall(found_ids: np.ndarray, true_ids: np.ndarray, true_d: np.ndarray, k: int,
              tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """Id recall@k with ties (big-ann-benchmarks' rule), per query.

    The true list is extended past position k with every stored neighbour whose distance
    ties the k-th: ``T = {true_ids[j] : j < k or |true_d[j] - true_d[k-1]| < tolerance}``;
    ``id_recall = |found_ids[:k] ∩ T| / k`` (padding ``-1`` never matches).
    """
    in_list = np.abs(true_d - true_d[:, k - 1:k]) < tolerance
    in_list[:, :k] = True
    found = found_ids[:, :k]
    out = np.empty(len(found), dtype=np.float64)
    block = max(1, 2_000_000 // (k * true_ids.shape[1]))
    for s in range(0, len(found), block):
        hit = (found[s:s + block, :, None] == true_ids[s:s + block, None, :]) & in_list[s:s + block, None, :]
        hit &= found[s:s + block, :, None] >= 0
        out[s:s + block] = np.count_nonzero(hit.any(axis=2), axis=1) / k
    return out


def relative_error(found_d: np.ndarray, true_d: np.ndarray, k: int) -> float:
    """Distance ratio over all queries, k columns on both sides.

    ``rel = Σ_q Σ_{j<k} found_d[q, j] / Σ_q Σ_{j<k} true_d[q, j]`` (1.0 is exact; a padded
    slot makes it ``inf``; ``0/0`` counts as exact). Meaningful for non-negative distances.
    """
    found, true = float(np.sum(found_d[:, :k])), float(np.sum(true_d[:, :k]))
    if true == 0.0:
        return 1.0 if found == 0.0 else float("inf")
    return found / true


def duplicate_rows(ids: np.ndarray) -> np.ndarray:
    """Indices of the rows that list some id (other than padding ``-1``) twice."""
    s = np.sort(ids, axis=1)
    dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
    return np.flatnonzero(dup.any(axis=1))


def qps(n_queries: int, pass_time_ns: float) -> float:
    """Queries per second of one pass: ``n_queries / (pass_time_ns * 1e-9)``."""
    return n_queries / (pass_time_ns * 1e-9) if pass_time_ns > 0 else float("inf")


def latency_percentiles_ms(latencies_ns: np.ndarray | None,
                           percentiles: tuple[float, ...] = PERCENTILES) -> dict[str, float]:
    """``{"p50_ms": ..., "p99.9_ms": ...}`` from per-query latencies (linear interpolation);
    NaN when per-query latencies were not measured (batch mode)."""
    names = [f"p{p:g}_ms" for p in percentiles]
    if latencies_ns is None or len(latencies_ns) == 0:
        return dict.fromkeys(names, float("nan"))
    values = np.percentile(np.asarray(latencies_ns, dtype=np.float64), percentiles) * 1e-6
    return {n: float(v) for n, v in zip(names, values)}


def knn_votes(ids: np.ndarray, train_classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Vote counts ``(nq, n_classes)``: ``votes[q, c] = |{j : ids[q, j] >= 0, train_classes[ids[q, j]] = c}|``.

    ``train_classes`` holds each train point's class index in ``[0, n_classes)``; padding ``-1`` casts no vote.
    """
    ids = np.asarray(ids)
    valid = ids >= 0
    cls = np.asarray(train_classes)[np.where(valid, ids, 0)]
    rows = np.broadcast_to(np.arange(len(ids))[:, None], ids.shape)
    flat = (rows * n_classes + cls)[valid]
    return np.bincount(flat, minlength=len(ids) * n_classes).reshape(len(ids), n_classes)


def knn_accuracy(ids: np.ndarray, train_labels: np.ndarray, test_labels: np.ndarray, k: int) -> float:
    """Accuracy of a uniform k-NN majority vote over the returned neighbours' train labels.

    scikit-learn's ``KNeighborsClassifier(weights="uniform")`` rule: with ``C`` the sorted
    distinct train labels, ``pred[q] = C[argmax_c votes[q, c]]`` over the first ``k`` ids
    (see :func:`knn_votes`; a tie goes to the smallest label; padding ``-1`` casts no vote;
    a query with no neighbour at all counts as wrong);
    ``knn_accuracy = |{q : pred[q] = test_labels[q]}| / nq``.
    """
    correct = knn_correct(ids, train_labels, test_labels, k)
    return float(np.count_nonzero(correct)) / len(correct)


def knn_correct(ids: np.ndarray, train_labels: np.ndarray, test_labels: np.ndarray, k: int) -> np.ndarray:
    """Per query, whether the uniform k-NN vote of :func:`knn_accuracy` predicts its label:
    ``pred[q] = test_labels[q]`` (and at least one vote cast)."""
    classes, train_classes = np.unique(np.asarray(train_labels), return_inverse=True)
    votes = knn_votes(np.asarray(ids)[:, :k], train_classes.ravel(), len(classes))
    return (classes[votes.argmax(axis=1)] == np.asarray(test_labels)) & (votes.max(axis=1) > 0)
