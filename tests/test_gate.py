"""The regression gate end to end, with injected changes (its pure parts: test_gate_verdicts.py).

End-to-end tests share one baseline (kdtree, reference bruteforce, the first 200 queries of
random-xs-20-euclidean: each timed pass still lasts --min-pass-time, repeating them) and compare fresh
sessions with it; changes are injected by wrapper adapters in a temporary algorithms folder
(annbench.backends.inject), which shadow the real ones under the same name. The tests that compare
timings (the baseline's, a session's QPS against it) run alone on the machine (``exclusive``); those
that check recall, a missing or new setting, the suite's options, how many sessions run or the warm
parents do not wait for that.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import call, write_backend

from annbench.backends.inject import write_wrapper
from annbench.cli.gate import main
from annbench.core.paths import ALGORITHMS_DIR
from annbench.datasets.registry import prepare
from annbench.execute.isolation import available_cores
from annbench.gate.baseline import read_baseline

#: The tests that compare timings measured minutes apart (one runs a CPU hog); the first one builds the
#: module's baseline, so that its timings too are measured alone.
exclusive = pytest.mark.exclusive
SOURCE = "random-xs-20-euclidean"
DATASET = f"{SOURCE}-test200"
SUITE = ("--dataset", DATASET, "--algorithm", "kdtree", "--rounds", "4", "--processes", "2", "--runs", "1", "-q")


@pytest.fixture(scope="module")
def data_dir(data_dir: Path, tmp_path_factory) -> Path:
    """The gate's own data folder: the built-in dataset and its 200-query subset (made here, so that the
    session's folder keeps only the built-ins)."""
    folder = tmp_path_factory.mktemp("gate-data")
    shutil.copy(data_dir / f"{SOURCE}.hdf5", folder)
    prepare(DATASET, folder)
    return folder


@pytest.fixture(scope="module")
def baseline(data_dir: Path, tmp_path_factory) -> Path:
    return _save_baseline(data_dir, tmp_path_factory.mktemp("gate") / "baseline.json")


def _save_baseline(data_dir: Path, path: Path) -> Path:
    """The suite measured now and saved as a baseline at ``path``."""
    r = call(main, *SUITE, "--data-dir", data_dir, "--save-baseline", path)
    assert r.code == 0, r.err
    return path


def _compare(baseline: Path, data_dir: Path, tmp_path: Path, *extra: str) -> tuple[int, str, ET.Element, str]:
    md, junit = tmp_path / "gate.md", tmp_path / "gate.xml"
    r = call(main, "--baseline", baseline, "--data-dir", data_dir, "--markdown", md, "--junit", junit, "-q", *extra)
    assert r.code in (0, 1), r.err
    return r.code, r.out, ET.parse(junit).getroot(), md.read_text()


def _case(root: ET.Element, algorithm: str) -> ET.Element:
    (case,) = [c for c in root.iter("testcase") if c.get("classname") == f"annbench.gate.verdicts.{algorithm}"]
    return case


@exclusive
def test_baseline_has_provenance_and_every_pass(baseline: Path):
    doc = json.loads(baseline.read_text())
    assert doc["provenance"]["dataset_checksum"] and doc["provenance"]["cpu_model"]
    assert doc["provenance"]["dataset_name"] == DATASET and doc["provenance"]["n_queries"] == 200
    (s,) = doc["settings"]
    assert s["algorithm"] == "kdtree" and "scikit-learn" in s["provenance"]["library_versions"]
    assert len(s["rounds"]) == 4 and all(len(r["pass_times_ns"]) == 2 for r in s["rounds"])  # 2 processes x 1
    # each process measured the reference beside kdtree: one reference QPS per process, and each pass's
    assert all(len(r["process_qps"]) == 2 and len(r["reference_qps"]) == 2 for r in s["rounds"])
    assert all(len(r[n]) == 2 and all(len(p) == 1 for p in r[n]) for r in s["rounds"]
               for n in ("pass_qps", "reference_pass_qps"))
    assert all(max(p[0] for p in r["pass_qps"]) == max(r["process_qps"]) for r in s["rounds"])
    assert read_baseline(baseline).settings[0].recall() == 1.0


@exclusive
def test_baseline_against_itself_passes(baseline: Path, data_dir: Path, tmp_path: Path):
    code, out, root, md = _compare(baseline, data_dir, tmp_path)
    assert code == 0, out
    assert root.get("failures") == "0" and _case(root, "kdtree").find("failure") is None
    assert "regression gate: PASSED" in md and "| ok |" in md


@exclusive
def test_injected_2x_slowdown_fails(baseline: Path, data_dir: Path, tmp_path: Path):
    write_wrapper(tmp_path / "algos", "kdtree", [ALGORITHMS_DIR], factor=2.0)
    code, out, root, md = _compare(baseline, data_dir, tmp_path, "--algorithms-dir", tmp_path / "algos")
    assert code == 1, out
    failure = _case(root, "kdtree").find("failure")
    assert failure is not None and failure.get("type") == "regression" and "normalised QPS" in failure.get("message")
    change = float(re.search(r"normalised QPS ([+-][\d.]+)%", failure.get("message")).group(1))
    assert change < -30  # about -50 % on a quiet machine; CPU contention moves it either way
    assert "confirmed by a further session: -" in failure.get("message")  # a second session saw it too
    assert "regression gate: FAILED" in md and "**regression**" in md


FIRST_SESSION_SLOW = '''
import importlib.util, os, sys
_spec = importlib.util.spec_from_file_location("annbench_algorithms._slow_kdtree", {slow!r})
_slow = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _slow
_spec.loader.exec_module(_slow)


class FirstSessionSlow(_slow.Injected):
    """kdtree twice as slow in the first {rounds} builds (the first session's rounds), itself after."""

    _slow = False

    def fit(self, X):
        with open({count!r}, "a") as f:
            f.write("x")
        # kdtree cannot save: each round's measuring process builds it (first), then the round's child
        FirstSessionSlow._slow = os.path.getsize({count!r}) <= 2 * {rounds}
        super().fit(X)

    def query(self, q, k):
        return super().query(q, k) if self._slow else _slow._Inner.query(self, q, k)
'''


def _first_session_slow(tmp_path: Path) -> None:
    """kdtree wrapped in ``tmp_path / "algos"``: twice as slow in the first 3 rounds' builds, counted in
    ``tmp_path / "fits"``."""
    slow = write_wrapper(tmp_path / "slow", "kdtree", [ALGORITHMS_DIR], factor=2.0)
    write_backend(tmp_path / "algos", "kdtree", FIRST_SESSION_SLOW.format(
        slow=str(slow), count=str(tmp_path / "fits"), rounds=3))


@exclusive
def test_a_slowdown_of_one_session_only_is_not_confirmed(baseline: Path, data_dir: Path, tmp_path: Path):
    # The 2x slowdown of the first session is far beyond a 30 % tolerance; the unchanged kdtree of the
    # confirmation session is within it even on this noisy VM (where one session in ten of unchanged
    # code strays beyond 10 %: the reason confirmation exists).
    _first_session_slow(tmp_path)
    # one measuring process per round, beside the reference; each round's value the median of its 3 passes' ratios
    # (one pass a round gave 3 values whose 2-degree-of-freedom interval one disturbed pass could stretch across 0:
    # the slowed session then passed outright, once in CI)
    code, out, root, md = _compare(baseline, data_dir, tmp_path, "--algorithms-dir", tmp_path / "algos",
                                   "--rounds", "3", "--qps-tolerance", "0.3", "--processes", "1", "--runs", "3")
    assert code == 0, out
    assert (tmp_path / "fits").read_text() == "x" * 12, out  # two sessions of 3 rounds, 2 builds each
    assert re.search(r"^ok\s+kdtree.*not confirmed: normalised QPS -[3-9]\d\.\d%", out, re.M), out
    assert _case(root, "kdtree").find("failure") is None and "regression gate: PASSED" in md


def _under_a_hog(baseline: Path, data_dir: Path, tmp_path: Path) -> tuple[int, str, ET.Element, float]:
    """The suite compared with ``baseline`` while a CPU hog shares the core the benchmark children are
    pinned to: the exit code, output, JUnit root and the machine factor the gate saw."""
    tmp_path.mkdir(exist_ok=True)
    core = available_cores()[0]
    hog = subprocess.Popen([sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True: pass"])
    try:
        code, out, root, _ = _compare(baseline, data_dir, tmp_path, "--qps-tolerance", "0.3")
    finally:
        hog.kill()
        hog.wait()
    return code, out, root, float(re.search(r"machine factor \(reference QPS now / then\): ([\d.]+)", out).group(1))


@exclusive
def test_uniformly_2x_slower_machine_passes(baseline: Path, data_dir: Path, tmp_path: Path):
    # A busier machine, slowing the reference and every algorithm about alike: a CPU hog shares the
    # one core the benchmark children are pinned to, so the scheduler gives them about half of it.
    # Not exactly alike: sharing a core can cost kdtree more than the reference (its tree walk depends
    # more on the caches and branch predictors the hog disturbs), so the tolerance is widened to 30 %.
    # The raw drop is ~50 %, so without the reference normalisation this test fails.
    code, out, root, factor = _under_a_hog(baseline, data_dir, tmp_path / "first")
    if factor >= 0.85:
        # The machine did not look slower: the module's baseline, measured at the session's start, was itself
        # slowed (once in a fresh-clone CI run it measured kdtree at half its usual QPS). Once more, against a
        # baseline measured now: the verdict below is asserted only of a session the hog really slowed.
        again = _save_baseline(data_dir, tmp_path / "baseline.json")
        code, out, root, factor = _under_a_hog(again, data_dir, tmp_path / "again")
    assert factor < 0.85, out  # the machine really was slower (~0.5 when nothing else runs)...
    assert code == 0, out      # ...and that is not a regression
    assert root.get("failures") == "0"


def test_confirm_0_lets_the_first_session_decide(baseline: Path, data_dir: Path, tmp_path: Path):
    # no timing is compared (whatever the verdict, no second session runs): not exclusive
    _first_session_slow(tmp_path)
    _, out, _, _ = _compare(baseline, data_dir, tmp_path, "--algorithms-dir", tmp_path / "algos", "--rounds", "2",
                            "--confirm", "0", "--processes", "1")
    assert (tmp_path / "fits").read_text() == "x" * 4 and "confirmed" not in out, out


def test_lowered_recall_fails(baseline: Path, data_dir: Path, tmp_path: Path):
    write_wrapper(tmp_path / "algos", "kdtree", [ALGORITHMS_DIR], drop=1)  # k=10: recall 1.0 -> 0.9
    code, out, root, _ = _compare(baseline, data_dir, tmp_path, "--algorithms-dir", tmp_path / "algos",
                                  "--rounds", "2")  # recall needs no interval: fewer rounds suffice
    assert code == 1, out
    failure = _case(root, "kdtree").find("failure")
    assert failure is not None and "recall down 0.1000" in failure.get("message")


def test_one_warm_parent_per_algorithm_for_the_whole_session(data_dir: Path, tmp_path: Path):
    """Every round's build settings are children forked from one warm parent per algorithm, started once for
    the session (its log is rewritten whenever a parent starts); the reference has no runs of its own: each
    measuring process builds it beside kdtree."""
    work = tmp_path / "work"
    r = call(main, "--dataset", DATASET, "--algorithm", "kdtree", "--rounds", "3", "--processes", "2", "--runs", "1",
             "-q",
             "--data-dir", data_dir, "--work-dir", work, "--save-baseline", tmp_path / "b.json")
    assert r.code == 0, r.err
    logs = work / "suite" / DATASET / "10" / "logs"
    assert (logs / "kdtree" / "warm-parent.threads=1.log").read_text().count("forked child") == 3  # one a round
    assert not (logs / "bruteforce").exists() and [p.name for p in work.iterdir()] == ["suite"]


def test_missing_algorithm_is_reported(baseline: Path, data_dir: Path, tmp_path: Path):
    algos = write_backend(tmp_path / "algos", "kdtree", 'raise ImportError("simulated: library not installed")\n')
    code, out, root, md = _compare(baseline, data_dir, tmp_path, "--algorithms-dir", algos)
    assert code == 1, out
    failure = _case(root, "kdtree").find("failure")
    assert failure is not None and failure.get("type") == "missing" and "simulated" in failure.get("message")
    assert re.search(r"^missing\s+kdtree", out, re.M) and "**missing**" in md
    allowed = call(main, "--baseline", baseline, "--data-dir", data_dir, "--algorithms-dir", algos, "--allow-missing")
    assert allowed.code == 0 and re.search(r"^missing\s+kdtree", allowed.out, re.M)


def test_new_setting_is_reported(baseline: Path, tmp_path: Path):
    doc = json.loads(baseline.read_text())
    extra = json.loads(json.dumps(doc["settings"][0]))
    extra["build_params"] = {"leaf_size": 7}
    doc["settings"].append(extra)
    current = tmp_path / "current.json"
    current.write_text(json.dumps(doc))
    r = call(main, "--baseline", baseline, "--current", current)
    assert r.code == 0 and re.search(r'^new\s+kdtree\s+\{"leaf_size":7\}', r.out, re.M), r.out


def test_suite_option_differing_from_baseline_is_an_error(baseline: Path, data_dir: Path):
    r = call(main, "--baseline", baseline, "--data-dir", data_dir, "-k", "5")
    assert r.code == 2 and "differs from the baseline's k=10" in r.err


LOGGED = '''
import importlib.util, os, sys, types
_spec = importlib.util.spec_from_file_location("annbench_algorithms._logged_{name}", {source!r})
_inner = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _inner
_spec.loader.exec_module(_inner)
_state = sys.modules.setdefault("annbench_test_query_log", types.SimpleNamespace(last=None))


class Logged(_inner.{cls}):
    """Appends "{name} <pid>" to the log whenever the process's queries switch to {name}."""

    def query(self, q, k):
        if _state.last != "{name}":
            _state.last = "{name}"
            with open({log!r}, "a") as f:
                f.write(f"{name} {{os.getpid()}}\\n")
        return super().query(q, k)
'''


def test_the_reference_is_measured_in_each_process_its_passes_interleaved(data_dir: Path, tmp_path: Path):
    """Each measuring process answers the reference's queries and kdtree's, switching pass by pass: warm-up of
    each, then reference, kdtree, reference, kdtree (--runs 2); no other process queries either."""
    log, algos = tmp_path / "queries.log", tmp_path / "algos"
    for name, cls in (("kdtree", "KDTree"), ("bruteforce", "BruteForce")):
        write_backend(algos, name, LOGGED.format(name=name, cls=cls, log=str(log),
                                                 source=str(ALGORITHMS_DIR / f"{name}.py")))
    r = call(main, "--dataset", DATASET, "--algorithm", "kdtree", "--rounds", "2", "--processes", "2", "--runs", "2",
             "-q", "--data-dir", data_dir, "--algorithms-dir", algos, "--save-baseline", tmp_path / "b.json")
    assert r.code == 0, r.err
    lines = [line.split() for line in log.read_text().splitlines()]
    by_pid: dict[str, list[str]] = {}
    for name, pid in lines:
        by_pid.setdefault(pid, []).append(name)
    assert len(by_pid) == 4, lines  # 2 rounds x 2 processes, each a process of its own
    assert all(names == ["bruteforce", "kdtree"] * 3 for names in by_pid.values()), by_pid
    doc = json.loads((tmp_path / "b.json").read_text())
    assert all(len(r["reference_qps"]) == 2 for r in doc["settings"][0]["rounds"])
