"""Filtered search, data side: predicates, the exact filtered ground truth (against a plain numpy
reference), the dataset fields under the checksum and the audit, and the scoring of filtered answers
(ties, fewer than k matches, zero matches, violations)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from annbench.core.errors import UserError
from annbench.datasets.attributes import Filters
from annbench.datasets.digest import content_checksum
from annbench.datasets.format import load_dataset, write_dataset
from annbench.execute.evaluate import quality
from annbench.quality import filtered as F
from annbench.quality.predicates import AttributeIndex, Attributes, Predicate, as_csr, predicates


def reference(train: np.ndarray, q: np.ndarray, metric: str, match: np.ndarray,
              k: int) -> tuple[np.ndarray, np.ndarray]:
    """The filtered top-k by brute force in float64, ties to the smaller id: the plain numpy reference."""
    rows = np.flatnonzero(match)
    x, v = train[rows].astype(np.float64), q.astype(np.float64)
    if metric == "euclidean":
        d = np.sqrt(((x - v) ** 2).sum(axis=1))
    elif metric == "ip":
        d = -(x @ v)
    else:
        d = 1 - (x @ v) / (np.linalg.norm(x, axis=1) * np.linalg.norm(v))
    order = np.lexsort((rows, d))[:k]
    return rows[order], d[order]


def random_filtered(n: int = 2000, nq: int = 60, n_tags: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    train = rng.standard_normal((n, 8)).astype(np.float32)
    test = rng.standard_normal((nq, 8)).astype(np.float32)
    # tag t carried by ~0.6^t of the points: tag 0 by 60 % (broad: the masked scan), the last by almost none
    carried = rng.random((n, n_tags)) < 0.6 ** np.arange(1, n_tags + 1)
    tags = as_csr(sp.csr_matrix(carried))
    values = rng.random(n)
    qt = sp.lil_matrix((nq, n_tags), dtype=bool)
    ranges = np.tile([-np.inf, np.inf], (nq, 1))
    for i in range(nq):
        kind = i % 5
        if kind == 0:
            qt[i, i % n_tags] = True                                   # one tag, any selectivity
        elif kind == 1:
            qt[i, 0] = qt[i, 1 + i % 3] = True                          # two tags
        elif kind == 2:
            ranges[i] = np.sort(rng.random(2))                          # a range only
        elif kind == 3:
            qt[i, 0] = True
            ranges[i] = (0.1, 0.9)                                     # broad tag and a range
        # kind 4: no predicate at all
    qt[nq - 1, :] = True  # every tag: no point matches
    return train, test, tags, values, as_csr(sp.csr_matrix(qt), n_tags), ranges


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip"])
def test_filtered_ground_truth_equals_numpy_reference(metric: str) -> None:
    train, test, tags, values, qt, ranges = random_filtered()
    attrs = Attributes(tags, values)
    index = AttributeIndex(attrs)
    preds = predicates(qt, ranges)
    ids, d, sel = F.filtered_knn(train, test, metric, preds, index, k=50)
    dense = tags.toarray()
    paths = set()
    for i, p in enumerate(preds):
        low, high = (-np.inf, np.inf) if p.low is None else (p.low, p.high)  # [-inf, inf): no range
        match = dense[:, list(p.tags)].all(axis=1) & (values >= low) & (values < high)
        paths.add("gather" if match.mean() <= F.NARROW_FRACTION else "mask" if not match.all() else "all")
        want_ids, want_d = reference(train, test[i], metric, match, 50)
        e = len(want_ids)
        assert sel[i] == match.sum() / len(train)
        assert np.array_equal(ids[i, :e], want_ids), (i, p)
        np.testing.assert_allclose(d[i, :e], want_d, rtol=1e-5, atol=1e-6)
        assert (ids[i, e:] == -1).all() and np.isinf(d[i, e:]).all()
    assert paths == {"gather", "mask", "all"}  # every search path was exercised
    assert {p.has_range for p in preds} == {True, False}
    assert {p.has_range for p in preds} == {True, False}
    assert sel.min() == 0.0  # a query no point matches


def test_tie_rule_under_a_filter() -> None:
    # four points at the same distance from the query; the filter drops ids 0 and 2
    train = np.array([[1, 0], [0, 1], [-1, 0], [0, -1], [5, 5]], dtype=np.float32)
    tags = as_csr(np.array([0, 1, 0, 1, 1]), n_tags=2)
    index = AttributeIndex(Attributes(tags))
    ids, d, sel = F.filtered_knn(train, np.zeros((1, 2), np.float32), "euclidean", [Predicate((1,))], index, k=2)
    assert ids.tolist() == [[1, 3]]  # the tied matching points, smaller id first
    assert sel.tolist() == [0.6]
    truth = F.filtered_knn(train, np.zeros((1, 2), np.float32), "euclidean", [Predicate((1,))], index, k=3)
    # an answer of the other tied point at k = 1 is still a hit (distance recall), id 4 is not
    dataset = _dataset(train, np.zeros((1, 2), np.float32), tags, [Predicate((1,))], *truth)
    scores, _ = quality(dataset, np.array([[3]]), 1)
    assert scores["recall"] == 1.0 and scores["id_recall"] == 1.0
    scores, _ = quality(dataset, np.array([[4]]), 1)
    assert scores["recall"] == 0.0


class _Data:
    """The fields of a Dataset that scoring reads."""

    def __init__(self, train, test, neighbors, distances, filters) -> None:
        self.train, self.test, self.neighbors, self.distances = train, test, neighbors, distances
        self.distance, self.filters = "euclidean", filters
        self.train_labels = self.test_labels = None


def _dataset(train, test, tags, preds, ids, d, sel):
    qt = as_csr(sp.csr_matrix([[t in p.tags for t in range(tags.shape[1])] for p in preds]), tags.shape[1])
    return _Data(train, test, ids.astype(np.int64), d.astype(np.float64), Filters(tags, qt, sel))


def _line(n: int = 10) -> tuple[np.ndarray, sp.csr_matrix]:
    """Points 0..n-1 on a line at x = id; point i carries tag i % 2, and tag 2 only point 9."""
    train = np.arange(n, dtype=np.float32)[:, None]
    tags = sp.lil_matrix((n, 3), dtype=bool)
    for i in range(n):
        tags[i, i % 2] = True
    tags[9, 2] = True
    return train, as_csr(sp.csr_matrix(tags), 3)


def test_fewer_than_k_matches_zero_matches_and_violations() -> None:
    train, tags = _line()
    test = np.zeros((3, 1), np.float32)
    tags = as_csr(sp.hstack([tags, sp.csr_matrix((10, 1), dtype=bool)]).tocsr(), 4)
    preds = [Predicate((0,)), Predicate((2,)), Predicate((3,))]  # 5 matches, 1 match, none
    index = AttributeIndex(Attributes(tags))
    truth = F.filtered_knn(train, test, "euclidean", preds, index, k=10)
    assert truth[0][1].tolist() == [9] + [-1] * 9 and (truth[0][2] == -1).all()
    dataset = _dataset(train, test, tags, preds, *truth)
    k = 4
    exact = np.array([[0, 2, 4, 6], [9, -1, -1, -1], [-1, -1, -1, -1]])
    scores, _ = quality(dataset, exact, k)
    assert scores["recall"] == scores["id_recall"] == scores["eps_recall_0.01"] == 1.0
    assert scores["filter_violations"] == 0 and scores["rel"] == 1.0
    # query 1 expects min(k, 1) = 1 neighbour: the empty answer scores 0 there; query 2 expects none: 1.0
    scores, _ = quality(dataset, np.array([[0, 2, 4, 6], [-1, -1, -1, -1], [-1, -1, -1, -1]]), k)
    assert scores["recall"] == pytest.approx(2 / 3)
    # violations: ids 1 and 3 (tag 1, nearer than id 4) returned for query 0, id 5 for the zero-match query
    scores, _ = quality(dataset, np.array([[0, 1, 2, 3], [9, -1, -1, -1], [5, -1, -1, -1]]), k)
    assert scores["filter_violations"] == 3
    assert scores["recall"] == pytest.approx((2 / 4 + 1 + 1) / 3)  # violators are never hits
    assert scores["id_recall"] == pytest.approx((2 / 4 + 1 + 1) / 3)
    per_query = F.per_query_scores(*_per_query_args(dataset, np.array([[0, 1, 2, 3], [9, -1, -1, -1], [5, -1, -1, -1]]),
                                                    k))
    assert per_query["recall"].tolist() == [0.5, 1.0, 1.0] and per_query["filter_violations"].tolist() == [2, 0, 1]


def _per_query_args(dataset, ids, k):
    from annbench.quality.distances import distances_to_ids

    found_d = distances_to_ids(dataset.test, dataset.train, ids, "euclidean")
    e = F.expected(dataset.filters.selectivity, len(dataset.train), k)
    return (found_d, ids, dataset.neighbors, dataset.distances, k, e,
            F.violating(dataset.filters.index, dataset.filters.predicates, ids), (0.01,))


def test_index_matches_and_estimates() -> None:
    train, tags = _line()
    values = np.arange(10, dtype=np.float64) / 10
    index = AttributeIndex(Attributes(tags, values))
    p = Predicate((1,), 0.25, 0.75)
    assert index.rows(p).tolist() == [3, 5, 7]
    assert index.matches(p, np.array([3, 5, 9, -1, 4])).tolist() == [True, True, False, False, False]
    assert index.estimate(p) == pytest.approx(0.5 * 0.5)  # tag 1: half the points; [0.25, 0.75): 5 of 10
    assert index.rows(Predicate((), 0.25, 0.75)).tolist() == [3, 4, 5, 6, 7]  # half-open: 0.75 excluded
    assert index.rows(Predicate((1, 2))).tolist() == [9]
    assert index.estimate(Predicate((1, 3))) == 0.0  # a tag beyond the matrix: no point carries it
    assert index.rows(Predicate()).tolist() == list(range(10))


def _write(path, metric="euclidean", **change):
    train, test, tags, values, qt, ranges = random_filtered(n=600, nq=40)
    index = AttributeIndex(Attributes(tags, values))
    ids, d, sel = F.filtered_knn(train, test, metric, predicates(qt, ranges), index, k=100)
    fields = dict(train=train, test=test, distance=metric, neighbors=ids, distances=d,
                  filters=Filters(tags, qt, sel, values, ranges))
    fields.update(change)
    return write_dataset(path, **fields)


def test_dataset_round_trip_checksum_and_audit(tmp_path) -> None:
    path = _write(tmp_path / "f.hdf5")
    ds = load_dataset(path)
    assert ds.filters is not None and ds.filters.kinds == ("tags", "range")
    assert (ds.neighbors == -1).any()  # padded rows loaded
    assert ds.filters.train_tags.shape == (600, 12)
    # a tag changed on disk: the content checksum covers the tag matrix
    with h5py.File(path, "r+") as f:
        f["train_tags/indices"][0] = (f["train_tags/indices"][0] + 1) % 12
    with pytest.raises(UserError, match="does not match its checksum"):
        load_dataset(path)
    # a wrong filtered ground truth with a consistent checksum: the audit recomputes it
    path = _write(tmp_path / "g.hdf5")
    with h5py.File(path, "r+") as f:
        sel = f["test_selectivity"][()]
        fields = {k: f[k][()] for k in ("train", "test", "neighbors", "distances", "train_tags/indptr",
                                        "train_tags/indices", "train_values", "test_tags/indptr", "test_tags/indices",
                                        "test_ranges")}
        sel[:] = np.clip(sel + 0.001, 0, 1)
        f["test_selectivity"][...] = sel
        f.attrs["checksum"] = content_checksum({**fields, "test_selectivity": sel}, "euclidean")
    with pytest.raises(UserError, match="stored selectivity"):
        load_dataset(path)
    assert load_dataset(path, audit=False).filters is not None


def test_audit_catches_a_non_matching_neighbour(tmp_path) -> None:
    train, test, tags, values, qt, ranges = random_filtered(n=600, nq=40)
    preds = predicates(qt, ranges)
    ids, d, sel = F.filtered_knn(train, test, "euclidean", preds, AttributeIndex(Attributes(tags, values)), k=100)
    # the unfiltered nearest neighbours in place of the filtered ones: ids fail their predicates
    from annbench.quality.groundtruth import exact_knn

    plain_ids, plain_d = exact_knn(train, test, "euclidean", 100, backend="numpy")
    changed = sel < 1
    ids[changed], d[changed] = plain_ids[changed], plain_d[changed]
    path = write_dataset(tmp_path / "h.hdf5", train=train, test=test, distance="euclidean", neighbors=ids,
                         distances=d, filters=Filters(tags, qt, sel, values, ranges))
    with pytest.raises(UserError, match="ground truth is wrong"):
        load_dataset(path)


@pytest.mark.parametrize("edit, message", [
    (lambda f: f["train_tags"].attrs.__setitem__("n_tags", 3),
     "outside \\[0, n_tags=3\\)"),
    (lambda f: _replace(f, "test_ranges", f["test_ranges"][()][:, ::-1] + np.array([0, 1e-9])), "low .* > high"),
    (lambda f: _replace(f, "train_tags/indptr", f["train_tags/indptr"][()][:-1]), "expected \\(601,\\)"),
])
def test_bad_filter_fields_are_one_line_errors(tmp_path, edit, message) -> None:
    path = _write(tmp_path / "bad.hdf5")
    with h5py.File(path, "r+") as f:
        edit(f)
        del f.attrs["checksum"]  # the defect itself must be found, not just the checksum
    with pytest.raises(UserError, match=message) as e:
        load_dataset(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def _replace(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f[name]
    f.create_dataset(name, data=data)
