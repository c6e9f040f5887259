"""ANNClassifier: a scikit-learn classifier over any annbench backend."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_backend
from sklearn.base import clone
from sklearn.neighbors import KNeighborsClassifier

from annbench.apps.classifier import ANNClassifier
from annbench.quality.groundtruth import exact_knn

PROBE_ADAPTER = '''
import numpy as np
from annbench.backends.adapter import Adapter


class Probe(Adapter):
    """Exact search that returns at most ``limit`` neighbours: shows where each parameter went."""

    metrics = ("euclidean",)

    def __init__(self, metric: str, width: int, threads: int = 1) -> None:
        super().__init__(metric, threads)
        self.width = width

    def fit(self, X):
        self.X = X

    def set_query_params(self, limit: int = 100) -> None:
        self.limit = limit

    def query(self, q, k):
        return np.argsort(((self.X - q) ** 2).sum(axis=1), kind="stable")[:min(k, self.limit)]
'''


@pytest.fixture(scope="module")
def labelled() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=1500, n_features=10, n_informative=6, n_classes=3, random_state=5)
    x = x.astype(np.float32)
    return x[:1300], y[:1300] + 10, x[1300:], y[1300:] + 10  # labels 10..12: classes_ must map back


def _no_ties(train: np.ndarray, test: np.ndarray, metric: str, k: int) -> np.ndarray:
    """The queries whose k-th and (k+1)-th true distances differ (by > 1e-5): nearly all of them."""
    _, d = exact_knn(train, test, metric, k + 1)
    keep = d[:, k] - d[:, k - 1] > 1e-5
    assert keep.mean() > 0.9
    return keep


@pytest.mark.parametrize(("algorithm", "metric", "k"), [("bruteforce", "euclidean", 5), ("kdtree", "euclidean", 7),
                                                         ("bruteforce", "angular", 5), ("balltree", "angular", 1)])
def test_exact_backend_equals_kneighbors_classifier(labelled, algorithm: str, metric: str, k: int) -> None:
    train, y_train, test, y_test = labelled
    keep = _no_ties(train, test, metric, k)
    test, y_test = test[keep], y_test[keep]
    ours = ANNClassifier(algorithm=algorithm, k=k, metric=metric).fit(train, y_train)
    sk = KNeighborsClassifier(n_neighbors=k, weights="uniform", algorithm="brute",
                              metric="cosine" if metric == "angular" else "euclidean").fit(train, y_train)
    assert list(ours.classes_) == [10, 11, 12]
    assert np.array_equal(ours.predict(test), sk.predict(test))
    np.testing.assert_allclose(ours.predict_proba(test), sk.predict_proba(test))
    assert ours.score(test, y_test) == sk.score(test, y_test)
    _, ids = ours.kneighbors(test)
    assert np.array_equal(ids, sk.kneighbors(test, return_distance=False))


def test_params_clone_and_set_params(labelled) -> None:
    from sklearn.model_selection import cross_val_score

    train, y_train, _, _ = labelled
    clf = ANNClassifier(algorithm="kdtree", k=3, leaf_size=20)
    assert clf.get_params() == {"algorithm": "kdtree", "k": 3, "metric": "euclidean", "threads": 1,
                                "algorithms_dir": None, "leaf_size": 20}
    twin = clone(clf)
    assert twin is not clf and twin.get_params() == clf.get_params()
    assert repr(clf) == "ANNClassifier(algorithm='kdtree', k=3, leaf_size=20)"
    clf.set_params(leaf_size=8, k=4)
    assert clf.get_params()["leaf_size"] == 8 and clf.k == 4
    assert clf.fit(train, y_train).adapter_.leaf_size == 8
    scores = cross_val_score(ANNClassifier(algorithm="kdtree", k=5, leaf_size=30), train, y_train, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.5
    from sklearn.model_selection import GridSearchCV

    search = GridSearchCV(ANNClassifier(algorithm="kdtree", leaf_size=30), {"k": [1, 15], "leaf_size": [5, 40]}, cv=3)
    assert set(search.fit(train, y_train).best_params_) == {"k", "leaf_size"}


def test_build_and_query_params_reach_the_adapter(labelled, tmp_path) -> None:
    write_backend(tmp_path, "probe", PROBE_ADAPTER)
    train, y_train, test, _ = labelled
    clf = ANNClassifier(algorithm="probe", k=5, algorithms_dir=tmp_path, width=7, limit=1).fit(train, y_train)
    assert clf.adapter_.width == 7 and clf.adapter_.limit == 1
    proba = clf.predict_proba(test)  # one neighbour returned, four padded: one full vote
    assert np.array_equal(np.sort(proba, axis=1)[:, -1], np.ones(len(test)))
    one_nn = KNeighborsClassifier(n_neighbors=1, algorithm="brute").fit(train, y_train)
    assert np.array_equal(clf.predict(test), one_nn.predict(test))
    assert np.array_equal(clone(clf).set_params(limit=5).fit(train, y_train).predict(test),
                          KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(train, y_train).predict(test))


@pytest.mark.parametrize(("clf", "message"), [
    (ANNClassifier(algorithm="kdtree", leaf_sise=3), "kdtree takes no build parameter 'leaf_sise'; valid: leaf_size"),
    (ANNClassifier(algorithm="kdtree", leaf_size="40"), "build parameter 'leaf_size' = '40' has the wrong type; "
                                                        "valid: int"),
    (ANNClassifier(algorithm="no-such-lib"), "algorithm 'no-such-lib' has no adapter file"),
    (ANNClassifier(algorithm="kdtree", metric="ip"), "metric 'ip' is not supported by kdtree; valid: euclidean"),
    (ANNClassifier(k=0), "k=0 is invalid; valid: an integer in [1, 1300]"),
])
def test_bad_parameters_raise_value_error_naming_what_is_valid(labelled, clf, message) -> None:
    train, y_train, _, _ = labelled
    with pytest.raises(ValueError, match=None) as e:
        clf.fit(train, y_train)
    assert message in str(e.value)


def test_needs_fit_first(labelled) -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ANNClassifier().predict(labelled[2])


def test_annoy_backend_splits_build_and_query_params(labelled) -> None:
    train, y_train, test, y_test = labelled
    clf = ANNClassifier(algorithm="annoy", k=5, n_trees=20, search_k=4000).fit(train, y_train)
    assert (clf.adapter_.n_trees, clf.adapter_.search_k) == (20, 4000)
    exact = KNeighborsClassifier(n_neighbors=5, algorithm="brute").fit(train, y_train)
    agree = np.mean(clf.predict(test) == exact.predict(test))
    assert agree >= 0.95, f"annoy (n_trees=20, search_k=4000) agrees with exact 5-NN on {agree:.3f} of queries"
    assert abs(clf.score(test, y_test) - exact.score(test, y_test)) <= 0.05
