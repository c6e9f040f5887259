"""One rule for adapter parameters (:func:`annbench.backends.params.validate_params`): what it refuses,
with which message and path, and that grids, the classifier and lookups say the same thing."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import numpy as np
import pytest
from conftest import write_backend

from annbench.apps.classifier import ANNClassifier
from annbench.apps.lookup import make_adapter
from annbench.backends.adapter import Adapter
from annbench.backends.discovery import load_adapter
from annbench.backends.params import ParamError, validate_params
from annbench.core.errors import UserError
from annbench.core.paths import algorithm_dirs
from annbench.plan.config import check_against, load_config


class Probe(Adapter):
    metrics = ("euclidean",)

    def __init__(self, metric: str, size: int, mode: Literal["a", "b"] = "a", threads: int = 1) -> None:
        super().__init__(metric, threads=threads)

    def set_query_params(self, ef: float = 1.0) -> None:
        pass


@pytest.mark.parametrize(("build", "query", "metric", "message", "path"), [
    ({"size": 3}, {}, "angular", "metric 'angular' is not supported by probe; valid: euclidean", ("metric",)),
    ({"size": 3, "sise": 1}, {}, None, "probe takes no build parameter 'sise'; valid: size, mode", ("build", "sise")),
    ({"size": 3}, {"eff": 1}, None, "probe takes no query parameter 'eff'; valid: ef", ("query", "eff")),
    ({"size": 3.5}, {}, None, "build parameter 'size' = 3.5 has the wrong type; valid: int", ("build", "size", 0)),
    ({"size": True}, {}, None, "build parameter 'size' = True has the wrong type; valid: int", ("build", "size", 0)),
    ({"size": 1, "mode": "c"}, {}, None, "build parameter 'mode' = 'c' has the wrong type; valid: one of 'a', 'b'",
     ("build", "mode", 0)),
    ({"size": 1}, {"ef": "x"}, None, "query parameter 'ef' = 'x' has the wrong type; valid: float", ("query", "ef", 0)),
    ({}, {}, None, "probe lacks required build parameter(s) size", ("build",)),
])
def test_each_fault_is_one_message_and_a_path(build, query, metric, message, path) -> None:
    with pytest.raises(ParamError) as e:
        validate_params(Probe, build, query, metric, algorithm="probe")
    assert str(e.value) == message and e.value.path == path
    assert isinstance(e.value, UserError) and isinstance(e.value, ValueError)


def test_valid_parameters_pass_and_none_skips_a_check() -> None:
    validate_params(Probe, {"size": 2, "mode": "b"}, {"ef": 2}, "euclidean", algorithm="probe")  # int is a float
    validate_params(Probe, None, None, "euclidean", algorithm="probe")  # the required size is not asked for
    validate_params(Probe, {"size": [1, 2]}, {"ef": [0.5, 2.0]}, None, algorithm="probe", lists=True)


def test_lists_check_every_value_and_name_its_position() -> None:
    with pytest.raises(ParamError) as e:
        validate_params(Probe, {"size": [1, 2, "three"]}, {}, None, algorithm="probe", lists=True)
    assert e.value.path == ("build", "size", 2) and "'three'" in str(e.value)


def test_grids_the_classifier_and_lookups_say_the_same(tmp_path: Path) -> None:
    """The same unknown build parameter of kdtree, given to a grid, the classifier and a lookup index."""
    message = "kdtree takes no build parameter 'leaf_sise'; valid: leaf_size"
    grid = write_backend(tmp_path, "kdtree", groups="  quick:\n    build: {leaf_sise: [10]}") / "kdtree.yml"
    kdtree = load_adapter("kdtree", algorithm_dirs())
    with pytest.raises(UserError) as from_grid:
        check_against(load_config(grid), kdtree)
    assert str(from_grid.value) == f"config {grid}:5: {message}"
    x, y = np.random.default_rng(0).random((20, 4), dtype=np.float32), np.arange(20) % 2
    with pytest.raises(ValueError) as from_classifier:
        ANNClassifier(algorithm="kdtree", leaf_sise=10).fit(x, y)
    assert str(from_classifier.value) == message
    with pytest.raises(UserError) as from_lookup:
        make_adapter("kdtree", SimpleNamespace(distance="euclidean", point_type="float32", dimension=4, path="x"),
                     {"leaf_sise": 10}, {})
    assert str(from_lookup.value) == message
