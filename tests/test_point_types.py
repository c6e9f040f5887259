"""Point types beyond float32: uint8 / int8 / float16 vectors, packed bits under hamming, sets under
jaccard; their files (annbench's and ann-benchmarks' unchanged), checksum, audit, describe, exact
distances and ground truth with ties, and the bad inputs of each."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import call, write_backend
from test_dataset_integrity import _one_line_error

from annbench.backends.adapter import Adapter
from annbench.cli.dataset import main as dataset_main
from annbench.cli.plot import main as plot_main
from annbench.core.errors import UserError
from annbench.datasets.format import load_dataset, write_dataset
from annbench.quality import metrics as M
from annbench.quality.distances import distances_to_ids
from annbench.quality.groundtruth import exact_knn
from annbench.quality.points import pack_bits, sets_from_lists


def _write(path: Path, train, test, distance: str, **kw) -> Path:
    ids, dists = exact_knn(train, test, distance, 100)
    return write_dataset(path, train=train, test=test, distance=distance, neighbors=ids, distances=dists, **kw)


def _ref_top(full: np.ndarray, k: int = 100) -> np.ndarray:
    """Ids of the k smallest of each row by (distance, id), from a full float64 distance matrix."""
    return np.lexsort((np.broadcast_to(np.arange(full.shape[1]), full.shape), full), axis=-1)[:, :k]


# ---- numeric types ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["uint8", "int8", "float16"])
def test_numeric_types_round_trip_and_keep_their_type(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if dtype != "float16" else None
    make = (lambda n: rng.integers(info.min, info.max, size=(n, 16), endpoint=True).astype(dtype)) if info else \
        (lambda n: rng.normal(size=(n, 16)).astype(dtype))
    train, test = make(500), make(20)
    path = _write(tmp_path / f"{dtype}.hdf5", train, test, "euclidean")
    with h5py.File(path) as f:
        assert f.attrs["point_type"] == dtype and f["train"].dtype == np.dtype(dtype)
    ds = load_dataset(path)
    assert ds.point_type == dtype and ds.train.dtype == np.dtype(dtype) and ds.dimension == 16
    assert ds.memory_bytes == train.nbytes + test.nbytes
    described = call(dataset_main, "describe", path).out  # the type and the memory it takes, as loaded
    assert f"point type    {dtype}\n" in described and f"{ds.memory_bytes / 1024:.1f} KB (train and test" in described
    twin = load_dataset(_write(tmp_path / "f32.hdf5", train.astype(np.float32), test.astype(np.float32), "euclidean"))
    assert twin.point_type == "float32" and twin.checksum != ds.checksum  # the checksum covers the type
    assert ds.memory_bytes / twin.memory_bytes == np.dtype(dtype).itemsize / 4
    assert (ds.neighbors == twin.neighbors).all()  # 8-bit and float16 values are float32 values: same answer


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip"])
def test_integer_distances_are_exact_and_never_overflow(metric: str) -> None:
    """uint8 values up to 255: squares and products overflow uint8 (and int16); computed exactly."""
    rng = np.random.default_rng(1)
    train = rng.integers(200, 256, size=(300, 64), endpoint=False).astype(np.uint8)
    test = rng.integers(200, 256, size=(10, 64)).astype(np.uint8)
    x, q = train.astype(np.float64), test.astype(np.float64)
    if metric == "euclidean":
        full = np.sqrt(((q[:, None, :] - x[None]) ** 2).sum(-1))
    elif metric == "ip":
        full = -(q @ x.T)
    else:
        full = 1 - (q @ x.T) / np.outer(np.linalg.norm(q, axis=1), np.linalg.norm(x, axis=1))
    ids = np.tile(np.arange(300), (10, 1))
    np.testing.assert_allclose(distances_to_ids(test, train, ids, metric), full, rtol=1e-12, atol=1e-12)
    found, d = exact_knn(train, test, metric, 100, backend="numpy")
    np.testing.assert_allclose(d, np.take_along_axis(full, found.astype(np.int64), axis=1), rtol=1e-6)
    assert (np.take_along_axis(full, found.astype(np.int64), 1) <= np.sort(full, 1)[:, 99:100] + 1e-9).all()


def test_point_type_disagreeing_with_the_arrays_is_one_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.hdf5", np.zeros((150, 4), np.float32) + np.arange(150)[:, None],
                  np.ones((5, 4), np.float32), "euclidean")
    with h5py.File(path, "a") as f:
        f.attrs["point_type"] = "uint8"
    r = call(dataset_main, "describe", path)
    _one_line_error(r, str(path), "field 'train' has dtype float32 but attr 'point_type' is 'uint8'; they must "
                    "agree (valid for these rows: point_type 'float32')")


# ---- bits under hamming -------------------------------------------------------------------------

def _bit_data(rng, n: int, q: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, 2, size=(n, bits)).astype(bool), rng.integers(0, 2, size=(q, bits)).astype(bool)


@pytest.mark.parametrize(("bits", "n", "k"), [(16, 3000, 100), (21, 3000, 100), (128, 3000, 100), (300, 3000, 100),
                                              (64, 150, 100), (16, 1000, 1), (8, 120, 120)])
@pytest.mark.parametrize("backend", ["faiss", "numpy"])
def test_hamming_ground_truth_is_exact_with_ties_by_smaller_id(bits: int, n: int, k: int, backend: str) -> None:
    """Against a plain numpy reference, over 1 to 5 words (the numpy scan's uint8 and uint16 distances),
    one group of columns (n < 32k), k = 1 and k = n; faiss's own top-k and the numpy scan alike."""
    rng = np.random.default_rng(bits)
    train, test = _bit_data(rng, n, 40, bits)
    full = (test[:, None, :] != train[None]).sum(-1).astype(np.float64)  # massive ties: few distinct values
    ids, d = exact_knn(pack_bits(train), pack_bits(test), "hamming", k, backend=backend)
    expected = _ref_top(full, k)
    assert (ids == expected).all()  # exactly, ties included: by (distance, id)
    assert (d == np.take_along_axis(full, expected, 1)).all()


def test_hamming_tie_rule_by_hand() -> None:
    """Hand-written: 8-bit codes, query 0b00000000; train distances 1, 1, 0, 2, 1, 3."""
    train = np.array([[0b10000000], [0b01000000], [0], [0b11000000], [0b00000001], [0b11100000]], np.uint8)
    query = np.zeros((1, 1), np.uint8)
    ids, d = exact_knn(train, query, "hamming", 3, backend="numpy")
    assert ids.tolist() == [[2, 0, 1]] and d.tolist() == [[0, 1, 1]]  # the 1-ties: 0, 1 before 4
    true_ids, true_d = exact_knn(train, query, "hamming", 6, backend="numpy")
    assert true_ids.tolist() == [[2, 0, 1, 4, 3, 5]] and true_d.tolist() == [[0, 1, 1, 1, 2, 3]]
    # k = 3: the true list is extended with every id tied at the 3rd distance (1): {2, 0, 1, 4}
    assert M.id_recall(np.array([[2, 4, 0]]), true_ids, true_d, 3).tolist() == [1.0]
    assert M.id_recall(np.array([[2, 4, 3]]), true_ids, true_d, 3).tolist() == [2 / 3]  # 3 is at distance 2
    found_d = distances_to_ids(query, train, np.array([[2, 4, 3]]), "hamming")
    assert found_d.tolist() == [[0, 1, 2]]
    assert M.recall(found_d, true_d, 3).tolist() == [2 / 3]
    assert M.recall(distances_to_ids(query, train, np.array([[4, 1, 2]]), "hamming"), true_d, 3).tolist() == [1.0]


def test_annbench_bit_files_are_packed_and_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    train, test = _bit_data(rng, 400, 10, 21)
    path = _write(tmp_path / "b.hdf5", pack_bits(train), pack_bits(test), "hamming", bits=21)
    with h5py.File(path) as f:
        assert f["train"].shape == (400, 3) and f["train"].dtype == np.uint8 and f.attrs["dimension"] == 21
        assert f.attrs["point_type"] == "bit" and f.attrs["bit_packing"] == "packbits"
    ds = load_dataset(path)
    assert ds.point_type == "bit" and ds.dimension == 21 and ds.train.shape == (400, 3)
    assert (ds.train == pack_bits(train)).all()
    out = call(dataset_main, "describe", path)
    assert out.code == 0 and "bit (21 bits a row, packed in 3 bytes)" in out.out
    assert "memory        1.2 KiB" in out.out or "memory" in out.out


@pytest.mark.parametrize("stored", ["bool", "int64"])
def test_ann_benchmarks_bit_files_load_unchanged(tmp_path: Path, stored: str) -> None:
    """As ann_benchmarks.datasets.random_bitstring/write_output: one bool (or 0/1) per bit, hamming
    distances stored as the fraction of differing bits."""
    rng = np.random.default_rng(4)
    train, test = _bit_data(rng, 500, 12, 16)
    full = (test[:, None, :] != train[None]).sum(-1)
    ids = _ref_top(full.astype(np.float64))
    path = tmp_path / "random-tiny-16-hamming.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs.update({"type": "dense", "distance": "hamming", "dimension": 16, "point_type": "bit"})
        f.create_dataset("train", data=train.astype(stored))
        f.create_dataset("test", data=test.astype(stored))
        f.create_dataset("neighbors", data=ids, dtype=int)
        f.create_dataset("distances", data=np.take_along_axis(full, ids, 1) / 16, dtype=float)
    ds = load_dataset(path)
    assert ds.point_type == "bit" and ds.dimension == 16 and ds.train.dtype == np.uint8 and ds.train.shape == (500, 2)
    assert (ds.distances == np.take_along_axis(full, ids, 1)).all()  # bit counts


@pytest.mark.parametrize(("change", "message", "in_content"), [
    (lambda f: f.attrs.__setitem__("dimension", 30), "attr 'dimension' is 30 bits but 'train' holds 3 bytes a row",
     False),  # attrs are not content: the checksum still matches
    (lambda f: f["train"].__setitem__((0, 2), 0b00000111), "field 'train' has 1s past bit 21", True),
])
@pytest.mark.parametrize("checksum", [True, False])
def test_bit_dimension_not_what_the_rows_hold_is_one_line(tmp_path: Path, change, message: str, in_content: bool,
                                                          checksum: bool) -> None:
    rng = np.random.default_rng(5)
    train, test = _bit_data(rng, 400, 10, 21)
    path = _write(tmp_path / "b.hdf5", pack_bits(train), pack_bits(test), "hamming", bits=21)
    with h5py.File(path, "a") as f:
        change(f)
        if not checksum:
            del f.attrs["checksum"]
    before = path.read_bytes()
    # with its checksum (which no longer matches) the message names the layout's defect too
    _one_line_error(call(dataset_main, "describe", path), str(path), message,
                    *(["content does not match its checksum"] if checksum and in_content else []))
    assert path.read_bytes() == before


def test_bit_rows_the_load_would_refuse_are_never_written(tmp_path: Path) -> None:
    rows = pack_bits(np.ones((150, 21)))
    bad = rows.copy()
    bad[0, 2] |= 1  # a 1 in the padding of the last byte
    with pytest.raises(ValueError, match="has 1s past bit 21"):
        _write(tmp_path / "p.hdf5", bad, rows[:5], "hamming", bits=21)
    with pytest.raises(ValueError, match="30 bits are 4 bytes a row"):
        _write(tmp_path / "w.hdf5", rows, rows[:5], "hamming", bits=30)
    assert not list(tmp_path.iterdir())


def test_unpacked_bit_values_other_than_0_1_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["distance"], f.attrs["point_type"] = "hamming", "bit"
        f.create_dataset("train", data=np.full((200, 8), 2, np.int64))
        f.create_dataset("test", data=np.zeros((3, 8), np.int64))
        f.create_dataset("neighbors", data=np.zeros((3, 100), np.int32))
        f.create_dataset("distances", data=np.zeros((3, 100), np.float32))
    with pytest.raises(UserError, match="holds values other than 0 and 1"):
        load_dataset(path)


# ---- sets under jaccard ---------------------------------------------------------------------

def _sets(rng, n: int, size: int, universe: int) -> list[np.ndarray]:
    return [rng.choice(universe, size=size, replace=False) for _ in range(n)]


def _jaccard_full(a: list, b: list) -> np.ndarray:
    return np.array([[1 - len(set(x) & set(y)) / len(set(x) | set(y)) if len(x) and len(y) else 1.0 for y in b]
                     for x in a])


def test_jaccard_ground_truth_is_exact_with_ties() -> None:
    rng = np.random.default_rng(6)
    train, test = _sets(rng, 1500, 20, 40), _sets(rng, 15, 20, 40)
    train[7] = np.array([], dtype=np.int64)  # an empty set: distance 1 (ann-benchmarks' rule)
    full = _jaccard_full(test, train)
    ids, d = exact_knn(sets_from_lists(train, 40), sets_from_lists(test, 40), "jaccard", 100)
    expected = _ref_top(full)
    assert (ids == expected).all()
    np.testing.assert_allclose(d, np.take_along_axis(full, expected, 1), rtol=1e-6)
    again = distances_to_ids(sets_from_lists(test, 40), sets_from_lists(train, 40), np.array(expected), "jaccard")
    np.testing.assert_allclose(again, np.take_along_axis(full, expected, 1), rtol=1e-12)


def test_jaccard_ties_by_hand() -> None:
    """{0,1} vs {0,1,2,3} and {0,2}: 1 - 2/4 = 1 - 1/3? no: {0,1}∩{0,2} = {0}, ∪ = {0,1,2}: 2/3;
    {0,1,2,3}: 1 - 2/4 = 0.5; {0,1,5,6}: 0.5 too (a tie of equal fractions); {0,1}: 0."""
    train = sets_from_lists([[0, 2], [0, 1, 2, 3], [0, 1, 5, 6], [0, 1], [7]], 8)
    ids, d = exact_knn(train, sets_from_lists([[1, 0]], 8), "jaccard", 3)
    assert ids.tolist() == [[3, 1, 2]] and d[0].tolist() == pytest.approx([0.0, 0.5, 0.5])


def _ab_sparse_file(path: Path, train: list, test: list, universe: int) -> None:
    """As ann_benchmarks.datasets.write_sparse_output."""
    full = _jaccard_full(test, train)
    ids = _ref_top(full)
    with h5py.File(path, "w") as f:
        f.attrs["type"], f.attrs["distance"], f.attrs["dimension"], f.attrs["point_type"] = \
            "sparse", "jaccard", universe, "bit"
        f.create_dataset("train", data=np.concatenate([sorted(t) for t in train]))
        f.create_dataset("test", data=np.concatenate([sorted(t) for t in test]))
        f.create_dataset("neighbors", data=ids, dtype=int)
        f.create_dataset("distances", data=np.take_along_axis(full, ids, 1), dtype=float)
        f.create_dataset("size_train", data=[len(t) for t in train])
        f.create_dataset("size_test", data=[len(t) for t in test])


def test_ann_benchmarks_sparse_jaccard_files_load_unchanged_and_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    train, test = _sets(rng, 600, 20, 40), _sets(rng, 10, 20, 40)
    path = tmp_path / "random-tiny-jaccard.hdf5"
    _ab_sparse_file(path, train, test, 40)
    ds = load_dataset(path)
    assert ds.point_type == "set" and ds.dimension == 40 and len(ds.train) == 600 and ds.train.nnz == 600 * 20
    assert sorted(ds.train[5].indices.tolist()) == sorted(train[5].tolist())
    again = write_dataset(tmp_path / "again.hdf5", train=ds.train, test=ds.test, distance="jaccard",
                          neighbors=ds.neighbors, distances=ds.distances)
    back = load_dataset(again)
    assert (back.train != ds.train).nnz == 0 and back.point_type == "set"
    out = call(dataset_main, "describe", again)
    assert out.code == 0 and "set (item ids in [0, 40), 20.0 a set on average; CSR)" in out.out


def test_set_item_outside_the_universe_is_one_line(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    train, test = _sets(rng, 300, 5, 40), _sets(rng, 4, 5, 40)
    path = tmp_path / "s.hdf5"
    _ab_sparse_file(path, train, test, 40)
    with h5py.File(path, "a") as f:
        f.attrs["dimension"] = 30
    line = _one_line_error(call(dataset_main, "describe", path), str(path), "outside the universe [0, 30)")
    assert "field 'train' has item id" in line


def test_hamming_on_float_points_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.hdf5", np.arange(600, dtype=np.float32).reshape(150, 4), np.ones((5, 4), np.float32),
                  "euclidean")
    with h5py.File(path, "a") as f:
        f.attrs["distance"] = "hamming"
        f.attrs["point_type"] = "float"
    _one_line_error(call(dataset_main, "describe", path), "'hamming', which is not defined on float32 points")


@pytest.mark.parametrize("point_type", ["bit", "set"])
def test_the_audit_checks_every_type(tmp_path: Path, point_type: str) -> None:
    rng = np.random.default_rng(9)
    if point_type == "bit":
        train, test = _bit_data(rng, 400, 10, 32)
        path = _write(tmp_path / "b.hdf5", pack_bits(train), pack_bits(test), "hamming")
    else:
        sets = _sets(rng, 410, 5, 40)
        path = _write(tmp_path / "s.hdf5", sets_from_lists(sets[:400], 40), sets_from_lists(sets[400:], 40), "jaccard")
    with h5py.File(path, "a") as f:
        f["distances"][:, 0] += 3 if point_type == "bit" else 0.3
        del f.attrs["checksum"]  # so that only the audit can notice
    with pytest.raises(UserError, match="the stored ground truth is wrong"):
        load_dataset(path)


# ---- adapters: native types, conversion inside the timed calls, converted_from ---------------------

class _Seen(Adapter):
    """Records the dtype each call is given."""

    native_metrics = {"euclidean": "l2", "hamming": "hamming"}
    point_types = ("float32", "uint8")

    def __init__(self, metric: str, threads: int = 1) -> None:
        super().__init__(metric, threads)
        self.seen: list[tuple[str, str, tuple]] = []

    def fit(self, X) -> None:
        self.seen.append(("fit", X.dtype.name, X.shape))

    def query(self, q, k):
        self.seen.append(("query", q.dtype.name, q.shape))
        return np.arange(k)


def test_adapters_get_their_native_type_or_a_conversion_inside_the_call() -> None:
    a = _Seen("euclidean")
    assert a.accept("uint8", 4) is None  # native: as it is
    a.fit(np.zeros((3, 4), np.uint8))
    b = _Seen("euclidean")
    assert b.accept("int8", 4) == "int8"  # converted: to float32, in the call
    b.fit(np.zeros((3, 4), np.int8))
    b.batch_query(np.ones((2, 4), np.int8), 2)  # the base loop over query(): converted once, not twice
    c = _Seen("hamming")
    assert c.accept("bit", 12) == "bit"  # bits as 0/1 rows of the first type that holds them
    c.fit(pack_bits(np.ones((3, 12))))
    c.query(pack_bits(np.ones((1, 12)))[0], 2)
    assert a.seen == [("fit", "uint8", (3, 4))]
    assert b.seen == [("fit", "float32", (3, 4)), ("query", "float32", (4,)), ("query", "float32", (4,))]
    assert c.seen == [("fit", "float32", (3, 12)), ("query", "float32", (12,))]
    with pytest.raises(ValueError, match="cannot serve euclidean on set points: it takes float32, uint8"):
        _Seen("euclidean").accept("set", 40)


@pytest.fixture(scope="module")
def typed_data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("typed")
    rng = np.random.default_rng(11)
    x, q = rng.integers(0, 256, (1500, 16)).astype(np.uint8), rng.integers(0, 256, (30, 16)).astype(np.uint8)
    _write(d / "u8-16-euclidean.hdf5", x, q, "euclidean")
    bits, qbits = _bit_data(rng, 1500, 30, 64)
    _write(d / "bits-64-hamming.hdf5", pack_bits(bits), pack_bits(qbits), "hamming")
    return d


def test_a_sweep_records_converted_from_and_the_summary_shows_it(typed_data: Path, tmp_path: Path) -> None:
    from annbench.analyse.frames import results_frame
    from annbench.cli.run import main as run_main

    r = call(run_main, "--data-dir", typed_data, "--results", tmp_path, "--dataset", "u8-16-euclidean",
             "--algorithm", "bruteforce,kdtree", "--runs", "1", "--warmup", "none", "--min-pass-time", "0")
    assert r.code == 0, r.err
    frame = results_frame(tmp_path, "u8-16-euclidean")
    by = {a: g for a, g in frame.groupby("algorithm")}
    assert (by["kdtree"]["converted_from"] == "uint8").all()
    assert by["bruteforce"]["converted_from"].isna().all()  # uint8 is bruteforce's own
    assert (frame["recall"] == 1.0).all()
    assert "kdtree (from uint8)" in r.out and "bruteforce (from" not in r.out  # the summary's table says so
    runs = call(plot_main, "--results", tmp_path, "--dataset", "u8-16-euclidean", "--table", "csv")
    assert "converted_from" in runs.out.splitlines()[0]


def test_a_distance_an_adapter_cannot_serve_on_the_type_is_one_line(typed_data: Path, tmp_path: Path) -> None:
    from annbench.cli.run import main as run_main

    r = call(run_main, "--data-dir", typed_data, "--results", tmp_path / "res", "--dataset", "bits-64-hamming",
             "--algorithm", "kdtree")
    _one_line_error(r, "algorithm 'kdtree' has no grid for distance 'hamming'", "it takes float32 (euclidean, angular)")
    assert not list(tmp_path.rglob("*.hdf5")), "nothing stored"


# ---- big-ann-benchmarks' files, create, export, built-ins ---------------------------------------

def test_xbin_files_write_and_refuse_what_they_cannot_hold(tmp_path: Path) -> None:
    from annbench.datasets.bigann import read_xbin, write_xbin

    a = np.arange(5 * 3, dtype=np.uint8).reshape(5, 3)
    path = write_xbin(tmp_path / "x.u8bin", a)
    raw = path.read_bytes()
    assert raw[:8] == np.array([5, 3], "<u4").tobytes() and raw[8:] == a.tobytes()  # big-ann-benchmarks' layout
    assert (read_xbin(path, slice(1, 3)) == a[1:3]).all()
    ids = write_xbin(tmp_path / "gt.ibin", np.array([[7, 1], [2, 3]]))
    assert read_xbin(ids).dtype == np.int32 and read_xbin(ids).tolist() == [[7, 1], [2, 3]]
    with pytest.raises(UserError, match="cannot hold this"):
        write_xbin(tmp_path / "y.u8bin", a.astype(np.float32) + 0.5)
    assert not (tmp_path / "y.u8bin").exists()


def test_create_from_u8bin_keeps_uint8_and_export_round_trips(tmp_path: Path) -> None:
    from annbench.datasets.bigann import read_xbin, write_xbin

    rng = np.random.default_rng(12)
    base, queries = rng.integers(0, 256, (400, 8)).astype(np.uint8), rng.integers(0, 256, (7, 8)).astype(np.uint8)
    write_xbin(tmp_path / "base.u8bin", base)
    write_xbin(tmp_path / "q.u8bin", queries)
    data = tmp_path / "data"
    r = call(dataset_main, "--data-dir", data, "create", "--from", tmp_path / "base.u8bin", "--train-rows", "0:300",
             "--queries", tmp_path / "q.u8bin", "--name", "mine", "--distance", "euclidean")
    assert r.code == 0, r.err
    ds = load_dataset(data / "mine.hdf5")
    assert ds.point_type == "uint8" and (ds.train == base[:300]).all() and (ds.test == queries).all()
    out = tmp_path / "out"
    assert call(dataset_main, "--data-dir", data, "export", "mine", "--format", "u8bin", "--out", out).code == 0
    assert (read_xbin(out / "mine.base.u8bin") == base[:300]).all()
    assert (read_xbin(out / "mine.gt.ibin") == ds.neighbors).all()
    assert call(dataset_main, "--data-dir", data, "export", "mine", "--format", "ab-hdf5", "--out", out).code == 0
    with h5py.File(out / "mine.hdf5") as f:  # ann-benchmarks' own layout: float, no annbench attrs
        assert f.attrs["point_type"] == "float" and f["train"].dtype == np.float32 and "checksum" not in f.attrs
    assert (load_dataset(out / "mine.hdf5").neighbors == ds.neighbors).all()
    bad = call(dataset_main, "--data-dir", data, "export", "mine", "--format", "i8bin", "--out", tmp_path / "o2")
    _one_line_error(bad, "are not all int8 values; valid formats for it: u8bin, fbin, ab-hdf5")
    assert not (tmp_path / "o2" / "mine.base.i8bin").exists()
    (tmp_path / "short.u8bin").write_bytes((tmp_path / "q.u8bin").read_bytes()[:-3])
    short = call(dataset_main, "--data-dir", data, "create", "--from", tmp_path / "short.u8bin", "--test-size", "2",
                 "--name", "short", "--distance", "euclidean")
    _one_line_error(short, "short.u8bin: header says 7 x 8 uint8 values (64 bytes with the header) but the file has 61")
    assert not (data / "short.hdf5").exists()


def test_generated_bit_and_set_builtins_follow_ann_benchmarks(tmp_path: Path) -> None:
    from annbench.datasets.registry import load

    bits = load("random-xs-16-hamming", tmp_path)
    assert (len(bits.train), len(bits.test), bits.dimension, bits.point_type) == (9_900, 100, 16, "bit")
    sets = load("random-s-jaccard", tmp_path)
    assert (len(sets.train), len(sets.test), sets.dimension, sets.point_type) == (9_900, 100, 40, "set")
    assert (sets.train.sizes == 20).all() and sets.train.indices.max() < 40
    exported = tmp_path / "ab"
    assert call(dataset_main, "--data-dir", tmp_path, "export", "random-xs-16-hamming", "--format", "ab-hdf5",
                "--out", exported).code == 0
    with h5py.File(exported / "random-xs-16-hamming.hdf5") as f:  # as ann-benchmarks writes it
        assert f["train"].dtype == np.bool_ and f["train"].shape == (9_900, 16)
        assert np.allclose(f["distances"][:] * 16, bits.distances)
    again = load_dataset(exported / "random-xs-16-hamming.hdf5")
    assert (again.train == bits.train).all() and (again.distances == bits.distances).all()


def test_uint8_builtins_hold_the_raw_integers_of_the_float_ones(tmp_path: Path) -> None:
    from conftest import SHARED_DATA

    from annbench.datasets.registry import load

    u8 = load("siftsmall-128-uint8-euclidean", tmp_path, SHARED_DATA)
    f32 = load("siftsmall-128-euclidean", tmp_path, SHARED_DATA)
    assert u8.point_type == "uint8" and f32.point_type == "float32"
    assert (u8.train == f32.train).all() and u8.memory_bytes * 4 == f32.memory_bytes
    assert (u8.neighbors == f32.neighbors).all()


def test_encode_binary_thresholds_each_feature_at_its_training_median(tmp_path: Path) -> None:
    from annbench.analyse.compare import related_datasets
    from annbench.cli.encode import main as encode_main

    r = call(encode_main, "--data-dir", tmp_path, "--from", "digits-64-euclidean", "--dim", "16", "--epochs", "3",
             "--binary", "--no-progress")
    assert r.code == 0, r.err
    floats = load_dataset(tmp_path / "digits-encoded-mlp-16-euclidean.hdf5")
    codes = load_dataset(tmp_path / "digits-encoded-mlp-16-hamming.hdf5")
    assert codes.point_type == "bit" and codes.dimension == 16 and codes.attrs["binary_of"] == floats.name
    medians = np.median(floats.train, axis=0)
    assert (codes.train == pack_bits(floats.train > medians)).all()
    assert (codes.test == pack_bits(floats.test > medians)).all()  # the test rows use the train medians
    ones = np.unpackbits(codes.train, axis=1).mean(axis=0)  # a median splits its feature in half (ties aside)
    assert (np.abs(ones - 0.5) <= 1 / len(codes.train)).sum() >= 8
    ids, _ = exact_knn(codes.train, codes.test, "hamming", 10)
    assert codes.attrs["knn_accuracy_exact_k10"] == pytest.approx(
        M.knn_accuracy(ids, codes.train_labels, codes.test_labels, 10))
    assert f"binary {codes.attrs['knn_accuracy_exact_k10']:.4f}" in r.out
    names = related_datasets("digits-64-euclidean", [floats.name, codes.name, "other-1-euclidean"])
    assert codes.name in names and floats.name in names  # compare shows raw, float and binary side by side


@pytest.mark.parametrize("backend", ["faiss", "numpy", "bruteforce"])
def test_hamming_tie_groups_larger_than_k_keep_the_smallest_ids(monkeypatch: pytest.MonkeyPatch,
                                                                 backend: str) -> None:
    """3-bit codes over 5,000 points: each of the 8 codes is shared by ~625 points, so the tie group at
    the 100th distance (0: the query's own code) is six times k; its first 100 ids by id are the answer,
    in 2 threads (numpy: blocks of 2 queries, tiles of 256 columns). The bruteforce adapter's own queries
    (one, and a batch) search the same way, never more than a block of distances at once."""
    from annbench.backends.algorithms.bruteforce import BruteForce
    from annbench.quality import bitset

    monkeypatch.setattr(bitset, "_BLOCK_VALUES", 2 * 5000 + 32)
    monkeypatch.setattr(bitset, "_TILE_VALUES", 512)
    rng = np.random.default_rng(13)
    train, test = _bit_data(rng, 5000, 20, 3)
    full = (test[:, None, :] != train[None]).sum(-1).astype(np.float64)
    if backend != "bruteforce":
        ids, d = exact_knn(pack_bits(train), pack_bits(test), "hamming", 100, threads=2, backend=backend)
        assert (ids == _ref_top(full)).all() and (d == 0).all()  # the first 100 ids holding the query's own code
        return
    blocks = []
    block = bitset._hamming_block

    def bounded(q, xt, k, groups):
        blocks.append(len(q) * xt.shape[1])
        return block(q, xt, k, groups)

    monkeypatch.setattr(bitset, "_hamming_block", bounded)
    index = BruteForce("hamming", threads=2)
    index.fit(pack_bits(train))
    assert (index.batch_query(pack_bits(test), 100) == _ref_top(full)).all()
    assert (np.stack([index.query(q, 100) for q in pack_bits(test)]) == _ref_top(full)).all()
    assert len(blocks) == 10 + 20 and max(blocks) <= bitset._BLOCK_VALUES


# ---- uint8 as int8 under euclidean, conversion on every path (changes, filtered queries) ---------------

class _Int8(_Seen):
    native_metrics = {"euclidean": "l2", "angular": "cos"}
    point_types = ("float32", "int8")
    changes = ("insert", "delete")

    def insert(self, X, ids) -> None:
        self.seen.append(("insert", X.tolist()))

    def delete(self, ids) -> None:
        pass

    def query(self, q, k):
        self.seen.append(("query", q.tolist()))
        return np.arange(k)

    def filtered_query(self, q, k, predicate):
        self.seen.append(("filtered_query", q.tolist()))
        return np.arange(k)


def test_uint8_reaches_an_int8_adapter_shifted_under_euclidean_only() -> None:
    """x - 128 keeps every difference x_i - y_i, so every euclidean distance: uint8 rows go to an adapter
    taking int8 as int8 (recorded as a conversion), on every call given rows; under angular the shift would
    change the answer, so there they are float32."""
    x = np.array([[0, 127, 128, 255]], np.uint8)
    shifted = [-128, -1, 0, 127]
    a = _Int8("euclidean")
    assert a.accept("uint8", 4) == "uint8"
    assert a.conversion() == {"converted_from": "uint8", "converted_to": "int8"}
    a.fit(x)
    a.insert(x, np.array([0]))
    a.replace(x, np.array([0]))  # the default replace: delete, then the (converted once) insert
    a.query(x[0], 1)
    a.filtered_query(x[0], 1, None)
    a.batch_query(x, 1)  # the base loop over query(): converted once, not twice
    assert a.seen == [("fit", "int8", (1, 4)), ("insert", [shifted]), ("insert", [shifted]), ("query", shifted),
                      ("filtered_query", shifted), ("query", shifted)]
    b = _Int8("angular")
    b.accept("uint8", 4)
    b.query(x[0], 1)
    assert b.conversion() == {"converted_from": "uint8", "converted_to": "float32"}
    assert b.seen == [("query", [0.0, 127.0, 128.0, 255.0])]
    assert _Int8("euclidean").accept("int8", 4) is None and _Int8("euclidean").conversion() == {}


FLOAT_ONLY = '''
import numpy as np

from annbench.backends.algorithms.bruteforce import BruteForce


class BruteforceFloat(BruteForce):
    """bruteforce taking float32 alone: every call given rows checks it got float32 (the harness converts)."""

    point_types = ("float32",)

    def fit(self, X):
        assert X.dtype == np.float32, X.dtype
        super().fit(X)

    def insert(self, X, ids):
        assert X.dtype == np.float32, X.dtype
        super().insert(X, ids)

    def replace(self, X, ids):
        assert X.dtype == np.float32, X.dtype
        super().replace(X, ids)

    def query(self, q, k):
        assert q.dtype == np.float32, q.dtype
        return super().query(q, k)

    def filtered_query(self, q, k, predicate):
        assert q.dtype == np.float32, q.dtype
        return super().filtered_query(q, k, predicate)
'''

U8_RUNBOOK = """\
u8:
  max_pts: 1500
  1: {operation: insert, start: 0, end: 1000}
  2: {operation: search}
  3: {operation: replace, tags_start: 0, tags_end: 200, ids_start: 1000, ids_end: 1200}
  4: {operation: search}
  5: {operation: delete, start: 500, end: 700}
  6: {operation: search}
"""


def _quick_run(*args: object):
    from annbench.cli.run import main as run_main

    return call(run_main, "--runs", 1, "--min-pass-time", 0, "--warmup", "none", "--executor", "inprocess",
                "--no-plot", *args)


def test_a_runbook_converts_the_points_of_its_changes_and_searches(typed_data: Path, tmp_path: Path) -> None:
    from annbench.analyse.frames import ANY_RUNBOOK, results_frame
    from annbench.analyse.streaming import step_frame

    backends = write_backend(tmp_path / "b", "bruteforce-float", FLOAT_ONLY, "  demo: {}")
    (tmp_path / "rb.yaml").write_text(U8_RUNBOOK)
    r = _quick_run("--dataset", "u8-16-euclidean", "--runbook", f"{tmp_path / 'rb.yaml'}:u8", "--algorithm",
                   "bruteforce-float,usearch", "--algorithms-dir", backends, "--configs-dir", backends,
                   "--data-dir", typed_data, "--results", tmp_path / "res")
    assert r.code == 0, r.err
    steps = step_frame(tmp_path / "res", "u8-16-euclidean")
    exact = steps[(steps["algorithm"] == "bruteforce-float") & (steps["operation"] == "search")]
    assert len(exact) == 3 and (exact["recall"] == 1.0).all()  # its asserts passed at every insert/replace/query
    frame = results_frame(tmp_path / "res", "u8-16-euclidean", runbook=ANY_RUNBOOK)
    by = {a: g for a, g in frame.groupby("algorithm")}
    assert (by["bruteforce-float"]["converted_to"] == "float32").all()
    assert (by["usearch"]["converted_from"] == "uint8").all() and (by["usearch"]["converted_to"] == "int8").all()
    assert by["usearch"]["recall"].max() >= 0.9


SAVEABLE = FLOAT_ONLY + '''

    def save(self, folder):
        np.save(f"{folder}/x.npy", self._x)

    def load(self, folder, dimension):
        assert dimension == 16, dimension
        self.fit(np.load(f"{folder}/x.npy"))
'''


def test_processes_loading_a_saved_index_convert_their_queries(typed_data: Path, tmp_path: Path) -> None:
    from annbench.analyse.frames import results_frame

    backends = write_backend(tmp_path / "b", "bruteforce-float", SAVEABLE, "  demo: {}")
    r = _quick_run("--dataset", "u8-16-euclidean", "--algorithm", "bruteforce-float", "--processes", 2,
                   "--algorithms-dir", backends, "--configs-dir", backends, "--data-dir", typed_data,
                   "--results", tmp_path / "res")
    assert r.code == 0, r.err
    [row] = results_frame(tmp_path / "res", "u8-16-euclidean").to_dict("records")
    assert row["status"] == "ok" and row["recall"] == 1.0 and row["process_index"] == "loaded", row


def test_a_filtered_u8bin_dataset_stays_uint8_and_its_filtered_queries_are_converted(tmp_path: Path) -> None:
    from annbench.analyse.frames import results_frame
    from annbench.datasets.bigann import write_xbin

    rng = np.random.default_rng(14)
    write_xbin(tmp_path / "base.u8bin", rng.integers(0, 256, (600, 8)).astype(np.uint8))
    write_xbin(tmp_path / "q.u8bin", rng.integers(0, 256, (20, 8)).astype(np.uint8))
    np.save(tmp_path / "tags.npy", rng.integers(0, 4, 600))
    np.save(tmp_path / "qtags.npy", rng.integers(0, 4, 20))
    data = tmp_path / "data"
    r = call(dataset_main, "--data-dir", data, "create", "--from", tmp_path / "base.u8bin", "--queries",
             tmp_path / "q.u8bin", "--name", "u8f", "--distance", "euclidean", "--train-tags", tmp_path / "tags.npy",
             "--test-tags", tmp_path / "qtags.npy")
    assert r.code == 0, r.err
    ds = load_dataset(data / "u8f.hdf5")
    assert ds.point_type == "uint8" and ds.filters is not None and ds.train.dtype == np.uint8
    backends = write_backend(tmp_path / "b", "bruteforce-float", FLOAT_ONLY, "  quick: {}")
    for strategy in ("native", "post"):
        r = _quick_run("--dataset", "u8f", "--algorithm", "bruteforce-float", "--preset", "quick",
                       "--filter-strategy", strategy, "--algorithms-dir", backends, "--configs-dir", backends,
                       "--data-dir", data, "--results", tmp_path / "res")
        assert r.code == 0, r.err
    frame = results_frame(tmp_path / "res", "u8f")
    assert sorted(frame["strategy"]) == ["native", "post"] and (frame["recall"] == 1.0).all()
    assert (frame["converted_from"] == "uint8").all() and (frame["filter_violations"] == 0).all()


def test_lookups_and_saved_indexes_get_points_converted_as_runs_do(typed_data: Path, tmp_path: Path) -> None:
    """``dataset index`` and lookups make their adapter as runs do: a float-only index is fitted and queried on
    float32 rows (its calls assert it), usearch is given uint8 as int8, annoy bits as 0/1 floats and
    usearch-binary sets as bits; each answers as exact search does. A query an index cannot be given as a uint8
    point is one line (exit 2); exact search takes it."""
    import shutil

    from annbench.apps.lookup import Lookup

    backends = write_backend(tmp_path / "b", "bruteforce-float", SAVEABLE, "  demo: {}")
    data = tmp_path / "data"
    data.mkdir()
    for name in ("u8-16-euclidean", "bits-64-hamming"):
        shutil.copy(typed_data / f"{name}.hdf5", data)  # a saved index goes beside its dataset
    r = call(dataset_main, "--data-dir", data, "index", "u8-16-euclidean", "--algorithm", "bruteforce-float",
             "--algorithms-dir", backends)
    assert r.code == 0, r.err
    query = load_dataset(data / "u8-16-euclidean.hdf5").test[3].astype(np.float64)  # as read from a .npy
    exact = Lookup("u8-16-euclidean", data, exact=True).nearest(query, 5)
    saved = Lookup("u8-16-euclidean", data, adapter_dirs=[backends]).nearest(query, 5)
    usearch = Lookup("u8-16-euclidean", data, algorithm="usearch").nearest(query, 5)
    assert "saved index; uint8 points given as float32" in saved.how and saved.keys == exact.keys
    assert "uint8 points given as int8" in usearch.how and usearch.keys == exact.keys
    np.save(tmp_path / "half.npy", query + 0.5)
    r = call(dataset_main, "--data-dir", data, "lookup", "u8-16-euclidean", "--vector", tmp_path / "half.npy",
             "--algorithms-dir", backends)
    assert _one_line_error(r, "--vector ", "half.npy: ", "u8-16-euclidean.hdf5").endswith(
        "valid: 16 integers 0..255, or --exact")
    r = call(dataset_main, "--data-dir", data, "lookup", "u8-16-euclidean", "--vector", tmp_path / "half.npy",
             "--exact")
    assert r.code == 0, r.err

    bits = np.unpackbits(load_dataset(data / "bits-64-hamming.hdf5").test[0]).astype(np.float32)
    exact = Lookup("bits-64-hamming", data, exact=True).nearest(bits, 5)
    annoy = Lookup("bits-64-hamming", data, algorithm="annoy", query={"search_k": 100_000}).nearest(bits, 5)
    assert "bit points given as float32" in annoy.how and (annoy.distances == exact.distances).all()
    rng = np.random.default_rng(24)
    train, test = [rng.choice(40, 6, replace=False) for _ in range(300)], [rng.choice(40, 6, replace=False)]
    _write(data / "sets-40-jaccard.hdf5", sets_from_lists(train, 40), sets_from_lists(test, 40), "jaccard")
    items = np.isin(np.arange(40), test[0]).astype(np.float32)  # the indicator of the query's items
    exact = Lookup("sets-40-jaccard", data, exact=True).nearest(items, 5)
    binary = Lookup("sets-40-jaccard", data, algorithm="usearch-binary").nearest(items, 5)
    assert "set points given as bit" in binary.how and np.allclose(binary.distances, exact.distances)
