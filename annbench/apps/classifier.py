"""Approximate k-NN classification with any annbench backend, as a scikit-learn estimator.

``ANNClassifier(algorithm="annoy", k=5, n_trees=50, search_k=2000)`` builds the backend's
index over the training rows in ``fit`` and predicts by the uniform majority vote of the
``k`` neighbours it returns — the rule of ``KNeighborsClassifier(weights="uniform")``
(ties to the smallest label), so with an exact backend both agree on data without distance
ties. Keyword parameters beyond the fixed ones go to the adapter: those of its ``__init__``
are build parameters, those of its ``set_query_params`` query parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from annbench.backends.adapter import Adapter, adapter_for, query_parameters
from annbench.backends.params import validate_params
from annbench.core.errors import UserError
from annbench.quality.distances import distances_to_ids
from annbench.quality.metrics import knn_votes


class ANNClassifier(ClassifierMixin, BaseEstimator):
    """k-nearest-neighbour classifier over an annbench backend.

    Parameters
    ----------
    algorithm : name of an adapter in ``algorithms/`` (or ``algorithms_dir``), e.g. ``"annoy"``.
    k : neighbours that vote.
    metric : ``"euclidean"``, ``"angular"`` or ``"ip"`` (as the backend supports).
    threads : library threads for building and querying.
    algorithms_dir : an extra adapter folder searched first.
    **params : the backend's build and query parameters.
    """

    def __init__(self, algorithm: str = "bruteforce", k: int = 5, metric: str = "euclidean", threads: int = 1,
                 algorithms_dir: str | Path | None = None, **params: Any) -> None:
        self.algorithm = algorithm
        self.k = k
        self.metric = metric
        self.threads = threads
        self.algorithms_dir = algorithms_dir
        self._backend_params = tuple(params)
        for name, value in params.items():
            setattr(self, name, value)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {**super().get_params(deep), **{n: getattr(self, n) for n in self._backend_params}}

    def set_params(self, **params: Any) -> ANNClassifier:
        """Set any parameter; names the fixed ones do not cover become backend parameters (checked in ``fit``)."""
        fixed = set(super().get_params(deep=False))
        new = [n for n in params if n not in fixed and n not in self._backend_params]
        self._backend_params = (*self._backend_params, *new)
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def _adapter_class(self) -> type[Adapter]:
        from annbench.backends.discovery import load_adapter
        from annbench.core.paths import algorithm_dirs

        try:
            extra = [Path(self.algorithms_dir)] if self.algorithms_dir else None
            return load_adapter(self.algorithm, algorithm_dirs(extra))
        except UserError as e:
            raise ValueError(str(e)) from None

    def _split(self, cls: type[Adapter]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The backend parameters as (build, query), checked (:func:`annbench.backends.params.validate_params`):
        a name the adapter takes for neither counts as a build parameter, so the check names it."""
        query_names = query_parameters(cls)
        values = {name: getattr(self, name) for name in self._backend_params}
        build = {n: v for n, v in values.items() if n not in query_names}
        query = {n: v for n, v in values.items() if n in query_names}
        validate_params(cls, build, query, self.metric, algorithm=self.algorithm)
        return build, query

    def fit(self, X: Any, y: Any) -> ANNClassifier:
        X, y = validate_data(self, X, y, dtype=np.float32, order="C")
        check_classification_targets(y)
        cls = self._adapter_class()
        if not (isinstance(self.k, (int, np.integer)) and 1 <= self.k <= len(X)):
            raise ValueError(f"k={self.k!r} is invalid; valid: an integer in [1, {len(X)}] (the number of samples)")
        build, query = self._split(cls)
        self.classes_, self._y = np.unique(y, return_inverse=True)
        self._X = np.array(X, dtype=np.float32, order="C")
        self._X.setflags(write=False)
        from annbench.core.threads import limited_threads

        with limited_threads(self.threads):
            adapter = adapter_for(cls, self.metric, "float32", X.shape[1], self.threads, **build)  # rows as float32
            adapter.fit(self._X)
            adapter.set_query_params(**query)
        self.adapter_ = adapter
        return self

    def _neighbor_ids(self, X: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self, "adapter_")
        X = np.array(validate_data(self, X, dtype=np.float32, order="C", reset=False))
        X.setflags(write=False)
        from annbench.core.threads import limited_threads

        with limited_threads(self.threads):
            ids = np.asarray(self.adapter_.batch_query(X, k), dtype=np.int64)
        return X, ids

    def kneighbors(self, X: Any, n_neighbors: int | None = None,
                   return_distance: bool = True) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The backend's neighbours of each row (``-1`` padded) and, by default, their exact distances."""
        X, ids = self._neighbor_ids(X, n_neighbors or self.k)
        return (distances_to_ids(X, self._X, ids, self.metric), ids) if return_distance else ids

    def _votes(self, X: Any) -> np.ndarray:
        return knn_votes(self._neighbor_ids(X, self.k)[1], self._y, len(self.classes_))

    def predict_proba(self, X: Any) -> np.ndarray:
        """``votes / number of neighbours returned``; uniform for a row that got no neighbour."""
        votes = self._votes(X)
        total = votes.sum(axis=1, keepdims=True)
        return np.divide(votes, total, out=np.full(votes.shape, 1.0 / len(self.classes_)), where=total > 0)

    def predict(self, X: Any) -> np.ndarray:
        """The most voted class; ties (and rows with no neighbour) go to the smallest label."""
        votes = self._votes(X)
        return self.classes_[votes.argmax(axis=1)]
