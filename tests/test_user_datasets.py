"""``dataset.py create`` from user embeddings and the dataset command's bad input: every error is
one line with exit code 2, and no dataset file (partial or not) is left behind."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from conftest import call

from annbench.cli.dataset import main as dataset_main
from annbench.cli.run import main as run_main
from annbench.datasets.format import load_dataset
from annbench.quality.groundtruth import exact_knn

RNG = np.random.default_rng(5)


@pytest.fixture
def emb(tmp_path):
    x = RNG.normal(size=(400, 16)).astype(np.float32)
    np.save(tmp_path / "emb.npy", x)
    return x


def create(data, *args):
    return call(dataset_main, "--data-dir", data, "create", *args)


def test_create_with_test_size_labels_and_keys(tmp_path, emb):
    (tmp_path / "labels.txt").write_text("\n".join(str(i % 4) for i in range(400)))
    (tmp_path / "keys.txt").write_text("\n".join(f"item{i}" for i in range(400)))
    data = tmp_path / "data"
    r = create(data, "--from", tmp_path / "emb.npy", "--distance", "ip", "--test-size", "50", "--name", "mine",
               "--labels", tmp_path / "labels.txt", "--keys", tmp_path / "keys.txt")
    assert r.code == 0, r.err
    ds = load_dataset(data / "mine.hdf5")
    assert ds.train.shape == (350, 16) and ds.test.shape == (50, 16) and ds.distance == "ip"
    rows = np.array([int(k.removeprefix("item")) for k in ds.keys])
    np.testing.assert_array_equal(ds.train, emb[rows])  # keys and labels follow their rows through the split
    np.testing.assert_array_equal(ds.train_labels, rows % 4)
    ids, _ = exact_knn(ds.train, ds.test, "ip", 100)
    np.testing.assert_array_equal(ds.neighbors, ids)
    r = call(run_main, "--dataset", "mine", "--prepare", "--data-dir", data)
    assert r.code == 0 and "4 classes" in r.out


def test_create_with_queries_file(tmp_path, emb):
    np.savetxt(tmp_path / "q.csv", emb[:10] + 0.5, delimiter=",")
    r = create(tmp_path / "data", "--from", tmp_path / "emb.npy", "--queries", tmp_path / "q.csv",
               "--distance", "euclidean", "--name", "mine")
    assert r.code == 0, r.err
    ds = load_dataset(tmp_path / "data" / "mine.hdf5")
    assert ds.train.shape == (400, 16) and ds.test.shape == (10, 16)


def _bad_files(tmp_path, emb):
    nan = emb.copy()
    nan[7, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    inf = emb.copy()
    inf[9, 0] = np.inf
    np.save(tmp_path / "inf.npy", inf)
    (tmp_path / "dup.txt").write_text("a 1 2\nb 3 4\na 5 6\n" + "".join(f"w{i} {i} 1\n" for i in range(200)))
    (tmp_path / "labels.txt").write_text("1\n2\n3\n")
    good = gzip.compress(b"x 1 2\n" * 500)
    (tmp_path / "corrupt.txt.gz").write_bytes(good[:-12])
    f = np.hstack([np.full((300, 1), 4, np.int32).view(np.float32), RNG.normal(size=(300, 4)).astype(np.float32)])
    (tmp_path / "trunc.fvecs").write_bytes(f.tobytes()[:-2])
    (tmp_path / "magic-idx3-ubyte").write_bytes(b"\x00\x01\x08\x03" + bytes(64))
    np.save(tmp_path / "few.npy", emb[:60])


BAD = [
    (["--from", "nan.npy", "--test-size", "10"], "file {d}/nan.npy: row 7 contains NaN or inf"),
    (["--from", "inf.npy", "--test-size", "10"], "file {d}/inf.npy: row 9 contains NaN or inf"),
    (["--from", "dup.txt", "--test-size", "10"], "file {d}/dup.txt: duplicate key 'a' (rows 0 and 2)"),
    (["--from", "emb.npy", "--test-size", "400"], "--test-size 400 is out of range for the 400 vectors"),
    (["--from", "emb.npy", "--test-size", "301"], "valid: 1..300"),
    (["--from", "few.npy", "--test-size", "10"], "file {d}/few.npy: 60 vectors cannot be split by --test-size; "
                                                "valid: at least 101"),
    (["--from", "emb.npy", "--test-size", "10", "--labels", "labels.txt"],
     "file {d}/labels.txt: 3 labels for 400 vectors"),
    (["--from", "corrupt.txt.gz", "--test-size", "10"], "file {d}/corrupt.txt.gz: corrupt gzip data"),
    (["--from", "trunc.fvecs", "--test-size", "10"], "file {d}/trunc.fvecs: truncated fvecs"),
    (["--from", "magic-idx3-ubyte", "--test-size", "10"], "wrong idx magic number 0x00010803"),
    (["--from", "emb.npy", "--test-size", "10", "--distance", "manhattan"], "--distance 'manhattan' is unknown; "
                                                                             "valid: euclidean, angular, ip"),
    (["--from", "emb.npy", "--test-size", "10", "--distance", "hamming"], "--distance 'hamming' is not for vectors"),
    (["--from", "emb.npy", "--test-size", "10", "--name", "../escape"], "dataset name '../escape' is invalid"),
    (["--from", "emb.npy", "--test-size", "10", "--name", "sift-128-euclidean"], "is a registered dataset"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m.split(":")[-1][:30] for _, m in BAD])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, emb, args, message):
    _bad_files(tmp_path, emb)
    argv = [a if not a.endswith((".npy", ".txt", ".gz", ".fvecs", "ubyte")) else str(tmp_path / a) for a in args]
    if "--distance" not in argv:
        argv += ["--distance", "euclidean"]
    if "--name" not in argv:
        argv += ["--name", "mine"]
    data = tmp_path / "data"
    r = create(data, *argv)
    assert r.code == 2, r.err
    assert r.err.startswith("error: ") and r.err.count("\n") == 1 and "Traceback" not in r.err
    assert message.format(d=tmp_path) in r.err
    assert not data.exists() or list(data.iterdir()) == []


def test_unknown_and_path_like_dataset_names(tmp_path):
    r = call(run_main, "--dataset", "glove-100-angualr", "--prepare", "--data-dir", tmp_path)
    assert r.code == 2
    assert r.err.strip().endswith("did you mean glove-100-angular, glove-200-angular, glove-50-angular?")
    r = call(run_main, "--dataset", "../etc/passwd", "--prepare", "--data-dir", tmp_path)
    assert r.code == 2 and "is not an existing file and a dataset name has no path separators" in r.err
    r = call(dataset_main, "--data-dir", tmp_path, "remove", "../x")
    assert r.code == 2 and "has path separators" in r.err


def test_list_describe_remove(tmp_path, emb):
    data = tmp_path / "data"
    assert create(data, "--from", tmp_path / "emb.npy", "--distance", "angular", "--test-size", "20",
                  "--name", "mine").code == 0
    r = call(dataset_main, "--data-dir", data, "list")
    assert any(ln.startswith("mine ") and " yes " in ln for ln in r.out.splitlines())
    r = call(dataset_main, "--data-dir", data, "describe", "mine")
    assert r.code == 0 and "train         380 x 16" in r.out and "distance      angular" in r.out
    r = call(dataset_main, "--data-dir", data, "create", "--from", tmp_path / "emb.npy", "--distance", "angular",
             "--test-size", "20", "--name", "mine")
    assert r.code == 2 and "already exists" in r.err
    assert call(dataset_main, "--data-dir", data, "remove", "mine").code == 0
    assert not (data / "mine.hdf5").exists()
    r = call(dataset_main, "--data-dir", data, "describe", "mine")
    assert r.code == 2 and "is not in" in r.err
