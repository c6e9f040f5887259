"""Runbooks end to end through run.py: exact recall at every step, deleted ids caught, bad runbooks refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import call, write_backend
from test_runbook import REPLACE_RUNBOOK, SIMPLE_RUNBOOK

from annbench.analyse.frames import ANY_RUNBOOK, results_frame
from annbench.analyse.streaming import step_frame
from annbench.cli.run import main as run_main
from annbench.datasets.registry import resolve
from annbench.plan import runbook_gen
from annbench.store.folder import ResultStore, read_arrays


def run(*args: object, executor: str = "inprocess"):
    return call(run_main, "--runs", 1, "--min-pass-time", 0, "--warmup", "none", "--executor", executor,
                "--no-plot", *args)


def assert_exact_at_every_step(results: Path, dataset: str, runbook: str, searches: int) -> None:
    steps = step_frame(results, dataset, runbook)
    search = steps[steps["operation"] == "search"]
    assert len(search) == searches and (search["recall"] == 1.0).all() and (search["id_recall"] == 1.0).all()
    assert (search["deleted_returned"] == 0).all()
    changes = steps[steps["operation"] != "search"]
    assert (changes["seconds"] > 0).all() and (changes["per_s"] > 0).all()


@pytest.mark.parametrize("kind", runbook_gen.KINDS)
def test_bruteforce_is_exact_at_every_step_of_every_shipped_runbook(kind: str, data_dir: Path,
                                                                    results_dir: Path) -> None:
    dataset = "random-xs-20-euclidean-clustered" if kind == "clustered" else "random-xs-20-euclidean"
    resolve(dataset, data_dir)
    # batch mode: each search step is one call (single queries through runbooks: the tests below)
    r = run("--dataset", dataset, "--runbook", kind, "--algorithm", "bruteforce", "--batch", "--data-dir", data_dir,
            "--results", results_dir)
    assert r.code == 0, r.err
    rb = yaml.safe_load((runbook_gen.RUNBOOK_DIR / f"{kind}.yaml").read_text())[dataset]
    searches = sum(1 for n, s in rb.items() if isinstance(n, int) and s["operation"] == "search")
    assert_exact_at_every_step(results_dir, dataset, f"{kind}:{dataset}", searches)
    [row] = results_frame(results_dir, dataset, runbook=ANY_RUNBOOK).to_dict("records")
    assert row["recall"] == row["recall_min"] == 1.0 and row["runbook"] == f"{kind}:{dataset}" and row["batch"]
    assert row["total_s"] > 0 and row["insert_per_s"] > 0 and row["index_bytes"] > 0 and row["peak_rss_bytes"] >= 0
    assert results_frame(results_dir, dataset).empty  # not among the static runs


def test_big_ann_simple_runbook_in_an_isolated_child(tmp_path: Path, results_dir: Path) -> None:
    """big-ann-benchmarks' simple_runbook.yaml unchanged, its random-xs entry (10,000 rows) on a dataset of
    10,000 train rows, run by the local executor's child."""
    from annbench.datasets.user import create

    rng = np.random.default_rng(11)
    np.save(tmp_path / "x.npy", rng.standard_normal((10_300, 16)).astype(np.float32))
    create(tmp_path / "x.npy", "tenk", "euclidean", tmp_path / "data", test_size=300)
    path = tmp_path / "simple_runbook.yaml"
    path.write_text(SIMPLE_RUNBOOK)
    r = run("--dataset", "tenk", "--runbook", f"{path}:random-xs", "--algorithm", "bruteforce,hnswlib",
            "--data-dir", tmp_path / "data", "--results", results_dir, executor="local")
    assert r.code == 0, r.err
    assert "runs of runbook simple_runbook:random-xs (6 steps, 3 searches) done, 0 failed" in r.out
    steps = step_frame(results_dir, "tenk")
    brute = steps[steps["algorithm"] == "bruteforce"]
    assert list(brute["operation"]) == ["insert", "search", "delete", "search", "insert", "search"]
    assert list(brute["live"]) == [10_000, 10_000, 5_000, 5_000, 10_000, 10_000]
    assert (brute.loc[brute["operation"] == "search", "recall"] == 1.0).all()
    hnsw = steps[(steps["algorithm"] == "hnswlib") & (steps["operation"] == "search")]
    assert len(hnsw) and (hnsw["recall"] > 0.5).all() and (hnsw["deleted_returned"] == 0).all()
    logs = list((results_dir / "tenk" / "10" / "logs").rglob("*.log"))
    assert logs and any("bruteforce" in str(p) for p in logs)  # the child's own log
    again = run("--dataset", "tenk", "--runbook", f"{path}:random-xs", "--algorithm", "bruteforce",
                "--data-dir", tmp_path / "data", "--results", results_dir)
    assert again.code == 0 and "0 runs of runbook" in again.out and "1 already stored" in again.out
    # big-ann-benchmarks' simple_replace_runbook.yaml: replaces by the library's own call or delete + insert
    replace = tmp_path / "simple_replace_runbook.yaml"
    replace.write_text(REPLACE_RUNBOOK)
    r = run("--dataset", "tenk", "--runbook", str(replace), "--algorithm", "bruteforce,faiss-flat",
            "--data-dir", tmp_path / "data", "--results", results_dir)
    assert r.code == 0, r.err
    steps = step_frame(results_dir, "tenk", "simple_replace_runbook:random-xs")
    search = steps[steps["operation"] == "search"]
    assert len(search) == 2 * 4 and (search["recall"] == 1.0).all() and (search["deleted_returned"] == 0).all()
    frame = results_frame(results_dir, "tenk", runbook="simple_replace_runbook:random-xs")
    assert dict(zip(frame["algorithm"], frame["replace"])) == {"bruteforce": "native", "faiss-flat": "delete+insert"}
    assert (frame["replace_per_s"] > 0).all()


IGNORES_DELETES = '''
from annbench.backends.algorithms.bruteforce import BruteForce


class BruteforceForgetful(BruteForce):
    """A broken adapter: deletes nothing."""

    def delete(self, ids):
        pass
'''


def test_an_adapter_ignoring_deletes_is_caught(tmp_path: Path, data_dir: Path, results_dir: Path) -> None:
    algorithms = configs = write_backend(tmp_path / "backends", "bruteforce-forgetful", IGNORES_DELETES, "  quick: {}")
    # the sliding window deletes old batches and never inserts them again (a re-insert would make the forgetful
    # adapter list an id twice: a malformed answer, the run an error)
    r = run("--dataset", "random-xs-20-euclidean", "--runbook", "sliding-window", "--algorithm",
            "bruteforce-forgetful", "--algorithms-dir", algorithms, "--configs-dir", configs, "--data-dir", data_dir,
            "--results", results_dir)
    assert r.code == 0, r.err
    steps = step_frame(results_dir, "random-xs-20-euclidean")
    first_delete = int(steps.loc[steps["operation"] == "delete", "step"].min())
    search = steps[steps["operation"] == "search"]
    before, after = search[search["step"] < first_delete], search[search["step"] > first_delete]
    assert (before["deleted_returned"] == 0).all() and (before["recall"] == 1.0).all()
    assert (after["deleted_returned"] > 0).all() and (after["recall"] < 1.0).all()
    total = int(search["deleted_returned"].sum())
    assert ("warning: bruteforce-forgetful {} {} runbook sliding-window:random-xs-20-euclidean: returned "
            f"{total} deleted ids") in r.out
    [row] = results_frame(results_dir, "random-xs-20-euclidean", runbook=ANY_RUNBOOK).to_dict("records")
    assert row["deleted_returned"] == total and row["note"] == "exact method, recall < 1"


BAD = {
    "unknown operation": ("  1: {operation: insert, start: 0, end: 100}\n  2: {operation: upsert}\n",
                          "step 2: unknown operation 'upsert'"),
    "range out of bounds": ("  1: {operation: insert, start: 0, end: 9001}\n  2: {operation: search}\n",
                            "step 1: insert range [0, 9001) (start, end) is empty or beyond the dataset's 9000 train "
                            "rows"),
    "delete of dead points": ("  1: {operation: insert, start: 0, end: 100}\n"
                              "  2: {operation: delete, start: 50, end: 150}\n",
                              "step 2: deletes 50 points that are not live (first: 100)"),
    "missing max_pts": (None, ": no max_pts; valid: max_pts: N"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_runbooks_are_one_line_exit_2_before_anything_runs(case: str, tmp_path: Path, data_dir: Path,
                                                               results_dir: Path) -> None:
    steps, message = BAD[case]
    body = "  1: {operation: insert, start: 0, end: 100}\n  2: {operation: search}\n" if steps is None \
        else "  max_pts: 9000\n" + steps
    path = tmp_path / "bad.yaml"
    path.write_text("random-xs-20-euclidean:\n" + body)
    truths = set(data_dir.glob("*.runbook-*"))
    r = run("--dataset", "random-xs-20-euclidean", "--runbook", str(path), "--algorithm", "bruteforce",
            "--data-dir", data_dir, "--results", results_dir)
    assert r.code == 2 and r.out == ""
    assert r.err.count("\n") == 1 and message in r.err and f"runbook {path}:random-xs-20-euclidean" in r.err
    assert list(ResultStore(results_dir).paths()) == [] and set(data_dir.glob("*.runbook-*")) == truths


def test_an_adapter_that_cannot_delete_needs_the_rebuild_fallback(data_dir: Path, results_dir: Path) -> None:
    args = ("--dataset", "random-xs-20-euclidean", "--runbook", "simple", "--data-dir", data_dir,
            "--results", results_dir)
    refused = run(*args, "--algorithm", "faiss-hnsw")
    assert refused.code == 2 and "faiss-hnsw cannot delete, and the runbook deletes" in refused.err
    r = run(*args, "--algorithm", "faiss-hnsw,bruteforce", "--rebuild-fallback")
    assert r.code == 0, r.err
    steps = step_frame(results_dir, "random-xs-20-euclidean")
    hnsw = steps[steps["algorithm"] == "faiss-hnsw"]
    assert hnsw.loc[hnsw["operation"] == "delete", "rebuilt"].all()
    assert not hnsw.loc[hnsw["operation"] == "insert", "rebuilt"].any()
    assert not steps.loc[steps["algorithm"] == "bruteforce", "rebuilt"].any()  # it deletes itself
    frame = results_frame(results_dir, "random-xs-20-euclidean", runbook=ANY_RUNBOOK)
    assert dict(zip(frame["algorithm"], frame["rebuild_fallback"])) == {"faiss-hnsw": True, "bruteforce": False}
    assert (hnsw.loc[hnsw["operation"] == "search", "deleted_returned"] == 0).all()
    assert "steps" in read_arrays(frame["path"].iloc[0])


def test_views_and_report_section(tmp_path: Path, data_dir: Path, results_dir: Path) -> None:
    from annbench.analyse.frames import results_frame as static_frame
    from annbench.report.html import write_report
    from annbench.report.streaming import FIGURES

    args = ("--dataset", "random-xs-20-euclidean", "--data-dir", data_dir, "--results", results_dir)
    assert run(*args, "--algorithm", "bruteforce").code == 0  # a static run: the report needs one
    r = call(run_main, "--runs", 1, "--min-pass-time", 0, "--warmup", "none", "--executor", "inprocess", *args,
             "--runbook", "simple", "--algorithm", "bruteforce,faiss-ivf")
    assert r.code == 0, r.err
    folder = results_dir / "random-xs-20-euclidean" / "10" / "runbook-simple_random-xs-20-euclidean"
    for name in FIGURES.values():
        assert (folder / name).stat().st_size > 0 and f"plot: {folder / name}" in r.out
    index = write_report(static_frame(results_dir), tmp_path / "site", data_dir, results_dir=results_dir)
    page = (index.parent / "random-xs-20-euclidean" / "index.html").read_text()
    assert "Indexes that change: runbooks" in page and "simple:random-xs-20-euclidean" in page
    images = list((index.parent / "random-xs-20-euclidean").rglob("recall-steps.png"))
    assert len(images) == 1 and "recall-steps.png" in page
    assert "Indexes that change" not in write_report(static_frame(results_dir), tmp_path / "plain", data_dir) \
        .parent.joinpath("random-xs-20-euclidean", "index.html").read_text()


def test_plot_tables_of_runbook_runs(data_dir: Path, results_dir: Path) -> None:
    import csv
    import io

    from annbench.cli.plot import main as plot_main

    assert run("--dataset", "random-xs-20-euclidean", "--runbook", "simple", "--algorithm", "bruteforce",
               "--data-dir", data_dir, "--results", results_dir).code == 0
    r = call(plot_main, "--results", results_dir, "--runbook", "all", "--table", "csv")
    assert r.code == 0, r.err
    [row] = list(csv.DictReader(io.StringIO(r.out)))
    assert row["runbook"] == "simple:random-xs-20-euclidean" and float(row["recall_min"]) == 1.0
    missing = call(plot_main, "--results", results_dir, "--runbook", "nope:x", "--table", "csv")
    assert missing.code == 2 and "holds no runs of runbook 'nope:x'" in missing.err
