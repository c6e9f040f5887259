"""The dataset file: ann-benchmarks' layout both ways, validation, ground truth, built-ins."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from annbench.core.errors import UserError
from annbench.datasets.format import load_dataset, write_dataset
from annbench.datasets.registry import RawData, materialize, resolve
from annbench.quality.groundtruth import exact_knn

REPO = Path(__file__).resolve().parent.parent


def test_written_file_has_ann_benchmarks_fields_dtypes_and_attrs(data_dir: Path) -> None:
    with h5py.File(data_dir / "random-xs-20-euclidean.hdf5", "r") as f:
        assert {"train", "test", "neighbors", "distances"} <= set(f.keys())
        assert f["train"].dtype == np.float32 and f["train"].shape == (9000, 20)
        assert f["test"].dtype == np.float32 and f["test"].shape == (1000, 20)
        assert f["neighbors"].dtype == np.int32 and f["neighbors"].shape == (1000, 100)
        assert f["distances"].dtype == np.float32 and f["distances"].shape == (1000, 100)
        assert f.attrs["distance"] == "euclidean" and f.attrs["type"] == "dense"
        assert f.attrs["point_type"] == "float" and int(f.attrs["dimension"]) == 20
        assert f.attrs["checksum"].startswith("xxh3:") and "source" in f.attrs


def test_a_file_made_the_ann_benchmarks_way_loads_unchanged(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(300, 8)), rng.normal(size=(20, 8))
    ids, dists = exact_knn(train.astype(np.float32), test.astype(np.float32), "angular", 100)
    path = tmp_path / "glove-tiny-angular.hdf5"
    with h5py.File(path, "w") as f:  # as ann_benchmarks.datasets.write_output does
        f.attrs.update({"type": "dense", "distance": "angular", "dimension": 8, "point_type": "float"})
        f.create_dataset("train", data=train.astype(np.float32))
        f.create_dataset("test", data=test.astype(np.float32))
        f.create_dataset("neighbors", data=ids, dtype="i")
        f.create_dataset("distances", data=dists, dtype="f")
    d = load_dataset(path)
    assert d.name == "glove-tiny-angular" and d.distance == "angular" and d.dimension == 8
    assert d.neighbors.tolist() == ids.tolist() and d.checksum.startswith("xxh3:")  # computed: the file has none
    assert not d.train.flags.writeable and not d.test.flags.writeable


def _valid(tmp_path: Path, **override) -> Path:
    rng = np.random.default_rng(1)
    fields = dict(train=rng.normal(size=(200, 4)).astype(np.float32), test=rng.normal(size=(10, 4)).astype(np.float32),
                  distance="euclidean")
    ids, dists = exact_knn(fields["train"], fields["test"], "euclidean", 100)
    fields.update(neighbors=ids, distances=dists)
    fields.update(override)
    return write_dataset(tmp_path / "d.hdf5", **fields)


@pytest.mark.parametrize(("override", "message"), [
    ({"distance": "manhattan"}, "attr 'distance' is 'manhattan'; valid: euclidean, angular, ip, hamming, jaccard"),
    ({"train": np.full((200, 4), np.nan, dtype=np.float32)}, "field 'train' contains NaN or inf"),
    ({"neighbors": np.full((10, 100), 500)}, "ids outside [0, 200)"),
    ({"distances": np.zeros((10, 99))}, "distances has shape (10, 99) but neighbors has (10, 100)"),
    ({"neighbors": np.zeros((9, 100)), "distances": np.zeros((9, 100))}, "neighbors has 9 rows but test has 10"),
    ({"train_labels": np.zeros(7)}, "field 'train_labels' has shape (7,), expected (200,)"),
])
def test_validation_names_the_file_and_field(tmp_path: Path, override: dict, message: str) -> None:
    path = _valid(tmp_path, **override)
    with pytest.raises(UserError) as e:
        load_dataset(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_missing_field_is_named(tmp_path: Path) -> None:
    path = _valid(tmp_path)
    with h5py.File(path, "a") as f:
        del f["distances"]
    with pytest.raises(UserError, match="missing field 'distances'"):
        load_dataset(path)


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip"])
@pytest.mark.parametrize("backend", ["faiss", "numpy"])
def test_ground_truth_matches_sklearn_brute_force(metric: str, backend: str) -> None:
    from sklearn.metrics import pairwise_distances

    rng = np.random.default_rng(2)
    train, test = rng.normal(size=(2000, 12)).astype(np.float32), rng.normal(size=(50, 12)).astype(np.float32)
    ids, dists = exact_knn(train, test, metric, 100, backend=backend)
    if metric == "ip":
        full = -(test.astype(np.float64) @ train.astype(np.float64).T)
    else:
        full = pairwise_distances(test.astype(np.float64), train.astype(np.float64),
                                  metric="euclidean" if metric == "euclidean" else "cosine")
    expected = np.argsort(full, axis=1, kind="stable")[:, :100]
    assert (ids == expected).mean() > 0.999  # ids equal up to float ties
    np.testing.assert_allclose(dists, np.take_along_axis(full, expected, axis=1), rtol=1e-5, atol=1e-5)


def test_builtins_are_deterministic_and_labelled(tmp_path: Path, data_dir: Path) -> None:
    _, again = resolve("random-xs-20-euclidean", tmp_path)
    assert load_dataset(again).checksum == load_dataset(data_dir / "random-xs-20-euclidean.hdf5").checksum
    digits = load_dataset(data_dir / "digits-64-euclidean.hdf5")
    assert digits.train.shape == (1617, 64) and digits.test_labels is not None
    assert set(np.unique(digits.train_labels)) == set(range(10))
    angular = load_dataset(data_dir / "random-xs-20-angular.hdf5")
    assert angular.distance == "angular" and angular.train.shape == (9000, 20)


def test_too_few_train_points_is_a_clear_error(tmp_path: Path) -> None:
    raw = RawData(train=np.zeros((50, 3), np.float32), test=np.zeros((5, 3), np.float32), distance="euclidean")
    with pytest.raises(UserError, match="50 train points, need at least 100"):
        materialize(raw, tmp_path / "x.hdf5", "tiny")
    assert not (tmp_path / "x.hdf5").exists()


def test_top_level_folders_are_not_import_packages() -> None:
    """``pip install -e .`` must not shadow Hugging Face's ``datasets`` (or anything else)."""
    import tomllib

    from setuptools import find_packages

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(where=str(REPO), include=config["include"])
    assert packages and all(p == "annbench" or p.startswith("annbench.") for p in packages), packages
    for folder in ("datasets", "algorithms", "configs", "results", "benchmarks", "tests"):
        assert not (REPO / folder / "__init__.py").exists(), folder
