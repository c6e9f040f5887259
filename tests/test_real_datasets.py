"""Real datasets built offline from the upstream files in ../shared/data (SHARED_DATA).

These tests FAIL (never skip) when that folder is missing: they are the proof that the
builders read the published formats correctly.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import SHARED_DATA, call

from annbench.cli.dataset import main as dataset_main
from annbench.cli.run import main as run_main
from annbench.core.errors import UserError
from annbench.datasets.format import load_dataset
from annbench.datasets.readers import read_vecs
from annbench.datasets.registry import prepare
from annbench.quality.distances import distances_to_ids
from annbench.quality.groundtruth import exact_knn

GLOVE = SHARED_DATA / "glove-subset" / "glove.6B.50d.first2446.txt"


@pytest.fixture(scope="session")
def real_dir(tmp_path_factory):
    """A data folder with fashion-mnist and siftsmall built once from SHARED_DATA."""
    assert SHARED_DATA.is_dir(), f"the shared upstream files are missing: {SHARED_DATA}"
    d = tmp_path_factory.mktemp("real")
    for name in ("fashion-mnist-784-euclidean", "siftsmall-128-euclidean"):
        p = prepare(name, d, SHARED_DATA)
        assert p.how == f"built from source folder {SHARED_DATA}"
    return d


def test_fashion_mnist_shapes_labels_and_layout(real_dir):
    ds = load_dataset(real_dir / "fashion-mnist-784-euclidean.hdf5")
    assert ds.train.shape == (60_000, 784) and ds.test.shape == (10_000, 784)
    assert ds.neighbors.shape == ds.distances.shape == (10_000, 100)
    np.testing.assert_array_equal(np.bincount(ds.train_labels), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(ds.test_labels), [1000] * 10)
    assert ds.train.min() == 0 and ds.train.max() == 255  # raw pixels, as ann-benchmarks
    with h5py.File(ds.path) as f:
        assert (f["train"].dtype, f["neighbors"].dtype, f["distances"].dtype) == (np.float32, np.int32, np.float32)
        assert dict(distance=f.attrs["distance"], point_type=f.attrs["point_type"], type=f.attrs["type"],
                    dimension=int(f.attrs["dimension"])) == dict(distance="euclidean", point_type="float",
                                                                 type="dense", dimension=784)
        assert "train-images-idx3-ubyte.gz sha256:3aede38d" in f.attrs["inputs"]


def test_siftsmall_ground_truth_agrees_with_texmex(real_dir):
    ds = load_dataset(real_dir / "siftsmall-128-euclidean.hdf5")
    assert ds.train.shape == (10_000, 128) and ds.test.shape == (100, 128)
    theirs = read_vecs(SHARED_DATA / "siftsmall" / "siftsmall_groundtruth.ivecs").astype(np.int64)
    their_d = distances_to_ids(ds.test, ds.train, theirs, "euclidean")
    np.testing.assert_allclose(ds.distances, their_d, rtol=1e-6)
    differ = ds.neighbors != theirs
    ours_at = distances_to_ids(ds.test, ds.train, ds.neighbors, "euclidean")
    np.testing.assert_array_equal(ours_at[differ], their_d[differ])  # only ties may be ordered differently
    assert differ.mean() < 0.05


def test_second_prepare_uses_the_data_folder(real_dir):
    assert prepare("siftsmall-128-euclidean", real_dir).how == f"already in {real_dir}"


def test_quick_subset_is_cached_with_recomputed_ground_truth(real_dir):
    parent = load_dataset(real_dir / "fashion-mnist-784-euclidean.hdf5")
    p = prepare("fashion-mnist-784-euclidean", real_dir, max_train=3000, max_test=40)
    assert p.name == "fashion-mnist-784-euclidean-train3000-test40" and p.path.is_file()
    ds = load_dataset(p.path)
    np.testing.assert_array_equal(ds.train, parent.train[:3000])
    np.testing.assert_array_equal(ds.test_labels, parent.test_labels[:40])
    ids, _ = exact_knn(parent.train[:3000], parent.test[:40], "euclidean", 100)
    np.testing.assert_array_equal(ds.neighbors, ids)
    assert ds.attrs["parent_checksum"] == parent.checksum
    # the same subset by name, without flags, is the cached file
    assert prepare(p.name, real_dir).how == f"already in {real_dir}"
    with pytest.raises(UserError, match=r"--max-test 20000 exceeds the 10000 test points of fashion-mnist"):
        prepare("fashion-mnist-784-euclidean", real_dir, max_test=20_000)


def test_wrong_file_in_source_dir_is_rejected(tmp_path):
    mirror = tmp_path / "mirror" / "fashion-mnist"
    mirror.mkdir(parents=True)
    for f in (SHARED_DATA / "mnist").iterdir():  # MNIST's files under Fashion-MNIST's names
        (mirror / f.name).write_bytes(f.read_bytes())
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte.gz is not the upstream "
                                        r"fashion-mnist/train-images-idx3-ubyte.gz \(md5 f68b3c2d.*expected 8d4fb7e6"):
        prepare("fashion-mnist-784-euclidean", tmp_path / "data", tmp_path / "mirror")
    assert not (tmp_path / "data" / "fashion-mnist-784-euclidean.hdf5").exists()


def test_run_prepare_and_list_datasets(real_dir, tmp_path):
    r = call(run_main, "--dataset", "siftsmall-128-euclidean", "--prepare", "--data-dir", tmp_path,
             "--source-dir", SHARED_DATA)
    assert r.code == 0, r.err
    assert "train         10000 x 128" in r.out and "test          100 x 128" in r.out
    assert f"built from source folder {SHARED_DATA}" in r.out and "checksum      xxh3:" in r.out
    r = call(run_main, "--list-datasets", "--data-dir", real_dir)
    line = next(ln for ln in r.out.splitlines() if ln.startswith("fashion-mnist-784-euclidean "))
    assert line.split()[1:6] == ["60000", "10000", "784", "euclidean", "217.5"] and " yes " in line
    line = next(ln for ln in r.out.splitlines() if ln.startswith("glove-100-angular "))
    assert " no " in line and "download glove.twitter.27B.zip" in line


def test_glove_subset_create_and_lookup(tmp_path):
    r = call(dataset_main, "--data-dir", tmp_path, "create", "--from", GLOVE, "--distance", "angular",
             "--test-size", "200", "--name", "glove-small")
    assert r.code == 0, r.err
    ds = load_dataset(tmp_path / "glove-small.hdf5")
    assert ds.train.shape == (2246, 50) and ds.test.shape == (200, 50)
    assert len(set(ds.keys) | set(ds.test_keys)) == 2446
    r = call(dataset_main, "--data-dir", tmp_path, "lookup", "glove-small", "king", "-k", "3")
    assert r.code == 0, r.err
    words = [ln.split()[1] for ln in r.out.splitlines()[1:]]
    assert "kingdom" in words and "king" not in words  # train rows only ("queen" is a test row here)
    r2 = call(dataset_main, "--data-dir", tmp_path, "lookup", "glove-small", "king", "-k", "3",
              "--algorithm", "kdtree", "--build", "leaf_size=5")
    assert r2.code == 0, r2.err
    assert r2.out.splitlines()[1:] == r.out.splitlines()[1:]  # an exact algorithm agrees
    r = call(dataset_main, "--data-dir", tmp_path, "lookup", "glove-small", "kingg")
    assert r.code == 2 and r.err.strip() == ("error: key 'kingg' is not in dataset glove-small; "
                                              "did you mean king, taking, making?")
