"""Lossless early stop: query settings after an exact one (along the innermost query parameter)
are stored as ``skipped``, shown in summaries and tables, never drawn, not re-run on resume,
and leave the Pareto fronts and operating points exactly as a full sweep does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import call, write_backend

from annbench.analyse.frames import measured, operating_points, pareto_frame, results_frame
from annbench.cli.plot import main as plot_main
from annbench.cli.run import main as run_main
from annbench.core.results import RunKey, Status
from annbench.plan.early_stop import dominated_by, is_exact, standing_skips
from annbench.store.folder import ResultStore, read_attrs

DATASET = "random-xs-20-euclidean"
N_QUERIES = 100

#: Exact search over the first ``min(effort, FULL_AT) / FULL_AT`` share of the train points (90 %
#: of them in the ``lossy`` variant), after a busy wait of ``effort * wait`` steps (3× as long when
#: ``lossy``): recall rises with ``effort`` and reaches 1.0 at ``effort = FULL_AT`` in the ``exact``
#: variant; every query setting is slower than the ones before it in the grid, and every ``lossy``
#: setting slower and less accurate than the ``exact`` one of the same effort.
LADDER = '''
import time
from typing import Literal

import numpy as np
from annbench.backends.adapter import Adapter

FULL_AT = {full_at}
STEP_S = 30e-6


class Ladder(Adapter):
    metrics = ("euclidean",)

    def __init__(self, metric: str, variant: Literal["exact", "lossy"] = "exact", threads: int = 1) -> None:
        super().__init__(metric, threads)
        self.coverage, self.cost = (1.0, 1) if variant == "exact" else (0.9, 3)
        self.effort, self.wait = 1, 1

    def fit(self, X):
        self._x = np.array(X[: int(len(X) * self.coverage)], dtype=np.float32)
        self._sq = (self._x.astype(np.float64) ** 2).sum(axis=1)

    def set_query_params(self, effort: int = 1, wait: int = 1) -> None:
        self.effort, self.wait = effort, wait

    def query(self, q, k):
        until = time.perf_counter() + self.effort * self.wait * self.cost * STEP_S
        while time.perf_counter() < until:
            pass
        n = len(self._x) * min(self.effort, FULL_AT) // FULL_AT
        d = self._sq[:n] - 2.0 * (self._x[:n] @ q)
        ids = np.argpartition(d, k)[:k]
        return ids[np.argsort(d[ids], kind="stable")]

    def index_size_bytes(self):
        return self._x.nbytes
'''

#: Build ``exact`` reaches recall 1.0 at effort 4; build ``lossy`` never does.
ONE_PARAMETER = "build: {variant: [exact, lossy]}\n    query: {effort: [1, 2, 4, 16, 32]}"


# -- the rule itself (pure) -------------------------------------------------------------------------------

def _grid(**lists: list[int]) -> list[dict[str, int]]:
    from annbench.plan.config import expand

    return expand(dict(lists))


def test_one_parameter_every_later_setting_is_dominated() -> None:
    grid = _grid(search_k=[100, 1000, 2000, 10000])
    exact = [{"search_k": 1000}]
    assert [dominated_by(grid, q, exact) for q in grid] == [None, None, {"search_k": 1000}, {"search_k": 1000}]
    assert dominated_by(grid, {"search_k": 10000}, [{"search_k": 2000}, {"search_k": 1000}]) == {"search_k": 1000}
    assert dominated_by(grid, {"search_k": 10000}, []) is None
    assert dominated_by(grid, {"search_k": 5}, exact) is None  # not in the grid
    assert dominated_by(grid, {"search_k": 10000}, [{"search_k": 7}]) is None
    assert dominated_by([{}], {}, [{}]) is None  # no query parameter: nothing to stop


def test_two_parameters_stop_along_the_innermost_only() -> None:
    """``nprobe`` outer, ``k_factor`` inner (it varies fastest): an exact (1, 2) skips (1, 8) only."""
    grid = _grid(nprobe=[1, 4], k_factor=[0, 2, 8])
    exact = [{"nprobe": 1, "k_factor": 2}]
    dominated = [q for q in grid if dominated_by(grid, q, exact) is not None]
    assert dominated == [{"nprobe": 1, "k_factor": 8}]
    # the other way round: k_factor outer, nprobe inner
    grid = _grid(k_factor=[0, 2, 8], nprobe=[1, 4, 16])
    exact = [{"k_factor": 2, "nprobe": 4}]
    assert [q for q in grid if dominated_by(grid, q, exact)] == [{"k_factor": 2, "nprobe": 16}]


def test_exact_means_recall_and_id_recall_one() -> None:
    assert is_exact({"recall": 1.0, "id_recall": 1.0, "qps": 5.0})
    assert not is_exact({"recall": 1.0, "id_recall": 0.999})
    assert not is_exact({"recall": 0.999, "id_recall": 1.0})
    assert not is_exact({"recall": 1.0})
    assert not is_exact({"recall": float("nan"), "id_recall": float("nan")})


# -- sweeps through run.py ------------------------------------------------------------------------------

@pytest.fixture
def ladder(tmp_path: Path) -> tuple[Path, Path]:
    """``(algorithms dir, configs dir)`` with the ladder adapter (exact at effort 4) and its grid."""
    algos, configs = tmp_path / "algorithms", tmp_path / "configs"
    algos.mkdir()
    configs.mkdir()
    write_ladder(algos, full_at=4)
    write_grid(configs, ONE_PARAMETER)
    return algos, configs


def write_ladder(algos: Path, full_at: int) -> None:
    write_backend(algos, "ladder", LADDER.format(full_at=full_at))


def write_grid(configs: Path, group: str) -> None:
    write_backend(configs, "ladder", groups=f"  quick:\n    {group}")


def sweep(dirs: tuple[Path, Path], data_dir: Path, results_dir: Path, *extra: object, runs: int = 1):
    algos, configs = dirs
    return call(run_main, "--dataset", DATASET, "--max-test", N_QUERIES, "--algorithm", "ladder", "--runs", runs,
                "--algorithms-dir", algos, "--configs-dir", configs, "--data-dir", data_dir,
                "--results", results_dir, "--no-plot", *extra)


def runs(results_dir: Path) -> dict[tuple[str, int], dict]:
    """(build variant, effort) → stored attrs of every run."""
    return {(row["build.variant"], int(row["query.effort"])): row.to_dict()
            for _, row in results_frame(results_dir).iterrows()}


def statuses(results_dir: Path) -> dict[tuple[str, int], str]:
    return {k: r["status"] for k, r in runs(results_dir).items()}


EXPECTED = {("exact", 1): Status.OK, ("exact", 2): Status.OK, ("exact", 4): Status.OK, ("exact", 16): Status.SKIPPED,
            ("exact", 32): Status.SKIPPED, **{("lossy", e): Status.OK for e in (1, 2, 4, 16, 32)}}


def _settings(frame) -> list[tuple[str, str]]:
    return sorted(zip(frame["build_params"], frame["query_params"]))


def _keys(frame) -> set[tuple[str, str]]:
    return set(zip(frame["build_params"], frame["query_params"]))


def test_same_fronts_and_operating_points_with_and_without_early_stop(ladder, data_dir: Path,
                                                                      tmp_path: Path) -> None:
    """Two sweeps' QPS differ by the machine's noise, so the fronts are compared on one set of
    measurements: the full sweep's, with and without the settings early stop skipped. What early
    stop cannot change by noise (which settings are measured, their recall, the index sizes) is
    compared across the two sweeps."""
    stopped, full = tmp_path / "stopped", tmp_path / "full"
    a = sweep(ladder, data_dir, stopped)
    b = sweep(ladder, data_dir, full, "--no-early-stop")
    assert a.code == 0 and b.code == 0, (a.err, b.err)
    assert statuses(stopped) == EXPECTED
    assert set(statuses(full).values()) == {Status.OK} and len(statuses(full)) == 10
    fa, fb = results_frame(stopped), results_frame(full)
    assert len(measured(fa)) == 8 and len(measured(fb)) == 10
    assert fb[(fb["query.effort"] >= 4) & (fb["build.variant"] == "exact")]["recall"].eq(1.0).all()
    kept = _keys(measured(fa))
    assert kept < _keys(fb)
    # the full sweep's measurements of the settings early stop kept: what the stopped sweep would hold
    # had it measured them on the same machine at the same moment
    fb_kept = fb[[key in kept for key in zip(fb["build_params"], fb["query_params"])]]
    # latency by the median: p99 of 100 queries is their second slowest, which one stall moves
    for x, y in (("recall", "qps"), ("id_recall", "qps"), ("recall", "p50_ms")):
        assert _settings(pareto_frame(fb_kept, x, y)) == _settings(pareto_frame(fb, x, y)), (x, y)
    for y in ("build_s", "index_bytes"):  # the same for every setting of a build: of ties one is drawn
        front = [pareto_frame(f, "recall", y)[["build_params", "recall", y]].values.tolist() for f in (fb_kept, fb)]
        assert front[0] == front[1], y
    for quality in ("recall", "id_recall"):
        pa, pb = (operating_points(f, quality=quality)[["min_" + quality, "build_params", "query_params"]]
                  for f in (fb_kept, fb))
        assert pa.equals(pb), (pa, pb)
    # across the sweeps: the same recall per measured setting, the same front of index size
    ra = measured(fa).set_index(["build_params", "query_params"])[["recall", "id_recall"]].sort_index()
    rb = fb_kept.set_index(["build_params", "query_params"])[["recall", "id_recall"]].sort_index()
    assert ra.equals(rb), (ra, rb)
    front = [pareto_frame(f, "recall", "index_bytes")[["build_params", "recall", "index_bytes"]].values.tolist()
             for f in (fa, fb)]
    assert front[0] == front[1]
    # the runs skipped: not a measurement, their reason stored
    skipped = fa[fa["status"] == Status.SKIPPED]
    assert skipped[["recall", "qps", "build_s"]].isna().all().all()
    assert set(skipped["note"]) == {"dominated: recall 1.0 reached at effort=4"}
    assert set(skipped["reason"]) == {"dominated"} and set(skipped["dominated_by"]) == {'{"effort":4}'}
    assert set(fa["error"].fillna("")) == {""}


def test_skipped_runs_in_summary_listing_tables_not_in_plots(ladder, data_dir: Path, results_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from annbench.report.plotting import draw

    r = sweep(ladder, data_dir, results_dir, "--table", "runs", "--processes", 1)  # one process: no error bars
    assert r.code == 0, r.err
    assert ('skipped: ladder {"variant":"exact"} effort=16, 32: dominated: recall 1.0 reached at effort=4'
            in r.out), r.out
    assert "8 runs done, 0 failed, 0 already stored, 2 skipped as dominated" in r.out
    assert len([line for line in r.out.splitlines() if "} skipped " in line]) == 2  # summary table rows
    listed = call(run_main, "--list-failures", "--dataset", f"{DATASET}-test{N_QUERIES}", "--results", results_dir)
    assert listed.code == 0
    assert 'skipped: k=10 ladder {"variant":"exact"} effort=16, 32: dominated' in listed.out, listed.out
    assert "2 skipped runs" in listed.out and "no failed runs" in listed.out
    table = call(plot_main, "--results", results_dir, "--table", "csv")
    rows = [line for line in table.out.splitlines() if ",skipped," in line]
    assert len(rows) == 2 and all("dominated: recall 1.0 reached at effort=4" in line for line in rows)
    text = call(plot_main, "--results", results_dir, "--table", "text")
    assert text.out.count(" skipped ") == 2
    frame = results_frame(results_dir)
    # were skipped runs drawn, these made-up values would put them on the front
    frame.loc[frame["status"] == Status.SKIPPED, ["recall", "qps"]] = [1.0, 1e12]
    fig, ax = plt.subplots()
    try:
        draw(ax, frame, "recall", "qps", all_points=True)
        drawn = sum(len(c.get_offsets()) for c in ax.collections)
        highest = max(max(line.get_ydata()) for line in ax.get_lines())
    finally:
        plt.close(fig)
    assert drawn == 8 and highest < 1e12  # every measured run, no skipped one
    report = call(plot_main, "--results", results_dir, "--report", results_dir.parent / "site")
    assert report.code == 0, report.err
    page = (results_dir.parent / "site" / f"{DATASET}-test{N_QUERIES}" / "index.html").read_text()
    assert "10 runs (8 ok, 0 failed, 2 skipped as dominated)" in page and "Skipped runs (2)" in page


def _task_ids(results_dir: Path) -> dict[tuple[str, int], str]:
    return {k: r["task_id"] for k, r in runs(results_dir).items()}


def test_resume_keeps_skips_and_no_early_stop_measures_them(ladder, data_dir: Path, results_dir: Path) -> None:
    assert sweep(ladder, data_dir, results_dir).code == 0
    first = _task_ids(results_dir)
    again = sweep(ladder, data_dir, results_dir)
    assert again.code == 0 and "0 runs done, 0 failed, 10 already stored" in again.out
    assert _task_ids(results_dir) == first
    full = sweep(ladder, data_dir, results_dir, "--no-early-stop")
    assert full.code == 0 and "2 runs done, 0 failed, 8 already stored" in full.out, full.out
    assert set(statuses(results_dir).values()) == {Status.OK}
    ids = _task_ids(results_dir)
    assert {k for k in ids if ids[k] != first[k]} == {("exact", 16), ("exact", 32)}
    # measured now: a sweep with early stop keeps the measurements
    assert "0 runs done, 0 failed, 10 already stored" in sweep(ladder, data_dir, results_dir).out


def test_rerun_of_the_exact_run_re_evaluates_its_skips(ladder, data_dir: Path, results_dir: Path) -> None:
    assert sweep(ladder, data_dir, results_dir).code == 0
    first = _task_ids(results_dir)
    # --force: every run again, the skip decided afresh (same outcome here)
    forced = sweep(ladder, data_dir, results_dir, "--force")
    assert forced.code == 0 and statuses(results_dir) == EXPECTED
    assert all(first[k] != v for k, v in _task_ids(results_dir).items())
    # the exact run's result goes (as a stale or unreadable one would) and the library changed meanwhile:
    # effort 4 is no longer exact, so effort 16 is measured and only 32 stays skipped, now citing 16
    write_ladder(ladder[0], full_at=16)
    [justifier] = [Path(r["path"]) for k, r in runs(results_dir).items() if k == ("exact", 4)]
    justifier.unlink()
    r = sweep(ladder, data_dir, results_dir)
    assert r.code == 0, r.err
    after = runs(results_dir)
    assert after[("exact", 4)]["status"] == Status.OK and after[("exact", 4)]["recall"] < 1.0
    assert after[("exact", 16)]["status"] == Status.OK and after[("exact", 16)]["recall"] == 1.0
    assert after[("exact", 32)]["status"] == Status.SKIPPED
    assert after[("exact", 32)]["note"] == "dominated: recall 1.0 reached at effort=16"
    assert "2 runs done, 0 failed, 7 already stored, 1 skipped as dominated" in r.out, r.out


def test_standing_skips_follow_their_exact_run(tmp_path: Path) -> None:
    """A stored skip stands only while an exact run before it along the innermost parameter is done."""
    from annbench.core.results import RunResult
    from annbench.plan.early_stop import skipped

    store = ResultStore(tmp_path)
    keys = [RunKey(DATASET, 10, "ladder", False, {"variant": "exact"}, {"effort": e}) for e in (1, 4, 16)]
    store.write(RunResult(keys[0], Status.OK, metrics={"recall": 0.3, "id_recall": 0.3}))
    store.write(RunResult(keys[1], Status.OK, metrics={"recall": 1.0, "id_recall": 1.0}))
    store.write(skipped(keys[2], {"effort": 4}, {}))
    assert standing_skips(store, keys, [True, True, False]) == [False, False, True]
    assert standing_skips(store, keys, [True, False, False]) == [False, False, False]  # exact run to be redone
    store.write(RunResult(keys[1], Status.OK, metrics={"recall": 0.99, "id_recall": 1.0}))
    assert standing_skips(store, keys, [True, True, False]) == [False, False, False]
    assert read_attrs(store.path_for(keys[2]))["status"] == "skipped"


def test_two_query_parameters_stop_only_along_the_innermost(ladder, data_dir: Path, results_dir: Path) -> None:
    """``effort`` outer, ``wait`` inner: exact at effort 4 skips (4, wait 2) only; effort 16 is measured
    (another value of the outer parameter), is exact too and skips its own (16, wait 2)."""
    write_grid(ladder[1], "build: {variant: exact}\n    query: {effort: [2, 4, 16], wait: [1, 2]}")
    r = sweep(ladder, data_dir, results_dir)
    assert r.code == 0, r.err
    got = {(int(row["query.effort"]), int(row["query.wait"])): row["status"]
           for _, row in results_frame(results_dir).iterrows()}
    assert got == {(2, 1): "ok", (2, 2): "ok", (4, 1): "ok", (4, 2): "skipped", (16, 1): "ok", (16, 2): "skipped"}
    assert 'skipped: ladder {"variant":"exact"} effort=4 wait=2: dominated: recall 1.0 reached at ' \
           'effort=4 wait=1' in r.out, r.out


def test_gate_measures_every_setting(ladder, data_dir: Path, tmp_path: Path) -> None:
    """The regression gate never early-stops: its baseline has every setting of the suite measured."""
    from annbench.core.paths import algorithm_dirs, config_dirs
    from annbench.datasets.registry import load
    from annbench.gate.run import Suite, measure_suite

    algos, configs = ladder
    write_grid(configs, "build: {variant: exact}\n    query: {effort: [4, 16]}")
    dataset = load(f"{DATASET}-test{N_QUERIES}", data_dir)
    suite = Suite(DATASET, ("ladder",), runs=1, rounds=1, reference="ladder")
    session = measure_suite(suite, dataset, config_dirs([configs]), algorithm_dirs([algos]), tmp_path / "gate")
    got = {json.dumps(r.query_params): (len(r.rounds), r.error) for r in session.settings}
    assert got == {'{"effort": 4}': (1, ""), '{"effort": 16}': (1, "")}
    statuses = {read_attrs(p)["status"] for p in ResultStore(tmp_path / "gate" / "suite").paths()}
    assert statuses == {"ok"}
    assert [rd.recall for r in session.settings for rd in r.rounds] == [1.0, 1.0]
