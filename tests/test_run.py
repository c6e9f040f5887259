"""End to end through run.py's main, in-process: exactness, resume, --force, bad input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import call, write_backend

from annbench.analyse.frames import results_frame
from annbench.cli.run import main as run_main
from annbench.store.folder import ResultStore, read_arrays, read_attrs


def _snapshot(results: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(results.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("k", [1, 10, 100])
def test_exact_methods_have_recall_one(k: int, data_dir: Path, results_dir: Path) -> None:
    r = call(run_main, "--dataset", "random-xs-20-euclidean", "--algorithm", "bruteforce,kdtree", "-k", k,
             "--runs", 1, "--warmup", "none", "--min-pass-time", 0, "--data-dir", data_dir, "--results", results_dir,
             "--no-plot")
    assert r.code == 0, r.err
    frame = results_frame(results_dir)
    assert sorted(frame["algorithm"]) == ["bruteforce", "kdtree"]
    assert (frame["status"] == "ok").all()
    assert (frame["recall"] == 1.0).all() and (frame["id_recall"] == 1.0).all()
    assert (frame["k"] == k).all() and np.allclose(frame["rel"], 1.0)


def test_result_file_holds_one_pass_and_provenance(data_dir: Path, results_dir: Path) -> None:
    r = call(run_main, "--dataset", "random-xs-20-euclidean", "--algorithm", "kdtree", "--runs", 3, "--processes", 1,
             "--data-dir", data_dir, "--results", results_dir, "--no-plot")
    assert r.code == 0, r.err
    [path] = ResultStore(results_dir).paths()
    assert path.parent == results_dir / "random-xs-20-euclidean" / "10" / "kdtree"
    attrs, arrays = read_attrs(path), read_arrays(path)
    assert arrays["neighbors"].shape == (1000, 10) and arrays["distances"].shape == (1000, 10)
    repeats = attrs["repeats"]  # whole query sets per timed pass (see test_measure.py)
    assert arrays["latencies_ns"].shape == (repeats * 1000,) and arrays["pass_times_ns"].shape == (3,)
    best = int(np.argmin(arrays["pass_times_ns"]))
    assert attrs["best_pass"] == best
    assert attrs["qps"] == pytest.approx(repeats * 1000 / (arrays["pass_times_ns"][best] * 1e-9))
    assert attrs["qps_median"] <= attrs["qps"]
    for key in ("dataset_checksum", "cpu_model", "library_versions", "annbench_version", "annbench_commit",
                "timestamp", "build_params", "query_params", "threads", "runs", "mode", "build_s",
                "index_bytes", "build_peak_rss_bytes", "p50_ms", "p95_ms", "p99_ms", "p99.9_ms", "warmup",
                "min_pass_time", "repeats"):
        assert key in attrs, key
    assert attrs["dataset_checksum"].startswith("xxh3:")
    assert "scikit-learn" in attrs["library_versions"]
    assert attrs["mode"] == "single" and attrs["index_bytes"] > 0


def test_batch_mode_has_no_invented_latencies(data_dir: Path, results_dir: Path) -> None:
    r = call(run_main, "--dataset", "random-xs-20-euclidean", "--algorithm", "bruteforce", "--batch",
             "--runs", 2, "--data-dir", data_dir, "--results", results_dir, "--no-plot")
    assert r.code == 0, r.err
    [path] = ResultStore(results_dir).paths()
    assert path.parent.name == "bruteforce-batch"
    attrs = read_attrs(path)
    assert attrs["mode"] == "batch" and attrs["recall"] == 1.0
    assert np.isnan(attrs["p50_ms"]) and "latencies_ns" not in read_arrays(path)


def test_resume_skips_finished_runs_and_force_redoes_them(data_dir: Path, results_dir: Path) -> None:
    args = ("--dataset", "random-xs-20-euclidean", "--algorithm", "kdtree,balltree", "--runs", 1, "--warmup", "none",
            "--min-pass-time", 0, "--data-dir", data_dir, "--results", results_dir, "--no-plot")
    assert call(run_main, *args).code == 0
    first = _snapshot(results_dir)
    stamps = {p: read_attrs(p)["timestamp"] for p in ResultStore(results_dir).paths()}
    again = call(run_main, *args)
    assert again.code == 0 and "0 runs done" in again.out and "2 already stored" in again.out
    assert _snapshot(results_dir) == first
    forced = call(run_main, *args, "--force")
    assert forced.code == 0 and "2 runs done" in forced.out
    assert _snapshot(results_dir) != first
    assert set(stamps) == set(ResultStore(results_dir).paths())


def _write_config(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yml"
    path.write_text(text)
    return path


BAD_CONFIGS = {
    "malformed": ("algorithm: kdtree\nmetrics: [euclidean\ngroups: {}\n", "malformed YAML"),
    "unknown-param": ("algorithm: kdtree\nmetrics: [euclidean]\ngroups:\n  quick:\n    build:\n"
                      "      leaf_sise: [10]\n",
                      "kdtree.yml:6: kdtree takes no build parameter 'leaf_sise'; valid: leaf_size"),
    "empty-list": ("algorithm: kdtree\nmetrics: [euclidean]\ngroups:\n  quick:\n    build: {leaf_size: []}\n",
                   "kdtree.yml:5: parameter 'leaf_size' has an empty list"),
    "wrong-type": ("algorithm: kdtree\nmetrics: [euclidean]\ngroups:\n  quick:\n    build:\n"
                   "      leaf_size: [10, ten]\n",
                   "kdtree.yml:6: build parameter 'leaf_size' = 'ten' has the wrong type; valid: int"),
    "unknown-metric": ("algorithm: kdtree\nmetrics:\n  - euclidean\n  - manhattan\ngroups: {quick: {}}\n",
                       "kdtree.yml:4: unknown metric 'manhattan'; valid: euclidean, angular, ip, hamming, jaccard"),
    "unknown-key": ("algorithm: kdtree\nmetrics: [euclidean]\ngroup: {quick: {}}\n",
                    "kdtree.yml:3: unknown key 'group'; valid: algorithm, metrics, groups, opt_in"),
    "opt-in-not-a-sentence": ("algorithm: kdtree\nopt_in: 3\nmetrics: [euclidean]\ngroups: {quick: {}}\n",
                              "kdtree.yml:2: 'opt_in' must be a sentence saying why"),
}


def _adapters(tmp_path: Path, sources: dict[str, str]) -> tuple[Path, Path]:
    """A folder of adapters (algorithm name → file body) and one of their one-setting grids."""
    algos, configs = tmp_path / "algorithms", tmp_path / "configs"
    algos.mkdir()
    header = "import time\nimport numpy as np\nfrom annbench.backends.adapter import Adapter\n\n"
    for name, body in sources.items():
        write_backend(algos, name, header + body)
        write_backend(configs, name, groups="  quick: {}\n  full: {}")
    return algos, configs


@pytest.fixture
def finished(data_dir: Path, results_dir: Path) -> dict[str, str]:
    """A finished result that bad input must leave untouched."""
    assert call(run_main, "--dataset", "random-xs-20-euclidean", "--algorithm", "bruteforce", "--runs", 1,
                "--data-dir", data_dir, "--results", results_dir, "--no-plot").code == 0
    return _snapshot(results_dir)


def _assert_user_error(r, expected: str) -> None:
    assert r.code == 2, (r.code, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    assert expected in lines[0], lines[0]
    assert "Traceback" not in r.err


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_a_one_line_error(case: str, tmp_path: Path, data_dir: Path, results_dir: Path,
                                        finished: dict[str, str]) -> None:
    text, expected = BAD_CONFIGS[case]
    configs = tmp_path / "configs"
    _write_config(configs, "kdtree", text)
    r = call(run_main, "--dataset", "random-xs-20-euclidean", "--algorithm", "kdtree", "--configs-dir", configs,
             "--data-dir", data_dir, "--results", results_dir, "--force", "--no-plot")
    _assert_user_error(r, expected)
    assert _snapshot(results_dir) == finished


def test_bad_command_lines_are_one_line_errors(tmp_path: Path, data_dir: Path, results_dir: Path,
                                               finished: dict[str, str]) -> None:
    common = ("--data-dir", data_dir, "--results", results_dir, "--force", "--no-plot")
    _assert_user_error(call(run_main, "--algorithm", "kdtre", *common), "unknown algorithm 'kdtre'")
    _assert_user_error(call(run_main, "--algorithm", "kdtre", *common), "did you mean kdtree")
    _assert_user_error(call(run_main, "--dataset", "random-xs-20-euclidian", *common),
                       "did you mean random-xs-20-euclidean")
    _assert_user_error(call(run_main, "--dataset", "a/b", *common), "'a/b'")
    _assert_user_error(call(run_main, "-k", "101", "--algorithm", "bruteforce", *common),
                       "-k 101 exceeds the 100 neighbours stored")
    _assert_user_error(call(run_main, "--algorithm", "kdtree", "--preset", "huge", *common),
                       "has no group 'huge'; valid: demo, quick, full")
    bad = tmp_path / "bad.hdf5"
    with h5py.File(bad, "w") as f:
        f.attrs["distance"] = "euclidean"
        f["train"] = np.zeros((50, 4), dtype=np.float32)
        f["test"] = np.zeros((5, 3), dtype=np.float32)
        f["neighbors"] = np.zeros((5, 10), dtype=np.int32)
        f["distances"] = np.zeros((5, 10), dtype=np.float32)
    _assert_user_error(call(run_main, "--dataset", bad, *common), "train has dimension 4 but test has 3")
    not_hdf5 = tmp_path / "junk.hdf5"
    not_hdf5.write_bytes(b"not an hdf5 file")
    _assert_user_error(call(run_main, "--dataset", not_hdf5, *common), "not a readable HDF5 file")
    assert _snapshot(results_dir) == finished


def test_adapter_receives_read_only_arrays_and_errors_are_recorded(tmp_path: Path, data_dir: Path,
                                                                   results_dir: Path) -> None:
    algos, configs = _adapters(tmp_path, {
        "scribbler": "class Scribbler(Adapter):\n"
                     "    def fit(self, X):\n        X[0, 0] = 1.0\n"
                     "    def query(self, q, k):\n        return np.arange(k)\n",
        "duplicator": "class Duplicator(Adapter):\n"
                      "    def fit(self, X):\n        pass\n"
                      "    def query(self, q, k):\n        return np.zeros(k, dtype=int)\n",
    })
    r = call(run_main, "--dataset", "random-xs-20-euclidean", "--algorithm", "scribbler,duplicator,bruteforce",
             "--runs", 1, "--algorithms-dir", algos, "--configs-dir", configs, "--data-dir", data_dir,
             "--results", results_dir, "--no-plot")
    assert r.code == 1  # some runs failed; the sweep went on
    frame = results_frame(results_dir).set_index("algorithm")
    assert frame.loc["bruteforce", "status"] == "ok"
    assert frame.loc["scribbler", "status"] == "error"
    assert "read-only" in frame.loc["scribbler", "error"]
    assert frame.loc["duplicator", "status"] == "error"
    assert "same id twice" in frame.loc["duplicator", "error"]
    assert np.isnan(frame.loc["duplicator", "recall"])  # never counted


def test_default_run_writes_summary_and_plot(data_dir: Path, results_dir: Path) -> None:
    r = call(run_main, "--algorithm", "bruteforce,balltree", "--runs", 1, "--data-dir", data_dir,
             "--results", results_dir)
    assert r.code == 0, r.err
    png = results_dir / "random-xs-20-euclidean" / "10" / "recall-qps.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    debug = [line for line in r.err.replace("\r", "\n").splitlines() if line.startswith(("I ", "D "))]
    assert not debug, debug  # warm parents, task starts: only with -v
    verbose = call(run_main, "--algorithm", "bruteforce", "--runs", 1, "--data-dir", data_dir, "--results",
                   results_dir, "--no-plot", "--force", "-v")
    assert "warm parent for bruteforce ready" in verbose.err and "starting on cores" in verbose.err
    # the summary ends with the operating-point table (one row per algorithm), not the runs
    table = r.out[r.out.index("best qps at recall >= r"):]
    assert "recall>=0.9" in table and "recall>=0.99" in table and "build_params" not in r.out
    assert [line.split()[0] for line in table.splitlines()[2:4]] == ["balltree", "bruteforce"]
    rows = call(run_main, "--algorithm", "bruteforce,balltree", "--runs", 1, "--data-dir", data_dir,
                "--results", results_dir, "--no-plot", "--table", "runs")
    assert rows.code == 0 and "build_params" in rows.out
    assert "recall>=0.9" not in rows.out and "leaf_size" in rows.out


def test_default_selection_leaves_out_opt_in_grids_and_the_summary_names_them(data_dir: Path) -> None:
    from annbench.cli.run import left_out_line
    from annbench.core import paths
    from annbench.plan.grid import RunOptions, make_plan

    where = (data_dir / "random-xs-20-euclidean.hdf5", "euclidean")
    dirs = (paths.config_dirs([]), paths.algorithm_dirs([]))
    plan = make_plan("random-xs-20-euclidean", where[0], where[1], None, None, RunOptions(), *dirs)
    assert set(plan.left_out) >= {"pynndescent", "ngt-qg", "lancedb-ivf-pq"} and all(plan.left_out.values())
    assert not {"pynndescent", "ngt-qg"} & {b.algorithm for b in plan.builds}
    assert {b.algorithm for b in plan.builds} >= {"annoy", "hnswlib", "faiss-ivf", "scann", "kdtree"}
    from annbench.backends.discovery import load_adapter
    families = {load_adapter(b.algorithm, dirs[1]).libraries[0] for b in plan.builds}
    assert families >= {"annoy", "numpy", "scikit-learn", "faiss-cpu", "hnswlib", "ngt", "nmslib-metabrainz", "scann",
                        "usearch"}  # every library family but those left out for their start (the main job's plot)
    assert all(len(b.query_settings) <= 3 for b in plan.builds)  # the demo groups: a few settings each
    line = left_out_line(plan.left_out)
    assert "pynndescent (numba compiles" in line and "--include-slow" in line
    every = make_plan("random-xs-20-euclidean", where[0], where[1], None, None, RunOptions(), *dirs,
                      include_opt_in=True)
    assert not every.left_out and {"pynndescent", "ngt-qg"} <= {b.algorithm for b in every.builds}
    named = make_plan("random-xs-20-euclidean", where[0], where[1], ["pynndescent"], None, RunOptions(), *dirs)
    assert [b.algorithm for b in named.builds] == ["pynndescent"]


def test_warm_up_runs_before_the_timed_build_and_is_not_counted(tmp_path: Path, data_dir: Path,
                                                                results_dir: Path) -> None:
    algos, configs = _adapters(tmp_path, {
        "slow-jit": "class SlowJit(Adapter):\n"
                    "    warmed = False\n"
                    "    def warm_up(self, X):\n        time.sleep(2.0)\n        self.warmed = True\n"
                    "    def fit(self, X):\n        assert self.warmed, 'fit before warm_up'\n"
                    "    def query(self, q, k):\n        return np.arange(k)\n",
    })
    r = call(run_main, "--dataset", "random-xs-20-euclidean", "--algorithm", "slow-jit", "--runs", 1,
             "--algorithms-dir", algos, "--configs-dir", configs, "--data-dir", data_dir,
             "--results", results_dir, "--no-plot")
    assert r.code == 0, r.err
    [row] = results_frame(results_dir).to_dict("records")
    assert row["status"] == "ok" and row["build_s"] < 1.0


@pytest.mark.parametrize(("value", "expected"), [("0", "--processes: 0 is out of range; valid: an integer >= 1"),
                                                ("two", "--processes: 'two' is not an integer"),
                                                ("2.5", "--processes: '2.5' is not an integer")])
def test_processes_is_a_positive_integer_or_a_one_line_error(value: str, expected: str, data_dir: Path,
                                                            results_dir: Path, finished: dict[str, str],
                                                            capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_main(["--processes", value, "--algorithm", "bruteforce", "--data-dir", str(data_dir), "--results",
                  str(results_dir), "--force", "--no-plot"])
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and expected in line, line
    assert _snapshot(results_dir) == finished


def test_qps_is_the_mean_of_the_measuring_processes(data_dir: Path, results_dir: Path) -> None:
    from annbench.backends.adapter import saveable
    from annbench.backends.discovery import load_adapter
    from annbench.core import paths

    r = call(run_main, "--algorithm", "hnswlib,kdtree", "--processes", "3", "--runs", "2", "--min-pass-time", "0.01",
             "--data-dir", data_dir, "--results", results_dir, "--no-plot")
    assert r.code == 0, r.err
    assert "noise: QPS varied between measuring processes by a median CV of" in r.out
    frame = results_frame(results_dir)
    assert (frame["status"] == "ok").sum() >= 3
    for _, run in frame[frame["status"] == "ok"].iterrows():
        per = np.array(__import__("json").loads(run["qps_processes"]))
        assert len(per) == run["processes"] == 3
        assert run["qps"] == pytest.approx(per.mean()) and run["qps_sd"] == pytest.approx(per.std(ddof=1))
        assert run["qps_ci95_low"] < run["qps"] < run["qps_ci95_high"]
        assert len(read_arrays(run["path"])["pass_times_ns"]) == 3 * 2  # every pass of every process
        adapter = load_adapter(run["algorithm"], paths.algorithm_dirs([]))
        assert run["process_index"] == ("loaded" if saveable(adapter) else "rebuilt")
    assert set(frame["process_index"]) == {"loaded", "rebuilt"}  # hnswlib saves its index, kdtree cannot
    from annbench.cli.plot import main as plot_main

    table = call(plot_main, "--results", results_dir, "--table", "text")
    assert table.code == 0, table.err
    header = table.out.splitlines()[0].split()
    assert header[header.index("qps") + 1:header.index("qps") + 3] == ["qps_ci95_low", "qps_ci95_high"]


def test_a_process_rebuilds_an_index_that_cannot_be_saved_and_says_when_its_answers_differ(
        tmp_path: Path, data_dir: Path, results_dir: Path) -> None:
    """An adapter that cannot save is built again in each measuring process (never the build's copy-on-write
    pages); a build that is not deterministic answers otherwise in each process, which the result counts."""
    algos, configs = _adapters(tmp_path, {
        "own-index": "import os\n\nclass OwnIndex(Adapter):\n"
                     "    def fit(self, X):\n        self.pid = os.getpid()\n"
                     "    def query(self, q, k):\n"
                     "        assert self.pid == os.getpid(), 'searched an index built in another process'\n"
                     "        return np.arange(k)\n",
        "unseeded": "import os\n\nclass Unseeded(Adapter):\n"
                    "    def fit(self, X):\n        self.offset = os.getpid() % (len(X) - 10)\n"
                    "    def query(self, q, k):\n        return np.arange(k) + self.offset\n"})
    r = call(run_main, "--algorithm", "own-index,unseeded", "--processes", "3", "--min-pass-time", "0",
             "--warmup", "none", "--algorithms-dir", algos, "--configs-dir", configs, "--data-dir", data_dir,
             "--results", results_dir, "--no-plot")
    assert r.code == 0, r.err
    frame = results_frame(results_dir).set_index("algorithm")
    assert (frame["status"] == "ok").all() and (frame["process_index"] == "rebuilt").all()
    assert frame.loc["unseeded", "process_answers_differ"] == 2  # each of the 2 later processes built its own
    assert np.isnan(frame.loc["own-index", "process_answers_differ"])


def test_processes_interleave_the_settings_passes_and_early_stop_skips_the_dominated(
        tmp_path: Path, data_dir: Path, results_dir: Path, monkeypatch) -> None:
    """Each measuring process warms up every setting, then makes pass 1 of every setting, pass 2 of every
    setting; a setting after an exact one is never queried (stored as skipped), in any process."""
    algos, configs = _adapters(tmp_path, {"logged": (
        "import os\n\nclass Logged(Adapter):\n"
        "    def fit(self, X):\n        self.X = np.asarray(X)\n"
        "    def set_query_params(self, p: int = 1):\n        self.p = p\n"
        "    def query(self, q, k):\n"
        "        with open(os.environ['LOGGED_QUERIES'], 'a') as f:\n"
        "            f.write(f'{os.getpid()} {self.p}\\n')\n"
        "        if self.p == 1:\n            return np.arange(k)\n"
        "        return np.argsort(((self.X - q) ** 2).sum(axis=1))[:k]\n")})
    write_backend(configs, "logged", groups="  quick:\n    query: {p: [1, 2, 3]}")
    log = tmp_path / "queries.log"
    monkeypatch.setenv("LOGGED_QUERIES", str(log))
    r = call(run_main, "--algorithm", "logged", "--processes", "3", "--runs", "2", "--warmup", "none",
             "--min-pass-time", "0", "--algorithms-dir", algos, "--configs-dir", configs, "--data-dir", data_dir,
             "--results", results_dir, "--no-plot")
    assert r.code == 0, r.err
    frame = results_frame(results_dir).set_index("query_params")
    assert frame.loc['{"p":3}', "status"] == "skipped" and frame.loc['{"p":2}', "recall"] == 1.0
    by_pid: dict[str, list[int]] = {}
    lines = [line.split() for line in log.read_text().splitlines()]
    for pid, p in lines:
        seq = by_pid.setdefault(pid, [])
        if not seq or seq[-1] != int(p):
            seq.append(int(p))
    sequences = list(by_pid.values())
    # the adapter cannot save: the processes are forked before the child builds, each builds its own index;
    # the first makes the untimed answer pass of each setting, in grid order, then every process its passes
    # round-robin; the child itself never queries
    assert sequences == [[1, 2, 1, 2, 1, 2], [1, 2, 1, 2], [1, 2, 1, 2]]
    assert all(p != "3" for _, p in lines)  # the dominated setting: no warm-up, no pass, anywhere


def test_closing_summary_states_the_median_process_cv() -> None:
    import pandas as pd

    from annbench.cli.run import noise_note

    frame = pd.DataFrame({"process_cv": [0.02, 0.04, float("nan"), 0.10]})  # nan: a run of one process
    assert noise_note(frame) == ("noise: QPS varied between measuring processes by a median CV of 4.0% over 3 runs "
                                 "(--processes): QPS differences below ~8% are within this machine's noise")
    assert noise_note(pd.DataFrame({"process_cv": [float("nan")]})) == "" == noise_note(pd.DataFrame({"qps": [1.0]}))
