"""The in-process executor (annbench.execute.inprocess): the same work as the local executor's children,
in this process: the same stored results and outcome records, selectable on the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import call, write_backend

from annbench.cli.run import main as run_main
from annbench.core.results import Status
from annbench.store.folder import ResultStore, read_arrays, read_attrs

DATASET = "random-xs-20-euclidean"
#: Exact adapters (recall and neighbours do not depend on timing), one that fails in its queries.
ALGORITHMS = "bruteforce,kdtree,balltree,broken"
BROKEN = '''
from annbench.backends.adapter import Adapter


class Broken(Adapter):
    metrics = ("euclidean",)

    def fit(self, X):
        self.n = len(X)

    def query(self, q, k):
        raise RuntimeError("no answer on purpose")
'''
#: Attrs that differ between any two sweeps (when, where the log is, which attempt, how long; the checkout's
#: commit as ``git`` says at each run: a commit landing or a file edited between the two sweeps moves it, and
#: under heavy load ``git`` may outlast its 10 s and say "unknown").
VARYING = {"timestamp", "task_id", "log_path", "elapsed_s", "warmup_s", "warmup_queries", "repeats", "best_pass",
           "traceback", "peak_rss_bytes", "build_peak_rss_bytes", "stats", "annbench_commit"}


def _stored(results: Path) -> dict[str, tuple[dict, dict]]:
    """Each stored run by its path below the results folder: (attrs, arrays)."""
    return {str(p.relative_to(results)): (read_attrs(p), read_arrays(p)) for p in ResultStore(results).paths()}


def test_in_process_and_local_executors_store_the_same_results(data_dir: Path, tmp_path: Path) -> None:
    extra = write_backend(tmp_path / "extra", "broken", BROKEN, "  quick: {}")
    stored = {}
    for executor in ("local", "inprocess"):
        results = tmp_path / executor
        # one measuring process: the in-process executor measures inside this pytest worker, and in a fresh-clone
        # CI run its fork probe failed there after the worker's earlier tests, so it measured alone (its designed
        # fallback, process_index = child) and stored no process attrs: a difference of the host, not the executor
        r = call(run_main, "--dataset", DATASET, "--algorithm", ALGORITHMS, "--runs", 1, "--processes", 1,
                 "--data-dir", data_dir, "--results", results, "--algorithms-dir", extra, "--configs-dir", extra,
                 "--no-plot", "--executor", executor)
        assert r.code == 1 and "1 failed" in r.out, (r.out, r.err)  # the broken adapter's run fails, the others not
        stored[executor] = _stored(results)
    local, inprocess = stored["local"], stored["inprocess"]
    assert set(local) == set(inprocess) and len(local) == 4
    for path, (attrs, arrays) in local.items():
        other_attrs, other_arrays = inprocess[path]
        assert set(attrs) == set(other_attrs), (path, set(attrs) ^ set(other_attrs))
        for name in ("status", "error", "recall", "reason", "concurrent_children", "parallelism", "index_bytes",
                     "index_bytes_status", "n_queries", "dataset_checksum", "library_versions"):
            assert attrs.get(name) == other_attrs.get(name), (path, name, attrs.get(name), other_attrs.get(name))
        assert attrs["concurrent_children"] == 0 and attrs["parallelism"] == 1
        assert set(arrays) == set(other_arrays), path
        for name in ("neighbors", "distances"):
            if name in arrays:
                np.testing.assert_array_equal(arrays[name], other_arrays[name], err_msg=f"{path} {name}")
        timings = {"qps", "qps_median", "qps_sd", "qps_ci95_low", "qps_ci95_high", "process_cv", "qps_processes"}
        assert {k for k in attrs if k not in VARYING and attrs[k] != other_attrs[k]} <= timings | {
            k for k in attrs if k.endswith(("_ms", "_s"))}, path
    statuses = sorted(a["status"] for a, _ in inprocess.values())
    assert statuses == sorted([Status.OK] * 3 + [Status.ERROR])
    assert {a["recall"] for a, _ in inprocess.values() if a["status"] == Status.OK} == {1.0}
    (error,) = [a for a, _ in inprocess.values() if a["status"] == Status.ERROR]
    assert "no answer on purpose" in error["error"] and Path(error["log_path"]).is_file()


def test_in_process_executor_takes_no_isolation_options(data_dir: Path, results_dir: Path) -> None:
    for option in (("--parallelism", "2"), ("--cold-workers",)):
        r = call(run_main, "--dataset", DATASET, "--algorithm", "kdtree", "--data-dir", data_dir, "--results",
                 results_dir, "--executor", "inprocess", *option)
        assert r.code == 2 and f"{option[0]} with --executor inprocess" in r.err, r.err


DRAWS = '''
import numpy as np

from annbench.backends.adapter import Adapter


class Draws(Adapter):
    metrics = ("euclidean",)

    def __init__(self, metric, n=1, threads=1):
        super().__init__(metric, threads=threads)
        with open(MARKS, "a") as f:
            f.write(f"{np.random.random_sample()!r}\\n")  # numpy's global random state at the task's start

    def fit(self, X):
        self.X = X

    def query(self, q, k):
        return np.argsort(((self.X - q) ** 2).sum(1))[:k]
'''


def test_each_task_starts_from_a_fresh_global_random_state(data_dir: Path, tmp_path: Path) -> None:
    """As a fresh child would: a task does not continue the sweep's (or the previous task's) numpy
    global random stream."""
    marks = tmp_path / "marks.txt"
    algos = write_backend(tmp_path / "algos", "draws", DRAWS.replace("MARKS", repr(str(marks))),
                          "  quick:\n    build: {n: [1, 2]}")
    np.random.seed(0)  # noqa: NPY002 - the global state a library may draw from
    stream = np.random.RandomState(0).random_sample(2).tolist()  # what the tasks would draw without a reseed
    r = call(run_main, "--dataset", DATASET, "--algorithm", "draws", "--runs", "1", "--processes", "1",
             "--min-pass-time", "0", "--warmup", "none",  # no timing is checked: no 0.5 s warm-up per build
             "--data-dir", data_dir, "--results", tmp_path / "results", "--algorithms-dir", algos,
             "--configs-dir", algos, "--executor", "inprocess", "--no-plot", "-q")
    assert r.code == 0, r.err
    drawn = [float(v) for v in marks.read_text().split()]
    assert len(drawn) == 2 and not set(drawn) & set(stream), (drawn, stream)
