"""Metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from annbench import metrics as M
from annbench.distances import distances_to_ids


def test_recall_uses_the_1e3_slack_on_the_kth_distance() -> None:
    true_d = np.array([[1.0, 2.0, 3.0]])
    assert M.recall(np.array([[1.0, 2.0009]]), true_d, 2)[0] == 1.0
    assert M.recall(np.array([[1.0, 2.0011]]), true_d, 2)[0] == 0.5
    # a different point at exactly the k-th distance (a tie) counts
    assert M.recall(np.array([[2.0, 1.0]]), true_d, 2)[0] == 1.0


def test_recall_counts_padding_as_a_miss() -> None:
    true_d = np.array([[1.0, 2.0]])
    assert M.recall(np.array([[1.0, np.inf]]), true_d, 2)[0] == 0.5


def test_epsilon_recall() -> None:
    true_d = np.array([[1.0, 2.0]])
    found = np.array([[1.0, 2.1]])
    assert M.epsilon_recall(found, true_d, 2, 0.01)[0] == 0.5  # threshold 2.02
    assert M.epsilon_recall(found, true_d, 2, 0.1)[0] == 1.0   # threshold 2.2


def test_id_recall_extends_the_true_list_with_ties() -> None:
    true_ids = np.array([[0, 1, 2, 3]])
    true_d = np.array([[1.0, 2.0, 2.0 + 5e-7, 5.0]])
    assert M.id_recall(np.array([[0, 2]]), true_ids, true_d, 2)[0] == 1.0  # 2 ties the k-th
    assert M.id_recall(np.array([[0, 3]]), true_ids, true_d, 2)[0] == 0.5  # 3 does not
    assert M.id_recall(np.array([[0, -1]]), true_ids, true_d, 2)[0] == 0.5  # padding never matches
    assert M.id_recall(np.array([[1, 0]]), true_ids, true_d, 2)[0] == 1.0  # order does not matter


def test_relative_error() -> None:
    true_d = np.array([[1.0, 2.0], [0.0, 1.0]])
    assert M.relative_error(np.array([[1.0, 3.0], [0.0, 1.0]]), true_d, 2) == pytest.approx(5 / 4)
    assert M.relative_error(np.array([[1.0, np.inf], [0.0, 1.0]]), true_d, 2) == math.inf
    zeros = np.zeros((1, 2))
    assert M.relative_error(zeros, zeros, 2) == 1.0
    # only k columns count on both sides
    assert M.relative_error(np.array([[1.0, 9.0]]), np.array([[1.0, 2.0]]), 1) == 1.0


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
