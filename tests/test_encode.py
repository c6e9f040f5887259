"""Encoder pipeline: penultimate features of a trained network as a new, valid dataset."""

from __future__ import annotations

import io
import shutil
from contextlib import redirect_stderr

import h5py
import numpy as np
import pytest
from conftest import call

from annbench.apps.encoders.base import EncoderSettings, TrainingData
from annbench.datasets.format import load_dataset

SOURCE = "digits-64-euclidean"


@pytest.fixture(scope="module")
def digits(data_dir):
    return load_dataset(data_dir / f"{SOURCE}.hdf5", name=SOURCE)


@pytest.fixture(scope="module")
def training_data(digits) -> TrainingData:
    return TrainingData.from_arrays(digits.train, digits.train_labels, digits.test, digits.test_labels)


@pytest.fixture(scope="module")
def encoded_dir(data_dir, tmp_path_factory):
    """A data folder holding digits and its MLP encodings at widths 8 and 24, made by the CLI."""
    from annbench.cli.encode import main

    d = tmp_path_factory.mktemp("encoded")
    shutil.copy(data_dir / f"{SOURCE}.hdf5", d)
    r = call(main, "--from", SOURCE, "--model", "mlp", "--dim", "8,24", "--epochs", "3", "--seed", "1",
             "--data-dir", d, "-q")
    assert r.code == 0, r.err
    assert "epoch" not in r.err and "%|" not in r.err, r.err  # -q draws no progress bar
    assert "digits-encoded-mlp-8-euclidean" in r.out and "digits-encoded-mlp-24-euclidean" in r.out
    return d


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("dim", [5, 16])
def test_mlp_penultimate_has_the_chosen_width_and_feeds_the_output_layer(training_data, dim: int) -> None:
    from annbench.apps.encoders import mlp

    trained = mlp.train(training_data, EncoderSettings("mlp", dim, epochs=2, seed=0), progress=False)
    features = trained.features(training_data.x_test)
    assert features.shape == (len(training_data.x_test), dim) and features.dtype == np.float32
    clf = trained.model
    # the features are the layer right before the output: the output layer on them gives the network's answer
    np.testing.assert_allclose(_softmax(features @ clf.coefs_[-1] + clf.intercepts_[-1]),
                               clf.predict_proba(training_data.x_test), rtol=1e-4, atol=1e-5)
    assert 0.0 < trained.test_accuracy <= 1.0


@pytest.mark.parametrize("dim", [6, 20])
def test_cnn_penultimate_has_the_chosen_width_and_feeds_the_output_layer(training_data, dim: int) -> None:
    import torch  # the torch extra is installed in CI: a missing torch fails here

    from annbench.apps.encoders import cnn

    trained = cnn.train(training_data, EncoderSettings("cnn", dim, epochs=1, seed=0, hidden=32), progress=False)
    features = trained.features(training_data.x_test)
    assert features.shape == (len(training_data.x_test), dim) and features.dtype == np.float32
    with torch.no_grad():
        logits = trained.model(torch.from_numpy(training_data.x_test)).numpy()
        from_features = trained.model.head(torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(from_features, logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_same_seed_gives_the_same_vectors(training_data, model: str) -> None:
    if model == "cnn":
        import torch  # noqa: F401 - fails (never skips) without the torch extra
    from annbench.apps.encode import _trainer

    train = _trainer(model)

    def features(seed: int) -> np.ndarray:
        s = EncoderSettings(model, 12, epochs=2, seed=seed, hidden=32)
        return train(training_data, s, progress=False).features(training_data.x_train)

    first, again, other = features(3), features(3), features(4)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_encoded_dataset_is_valid_labelled_and_records_how_it_was_made(encoded_dir, digits) -> None:
    for dim in (8, 24):
        path = encoded_dir / f"digits-encoded-mlp-{dim}-euclidean.hdf5"
        ds = load_dataset(path)  # the dataset validation
        assert ds.train.shape == (len(digits.train), dim) and ds.test.shape == (len(digits.test), dim)
        assert ds.distance == "euclidean" and ds.ground_truth_k == 100
        assert np.array_equal(ds.train_labels, digits.train_labels)
        assert np.array_equal(ds.test_labels, digits.test_labels)
        a = ds.attrs
        assert a["encoder_width"] == dim and a["encoder_epochs"] == 3 and a["encoder_seed"] == 1
        assert a["encoder_model"] == "mlp" and f"64-256-{dim}-10" in a["encoder_architecture"]
        assert a["source_dataset"] == SOURCE and a["source_checksum"] == digits.checksum
        assert a["encoder_training_s"] > 0 and 0 < a["encoder_test_accuracy"] <= 1
        with h5py.File(path, "r") as f:  # ann-benchmarks' field names and dtypes
            assert f["train"].dtype == np.float32 and f["neighbors"].dtype == np.int32
            assert f["distances"].dtype == np.float32


def test_encoded_ground_truth_is_consistent_with_its_vectors(encoded_dir) -> None:
    from annbench.quality.distances import distances_to_ids

    ds = load_dataset(encoded_dir / "digits-encoded-mlp-24-euclidean.hdf5")
    recomputed = distances_to_ids(ds.test, ds.train, ds.neighbors, "euclidean")
    np.testing.assert_allclose(ds.distances, recomputed, rtol=1e-5, atol=1e-5)
    assert np.all(np.diff(ds.distances, axis=1) >= 0)
    # nothing nearer was missed: the stored distances are the 100 smallest of a full brute-force scan
    full = np.sqrt(((ds.test[:, None, :].astype(np.float64) - ds.train[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(np.sort(full, axis=1)[:, :100], ds.distances, rtol=1e-5, atol=1e-5)


def test_encoded_dataset_runs_by_name_with_knn_accuracy(encoded_dir, results_dir) -> None:
    from annbench.cli.run import main

    r = call(main, "--dataset", "digits-encoded-mlp-24-euclidean", "--algorithm", "bruteforce", "--runs", "1",
             "--data-dir", encoded_dir, "--results", results_dir, "--no-plot", "-q", "--table", "runs")
    assert r.code == 0, r.err
    assert "knn_accuracy" in r.out


def test_rerun_with_same_settings_reuses_and_different_settings_is_refused(encoded_dir) -> None:
    from annbench.cli.encode import main

    path = encoded_dir / "digits-encoded-mlp-8-euclidean.hdf5"
    before = path.read_bytes()
    r = call(main, "--from", SOURCE, "--dim", "8", "--epochs", "3", "--seed", "1", "--data-dir", encoded_dir,
             "--no-progress", "-q")
    assert r.code == 0 and "(reused)" in r.out
    r = call(main, "--from", SOURCE, "--dim", "8", "--epochs", "4", "--seed", "1", "--data-dir", encoded_dir,
             "--no-progress", "-q")
    assert r.code == 2 and "encoder_epochs=3" in r.err and "--force" in r.err and len(r.err.splitlines()) == 1
    assert path.read_bytes() == before


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "random-xs-20-euclidean", "--dim", "8"], "no train_labels/test_labels"),
    (["--from", "random-xs-20-euclidean", "--dim", "8", "--model", "cnn"], "no train_labels/test_labels"),
    (["--from", SOURCE, "--dim", "8,0"], "valid widths are distinct integers >= 1"),
    (["--from", SOURCE, "--dim", "8", "--model", "rnn"], "invalid choice: 'rnn'"),
    (["--from", "no-such-set", "--dim", "8"], "unknown dataset 'no-such-set'"),
])
def test_bad_input_is_one_line_exit_2(data_dir, tmp_path, args, message) -> None:
    from annbench.cli.encode import main

    for name in ("random-xs-20-euclidean", SOURCE):
        shutil.copy(data_dir / f"{name}.hdf5", tmp_path)
    err = io.StringIO()
    with redirect_stderr(err):
        try:  # argparse rejects bad option values with SystemExit(2)
            code = main([str(a) for a in (*args, "--data-dir", tmp_path, "--no-progress", "-q")])
        except SystemExit as e:
            code = e.code
    assert code == 2 and message in err.getvalue(), err.getvalue()
    assert len(err.getvalue().splitlines()) == 1
    assert not list(tmp_path.glob("*encoded*"))


def test_cnn_needs_square_images(tmp_path) -> None:
    from annbench.apps.encode import encode
    from annbench.core.errors import UserError
    from annbench.datasets.format import write_dataset
    from annbench.quality.groundtruth import exact_knn

    rng = np.random.default_rng(0)
    train, test = rng.random((300, 30), dtype=np.float32), rng.random((20, 30), dtype=np.float32)
    ids, dist = exact_knn(train, test, "euclidean", 100)
    path = write_dataset(tmp_path / "flat-30-euclidean.hdf5", train=train, test=test, distance="euclidean",
                         neighbors=ids, distances=dist, train_labels=rng.integers(0, 3, 300),
                         test_labels=rng.integers(0, 3, 20))
    with pytest.raises(UserError, match="dimension 30 is not a square"):
        encode(load_dataset(path), EncoderSettings("cnn", 8, epochs=1), "euclidean", tmp_path, progress=False)
    assert not list(tmp_path.glob("*encoded*"))
