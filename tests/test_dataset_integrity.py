"""Dataset files are verified, not trusted: the content checksum covers every array and is checked
on every load, the ground truth is audited, and an exact method below recall 1.0 is flagged
(issue 13, section 2)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import call
from test_run import _adapters

import annbench.datasets.rawread as rawread
from annbench.analyse.frames import results_frame
from annbench.cli.dataset import main as dataset_main
from annbench.cli.plot import main as plot_main
from annbench.cli.run import main as run_main
from annbench.core.errors import UserError
from annbench.datasets.audit import audit_queries
from annbench.datasets.digest import content_checksum, legacy_checksum
from annbench.datasets.format import load_dataset, read_dataset_arrays, write_dataset
from annbench.quality.groundtruth import exact_knn
from annbench.store.folder import ResultStore

DATASET = "random-xs-20-euclidean"


def _one_line_error(r, *expected: str) -> str:
    assert r.code == 2, (r.code, r.out, r.err)
    [line] = r.err.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in r.err
    for text in expected:
        assert text in line, line
    return line


@pytest.fixture
def own_data(data_dir: Path, tmp_path: Path) -> Path:
    """A private data folder holding a copy of the built-in dataset (the session's stays intact)."""
    d = tmp_path / "data"
    d.mkdir()
    shutil.copyfile(data_dir / f"{DATASET}.hdf5", d / f"{DATASET}.hdf5")
    return d


def test_flipped_bytes_are_refused_on_load_and_by_run_py_then_rebuilt(own_data: Path, tmp_path: Path) -> None:
    path = own_data / f"{DATASET}.hdf5"
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 4096] = bytes(b ^ 0xFF for b in raw[middle:middle + 4096])
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="content does not match its checksum") as e:
        load_dataset(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert f"python dataset.py prepare {DATASET} --force --data-dir {own_data}" in str(e.value)

    results = tmp_path / "results"
    r = call(run_main, "--dataset", DATASET, "--algorithm", "bruteforce", "--runs", 1, "--data-dir", own_data,
             "--results", results, "--no-plot")
    _one_line_error(r, f"dataset file {path}", "content does not match its checksum")
    assert not results.exists()  # nothing stored, no child started

    rebuilt = call(dataset_main, "prepare", DATASET, "--force", "--data-dir", own_data)  # the command it names
    assert rebuilt.code == 0, rebuilt.err
    assert load_dataset(path).checksum.startswith("xxh3:")


def _tampered(tmp_path: Path, row: int, only_id: bool = False) -> Path:
    """A dataset file whose stored neighbours of query ``row`` are another query's (``only_id``: one
    id replaced by a far point's, distances left true), written with a consistent checksum (so
    only the ground-truth audit can see it)."""
    rng = np.random.default_rng(7)
    train, test = rng.normal(size=(3000, 12)).astype(np.float32), rng.normal(size=(200, 12)).astype(np.float32)
    ids, dists = exact_knn(train, test, "euclidean", 100)
    if only_id:
        ids[row, 5] = ids[row, 99] if ids[row, 99] not in ids[row, :99] else ids[(row + 1) % len(test), 99]
        ids[row, 99] = exact_knn(train, test[row:row + 1], "euclidean", 3000)[0][0, -1]  # the farthest point
    else:
        other = (row + 1) % len(test)
        ids[row], dists[row] = ids[other], dists[other]
    return write_dataset(tmp_path / "data" / "tampered.hdf5", train=train, test=test, distance="euclidean",
                         neighbors=ids, distances=dists)


@pytest.mark.parametrize(("only_id", "what"), [(False, "stored distance 0 is"),
                                               (True, "stored neighbour 5 (id ")])
def test_tampered_ground_truth_fails_the_audit_naming_the_query(tmp_path: Path, only_id: bool, what: str) -> None:
    audited = int(audit_queries(200)[3])
    path = _tampered(tmp_path, audited, only_id)
    with pytest.raises(UserError, match=f"ground truth is wrong at query {audited}: {re.escape(what)}") as e:
        load_dataset(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    r = call(run_main, "--dataset", path, "--algorithm", "bruteforce", "--runs", 1, "--results", tmp_path / "res",
             "--no-plot")
    _one_line_error(r, f"query {audited}")
    assert not (tmp_path / "res").exists()


def test_verify_all_finds_what_the_8_query_audit_does_not_sample(tmp_path: Path) -> None:
    unaudited = int(np.setdiff1d(np.arange(200), audit_queries(200))[0])
    path = _tampered(tmp_path, unaudited)
    assert load_dataset(path).checksum  # the 8 audited queries are fine
    quick = call(dataset_main, "verify", path)
    assert quick.code == 0 and "(verified; covers every array)" in quick.out and "8 seeded queries exact" in quick.out
    full = call(dataset_main, "verify", path, "--all")
    _one_line_error(full, f"wrong for 1 of 200 queries, the first at query {unaudited}:")
    by_name = call(dataset_main, "--data-dir", tmp_path / "data", "verify", "tampered", "--all")
    _one_line_error(by_name, f"query {unaudited}")


def test_tied_distances_may_list_either_id(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(size=(500, 6)).astype(np.float32)
    train = np.concatenate([base, base])  # every point twice: every distance tied
    test = rng.normal(size=(40, 6)).astype(np.float32)
    ids, dists = exact_knn(train, test, "euclidean", 100)
    swapped = np.where(ids < 500, ids + 500, ids - 500)  # the other copy of each neighbour
    path = write_dataset(tmp_path / "ties.hdf5", train=train, test=test, distance="euclidean", neighbors=swapped,
                         distances=dists)
    assert load_dataset(path).neighbors.tolist() == swapped.tolist()
    assert call(dataset_main, "verify", path, "--all").code == 0


def test_checksum_covers_every_array_and_the_distance() -> None:
    rng = np.random.default_rng(0)
    fields = {"train": rng.normal(size=(30, 4)).astype(np.float32), "test": rng.normal(size=(5, 4)).astype(np.float32),
              "neighbors": np.arange(50, dtype=np.int32).reshape(5, 10) % 30,
              "distances": np.ones((5, 10), dtype=np.float32), "train_labels": np.arange(30) % 3,
              "test_labels": np.arange(5) % 3, "keys": np.array([f"w{i}" for i in range(30)], dtype=object),
              "test_keys": np.array([f"q{i}" for i in range(5)], dtype=object)}
    reference = content_checksum(fields, "euclidean")
    assert reference.startswith("xxh3:") and content_checksum(fields, "angular") != reference
    for name, a in fields.items():
        changed = a.copy()
        changed.flat[0] = "x" if a.dtype == object else changed.flat[0] + 1
        assert content_checksum({**fields, name: changed}, "euclidean") != reference, name
        assert content_checksum({**fields, name: None}, "euclidean") != reference, name


def _layout_file(path: Path, layout: str) -> tuple[Path, dict[str, np.ndarray]]:
    """A dataset file in ``layout``: ``raw`` (contiguous, as h5py and ann-benchmarks write), ``chunked``
    (gzip), ``userblock`` (data shifted by a 512-byte user block), ``big-endian`` (train and test
    stored >f4) or ``unwritten`` (train_labels never written: no storage, h5py reads its fill value),
    with a stored checksum; and its arrays as h5py reads them."""
    rng = np.random.default_rng(3)
    train, test = rng.normal(size=(700, 24)).astype(np.float32), rng.normal(size=(30, 24)).astype(np.float32)
    ids, dists = exact_knn(train, test, "euclidean", 100)
    arrays = {"train": train, "test": test, "neighbors": ids.astype(np.int32), "distances": dists.astype(np.float32),
              "train_labels": np.arange(700) % 7, "test_labels": np.arange(30) % 7,
              "keys": np.array([f"w{i}" for i in range(700)], dtype=object)}
    with h5py.File(path, "w", userblock_size=512 if layout == "userblock" else 0) as f:
        f.attrs["type"], f.attrs["distance"], f.attrs["dimension"] = "dense", "euclidean", 24
        if layout == "unwritten":
            f.create_dataset("train_labels", shape=(700,), dtype=np.int64)
            del arrays["train_labels"]
        for key, a in arrays.items():
            dtype = h5py.string_dtype() if a.dtype == object else (">f4" if layout == "big-endian" and a.ndim == 2
                                                                    and a.dtype == np.float32 else None)
            f.create_dataset(key, data=a, dtype=dtype, **({"chunks": True, "compression": "gzip"}
                                                          if layout == "chunked" else {}))
    with h5py.File(path, "r+") as f:
        stored = {k: f[k][()] for k in f}
        f.attrs["checksum"] = content_checksum(stored, "euclidean")
    return path, stored


def _blocks(monkeypatch, blocks: str) -> None:
    """Read raw arrays in small blocks (``small``: 1000 bytes from the page cache, 97 from the disk,
    so blocks end mid-row), as if the page cache held nothing (``uncached``) or the first half of
    every block only (``half``); ``default`` changes nothing."""
    if blocks == "default":
        return
    monkeypatch.setattr(rawread, "CACHED_BLOCK_BYTES", 1000)
    monkeypatch.setattr(rawread, "DISK_BLOCK_BYTES", 97 if blocks == "small" else 2500)
    real = rawread._pread_cached
    if blocks == "uncached":
        monkeypatch.setattr(rawread, "_pread_cached", lambda fd, view, offset: 0)
    elif blocks == "half":
        monkeypatch.setattr(rawread, "_pread_cached", lambda fd, view, offset: real(fd, view[:len(view) // 2],
                                                                                          offset))


BLOCKS = ["default", "small", "uncached", "half"]


@pytest.mark.parametrize("blocks", BLOCKS)
@pytest.mark.parametrize("layout", ["raw", "chunked", "userblock", "big-endian", "unwritten"])
def test_the_loads_checksum_is_the_checksum_of_the_arrays_in_any_layout(tmp_path: Path, layout: str,
                                                                        blocks: str, monkeypatch) -> None:
    """Read and hashed block by block, from the page cache or not, the load's arrays are h5py's
    and its checksum is that of the whole arrays."""
    _blocks(monkeypatch, blocks)
    path, stored = _layout_file(tmp_path / f"{layout}.hdf5", layout)
    arrays, checksum = read_dataset_arrays(path)
    assert checksum == content_checksum(stored, "euclidean") == load_dataset(path).checksum
    assert read_dataset_arrays(path, checksum=False)[1] is None
    for key, a in stored.items():
        assert arrays[key].dtype == a.dtype and arrays[key].shape == a.shape and (arrays[key] == a).all(), key


@pytest.mark.parametrize("blocks", BLOCKS)
@pytest.mark.parametrize("layout", ["raw", "userblock", "big-endian"])
def test_a_flipped_byte_anywhere_in_any_array_is_refused(tmp_path: Path, layout: str, blocks: str,
                                                         monkeypatch) -> None:
    _blocks(monkeypatch, blocks)
    path, _ = _layout_file(tmp_path / "flip.hdf5", layout)
    with h5py.File(path, "r") as f:
        extents = {k: (f[k].id.get_offset(), f[k].id.get_storage_size()) for k in f if k != "keys"}
    good = path.read_bytes()
    for key, (offset, size) in extents.items():
        for at in sorted({0, 1, size // 2, size - 1} & set(range(size))):  # first, second, middle, last
            raw = bytearray(good)
            raw[offset + at] ^= 0x01
            path.write_bytes(bytes(raw))
            with pytest.raises(UserError, match="content does not match its checksum"):
                load_dataset(path, audit=False)
    path.write_bytes(good)
    assert load_dataset(path).checksum.startswith("xxh3:")


def test_legacy_checksum_is_verified_with_a_warning(own_data: Path, caplog) -> None:
    path = own_data / f"{DATASET}.hdf5"
    with h5py.File(path, "r+") as f:  # what annbench wrote before: sha256 of train and test
        f.attrs["checksum"] = legacy_checksum(f["train"][()], f["test"][()], "euclidean")
        checksum = content_checksum({k: f[k][()] for k in f}, "euclidean")
    with caplog.at_level("WARNING"):
        ds = load_dataset(path)
    assert ds.checksum == checksum  # results record the checksum of every array, as for any file
    assert "does not cover the ground truth" in caplog.text and f"prepare {DATASET} --force" in caplog.text
    with h5py.File(path, "r+") as f:
        f["test"][0, 0] += 1.0
    with pytest.raises(UserError, match="content does not match its checksum"):
        load_dataset(path)


def test_child_verifies_the_checksum_the_parent_validated(own_data: Path, tmp_path: Path) -> None:
    from annbench.core.paths import ALGORITHMS_DIR
    from annbench.core.results import RunKey
    from annbench.execute.child import run_task
    from annbench.plan.grid import BuildSetting, RunOptions
    from annbench.plan.task import Task

    path = own_data / f"{DATASET}.hdf5"
    checksum = load_dataset(path).checksum
    with h5py.File(path, "r+") as f:  # changed after the parent's check, stored checksum left as it was
        f["distances"][0, 0] += 1.0
    key = RunKey(DATASET, 10, "bruteforce", False, {}, {}, 1)
    task = Task("t", DATASET, path, checksum, RunOptions(runs=1), BuildSetting("bruteforce", {}, ({},)), (key,),
                (ALGORITHMS_DIR,), tmp_path / "results")
    with pytest.raises(UserError, match="content does not match its checksum"):
        run_task(task)


EXACT_BUT_WRONG = """class ExactButWrong(Adapter):
    exact = True

    def fit(self, X):
        self._x = np.asarray(X)

    def query(self, q, k):
        ids = np.argsort(((self._x - q) ** 2).sum(axis=1), kind="stable")[:k + 1]
        return np.concatenate([ids[:k - 1], ids[k:k + 1]])  # the k-th nearest replaced by the (k+1)-th
"""


def test_exact_method_below_recall_one_is_flagged(tmp_path: Path, data_dir: Path) -> None:
    algos, configs = _adapters(tmp_path, {"exact-but-wrong": EXACT_BUT_WRONG})
    results = tmp_path / "results"
    r = call(run_main, "--dataset", DATASET, "--algorithm", "exact-but-wrong,bruteforce", "--runs", 1,
             "--algorithms-dir", algos, "--configs-dir", configs, "--data-dir", data_dir, "--results", results,
             "--no-plot")
    assert r.code == 0, r.err
    assert "warning: exact-but-wrong says it is exact (exact = True) but scored recall < 1.0 in 1 run" in r.out
    assert "bruteforce says" not in r.out
    frame = results_frame(results).set_index("algorithm")
    assert frame.loc["exact-but-wrong", "exact_violation"] is True and frame.loc["exact-but-wrong", "recall"] < 1
    assert frame.loc["exact-but-wrong", "note"] == "exact method, recall < 1" and frame.loc["bruteforce", "note"] == ""
    table = call(plot_main, "--results", results, "--table", "md")
    assert table.code == 0 and "| exact method, recall < 1 |" in table.out
    points = call(plot_main, "--results", results, "--operating-points", "csv")
    assert points.code == 0 and "exact method, recall < 1" in points.out
    site = tmp_path / "site"
    assert call(plot_main, "--results", results, "--report", site).code == 0
    page = (site / DATASET / "index.html").read_text()
    assert '<p class="err">Warning: exact-but-wrong says it is exact' in page and "exact method, recall &lt; 1" in page
    assert len(list(ResultStore(results).paths())) == 2
