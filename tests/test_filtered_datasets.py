"""Filtered datasets from files (dataset.py create, big-ann-benchmarks' filter-track files) and built in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import call
from test_filtered import reference

from annbench.cli.dataset import main as dataset_main
from annbench.datasets.filtered_sets import by_class, random_filtered
from annbench.datasets.format import load_dataset
from annbench.datasets.registry import registry
from annbench.datasets.spec import RawData


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(7)
    x, q = rng.standard_normal((400, 6)).astype(np.float32), rng.standard_normal((30, 6)).astype(np.float32)
    tags = sp.random(400, 5, density=0.3, random_state=7, format="csr")
    out = {"x": tmp_path / "x.npy", "q": tmp_path / "q.npy", "t": tmp_path / "t.npz", "qt": tmp_path / "qt.npy",
           "v": tmp_path / "v.npy", "r": tmp_path / "r.npy"}
    np.save(out["x"], x)
    np.save(out["q"], q)
    sp.save_npz(out["t"], tags)
    np.save(out["qt"], np.arange(30) % 5)  # one required tag per query, as a label
    np.save(out["v"], rng.random(400))
    np.save(out["r"], np.sort(rng.random((30, 2)), axis=1))
    return out


def _create(files: dict[str, Path], data: Path, *extra: str):
    return call(dataset_main, "create", "--from", files["x"], "--queries", files["q"], "--name", "mine",
                "--distance", "euclidean", "--data-dir", data, *extra)


def test_create_from_user_files(files: dict[str, Path], tmp_path: Path) -> None:
    r = _create(files, tmp_path / "d", "--train-tags", files["t"], "--test-tags", files["qt"],
                "--train-values", files["v"], "--test-ranges", files["r"])
    assert r.code == 0, r.err
    assert "filters       tags, range" in r.out
    ds = load_dataset(tmp_path / "d" / "mine.hdf5")
    tags = sp.load_npz(files["t"]).toarray() != 0
    values, ranges = np.load(files["v"]), np.load(files["r"])
    for i in range(30):
        match = tags[:, i % 5] & (values >= ranges[i, 0]) & (values < ranges[i, 1])
        want, _ = reference(ds.train, ds.test[i], "euclidean", match, 100)
        assert np.array_equal(ds.neighbors[i, :len(want)], want) and (ds.neighbors[i, len(want):] == -1).all()
        assert ds.filters.selectivity[i] == match.mean()
    r = call(dataset_main, "verify", "mine", "--all", "--data-dir", tmp_path / "d")
    assert r.code == 0 and "all 30 queries exact" in r.out, r.err


@pytest.mark.parametrize("extra, message", [
    (("--train-tags", "qt", "--test-tags", "qt"), "30 rows of train tags for 400 vectors"),
    (("--train-tags", "t", "--test-tags", "t"), "400 rows of test tags for 30 queries"),
    (("--train-tags", "t"), "--test-tags is missing"),
    (("--train-tags", "t", "--test-tags", "qt", "--test-ranges", "r"), "--test-ranges needs --train-values"),
    (("--train-tags", "t", "--test-tags", "qt", "--train-values", "v", "--test-ranges", "bad"), "low 0.9 > high 0.1"),
    (("--train-tags", "x", "--test-tags", "qt"), "train tags has shape (400, 6)"),
])
def test_bad_filter_files_are_one_line_errors(files: dict[str, Path], tmp_path: Path, extra, message: str) -> None:
    bad = np.sort(np.random.default_rng(0).random((30, 2)), axis=1)
    bad[3] = (0.9, 0.1)
    np.save(tmp_path / "bad.npy", bad)
    files = {**files, "bad": tmp_path / "bad.npy"}
    r = _create(files, tmp_path / "d", *[str(files.get(a, a)) for a in extra])
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err
    assert message in r.err, r.err
    assert not (tmp_path / "d" / "mine.hdf5").exists()


def _u8bin(path: Path, x: np.ndarray) -> Path:
    with open(path, "wb") as f:
        np.array(x.shape, dtype=np.uint32).tofile(f)
        x.tofile(f)
    return path


def _spmat(path: Path, m: sp.csr_matrix) -> Path:
    with open(path, "wb") as f:  # big-ann-benchmarks' write_sparse_matrix
        np.array([m.shape[0], m.shape[1], m.nnz], dtype=np.int64).tofile(f)
        m.indptr.astype(np.int64).tofile(f)
        m.indices.astype(np.int32).tofile(f)
        m.data.astype(np.float32).tofile(f)
    return path


def test_big_ann_filter_track_files_with_a_row_range(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (1000, 8), dtype=np.uint8)
    query = rng.integers(0, 256, (50, 8), dtype=np.uint8)
    meta = sp.random(1000, 20, density=0.2, random_state=1, format="csr")
    qmeta = sp.random(50, 20, density=0.05, random_state=2, format="csr")
    b, q = _u8bin(tmp_path / "base.u8bin", base), _u8bin(tmp_path / "query.u8bin", query)
    bm, qm = _spmat(tmp_path / "base.spmat", meta), _spmat(tmp_path / "query.spmat", qmeta)
    r = call(dataset_main, "create", "--from", b, "--queries", q, "--train-tags", bm, "--test-tags", qm,
             "--train-rows", "200:700", "--test-rows", "0:40", "--name", "yfcc-slice", "--distance", "euclidean",
             "--data-dir", tmp_path / "d")
    assert r.code == 0, r.err
    ds = load_dataset(tmp_path / "d" / "yfcc-slice.hdf5")
    assert np.array_equal(ds.train, base[200:700].astype(np.float32)) and len(ds.test) == 40
    assert (ds.filters.train_tags.toarray() == (meta[200:700].toarray() != 0)).all()
    dense = meta[200:700].toarray() != 0
    for i in range(40):
        match = dense[:, qmeta[i].indices].all(axis=1)
        want, _ = reference(ds.train, ds.test[i], "euclidean", match, 100)
        assert np.array_equal(ds.neighbors[i, :len(want)], want)
    # a .spmat cut short: its header disagrees with its size
    (tmp_path / "short.spmat").write_bytes(bm.read_bytes()[:-4])
    r = call(dataset_main, "create", "--from", b, "--queries", q, "--train-tags", tmp_path / "short.spmat",
             "--test-tags", qm, "--name", "x", "--distance", "euclidean", "--data-dir", tmp_path / "d")
    assert r.code == 2 and "header says 1000 rows, 20 columns" in r.err and len(r.err.strip().splitlines()) == 1
    r = call(dataset_main, "create", "--from", b, "--queries", q, "--train-tags", bm, "--test-tags", qm,
             "--train-rows", "900:1200", "--name", "x", "--distance", "euclidean", "--data-dir", tmp_path / "d")
    assert r.code == 2 and "row range 900:1200 exceeds its 1000 rows" in r.err


def test_random_filtered_selectivities_span_the_zipf_range() -> None:
    raw = random_filtered(n_train=20_000, n_test=400)
    tags = raw.train_tags.tocsc()
    carried = np.diff(tags.indptr) / 20_000
    assert 0.45 < carried[0] < 0.55 and carried[-100:].mean() < 0.0005  # Zipf: 50 % down to ~0.01 %
    from annbench.quality.predicates import AttributeIndex, Attributes, predicates

    index = AttributeIndex(Attributes(raw.train_tags.tocsr(), raw.train_values))
    sel = np.array([index.count(p) for p in predicates(raw.test_tags, raw.test_ranges)]) / 20_000
    assert sel.min() <= 0.0002 and sel.max() >= 0.3
    assert np.mean(sel < 0.01) > 0.3 and np.mean(sel >= 0.1) > 0.05  # every band has queries


def test_by_class_asks_half_own_half_other() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1000)
    raw = by_class(RawData(np.zeros((10, 2), np.float32), np.zeros((1000, 2), np.float32), "euclidean",
                           train_labels=np.arange(10), test_labels=labels))
    asked = raw.test_tags
    assert (asked[::2] == labels[::2]).all() and (asked[1::2] != labels[1::2]).all()
    assert set(np.unique(asked[1::2])) == set(range(10))
    assert {"random-filtered-s-32-euclidean", "fashion-mnist-by-class-784-euclidean"} <= set(registry())
