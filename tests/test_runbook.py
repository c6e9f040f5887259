"""Runbooks: big-ann-benchmarks' format read unchanged, validation, the shipped runbooks, ground truth per step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from annbench.core.errors import UserError
from annbench.plan import runbook_gen
from annbench.plan.runbook import SAFE_LOADER, Operation, parse_entry, read_runbook
from annbench.quality.streaming import step_ground_truth

#: big-ann-benchmarks' neurips23/runbooks/simple_runbook.yaml (its first two entries), as published.
SIMPLE_RUNBOOK = """\
random-xs:
  max_pts: 10000
  1: 
    operation: "insert"
    start: 0
    end: 10000
  2:
    operation: "search"
  3:
    operation: "delete"
    start: 0
    end: 5000
  4:
    operation: "search"
  5:
    operation: "insert"
    start: 0
    end: 5000
  6:
    operation: "search"
  gt_url: "https://comp21storage.z5.web.core.windows.net/comp23/str_gt/random10000/10000/simple_runbook.yaml"
msturing-10M:
  max_pts: 10000000
  # On Azure D8lds v5 with "R":50, "L":50, "insert_threads":16, "consolidate_threads":16
  # ~28 mins run time "Ls":100, "search_threads":16, average recall@10: 0.892
  1: 
    operation: "insert"
    start: 0
    end: 10000000
  2:
    operation: "search"
  3:
    operation: "delete"
    start: 0
    end: 5000000
  4:
    operation: "search"
  5:
    operation: "insert"
    start: 0
    end: 5000000
  6:
    operation: "search"
"""

#: big-ann-benchmarks' simple_replace_runbook.yaml (random-xs).
REPLACE_RUNBOOK = """\
random-xs:
  max_pts: 10000
  1: {operation: "insert", start: 0, end: 7500}
  2: {operation: "search"}
  3: {operation: "replace", tags_start: 0, tags_end: 2500, ids_start: 7500, ids_end: 10000}
  4: {operation: "search"}
  5: {operation: "replace", tags_start: 0, tags_end: 2500, ids_start: 0, ids_end: 2500}
  6: {operation: "search"}
  7: {operation: "delete", start: 2500, end: 5000}
  8: {operation: "search"}
"""


def write(tmp_path: Path, text: str, name: str = "rb.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_big_ann_simple_runbook_is_read_unchanged(tmp_path: Path) -> None:
    path = write(tmp_path, SIMPLE_RUNBOOK, "simple_runbook.yaml")
    rb = read_runbook(f"{path}:random-xs", "whatever", 10_000)
    assert rb.max_pts == 10_000 and rb.name == "simple_runbook:random-xs"
    assert [s.operation for s in rb.steps] == [Operation.INSERT, Operation.SEARCH, Operation.DELETE, Operation.SEARCH,
                                               Operation.INSERT, Operation.SEARCH]
    assert [sum(p.length for p in live) for live in rb.live_sets] == [10_000, 5_000, 10_000]
    # the entry defaults to the dataset's name when the file has several
    assert read_runbook(path, "random-xs", 10_000).digest == rb.digest
    with pytest.raises(UserError, match="no entry 'mine'; valid: random-xs, msturing-10M"):
        read_runbook(path, "mine", 10_000)


def test_digest_ignores_comments_and_gt_url(tmp_path: Path) -> None:
    a = read_runbook(write(tmp_path, SIMPLE_RUNBOOK, "a.yaml") + ":random-xs", "x", 10_000)
    stripped = SIMPLE_RUNBOOK.replace('  gt_url: "https://comp21storage.z5.web.core.windows.net/comp23/str_gt/'
                                      'random10000/10000/simple_runbook.yaml"\n', "")
    b = read_runbook(write(tmp_path, stripped, "b.yaml") + ":random-xs", "x", 10_000)
    assert a.digest == b.digest
    bigger = stripped.replace("max_pts: 10000\n", "max_pts: 20000\n", 1)
    c = read_runbook(write(tmp_path, bigger, "c.yaml") + ":random-xs", "x", 10_000)
    assert c.digest != a.digest


def test_replace_moves_tags_onto_other_rows(tmp_path: Path) -> None:
    rb = read_runbook(write(tmp_path, REPLACE_RUNBOOK), "random-xs", 10_000)
    after_replace = rb.live_sets[1]
    assert {(p.tag, p.row, p.length) for p in after_replace} == {(0, 7500, 2500), (2500, 2500, 5000)}
    assert {(p.tag, p.row, p.length) for p in rb.live_sets[3]} == {(0, 0, 2500), (5000, 5000, 2500)}


BAD = {
    "unknown operation": ("x:\n  max_pts: 10\n  1: {operation: insert, start: 0, end: 5}\n  2: {operation: upsert}\n",
                          r"x step 2: unknown operation 'upsert'; valid: insert, delete, replace, search"),
    "range out of bounds": ("x:\n  max_pts: 100\n  1: {operation: insert, start: 0, end: 50}\n",
                            r"x step 1: insert range \[0, 50\) \(start, end\) is empty or beyond the dataset's 20 "
                            r"train rows; valid: 0 <= start < end <= 20"),
    "delete of dead points": ("x:\n  max_pts: 10\n  1: {operation: insert, start: 0, end: 5}\n"
                              "  2: {operation: search}\n  3: {operation: delete, start: 3, end: 8}\n",
                              r"x step 3: deletes 3 points that are not live \(first: 5\)"),
    "missing max_pts": ("x:\n  1: {operation: insert, start: 0, end: 5}\n", r"x: no max_pts; valid: max_pts: N"),
    "more than max_pts": ("x:\n  max_pts: 4\n  1: {operation: insert, start: 0, end: 5}\n",
                          r"x step 1: 5 points live, more than max_pts=4"),
    "insert of live points": ("x:\n  max_pts: 10\n  1: {operation: insert, start: 0, end: 5}\n"
                              "  2: {operation: insert, start: 4, end: 6}\n",
                              r"x step 2: inserts 1 points that are live already \(first: 4\)"),
    "replace of dead points": ("x:\n  max_pts: 10\n  1: {operation: insert, start: 0, end: 5}\n"
                               "  2: {operation: replace, tags_start: 4, tags_end: 6, ids_start: 10, ids_end: 12}\n",
                               r"x step 2: replaces 1 points that are not live \(first: 5\)"),
    "missing field": ("x:\n  max_pts: 10\n  1: {operation: delete, start: 0}\n",
                      r"x step 1: delete needs end as an integer, got None"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_runbooks_are_one_line_errors_naming_the_step(tmp_path: Path, case: str) -> None:
    text, message = BAD[case]
    path = write(tmp_path, text)
    with pytest.raises(UserError, match=message) as info:
        read_runbook(path, "x", 20)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"runbook {path}:x")


def test_shipped_runbooks_are_the_generators_output_and_valid(tmp_path: Path) -> None:
    """Every entry of the files in the package is what the documented script writes for that dataset, and is
    valid for it (a dataset registered since the files were written has no entry until they are regenerated)."""
    from annbench.datasets.registry import registry

    written = runbook_gen.write(tmp_path)
    assert {p.name for p in written} == {f"{k}.yaml" for k in runbook_gen.KINDS}
    sizes = {name: spec.n_train for name, spec in registry().items()}
    for path in written:
        shipped = runbook_gen.RUNBOOK_DIR / path.name
        # read as read_runbook reads them (safe_load's semantics, in C: the Python parser takes seconds here)
        want, have = yaml.load(path.read_text(), Loader=SAFE_LOADER), yaml.load(shipped.read_text(), Loader=SAFE_LOADER)
        assert have, f"{shipped} is empty"
        for entry, body in have.items():
            assert body == want[entry], f"{shipped}:{entry} is stale: run python -m annbench.plan.runbook_gen"
            assert parse_entry(body, str(shipped), entry, sizes[entry]).searches
    assert {"random-xs-20-euclidean", "random-s-100-euclidean"} <= set(yaml.load(
        (runbook_gen.RUNBOOK_DIR / "simple.yaml").read_text(), Loader=SAFE_LOADER))
    clustered = read_runbook("clustered", "random-s-100-euclidean-clustered", sizes["random-s-100-euclidean-clustered"])
    assert len(clustered.searches) == runbook_gen.CLUSTER_GROUPS  # by its shipped name, the dataset's entry
    assert clustered.path == str(runbook_gen.RUNBOOK_DIR / "clustered.yaml")


def reference_truth(train: np.ndarray, test: np.ndarray, metric: str, steps: list[dict], k: int) -> list:
    """big-ann-benchmarks' compute_gt.py semantics (a tag → row dict) and a plain float64 numpy scan."""
    tag_to_row: dict[int, int] = {}
    out = []
    for step in steps:
        op = step["operation"]
        if op == "insert":
            tag_to_row.update({t: t for t in range(step["start"], step["end"])})
        elif op == "delete":
            for t in range(step["start"], step["end"]):
                tag_to_row.pop(t)
        elif op == "replace":
            tags = range(step["tags_start"], step["tags_end"])
            tag_to_row.update({t: step["ids_start"] + i for i, t in enumerate(tags)})
        else:
            tags = np.array(sorted(tag_to_row))
            x = train[[tag_to_row[t] for t in tags]].astype(np.float64)
            q = test.astype(np.float64)
            if metric == "euclidean":
                d = np.sqrt(((q[:, None, :] - x[None]) ** 2).sum(-1))
            elif metric == "ip":
                d = -(q @ x.T)
            else:
                d = 1 - (q @ x.T) / np.linalg.norm(q, axis=1)[:, None] / np.linalg.norm(x, axis=1)[None]
            order = np.argsort(d, axis=1, kind="stable")[:, :k]
            out.append((tags[order], np.take_along_axis(d, order, axis=1)))
    return out


@pytest.mark.parametrize("metric", ["euclidean", "angular", "ip"])
@pytest.mark.parametrize("memory", [2**30, 0])  # shared segment lists; one scan per step
def test_ground_truth_per_step_matches_numpy(tmp_path: Path, metric: str, memory: int) -> None:
    rng = np.random.default_rng(3)
    train = rng.standard_normal((600, 8)).astype(np.float32)
    test = rng.standard_normal((25, 8)).astype(np.float32)
    steps = [
        {"operation": "insert", "start": 0, "end": 300}, {"operation": "search"},
        {"operation": "delete", "start": 50, "end": 120}, {"operation": "search"},
        {"operation": "insert", "start": 300, "end": 500}, {"operation": "search"},
        {"operation": "replace", "tags_start": 300, "tags_end": 400, "ids_start": 500, "ids_end": 600},
        {"operation": "search"},
        {"operation": "delete", "start": 0, "end": 50}, {"operation": "insert", "start": 50, "end": 100},
        {"operation": "search"},
        {"operation": "delete", "start": 120, "end": 300}, {"operation": "search"},
    ]
    body = {"max_pts": 600, **{i: s for i, s in enumerate(steps, 1)}}
    rb = read_runbook(write(tmp_path, yaml.safe_dump({"t": body})), "t", 600)
    k = 30
    got = list(step_ground_truth(train, test, metric, rb.live_sets, k, threads=1, memory_bytes=memory))
    want = reference_truth(train, test, metric, steps, k)
    assert len(got) == len(want) == 6
    for (ids, dist), (ref_ids, ref_d) in zip(got, want):
        np.testing.assert_allclose(dist, ref_d, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(ids, ref_ids)  # continuous random data: no ties


def test_ground_truth_pads_when_fewer_points_are_live() -> None:
    from annbench.quality.streaming import Piece

    train = np.arange(10, dtype=np.float32).reshape(5, 2)
    ids, dist = next(step_ground_truth(train, train[:2], "euclidean", [(Piece(7, 1, 2),)], k=4, threads=1))
    np.testing.assert_array_equal(ids, [[7, 8, -1, -1], [7, 8, -1, -1]])
    assert np.isinf(dist[:, 2:]).all() and dist[1, 0] == 0.0


def test_step_truth_is_cached_under_checksum_and_runbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from annbench.datasets import step_truth
    from annbench.datasets.format import Dataset

    rng = np.random.default_rng(5)
    train, test = rng.standard_normal((300, 4)).astype(np.float32), rng.standard_normal((6, 4)).astype(np.float32)
    dataset = Dataset("d", tmp_path / "d.hdf5", "euclidean", train, test, np.zeros((6, 1), np.int32),
                      np.zeros((6, 1), np.float32), "xxh3:one")
    rb = read_runbook(write(tmp_path, SIMPLE_RUNBOOK.replace("10000", "300").replace("5000", "150")), "random-xs", 300)
    truth, path = step_truth.load_or_compute(dataset, rb.digest, rb.live_sets, threads=1)
    assert path == tmp_path / f"d.runbook-{rb.digest}.npz" and step_truth.sidecars(dataset.path) == [path]
    assert truth.neighbors.shape == (3, 6, 100) and (truth.neighbors[1] >= 150).all()
    calls = []
    real = step_truth.compute
    monkeypatch.setattr(step_truth, "compute", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    again, _ = step_truth.load_or_compute(dataset, rb.digest, rb.live_sets, threads=1)
    assert calls == [] and np.array_equal(again.neighbors, truth.neighbors)  # read, not recomputed
    import dataclasses

    step_truth.load_or_compute(dataclasses.replace(dataset, checksum="xxh3:two"), rb.digest, rb.live_sets, threads=1)
    assert len(calls) == 1  # another dataset content: computed again
