"""Metrics on hand-computed cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from annbench.backends.discovery import load_adapter
from annbench.core import paths
from annbench.datasets.format import Dataset
from annbench.execute.evaluate import quality
from annbench.quality import metrics as M
from annbench.quality.distances import distances_to_ids
from annbench.quality.groundtruth import exact_knn


def test_recall_uses_the_1e3_slack_on_the_kth_distance() -> None:
    true_d = np.array([[1.0, 2.0, 3.0]])
    assert M.recall(np.array([[1.0, 2.0009]]), true_d, 2)[0] == 1.0
    assert M.recall(np.array([[1.0, 2.0011]]), true_d, 2)[0] == 0.5
    # a different point at exactly the k-th distance (a tie) counts
    assert M.recall(np.array([[2.0, 1.0]]), true_d, 2)[0] == 1.0


def test_recall_counts_padding_as_a_miss() -> None:
    true_d = np.array([[1.0, 2.0]])
    assert M.recall(np.array([[1.0, np.inf]]), true_d, 2)[0] == 0.5


def test_recall_slack_never_drops_below_float32_rounding() -> None:
    # ip on large inner products: the stored float32 k-th distance is rounded down by more than
    # 1e-3, so the exact point's recomputed (float64) distance lies above t + 1e-3
    exact = -123456.0 + 0.003
    stored = np.float32(exact)  # float32 spacing there is 0.0078: the stored value is -123456.0
    assert exact - float(stored) > 1e-3
    assert M.recall(np.array([[exact]]), np.array([[stored]], dtype=np.float64), 1)[0] == 1.0
    # ... while at ordinary magnitudes the slack stays ann-benchmarks' 1e-3, for negative distances too
    assert M.recall(np.array([[-3.0, -1.9991]]), np.array([[-3.0, -2.0]]), 2)[0] == 1.0
    assert M.recall(np.array([[-3.0, -1.9989]]), np.array([[-3.0, -2.0]]), 2)[0] == 0.5


def test_epsilon_recall() -> None:
    true_d = np.array([[1.0, 2.0]])
    found = np.array([[1.0, 2.1]])
    assert M.epsilon_recall(found, true_d, 2, 0.01)[0] == 0.5  # threshold 2.02
    assert M.epsilon_recall(found, true_d, 2, 0.1)[0] == 1.0   # threshold 2.2


def test_epsilon_recall_on_negative_distances_is_as_loose_as_on_positive_ones() -> None:
    # ip: distances are -<q, x>; the k-th true inner product is 2, so eps = 0.1 accepts inner
    # products down to 1.8 and eps = 0.01 down to 1.98
    true_d = np.array([[-3.0, -2.0]])
    assert M.epsilon_recall(true_d, true_d, 2, 0.01)[0] == 1.0  # exact
    found = np.array([[-3.0, -1.9]])
    assert M.epsilon_recall(found, true_d, 2, 0.01)[0] == 0.5
    assert M.epsilon_recall(found, true_d, 2, 0.1)[0] == 1.0
    assert M.epsilon_recall(np.array([[-3.0, -1.7]]), true_d, 2, 0.1)[0] == 0.5


def test_id_recall_extends_the_true_list_with_ties() -> None:
    true_ids = np.array([[0, 1, 2, 3]])
    true_d = np.array([[1.0, 2.0, 2.0 + 5e-7, 5.0]])
    assert M.id_recall(np.array([[0, 2]]), true_ids, true_d, 2)[0] == 1.0  # 2 ties the k-th
    assert M.id_recall(np.array([[0, 3]]), true_ids, true_d, 2)[0] == 0.5  # 3 does not
    assert M.id_recall(np.array([[0, -1]]), true_ids, true_d, 2)[0] == 0.5  # padding never matches
    assert M.id_recall(np.array([[1, 0]]), true_ids, true_d, 2)[0] == 1.0  # order does not matter


def test_id_recall_big_ann_benchmarks_tie_cases() -> None:
    ids = np.array([[0, 1, 2, 3]])
    # true distances [1, 1, 2, 3], k = 2: the true list is {0, 1}
    before_k = np.array([[1.0, 1.0, 2.0, 3.0]])
    assert M.id_recall(np.array([[0, 2]]), ids, before_k, 2)[0] == 0.5
    assert M.id_recall(np.array([[1, 0]]), ids, before_k, 2)[0] == 1.0
    # true distances [1, 2, 2, 3], k = 2: id 2 ties the k-th distance past k and counts, id 3 does not
    past_k = np.array([[1.0, 2.0, 2.0, 3.0]])
    assert M.id_recall(np.array([[0, 2]]), ids, past_k, 2)[0] == 1.0
    assert M.id_recall(np.array([[2, 1]]), ids, past_k, 2)[0] == 1.0
    assert M.id_recall(np.array([[0, 3]]), ids, past_k, 2)[0] == 0.5
    # a run of ties past k: all of them count (within 1e-6 of the k-th distance)
    run = np.array([[1.0, 2.0, 2.0, 2.0 + 9e-7]])
    assert M.id_recall(np.array([[3, 2]]), ids, run, 2)[0] == 1.0


def test_one_recall_at_r_asks_for_the_nearest_neighbour_among_the_first_r_with_recalls_tie_rule() -> None:
    true_d = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 3.0], [5.0, 6.0, 7.0]])
    found_d = np.array([[2.0, 1.0, 3.0],       # the nearest second: 1-R@1 misses it, 1-R@2 finds it
                        [1.0005, 3.0, 4.0],    # a tie with the nearest within recall's 1e-3 slack counts
                        [6.0, 7.0, np.inf]])   # never the nearest
    assert M.one_recall_at(found_d, true_d, 1).tolist() == [0.0, 1.0, 0.0]
    assert M.one_recall_at(found_d, true_d, 2).tolist() == [1.0, 1.0, 0.0]
    assert M.one_recall_at(found_d, true_d, 3).tolist() == [1.0, 1.0, 0.0]


def test_one_recall_columns_are_stored_only_where_k_allows(gaussian_16d) -> None:
    train, test = gaussian_16d
    true_ids, true_d = exact_knn(train, test, "euclidean", k=100)
    dataset = Dataset("gauss-16", Path("gauss-16.hdf5"), "euclidean", train, test, true_ids, true_d, "none")
    shifted = np.concatenate([true_ids[:, 1:10], true_ids[:, :1]], axis=1).astype(np.int64)  # nearest last
    scores, _ = quality(dataset, shifted, 10)
    assert scores["1-R@1"] == pytest.approx(np.mean(true_d[:, 1] <= true_d[:, 0] + 1e-3))  # only ties at the top
    assert scores["1-R@10"] == 1.0 and "1-R@100" not in scores
    scores, _ = quality(dataset, true_ids.astype(np.int64), 100)
    assert scores["1-R@1"] == scores["1-R@10"] == scores["1-R@100"] == 1.0


def test_relative_error() -> None:
    true_d = np.array([[1.0, 2.0], [0.0, 1.0]])
    assert M.relative_error(np.array([[1.0, 3.0], [0.0, 1.0]]), true_d, 2) == pytest.approx(5 / 4)
    assert M.relative_error(np.array([[1.0, np.inf], [0.0, 1.0]]), true_d, 2) == math.inf
    zeros = np.zeros((1, 2))
    assert M.relative_error(zeros, zeros, 2) == 1.0
    # only k columns count on both sides
    assert M.relative_error(np.array([[1.0, 9.0]]), np.array([[1.0, 2.0]]), 1) == 1.0


def test_relative_error_on_inner_products_is_the_ratio_of_similarities() -> None:
    true_d = np.array([[-4.0, -2.0], [-3.0, -1.0]])  # inner products sum to 10
    assert M.relative_error(true_d, true_d, 2) == 1.0
    worse = np.array([[-4.0, -1.0], [-2.0, -1.0]])  # sum 8: worse, so above 1
    assert M.relative_error(worse, true_d, 2) == pytest.approx(10 / 8)
    much_worse = np.array([[-1.0, -1.0], [-1.0, -1.0]])
    assert M.relative_error(much_worse, true_d, 2) > M.relative_error(worse, true_d, 2)
    # inner products of the answer summing to <= 0 while the true ones are positive: unboundedly worse
    assert M.relative_error(np.array([[-1.0, 1.0], [0.0, 0.5]]), true_d, 2) == math.inf
    assert M.relative_error(np.array([[-4.0, np.inf], [-3.0, -1.0]]), true_d, 2) == math.inf
    # all true inner products negative: the distances are positive and the distance ratio applies
    assert M.relative_error(np.array([[2.0, 4.0]]), np.array([[1.0, 2.0]]), 2) == pytest.approx(2.0)


@pytest.fixture(scope="module")
def gaussian_16d() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(16)
    return (rng.standard_normal((3000, 16)).astype(np.float32),
            rng.standard_normal((200, 16)).astype(np.float32))


QUALITY = ("recall", "id_recall", "eps_recall_0.01", "eps_recall_0.1")


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip"])
def test_exact_answers_score_one_and_worse_answers_lower_on_every_distance(metric: str, gaussian_16d) -> None:
    train, test = gaussian_16d
    true_ids, true_d = exact_knn(train, test, metric, k=100)
    dataset = Dataset("gauss-16", Path("gauss-16.hdf5"), metric, train, test, true_ids, true_d, "none")
    k = 10
    adapter = load_adapter("bruteforce", paths.algorithm_dirs())(metric)
    adapter.fit(train)
    exact = np.asarray(adapter.batch_query(test, k), dtype=np.int64)
    scores, _ = quality(dataset, exact, k)
    assert all(scores[name] == 1.0 for name in (*QUALITY, "1-R@1", "1-R@10")), scores
    assert scores["rel"] == pytest.approx(1.0, abs=1e-6)
    # the nearest half kept, the other half replaced by the 50th..54th true neighbours
    worse = np.concatenate([true_ids[:, :k // 2], true_ids[:, 50:50 + k // 2]], axis=1).astype(np.int64)
    worse_scores, _ = quality(dataset, worse, k)
    for name in QUALITY:
        assert worse_scores[name] < 1.0, (name, worse_scores)
    assert worse_scores["rel"] > 1.0 + 1e-3, worse_scores
    assert worse_scores["id_recall"] == pytest.approx(0.5)


def test_duplicate_rows_ignore_padding() -> None:
    ids = np.array([[1, 1, -1], [1, 2, -1], [-1, -1, 3], [4, 5, 4]])
    assert M.duplicate_rows(ids).tolist() == [0, 3]


def test_qps_and_latency_percentiles() -> None:
    assert M.qps(1000, 2e9) == 500.0
    lat = np.arange(1, 101) * 1_000_000  # 1..100 ms
    p = M.latency_percentiles_ms(lat)
    assert p["p50_ms"] == pytest.approx(50.5)
    assert p["p99_ms"] == pytest.approx(99.01)
    assert p["p99.9_ms"] == pytest.approx(99.901)
    assert all(math.isnan(v) for v in M.latency_percentiles_ms(None).values())


def test_distances_recomputed_per_metric() -> None:
    train = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    q = np.array([[0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    ids = np.array([[0, -1], [2, 1]])
    e = distances_to_ids(q, train, ids, "euclidean")
    assert e[0, 0] == 5.0 and e[0, 1] == np.inf
    assert e[1].tolist() == pytest.approx([math.sqrt(5), 0.0])
    a = distances_to_ids(q[1:], train, np.array([[0, 2]]), "angular")
    assert a[0].tolist() == pytest.approx([1 - 3 / 5, 1.0])
    ip = distances_to_ids(q[1:], train, np.array([[0, 1]]), "ip")
    assert ip[0].tolist() == pytest.approx([-3.0, -1.0])
