"""Query difficulty (RC, LID, expansion) on hand-computed cases; the sidecar; per-query recall of
real runs; difficulty subsets in every view and table; recall by difficulty; thread lists."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
from conftest import call

from annbench.analyse import difficulty as D
from annbench.core.errors import UserError
from annbench.datasets.format import load_dataset, write_dataset
from annbench.quality.groundtruth import exact_knn


def _dataset(path, train, test, distance="euclidean"):
    ids, dists = exact_knn(np.asarray(train, np.float32), np.asarray(test, np.float32), distance, 100, threads=1)
    write_dataset(path, train=train, test=test, distance=distance, neighbors=ids, distances=dists)
    return load_dataset(path)


# -- the measures on hand-computed cases ----------------------------------------------------------------------

def test_query_on_a_train_point_distinct_distances(tmp_path):
    """Train points at x = 0, 1, ..., 199 on a line, the query at 0: distances 0, 1, ..., 199."""
    train = np.arange(200, dtype=np.float32)[:, None]
    ds = _dataset(tmp_path / "line.hdf5", train, np.zeros((1, 1), np.float32))
    v = D.compute(ds, threads=1).values
    mean = np.arange(200).mean()
    assert v["rc@10"][0] == pytest.approx(mean / 9)
    assert v["rc@100"][0] == pytest.approx(mean / 99)
    assert v["expansion@10"][0] == pytest.approx(19 / 9)
    assert v["expansion@50"][0] == pytest.approx(99 / 49)
    # LID skips the zero distance: 9 (resp. 99) positive distances 1..9, d_k = 9
    assert v["lid@10"][0] == pytest.approx(-1 / np.mean(np.log(np.arange(1, 10) / 9)))
    assert v["lid@100"][0] == pytest.approx(-1 / np.mean(np.log(np.arange(1, 100) / 99)))


def test_neighbours_all_at_the_same_distance_and_duplicates(tmp_path):
    """Query 0 in 10-d: the 20 points ±e_i at distance 1, then 180 copies of 3·e_1 at distance 3."""
    eye = np.eye(10, dtype=np.float32)
    train = np.vstack([eye, -eye, np.repeat(3 * eye[:1], 180, axis=0)])
    ds = _dataset(tmp_path / "ties.hdf5", train, np.zeros((1, 10), np.float32))
    v = D.compute(ds, threads=1).values
    mean = (20 * 1 + 180 * 3) / 200
    assert v["rc@10"][0] == pytest.approx(mean / 1)
    assert v["rc@100"][0] == pytest.approx(mean / 3)
    assert v["lid@10"][0] == math.inf  # all ten at the same distance
    assert v["lid@100"][0] == pytest.approx(1 / (0.2 * math.log(3)))  # 20 of 100 at 1/3 of d_100
    assert v["expansion@10"][0] == 1.0
    assert v["expansion@50"][0] == 1.0  # d_100 = d_50 = 3: each duplicate is its own neighbour


def test_zero_denominators():
    knn = np.zeros((1, 100))
    assert np.isnan(D.lid_mle(knn, 10)[0])
    assert np.isnan(D.expansion(knn, 10)[0])
    assert D.relative_contrast(np.array([2.0]), knn, 10)[0] == math.inf
    knn[0, 19:] = 1.0
    assert D.expansion(knn, 10)[0] == math.inf


@pytest.mark.parametrize("d", [2, 4, 6, 8])
def test_lid_of_uniform_points_in_a_cube_is_their_dimension(d):
    """50,000 points uniform in [0, 1]^d; queries in the central [0.4, 0.6]^d, so that the 100-NN
    balls (radius < 0.35 up to d = 8) stay inside the cube; median LID@100 within 15 % of d
    (over 8 seeds the error stays below 10 %)."""
    rng = np.random.default_rng(0)
    train = rng.random((50_000, d)).astype(np.float32)
    test = (0.4 + 0.2 * rng.random((200, d))).astype(np.float32)
    _, dist = exact_knn(train, test, "euclidean", 100, threads=1)
    assert np.median(D.lid_mle(dist, 100)) == pytest.approx(d, rel=0.15)


def test_angular_uses_the_angle(tmp_path):
    """Unit vectors at angles 0.01·i (i = 0..199) around the circle, the query at angle 0: the
    measures see the angles 0, 0.01, 0.02, ... (cosine distances would give LID about half)."""
    angles = 0.01 * np.arange(200)
    train = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    ds = _dataset(tmp_path / "circle.hdf5", train, np.array([[1.0, 0.0]], np.float32), "angular")
    v = D.compute(ds, threads=1).values
    assert v["lid@10"][0] == pytest.approx(-1 / np.mean(np.log(np.arange(1, 10) / 9)), rel=1e-3)
    assert v["expansion@10"][0] == pytest.approx(19 / 9, rel=1e-3)
    assert v["rc@10"][0] == pytest.approx(angles.mean() / 0.09, rel=1e-3)


def test_mean_distances_match_a_direct_computation():
    rng = np.random.default_rng(1)
    train, test = rng.normal(5, 3, (3000, 16)).astype(np.float32), rng.normal(5, 3, (70, 16)).astype(np.float32)
    direct = np.linalg.norm(test[:, None, :].astype(np.float64) - train[None], axis=2).mean(axis=1)
    assert np.allclose(D.mean_distances(train, test, "euclidean", threads=2), direct, rtol=1e-5)
    cos = (test @ train.T) / np.outer(np.linalg.norm(test, axis=1), np.linalg.norm(train, axis=1))
    assert np.allclose(D.mean_distances(train, test, "angular"), np.arccos(np.clip(cos, -1, 1)).mean(axis=1),
                       rtol=1e-4)


def test_ip_is_refused(tmp_path):
    rng = np.random.default_rng(2)
    ds = _dataset(tmp_path / "ip.hdf5", rng.random((200, 4), dtype=np.float32), rng.random((3, 4), dtype=np.float32),
                  "ip")
    with pytest.raises(UserError, match="inner products are not distances"):
        D.compute(ds)


def test_subsets_and_deciles():
    rc = np.array([5.0, 1.0, 3.0, np.nan, 2.0, 4.0, 1.0, 6.0, 7.0, 8.0, 9.0])
    m = D.measure_named("rc")
    assert np.flatnonzero(D.subset_mask(rc, m, "hard", 0.2)).tolist() == [1, 6]  # two lowest of 10 defined
    assert np.flatnonzero(D.subset_mask(rc, m, "easy", 0.2)).tolist() == [9, 10]
    assert D.subset_mask(rc, m, "all").all()
    lid = D.measure_named("lid@100")
    assert np.flatnonzero(D.subset_mask(rc, lid, "hard", 0.1)).tolist() == [10]  # highest LID is hardest
    bins = D.deciles(rc, m)
    assert bins[3] == 0 and bins[10] == 1 and bins[1] == 10 and sorted(bins[bins > 0]) == list(range(1, 11))
    with pytest.raises(UserError, match="valid: rc, lid, expansion"):
        D.measure_named("contrast")


# -- the sidecar -----------------------------------------------------------------------------------------------

def test_sidecar_is_reused_and_recomputed_when_the_dataset_changes(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    train = rng.random((500, 5), dtype=np.float32)
    path = tmp_path / "s.hdf5"
    ds = _dataset(path, train, rng.random((20, 5), dtype=np.float32))
    first = D.load_or_compute(ds, threads=1)
    side = D.sidecar_path(path)
    assert side == tmp_path / "s.difficulty.npz" and side.is_file()
    assert D.read_sidecar(side).checksum == ds.checksum

    def fail(*a, **k):
        raise AssertionError("recomputed although the sidecar holds this checksum")

    monkeypatch.setattr(D, "compute", fail)
    again = D.load_or_compute(load_dataset(path), threads=1)
    assert all(np.array_equal(first.values[n], again.values[n], equal_nan=True) for n in first.values)
    monkeypatch.undo()
    changed = _dataset(path, train, rng.random((20, 5), dtype=np.float32))  # other queries: another checksum
    assert changed.checksum != ds.checksum
    recomputed = D.load_or_compute(changed, threads=1)
    assert D.read_sidecar(side).checksum == changed.checksum
    assert not np.array_equal(recomputed.values["rc@10"], first.values["rc@10"])


def test_describe_prints_quartiles(data_dir):
    from annbench.cli.dataset import main

    r = call(main, "--data-dir", data_dir, "describe", "random-xs-20-euclidean")
    assert r.code == 0, r.err
    lines = {line.split()[0]: line.split()[1:] for line in r.out.splitlines() if line.startswith("  ")}
    for name in ("rc@10", "rc@100", "lid@10", "lid@100", "expansion@10", "expansion@50"):
        q = [float(x) for x in lines[name][:5]]
        assert q == sorted(q) and q[0] > 0  # min <= q25 <= median <= q75 <= max
    assert float(lines["rc@10"][0]) >= 1.0  # the 10th neighbour is never farther than the mean point


# -- per-query recall of real runs, subsets, views -----------------------------------------------------------

@pytest.fixture(scope="module")
def swept(tmp_path_factory, data_dir):
    """annoy's and kdtree's quick grids on random-xs-20-euclidean, single-query mode in 2 processes (the
    significance rankings test QPS over processes), and annoy in batch mode in one."""
    from annbench.cli.run import main as run_main

    results = tmp_path_factory.mktemp("results")
    for extra in (["--processes", "2"], ["--batch", "--processes", "1"]):
        algorithms = "annoy" if "--batch" in extra else "annoy,kdtree"
        r = call(run_main, "--dataset", "random-xs-20-euclidean", "--algorithm", algorithms,
                 "--runs", "1", "--data-dir", data_dir, "--results", results, "--no-plot", "-q", *extra)
        assert r.code == 0, r.err
    return results


def test_per_query_means_equal_the_stored_recall_exactly(swept, data_dir):
    from annbench.analyse.frames import measured, per_query_frame, results_frame

    runs = measured(results_frame(swept, "random-xs-20-euclidean"))  # skipped runs (early stop) have no queries
    frame = per_query_frame(swept, "random-xs-20-euclidean", data_dir)
    assert len(frame) == len(runs) * 1000
    for _, run in runs.iterrows():
        part = frame[frame["path"] == run["path"]]
        assert np.mean(part["recall"].to_numpy()) == run["recall"]
        assert np.mean(part["id_recall"].to_numpy()) == run["id_recall"]
        latency = part["latency_ms"].to_numpy()
        assert np.isnan(latency).all() if run["batch"] else (latency > 0).all()
    assert {"rc@10", "lid@10", "expansion@10", "lid@100"} <= set(frame.columns)
    assert frame.groupby("query")["lid@10"].nunique().max() == 1  # one value per query, on every run


def test_per_query_exports(swept, data_dir, tmp_path, monkeypatch):
    from annbench.cli.plot import main as plot

    base = ("--results", swept, "--data-dir", data_dir, "--table", "csv", "--per-query")
    r = call(plot, *base, "--output", tmp_path / "runs.parquet")
    assert r.code == 0, r.err
    parquet = pd.read_parquet(tmp_path / "runs.parquet")
    r = call(plot, *base)
    assert r.code == 0, r.err
    from io import StringIO

    csv = pd.read_csv(StringIO(r.out))
    assert len(parquet) == len(csv) > 0 and np.allclose(parquet["recall"], csv["recall"])
    from annbench.cli import difficulty as cli_difficulty

    monkeypatch.setattr(cli_difficulty, "has_pyarrow", lambda: False)  # as if pyarrow were not installed
    r = call(plot, *base, "--output", tmp_path / "again.parquet")
    assert r.code == 2 and "needs pyarrow" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "again.parquet").exists()
    r = call(plot, "--results", swept, "--data-dir", tmp_path, "--table", "csv", "--per-query")
    assert r.code == 0 and len(_csv(r.out)) == len(csv)  # the dataset is found where the runs recorded it


def test_per_query_finds_the_dataset_where_the_runs_recorded_it_then_in_data_dir(data_dir, tmp_path):
    import shutil

    from annbench.cli.plot import main as plot
    from annbench.cli.run import main as run_main

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    shutil.copy(data_dir / "random-xs-20-euclidean.hdf5", first)
    results = tmp_path / "results"
    r = call(run_main, "--algorithm", "bruteforce", "--runs", "1", "--min-pass-time", "0", "--data-dir", first,
             "--results", results, "--no-plot", "-q")
    assert r.code == 0, r.err
    per_query = ("--results", results, "--table", "csv", "--per-query")
    r = call(plot, *per_query)  # no --data-dir: the default folder holds nothing
    assert r.code == 0 and len(_csv(r.out)) == 1000, r.err
    shutil.move(first / "random-xs-20-euclidean.hdf5", second)
    r = call(plot, *per_query)
    assert r.code == 2 and "needs its dataset file" in r.err and str(first) in r.err
    r = call(plot, *per_query, "--data-dir", second)
    assert r.code == 0 and len(_csv(r.out)) == 1000, r.err
    shutil.copy(data_dir / "random-xs-20-angular.hdf5", first / "random-xs-20-euclidean.hdf5")  # other content
    r = call(plot, *per_query)
    assert r.code == 2 and "the runs were made on checksum" in r.err and len(r.err.strip().splitlines()) == 1


def _csv(text: str) -> pd.DataFrame:
    from io import StringIO

    return pd.read_csv(StringIO(text))


def test_subset_tables_recompute_recall_and_qps(swept, data_dir):
    from annbench.analyse.frames import per_query_frame
    from annbench.cli.plot import main as plot

    base = ("--results", swept, "--data-dir", data_dir, "--table", "csv")
    stored = _csv(call(plot, *base).out).sort_values("path", ignore_index=True)
    every = call(plot, *base, "--difficulty", "lid", "--subset", "all")
    assert every.code == 0, every.err
    every = _csv(every.out).sort_values("path", ignore_index=True)
    assert np.array_equal(every["recall"], stored["recall"], equal_nan=True)  # NaN: skipped (early stop)
    assert np.allclose(every["qps"], stored["qps"], rtol=1e-12, equal_nan=True)  # all queries: the stored QPS
    hard = call(plot, *base, "--difficulty", "lid", "--subset", "hard", "--quantile", "0.2")
    assert hard.code == 0, hard.err
    assert "batch-mode runs have no per-query latencies" in hard.err
    hard = _csv(hard.out).sort_values("path", ignore_index=True)
    measured = (hard["status"] == "ok").to_numpy()  # skipped runs (early stop) have no queries
    pq = per_query_frame(swept, "random-xs-20-euclidean", data_dir)
    lid = pq.drop_duplicates("query").sort_values("query")["lid@10"].to_numpy()
    chosen = set(np.argsort(-lid, kind="stable")[:200])  # the 20 % highest LID
    for _, run in hard[measured].iterrows():
        part = pq[(pq["path"] == run["path"]) & pq["query"].isin(chosen)]
        assert run["n_subset"] == 200
        assert run["recall"] == pytest.approx(part["recall"].mean(), abs=1e-12)
        if not run["batch"]:
            full = pq[pq["path"] == run["path"]]
            want = stored.set_index("path").loc[run["path"], "qps"] * 0.2 * full["latency_ns"].sum() / part[
                "latency_ns"].sum()
            assert run["qps"] == pytest.approx(want, rel=1e-9)
            assert run["p50_ms"] == pytest.approx(np.percentile(part["latency_ns"], 50) * 1e-6)
        else:
            assert run["qps"] == stored.set_index("path").loc[run["path"], "qps"]  # whole batch
    lower = hard["recall"].to_numpy()[measured] <= every["recall"].to_numpy()[measured] + 1e-12
    assert lower.mean() > 0.5  # hard queries: mostly lower recall


def test_operating_points_gain_hard_recall_and_views_draw(swept, data_dir, tmp_path):
    from annbench.cli.plot import main as plot

    r = call(plot, "--results", swept, "--data-dir", data_dir, "--operating-points", "csv")
    assert r.code == 0, r.err
    table = _csv(r.out)
    col = "recall_hard10%_lid@10"
    reached = table[table["recall"].notna()]
    assert reached[col].notna().all() and (reached[col] <= 1).all()
    assert (reached[col] <= reached["recall"] + 1e-12).mean() > 0.5
    r = call(plot, "--results", swept, "--operating-points", "csv", "--data-dir", tmp_path)  # no dataset file there,
    assert r.code == 0 and col in _csv(r.out).columns  # but where the runs recorded it
    for view in ("difficulty", "recall-by-difficulty", "recall-qps"):
        out = tmp_path / f"{view}.png"
        r = call(plot, "--results", swept, "--data-dir", data_dir, "--view", view, "--output", out,
                 "--difficulty", "rc", "--subset", "all")
        assert r.code == 0, r.err
        assert out.stat().st_size > 5000
    r = call(plot, "--results", swept, "--data-dir", data_dir, "--difficulty", "contrast")
    assert r.code == 2 and "valid: rc, lid, expansion" in r.err
    r = call(plot, "--results", swept, "--data-dir", data_dir, "--subset", "easy")
    assert r.code == 2 and "needs --difficulty" in r.err


def test_recall_by_difficulty_table(swept, data_dir):
    from annbench.analyse.frames import operating_points, per_query_frame, results_frame
    from annbench.analyse.perquery import recall_by_difficulty

    runs = results_frame(swept, "random-xs-20-euclidean")
    runs = runs[~runs["batch"]]
    pq = per_query_frame(swept, "random-xs-20-euclidean", data_dir)
    points = operating_points(runs, levels=(0.5,), columns=["path"]).dropna(subset=["path"])
    table = recall_by_difficulty(points, pq, D.measure_named("rc"))
    assert len(table) == 10 * len(points) and (table["queries"] == 100).all()
    for _, point in points.iterrows():
        rows = table[table["algorithm"] == point["algorithm"]]
        assert rows["recall"].mean() == pytest.approx(point["recall"])  # equal-sized bins: mean of means
    assert (table.groupby("bin")["low"].min().diff().dropna() < 0).all()  # RC falls from easy to hard


# -- throughput against threads ---------------------------------------------------------------------------------

@pytest.mark.all_cores  # --threads 1,2
def test_thread_list_runs_the_sweep_per_count_and_scaling_draws(data_dir, tmp_path):
    from annbench.analyse.frames import results_frame
    from annbench.cli.plot import main as plot
    from annbench.cli.run import main as run_main

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    counts = [1, 2] if cores >= 2 else [1]
    r = call(run_main, "--dataset", "random-xs-20-euclidean", "--algorithm", "bruteforce", "--batch",
             "--threads", ",".join(map(str, counts)), "--runs", "1", "--data-dir", data_dir, "--results",
             tmp_path / "res", "-q")
    assert r.code == 0, r.err
    frame = results_frame(tmp_path / "res")
    assert sorted(frame["threads"].unique()) == counts
    assert frame.groupby("threads").size().nunique() == 1  # the same grid per count
    out = tmp_path / "scaling.png"
    r = call(plot, "--results", tmp_path / "res", "--batch", "--view", "scaling", "--output", out)
    assert r.code == 0, r.err and out.stat().st_size > 5000
    with pytest.raises(SystemExit) as exit_info:  # a usage error: argparse's one line, exit 2
        call(run_main, "--dataset", "random-xs-20-euclidean", "--threads", "1,1", "--data-dir", data_dir)
    assert exit_info.value.code == 2
    r = call(run_main, "--dataset", "random-xs-20-euclidean", "--algorithm", "bruteforce", "--threads",
             f"1,{cores + 1}", "--data-dir", data_dir, "--results", tmp_path / "res2")
    assert r.code == 2 and "cores" in r.err and not (tmp_path / "res2").exists()


def test_report_has_a_difficulty_section(swept, data_dir, tmp_path):
    from annbench.cli.plot import main as plot

    r = call(plot, "--results", swept, "--data-dir", data_dir, "--report", tmp_path / "site")
    assert r.code == 0, r.err
    page = (tmp_path / "site" / "random-xs-20-euclidean" / "index.html").read_text()
    assert "<h2>Query difficulty</h2>" in page and "recall_hard10%_lid@10" in page
    assert " ≈ " in page or " &gt; " in page  # the rankings
    for figure in ("difficulty.svg", "k10-single-recall-by-difficulty.svg", "k10-batch-recall-by-difficulty.svg"):
        assert (tmp_path / "site" / "random-xs-20-euclidean" / figure).stat().st_size > 5000
    assert "n/a" in page  # the batch-mode runs, measured in one process, have no process noise to test against


def test_remove_takes_the_sidecar_along(tmp_path):
    from annbench.cli.dataset import main

    rng = np.random.default_rng(4)
    ds = _dataset(tmp_path / "gone.hdf5", rng.random((300, 3), dtype=np.float32), rng.random((5, 3), dtype=np.float32))
    D.load_or_compute(ds, threads=1)
    assert D.sidecar_path(ds.path).is_file()
    r = call(main, "--data-dir", tmp_path, "remove", "gone")
    assert r.code == 0, r.err
    assert not ds.path.exists() and not D.sidecar_path(ds.path).exists()
