"""Quality and speed metrics of one run: short, vectorised, pure numpy functions.

Conventions: ``found_d`` / ``true_d`` are ``(nq, >=k)`` distance arrays where smaller is
nearer (see :mod:`annbench.quality.distances`); padded result slots (id ``-1``) have distance
``+inf``. Quality functions return one value per query; callers average.
"""

from __future__ import annotations

import numpy as np

#: ann-benchmarks' slack on the k-th true distance.
RECALL_EPSILON = 1e-3
#: Floor of that slack relative to ``|t_{k-1}|``: 4 float32 ulps (machine epsilon 2**-23), so
#: the rounding of distances stored as float32 never costs an exact answer its recall.
RECALL_RELATIVE_SLACK = 2.0**-21
#: big-ann-benchmarks' tolerance for ties with the k-th true distance.
TIE_TOLERANCE = 1e-6
#: R of the reported 1-recall-at-R columns (``1-R@1``, ``1-R@10``, ``1-R@100``), each where R <= k.
ONE_RECALL_RS = (1, 10, 100)
#: Latency percentiles reported (``p50_ms`` ... ``p99.9_ms``).
PERCENTILES = (50.0, 95.0, 99.0, 99.9)


def recall(found_d: np.ndarray, true_d: np.ndarray, k: int, epsilon: float = RECALL_EPSILON) -> np.ndarray:
    """ann-benchmarks' recall@k per query.

    ``recall = |{j < k : found_d[j] <= t + max(epsilon, 2**-21 · |t|)}| / k`` with ``t = true_d[k-1]``.

    ann-benchmarks' absolute slack ``epsilon = 1e-3`` is kept as it is for every distance, so
    recalls compare with theirs: it is right wherever ``|t|`` is far above float32 rounding and
    far below it in relative terms — euclidean and ip distances up to ~2,000 in magnitude and
    angular distances in [0, 2]. Above that (e.g. ip on unnormalised embeddings with inner
    products of 10^4) ``1e-3`` falls below the float32 rounding of the stored distance and an
    exact answer could lose recall, so the slack never drops below ``2**-21 · |t|`` (4 float32
    ulps; identical to ann-benchmarks' for ``|t| < 2097``, and within a rounding error above).
    The slack being absolute, on an angular dataset whose k-th distances are ~0.001 it lets
    through points up to twice as far: there ``eps_recall`` or ``id_recall`` is the stricter measure.
    """
    t = true_d[:, k - 1:k]
    threshold = t + np.maximum(epsilon, RECALL_RELATIVE_SLACK * np.abs(t))
    return np.count_nonzero(found_d[:, :k] <= threshold, axis=1) / k


def one_recall_at(found_d: np.ndarray, true_d: np.ndarray, r: int, epsilon: float = RECALL_EPSILON) -> np.ndarray:
    """faiss's "1-recall at R" per query: 1.0 where the true nearest neighbour is among the first ``r``
    answers, else 0.0, with the tie rule of :func:`recall` (any point at the nearest distance counts).

    ``one_recall_at = [ min_{j < r} found_d[j] <= t + max(epsilon, 2**-21 · |t|) ]`` with ``t = true_d[0]``.
    """
    t = true_d[:, 0:1]
    threshold = t + np.maximum(epsilon, RECALL_RELATIVE_SLACK * np.abs(t))
    return np.any(found_d[:, :r] <= threshold, axis=1).astype(np.float64)


def one_recall_column(r: int) -> str:
    """The column of faiss's 1-recall at ``r``: ``1-R@10``."""
    return f"1-R@{r}"


def epsilon_recall(found_d: np.ndarray, true_d: np.ndarray, k: int, eps: float) -> np.ndarray:
    """(1+eps)-approximate recall@k per query, for every distance.

    ``recall_eps = |{j < k : found_d[j] <= t + eps · |t|}| / k`` with ``t = true_d[k-1]``.

    For non-negative distances (euclidean, angular) this is the usual ``t · (1 + eps)``; for
    ip, whose distances ``-<q, x>`` are negative wherever the inner product is positive,
    ``t · (1 + eps)`` would be *stricter* than exact, while ``t + eps·|t|`` accepts inner
    products down to ``(1 - eps)`` times the k-th largest. An exact answer always scores 1.0.
    """
    t = true_d[:, k - 1:k]
    threshold = t + eps * np.abs(t)
    return np.count_nonzero(found_d[:, :k] <= threshold, axis=1) / k


def id_recall(found_ids: np.ndarray, true_ids: np.ndarray, true_d: np.ndarray, k: int,
              tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """Id recall@k with ties (big-ann-benchmarks' rule), per query.

    The true list is extended past position k with every stored neighbour whose distance
    ties the k-th: ``T = {true_ids[j] : j < k or |true_d[j] - true_d[k-1]| < tolerance}``;
    ``id_recall = |found_ids[:k] ∩ T| / k`` (padding ``-1`` never matches).

    This is the intent of big-ann-benchmarks' ``compute_recall_with_distance_ties`` (ties with
    the k-th distance, tolerance 1e-6). Its code keeps the first k *groups* of tied distances
    rather than the first k positions, so with ties before position k it also accepts points
    beyond the k-th distance (true distances [1, 1, 2, 3], k = 2: it scores the answer {0, 2} as
    1.0, although id 2 is farther than both true neighbours); here that answer scores 0.5.
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
    """Relative error over all queries, k columns on both sides, for every distance.

    With ``D = Σ_q Σ_{j<k} found_d[q, j]`` and ``T = Σ_q Σ_{j<k} true_d[q, j]`` (``T <= D`` for
    every valid answer, the true neighbours being the k nearest)::

        rel = D / T   if T > 0   (euclidean, angular: ann-benchmarks' distance ratio)
        rel = T / D   if T < D < 0   (ip, distances -<q, x>: the ratio of inner-product sums,
                                      true over found)
        rel = 1       if D == T  (an exact answer, also 0/0)
        rel = inf     otherwise  (a padded slot; or ip with T < 0 <= D: the answer's inner
                                  products sum to <= 0)

    1.0 is exact, larger is worse, on every distance; both branches grow without bound as
    ``D`` moves away from ``T``, and they meet (``inf``) where ``D`` crosses 0.
    """
    found, true = float(np.sum(found_d[:, :k])), float(np.sum(true_d[:, :k]))
    if found == true:
        return 1.0
    if true > 0.0:
        return found / true
    if found < 0.0 and true < 0.0:
        return true / found
    return float("inf")


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
