"""Client levels end to end: run.py --clients stores one result per (run, level), resumes per level, refuses
bad input in one line; results_frame, plot.py's views, tables and the report handle the levels."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import call, write_backend

from annbench.analyse.concurrency import at_level, client_scaling, levels, serialising
from annbench.analyse.frames import results_frame
from annbench.cli.plot import main as plot_main
from annbench.cli.run import main as run_main
from annbench.core.results import RunKey, canonical
from annbench.execute.isolation import available_cores
from annbench.store.folder import ResultStore, read_arrays, read_attrs

#: Client windows of 1 s: in one of 0.2 s, 3 clients on 2 cores of this VM once answered no query at all (a
#: ResultError, as the harness should say), in a fresh-clone CI run.
FAST = ("--dataset", "random-xs-20-euclidean", "--runs", 1, "--warmup", "none", "--min-pass-time", 0,
        "--client-seconds", 1.0, "--no-plot")


def _sweep(data_dir: Path, results: Path, *extra: object) -> None:
    r = call(run_main, *FAST, "--algorithm", "bruteforce,kdtree", "--data-dir", data_dir, "--results", results, *extra)
    assert r.code == 0, r.err


@pytest.fixture(scope="module")
def swept(tmp_path_factory, data_dir: Path) -> Path:
    results = tmp_path_factory.mktemp("clients") / "results"
    _sweep(data_dir, results, "--clients", "1,2,3")
    return results


@pytest.mark.all_cores
def test_one_result_per_run_and_level_each_scored_on_its_window(swept: Path) -> None:
    frame = results_frame(swept)
    assert sorted(frame["clients"].unique()) == [1, 2, 3] and (frame["status"] == "ok").all()
    assert frame.groupby(["algorithm", "clients"]).size().to_dict() == {(a, n): 1 for a in ("bruteforce", "kdtree")
                                                                        for n in (1, 2, 3)}
    cores = available_cores()
    for _, row in frame[frame["clients"] > 1].iterrows():
        n = int(row["clients"])
        attrs, arrays = read_attrs(row["path"]), read_arrays(row["path"])
        assert attrs["client_kind"] == "thread" and attrs["client_seconds"] == 1.0
        assert 1.0 <= attrs["client_window_s"] <= 1.0 + 1e-6
        pinned = attrs["client_cores"]  # read_attrs decodes lists
        assert len(pinned) == n and all(set(c) <= set(cores) for c in pinned)
        assert attrs["clients_over_cores"] == (n > len(cores))
        per_client = attrs["client_qps"]
        assert len(per_client) == n and attrs["qps"] == pytest.approx(sum(per_client))
        assert attrs["client_fairness"] == pytest.approx(min(per_client) / max(per_client))
        # scans of microseconds: every query timed; the default handle is the adapter (no connection of its own)
        assert attrs["client_latency_every"] == 1 and attrs["client_connections"] == 0
        assert len(arrays["latencies_ns"]) == attrs["client_latency_samples"]
        assert len(arrays["latencies_ns"]) == pytest.approx(attrs["qps"] * attrs["client_window_s"], abs=0.5)
        assert attrs["p50_ms"] <= attrs["p99_ms"] <= attrs["p99.9_ms"]
        # exact libraries answer alike under load: recall 1 equals single-client recall, no answer differs
        assert attrs["recall"] == attrs["single_client_recall"] == 1.0
        assert attrs["answers_differ"] == 0 and not attrs["recall_differs"]
        assert "pass_times_ns" not in arrays and arrays["neighbors"].shape == (1000, 10)
        assert attrs["index_bytes"] > 0 and attrs["build_s"] > 0


def test_level_one_keeps_the_file_name_it_had_before_levels() -> None:
    key = RunKey("d", 10, "annoy", False, {"n_trees": 10}, {"search_k": 100}, 1)
    before = hashlib.sha1(canonical({"build": {"n_trees": 10}, "query": {"search_k": 100}, "threads": 1})
                          .encode()).hexdigest()[:10]
    assert key.file_name() == f"n_trees=10_search_k=100.{before}.hdf5"
    level = RunKey("d", 10, "annoy", False, {"n_trees": 10}, {"search_k": 100}, 1, clients=4)
    assert level.file_name().startswith("n_trees=10_search_k=100_clients=4.") and level.file_name() != key.file_name()


@pytest.mark.all_cores
def test_resume_is_per_level_and_a_new_window_measures_only_the_levels(data_dir: Path, results_dir: Path) -> None:
    _sweep(data_dir, results_dir, "--clients", "2")
    store = ResultStore(results_dir)
    stamp = {p.name: read_attrs(p)["timestamp"] + str(p.stat().st_mtime_ns) for p in store.paths()}
    assert len(stamp) == 4  # level 1 is always measured: the levels' reference
    r = call(run_main, *FAST, "--algorithm", "bruteforce,kdtree", "--data-dir", data_dir, "--results", results_dir,
             "--clients", "1,2")
    assert r.code == 0 and "0 runs done" in r.out
    r = call(run_main, *FAST[:-3], "--client-seconds", 0.3, "--no-plot", "--algorithm", "bruteforce,kdtree",
             "--data-dir", data_dir, "--results", results_dir, "--clients", "2")
    assert r.code == 0 and "2 runs done" in r.out, r.out
    again = {p.name: read_attrs(p)["timestamp"] + str(p.stat().st_mtime_ns) for p in store.paths()}
    changed = sorted(n for n in stamp if stamp[n] != again[n])
    assert len(changed) == 2 and all("clients=2." in n for n in changed)
    r = call(run_main, *FAST, "--algorithm", "bruteforce", "--data-dir", data_dir, "--results", results_dir)
    assert r.code == 0 and "0 runs done" in r.out  # a plain sweep finds its level 1 stored


@pytest.mark.all_cores
def test_process_clients_are_stored_as_such(data_dir: Path, results_dir: Path) -> None:
    r = call(run_main, *FAST, "--algorithm", "kdtree", "--data-dir", data_dir, "--results", results_dir,
             "--clients", "1,2", "--client-kind", "process")
    assert r.code == 0, r.err
    frame = results_frame(results_dir)
    level = frame[frame["clients"] == 2].iloc[0]
    assert level["client_kind"] == "process" and level["recall"] == 1.0 and level["answers_differ"] == 0


NO_FORK = '''
import numpy as np
from annbench.backends.adapter import Adapter


class NoFork(Adapter):
    """An exact scan whose index cannot be forked.

    Parameters:
    """

    native_metrics = {"euclidean": "euclidean"}
    fork_clients = False
    fork_clients_reason = "its connection pool is not fork-safe"

    def fit(self, X):
        self.X = X

    def query(self, q, k):
        return np.argsort(((self.X - q) ** 2).sum(axis=1))[:k]
'''


@pytest.mark.parametrize("args, message", [
    (("--clients", "0"), "argument --clients: 0 is out of range; valid: an integer >= 1"),
    (("--clients", "1,two"), "argument --clients: 'two' is not an integer; valid: an integer >= 1"),
    (("--clients", "2,2"), "repeats a client level"),
    (("--client-seconds", "0"), "argument --client-seconds: 0 is out of range; valid: a finite number > 0"),
    (("--client-seconds", "-1"), "argument --client-seconds: -1 is out of range"),
    (("--client-kind", "fiber"), "argument --client-kind: invalid choice: 'fiber'"),
    (("--clients", "2", "--batch"), "--clients 2 with --batch: clients send single queries"),
    (("--clients", "1,2", "--client-kind", "process", "--algorithm", "no_fork"),
     "--client-kind process: no_fork's index cannot be forked after its build (its connection pool is not "
     "fork-safe); valid: --client-kind thread"),
    (("--clients", "1,2", "--client-kind", "process", "--algorithm", "faiss-hnsw", "--threads", "2"),
     "--client-kind process with --threads 2: faiss-hnsw's index cannot be forked after a build on more than 1 "
     "thread (GNU OpenMP does not survive a fork once its threads ran;"),
])
@pytest.mark.all_cores
def test_bad_client_options_are_one_line_errors(args: tuple[str, ...], message: str, tmp_path: Path,
                                                data_dir: Path, capsys) -> None:
    algorithms = configs = write_backend(tmp_path / "backends", "no_fork", NO_FORK, "  quick: {}")
    argv = ["--dataset", "random-xs-20-euclidean", "--data-dir", data_dir, "--results", tmp_path / "r",
            "--algorithms-dir", algorithms, "--configs-dir", configs,
            *(("--algorithm", "bruteforce") if "--algorithm" not in args else ()), *args]
    try:  # the parser's own errors exit; the rest are user errors returned as 2
        code = run_main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not list((tmp_path / "r").rglob("*.hdf5"))  # nothing stored


def test_results_stored_before_levels_are_level_one(swept: Path, tmp_path: Path) -> None:
    import shutil

    import h5py

    old = tmp_path / "old"
    shutil.copytree(swept, old)
    for p in ResultStore(old).paths():
        with h5py.File(p, "a") as f:
            if f.attrs["clients"] != 1:
                p.unlink()
            else:
                del f.attrs["clients"]
    frame = results_frame(old)
    assert list(frame["clients"]) == [1, 1] and levels(frame) == [1]


def test_plot_views_tables_and_report_keep_levels_apart(swept: Path, tmp_path: Path) -> None:
    r = call(plot_main, "--results", swept, "--view", "clients-qps,clients-p99", "--output", tmp_path / "c.png")
    assert r.code == 0, r.err
    assert sorted(p.name for p in tmp_path.glob("c-*.png")) == ["c-random-xs-20-euclidean-clients-p99.png",
                                                               "c-random-xs-20-euclidean-clients-qps.png"]
    r = call(plot_main, "--results", swept, "--operating-points", "csv")
    assert r.code == 0 and len(pd.read_csv(io.StringIO(r.out))) == 10  # level 1 only: 2 × 5 levels
    r = call(plot_main, "--results", swept, "--table", "csv")
    assert sorted(pd.read_csv(io.StringIO(r.out))["clients"]) == [1, 1, 2, 2, 3, 3]
    r = call(plot_main, "--results", swept, "--table", "text", "--clients", "3")
    assert r.code == 0 and r.out.count("bruteforce") == 1
    r = call(plot_main, "--results", swept, "--clients", "4")
    assert r.code == 2 and "--clients 4: no runs measured with that many clients; valid: 1, 2, 3" in r.err
    r = call(plot_main, "--results", swept, "--report", tmp_path / "site")
    page = (tmp_path / "site" / "random-xs-20-euclidean" / "index.html").read_text()
    assert r.code == 0 and "Concurrent clients (1, 2, 3)" in page
    for n in (1, 2, 3):
        assert (tmp_path / "site" / "random-xs-20-euclidean" / f"k10-single-clients{n}-recall-qps.svg").is_file()


def test_scaling_follows_the_single_client_operating_point_beside_the_ideal() -> None:
    rows = []
    for algorithm, qps in (("fast", {1: 100.0, 2: 190.0, 4: 195.0}), ("gil", {1: 100.0, 2: 101.0, 4: 99.0})):
        for n, q in qps.items():
            rows.append({"algorithm": algorithm, "batch": False, "threads": 1, "clients": n, "status": "ok",
                         "recall": 0.95, "qps": q, "p50_ms": 1.0, "p99_ms": 2.0 * n, "client_fairness": 1.0,
                         "client_kind": "thread", "client_cores_available": 2, "build_params": "{}",
                         "query_params": '{"ef":10}', "client_latency_every": {1: np.nan, 2: np.nan, 4: 256}[n]})
        rows.append({**rows[-1], "clients": 1, "query_params": '{"ef":5}', "recall": 0.5, "qps": 500.0})
    table = client_scaling(pd.DataFrame(rows), 0.9)
    fast = table[table["algorithm"] == "fast"]
    assert list(fast["clients"]) == [1, 2, 4] and list(fast["qps"]) == [100.0, 190.0, 195.0]
    assert list(fast["ideal_qps"]) == [100.0, 200.0, 200.0]  # single-client QPS × min(clients, cores = 2)
    assert np.allclose(fast["efficiency"], [1.0, 0.95, 0.975])
    assert list(fast["client_latency_every"]) == [1, 1, 256]  # level 1 and levels stored before sampling: every
    assert serialising(table) == ["gil"]
    assert len(at_level(pd.DataFrame(rows), 4)) == 2


INSTANT = '''
import copy

import numpy as np
from annbench.backends.adapter import Adapter

ANSWER = np.arange(10)


class Instant(Adapter):
    """Answers at once (the same ids for every query), through a handle of its own per client.

    Parameters:
    """

    native_metrics = {"euclidean": "euclidean"}

    def fit(self, X):
        pass

    def query(self, q, k):
        return ANSWER[:k]

    def client(self):
        return copy.copy(self)
'''


@pytest.mark.all_cores
@pytest.mark.parametrize("kind", ["thread", "process"])
def test_queries_faster_than_the_clock_are_timed_one_in_every_and_all_counted(kind: str, tmp_path: Path,
                                                                               data_dir: Path) -> None:
    folder = write_backend(tmp_path / "backends", "instant", INSTANT, "  quick: {}")
    r = call(run_main, *FAST, "--algorithm", "instant", "--algorithms-dir", folder, "--configs-dir", folder,
             "--data-dir", data_dir, "--results", tmp_path / "r", "--clients", "1,2", "--client-kind", kind)
    assert r.code == 0, r.err
    frame = results_frame(tmp_path / "r")
    level = frame[frame["clients"] == 2].iloc[0]
    attrs, arrays = read_attrs(level["path"]), read_arrays(level["path"])
    every, samples = attrs["client_latency_every"], attrs["client_latency_samples"]
    assert attrs["client_kind"] == kind
    answered = attrs["qps"] * attrs["client_window_s"]
    assert every > 1 and len(arrays["latencies_ns"]) == samples  # one query in every timed, all counted
    assert samples == pytest.approx(answered / every, rel=0.1) and answered > 10 * samples
    assert attrs["client_connections"] == 2 and not attrs["recall_differs"]
    assert attrs["recall"] == pytest.approx(attrs["single_client_recall"], rel=1e-12)  # means taken in another order
    table = client_scaling(frame, 0.0)
    assert list(table["client_latency_every"]) == [1, every]
    r = call(plot_main, "--results", tmp_path / "r", "--table", "text", "--clients", "2")
    assert r.code == 0 and "client_latency_every" in r.out and f" {every} " in r.out


@pytest.mark.all_cores
@pytest.mark.parametrize("kind", ["thread", "process"])
def test_database_clients_each_query_through_a_connection_of_their_own(kind: str, data_dir: Path,
                                                                         results_dir: Path) -> None:
    r = call(run_main, *FAST, "--algorithm", "sqlite-vec", "--data-dir", data_dir, "--results", results_dir,
             "--clients", "1,2", "--client-kind", kind)
    assert r.code == 0, r.err
    frame = results_frame(results_dir)
    level = frame[frame["clients"] == 2].iloc[0]
    assert level["client_kind"] == kind and level["client_connections"] == 2  # one apsw connection each
    assert level["recall"] == level["single_client_recall"] == 1.0 and level["answers_differ"] == 0
