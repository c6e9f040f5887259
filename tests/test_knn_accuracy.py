"""k-NN classification accuracy: the metric, its scikit-learn equivalence, and its place in every run."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import call

from annbench.quality.metrics import knn_accuracy, knn_votes


def test_knn_accuracy_hand_made_with_ties_and_padding() -> None:
    train_labels = np.array([3, 1, 1, 3, 2])
    ids = np.array([
        [0, 1, 2, 3],    # votes 3:2, 1:2 -> tie -> smallest label 1
        [4, 0, -1, -1],  # padding ignored; votes 2:1, 3:1 -> tie -> 2
        [0, 3, 4, 1],    # votes 3:2, 2:1, 1:1 -> 3
        [-1, -1, -1, -1],  # nothing returned -> no prediction, wrong
    ])
    assert knn_votes(ids, np.array([2, 0, 0, 2, 1]), 3).tolist() == [[2, 0, 2], [0, 1, 1], [1, 1, 2], [0, 0, 0]]
    assert knn_accuracy(ids, train_labels, np.array([1, 2, 3, 1]), 4) == 1.0 - 1 / 4
    assert knn_accuracy(ids, train_labels, np.array([3, 3, 1, 1]), 4) == 0.0
    # only the first k columns vote: k=1 -> labels 3, 2, 3, none
    assert knn_accuracy(ids, train_labels, np.array([3, 2, 3, 3]), 1) == 3 / 4


def test_tie_goes_to_the_smallest_label_as_in_scikit_learn() -> None:
    from sklearn.neighbors import KNeighborsClassifier

    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    q = np.array([[1.4]])  # nearest: id 1 (0.4), then id 2 (0.6)
    for labels in ([2, 1, 2, 1], [1, 2, 1, 2]):
        labels = np.array(labels)
        sk = KNeighborsClassifier(n_neighbors=2, weights="uniform", algorithm="brute").fit(x, labels).predict(q)
        assert sk[0] == 1
        assert knn_accuracy(np.array([[1, 2]]), labels, np.array([1]), 2) == 1.0
        assert knn_accuracy(np.array([[1, 2]]), labels, np.array([2]), 2) == 0.0


@pytest.mark.parametrize("k", [1, 4, 10])
def test_exact_neighbours_reproduce_kneighbors_classifier(k: int) -> None:
    from sklearn.datasets import make_classification
    from sklearn.neighbors import KNeighborsClassifier

    from annbench.quality.groundtruth import exact_knn

    x, y = make_classification(n_samples=1600, n_features=12, n_informative=8, n_classes=4, random_state=3)
    x = x.astype(np.float32)
    train, test, y_train, y_test = x[:1400], x[1400:], y[:1400], y[1400:]
    ids, dist = exact_knn(train, test, "euclidean", k + 1)
    assert np.min(dist[:, k] - dist[:, k - 1]) > 1e-5, "precondition: no distance ties at the k-th neighbour"
    sk = KNeighborsClassifier(n_neighbors=k, weights="uniform", algorithm="brute").fit(train, y_train)
    expected = sk.score(test, y_test)
    assert 0.3 < expected < 1.0  # a non-trivial case
    assert knn_accuracy(ids[:, :k], y_train, y_test, k) == expected


def test_every_run_on_a_labelled_dataset_stores_knn_accuracy(data_dir, results_dir, tmp_path) -> None:
    from annbench.analyse.frames import results_frame
    from annbench.cli.plot import main as plot_main
    from annbench.cli.run import main as run_main

    r = call(run_main, "--dataset", "digits-64-euclidean", "--algorithm", "bruteforce", "--runs", "1",
             "--data-dir", data_dir, "--results", results_dir, "--no-plot", "-q", "--table", "runs")
    assert r.code == 0, r.err
    header = next(line for line in r.out.splitlines() if " status " in line).split()
    assert "knn_accuracy" in header and "knn_accuracy_exact" in header
    row = results_frame(results_dir, "digits-64-euclidean").iloc[0]
    # bruteforce is exact: both accuracies agree, and digits are easy for 10-NN
    assert row["knn_accuracy"] == row["knn_accuracy_exact"] > 0.9
    out = tmp_path / "acc.png"
    r = call(plot_main, "--results", results_dir, "-x", "knn_accuracy", "--output", out)
    assert r.code == 0, r.err
    assert out.stat().st_size > 0


def test_unlabelled_dataset_has_no_knn_accuracy(data_dir, results_dir) -> None:
    from annbench.analyse.frames import results_frame
    from annbench.cli.run import main as run_main

    r = call(run_main, "--dataset", "random-xs-20-euclidean", "--algorithm", "bruteforce", "--runs", "1",
             "--data-dir", data_dir, "--results", results_dir, "--no-plot", "-q")
    assert r.code == 0, r.err
    assert "knn_accuracy" not in r.out
    assert "knn_accuracy" not in results_frame(results_dir).columns
