"""The regression gate: verdicts on synthetic sessions, and end to end with injected changes.

End-to-end tests share one baseline (kdtree, reference bruteforce, random-xs-20-euclidean) and
compare fresh sessions with it; changes are injected by wrapper adapters in a temporary
algorithms folder (annbench.backends.inject), which shadow the real ones under the same name.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from annbench.backends.inject import write_wrapper
from annbench.cli.gate import main
from annbench.core.paths import ALGORITHMS_DIR
from annbench.execute.isolation import available_cores
from annbench.gate import verdicts as gate
from annbench.gate.baseline import read_baseline, session_from_json, session_to_json
from annbench.gate.verdicts import Round, Session, SettingRecord, Tolerances
from tests.conftest import call

#: The end-to-end tests compare timings measured minutes apart; one runs a CPU hog.
pytestmark = pytest.mark.exclusive
DATASET = "random-xs-20-euclidean"
SUITE = ("--dataset", DATASET, "--algorithm", "kdtree", "--rounds", "4", "--runs", "3", "-q")


# ---------------------------------------------------------------- synthetic sessions (pure)

def _setting(algorithm: str, factor: float, recall: float = 1.0, machine: float = 1.0, seed: int = 0,
             rounds: int = 4, runs: int = 5, params: dict | None = None) -> SettingRecord:
    """Pass times: reference ~1 ms, setting ~2 ms × factor, all × machine, with 3 % noise."""
    rng = np.random.default_rng(seed)
    rs = [Round(recall, (2e6 * factor * machine * rng.lognormal(0, 0.03, runs)).astype(np.int64),
                (1e6 * machine * rng.lognormal(0, 0.03, 2 * runs)).astype(np.int64)) for _ in range(rounds)]
    return SettingRecord(algorithm, params or {"n": 1}, {}, 1000, rs)


def _session(*settings: SettingRecord, unavailable: dict | None = None) -> Session:
    return Session({"rounds": 4, "runs": 5}, {}, list(settings), unavailable or {})


def _verdicts(comparisons: list[gate.Comparison]) -> dict[str, str]:
    return {c.algorithm: c.verdict for c in comparisons}


def test_same_measurements_pass_and_interval_covers_one():
    base = _session(_setting("a", 1.0, seed=1))
    (c,) = gate.compare(base, base)
    assert c.verdict == gate.OK and c.ratio == pytest.approx(1.0) and c.ratio_low <= 1 <= c.ratio_high


def test_synthetic_verdicts():
    base = _session(_setting("same", 1.0, seed=1), _setting("slow", 1.0, seed=2), _setting("fast", 1.0, seed=3),
                    _setting("lossy", 1.0, seed=4), _setting("gone", 1.0, seed=5))
    now = _session(_setting("same", 1.0, seed=11), _setting("slow", 1.25, seed=12), _setting("fast", 0.5, seed=13),
                   _setting("lossy", 1.0, recall=0.98, seed=14), _setting("added", 1.0, seed=15),
                   unavailable={"gone": "algorithm 'gone' is unavailable: ImportError: x"})
    comparisons = gate.compare(base, now)
    assert _verdicts(comparisons) == {"same": "ok", "slow": "regression", "fast": "improved", "lossy": "regression",
                                      "gone": "missing", "added": "new"}
    by = {c.algorithm: c for c in comparisons}
    assert by["slow"].ratio == pytest.approx(0.8, abs=0.03) and by["slow"].ratio_high < 1
    assert "ImportError" in by["gone"].reasons[0]
    assert not gate.gate_passes(comparisons)


def test_uniformly_slower_machine_is_not_a_regression():
    base = _session(_setting("a", 1.0, seed=1))
    now = _session(_setting("a", 1.0, machine=2.0, seed=2))
    (c,) = gate.compare(base, now)
    assert c.verdict == gate.OK and c.ratio == pytest.approx(1.0, abs=0.05)
    assert gate.machine_factor(base, now) == pytest.approx(0.5, abs=0.03)


def test_small_drop_within_tolerance_and_noise_are_ok():
    base = _session(_setting("a", 1.0, seed=1))
    assert gate.compare(base, _session(_setting("a", 1.05, seed=2)))[0].verdict == gate.OK  # 5 % < 10 %
    assert gate.compare(base, _session(_setting("a", 1.0, recall=0.995, seed=2)))[0].verdict == gate.OK


def test_drop_beyond_tolerance_but_within_noise_is_not_flagged():
    """Huge round-to-round noise: a 20 % point drop whose interval includes 1 is not a regression."""
    rng = np.random.default_rng(0)

    def noisy(factor: float) -> SettingRecord:
        rs = [Round(1.0, np.full(3, int(2e6 * factor * m)), np.full(6, int(1e6)))
              for m in rng.lognormal(0, 0.4, 2)]
        return SettingRecord("a", {}, {}, 1000, rs)

    then, now = noisy(1.0), noisy(1.25)
    c = gate.compare_setting(then, now, Tolerances())
    assert c.ratio_high >= 1 and c.verdict != gate.REGRESSION


def test_only_a_drop_of_throughput_alone_is_timing_only():
    base = _session(_setting("slow", 1.0, seed=1), _setting("lossy", 1.0, seed=2), _setting("both", 1.0, seed=3))
    now = _session(_setting("slow", 1.5, seed=11), _setting("lossy", 1.0, recall=0.9, seed=12),
                   _setting("both", 1.5, recall=0.9, seed=13))
    by = {c.algorithm: c for c in gate.compare(base, now)}
    assert all(c.verdict == gate.REGRESSION for c in by.values())
    assert {a: c.timing_only for a, c in by.items()} == {"slow": True, "lossy": False, "both": False}


def test_confirmation_keeps_a_repeated_slowdown_and_clears_a_fluke():
    base = _session(_setting("real", 1.0, seed=1), _setting("fluke", 1.0, seed=2), _setting("lossy", 1.0, seed=3))
    first = gate.compare(base, _session(_setting("real", 1.5, seed=11), _setting("fluke", 1.5, seed=12),
                                        _setting("lossy", 1.0, recall=0.9, seed=13)))
    again = gate.compare(base, _session(_setting("real", 1.5, seed=21), _setting("fluke", 1.0, seed=22),
                                        _setting("lossy", 1.0, seed=23)))
    by = {c.algorithm: c for c in gate.confirm(first, again)}
    assert {a: c.verdict for a, c in by.items()} == {"real": "regression", "fluke": "ok", "lossy": "regression"}
    assert "confirmed by a further session: -3" in by["real"].reasons[-1] and by["real"].timing_only
    assert by["fluke"].reasons[0].startswith("not confirmed: normalised QPS -3") and "(ok) in a further" in \
        by["fluke"].reasons[0] and not by["fluke"].timing_only
    assert by["lossy"] == {c.algorithm: c for c in first}["lossy"]  # recall needs no second look
    assert not gate.gate_passes(list(by.values())) and gate.gate_passes([by["fluke"]])
    # not measured again (say, it failed to import the second time): the first verdict stands
    assert gate.confirm(first, [])[0] == first[0]


def test_failed_run_now_is_a_regression_and_missing_fails_unless_allowed():
    base = _session(_setting("a", 1.0), _setting("b", 1.0))
    failed = _setting("a", 1.0)
    failed.error = "query: RuntimeError: boom"
    comparisons = gate.compare(base, _session(failed))
    assert _verdicts(comparisons) == {"a": "regression", "b": "missing"}
    only_missing = gate.compare(base, _session(_setting("a", 1.0, seed=3)))
    assert not gate.gate_passes(only_missing) and gate.gate_passes(only_missing, allow_missing=True)


def test_session_json_round_trip():
    s = _session(_setting("a", 1.0), unavailable={"x": "why"})
    back = session_from_json(json.loads(json.dumps(session_to_json(s))), "mem")
    assert back.unavailable == {"x": "why"} and back.settings[0].key == s.settings[0].key
    np.testing.assert_array_equal(back.settings[0].rounds[2].pass_times_ns, s.settings[0].rounds[2].pass_times_ns)


# ---------------------------------------------------------------- end to end through gate.py

@pytest.fixture(scope="module")
def baseline(data_dir: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gate") / "baseline.json"
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


def test_baseline_has_provenance_and_every_pass(baseline: Path):
    doc = json.loads(baseline.read_text())
    assert doc["provenance"]["dataset_checksum"] and doc["provenance"]["cpu_model"]
    (s,) = doc["settings"]
    assert s["algorithm"] == "kdtree" and "scikit-learn" in s["provenance"]["library_versions"]
    assert len(s["rounds"]) == 4 and all(len(r["pass_times_ns"]) == 3 for r in s["rounds"])
    assert all(len(r["reference_pass_times_ns"]) == 6 for r in s["rounds"])  # two bracketing runs of 3 passes
    assert read_baseline(baseline).settings[0].recall() == 1.0


def test_baseline_against_itself_passes(baseline: Path, data_dir: Path, tmp_path: Path):
    code, out, root, md = _compare(baseline, data_dir, tmp_path)
    assert code == 0, out
    assert root.get("failures") == "0" and _case(root, "kdtree").find("failure") is None
    assert "regression gate: PASSED" in md and "| ok |" in md


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

    def fit(self, X):
        with open({count!r}, "a") as f:
            f.write("x")
        self._slow = os.path.getsize({count!r}) <= {rounds}
        super().fit(X)

    def query(self, q, k):
        return super().query(q, k) if self._slow else _slow._Inner.query(self, q, k)
'''


def test_a_slowdown_of_one_session_only_is_not_confirmed(baseline: Path, data_dir: Path, tmp_path: Path):
    # The 2x slowdown of the first session is far beyond a 30 % tolerance; the unchanged kdtree of the
    # confirmation session is within it even on this noisy VM (where one session in ten of unchanged
    # code strays beyond 10 %: the reason confirmation exists).
    slow = write_wrapper(tmp_path / "slow", "kdtree", [ALGORITHMS_DIR], factor=2.0)
    (tmp_path / "algos").mkdir()
    (tmp_path / "algos" / "kdtree.py").write_text(FIRST_SESSION_SLOW.format(
        slow=str(slow), count=str(tmp_path / "fits"), rounds=3))
    code, out, root, md = _compare(baseline, data_dir, tmp_path, "--algorithms-dir", tmp_path / "algos",
                                   "--rounds", "3", "--qps-tolerance", "0.3")
    assert code == 0, out
    assert (tmp_path / "fits").read_text() == "x" * 6  # two sessions of 3 rounds
    assert re.search(r"^ok\s+kdtree.*not confirmed: normalised QPS -[3-9]\d\.\d%", out, re.M), out
    assert _case(root, "kdtree").find("failure") is None and "regression gate: PASSED" in md
    # --confirm 0: the first session decides, and no second one runs
    (tmp_path / "fits").unlink()
    code, out, _, _ = _compare(baseline, data_dir, tmp_path, "--algorithms-dir", tmp_path / "algos", "--rounds", "2",
                               "--confirm", "0")
    assert (tmp_path / "fits").read_text() == "x" * 2 and "confirmed" not in out, out


def test_lowered_recall_fails(baseline: Path, data_dir: Path, tmp_path: Path):
    write_wrapper(tmp_path / "algos", "kdtree", [ALGORITHMS_DIR], drop=1)  # k=10: recall 1.0 -> 0.9
    code, out, root, _ = _compare(baseline, data_dir, tmp_path, "--algorithms-dir", tmp_path / "algos",
                                  "--rounds", "2")  # recall needs no interval: fewer rounds suffice
    assert code == 1, out
    failure = _case(root, "kdtree").find("failure")
    assert failure is not None and "recall down 0.1000" in failure.get("message")


def test_uniformly_2x_slower_machine_passes(baseline: Path, data_dir: Path, tmp_path: Path):
    # A busier machine, slowing the reference and every algorithm about alike: a CPU hog shares the
    # one core the benchmark children are pinned to, so the scheduler gives them about half of it.
    # Not exactly alike: sharing a core costs kdtree more than the reference (probably because
    # its tree walk depends more on the caches and branch predictors the hog disturbs): in 6 runs
    # here, kdtree's normalised QPS came out 3.5 % to 16 % lower. The tolerance is widened to 30 % for that.
    # The raw drop is ~50 %, so without the reference normalisation this test fails.
    core = available_cores()[0]
    hog = subprocess.Popen([sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True: pass"])
    try:
        code, out, root, _ = _compare(baseline, data_dir, tmp_path, "--qps-tolerance", "0.3")
    finally:
        hog.kill()
        hog.wait()
    factor = float(re.search(r"machine factor \(reference QPS now / then\): ([\d.]+)", out).group(1))
    assert factor < 0.85, out  # the machine really was slower (~0.5 when nothing else runs)...
    assert code == 0, out      # ...and that is not a regression
    assert root.get("failures") == "0"


def test_one_warm_parent_per_algorithm_for_the_whole_session(data_dir: Path, tmp_path: Path):
    """Every round's build settings and reference runs are children forked from one warm parent per
    algorithm, started once for the session (its log is rewritten whenever a parent starts)."""
    work = tmp_path / "work"
    r = call(main, "--dataset", DATASET, "--algorithm", "kdtree", "--rounds", "3", "--runs", "1", "-q",
             "--data-dir", data_dir, "--work-dir", work, "--save-baseline", tmp_path / "b.json")
    assert r.code == 0, r.err
    forked = {part: (work / part / DATASET / "10" / "logs" / algorithm / "warm-parent.threads=1.log").read_text()
              .count("forked child") for part, algorithm in (("suite", "kdtree"), ("reference", "bruteforce"))}
    assert forked == {"suite": 3, "reference": 6}, forked  # per round: one build, a reference run before and after


def test_missing_algorithm_is_reported(baseline: Path, data_dir: Path, tmp_path: Path):
    algos = tmp_path / "algos"
    algos.mkdir()
    (algos / "kdtree.py").write_text('raise ImportError("simulated: library not installed")\n')
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


@pytest.mark.parametrize("content, expected", [
    ("not json", "is not readable JSON"),
    ('{"format": "other"}', "'format' must be 'annbench-gate-baseline'"),
    ('{"format": "annbench-gate-baseline", "version": 1, "suite": {"dataset": "x"}}', "'suite' lacks algorithms"),
])
def test_bad_baseline_is_a_one_line_error(tmp_path: Path, content: str, expected: str):
    bad = tmp_path / "b.json"
    bad.write_text(content)
    r = call(main, "--baseline", bad, "--current", bad)
    assert r.code == 2 and expected in r.err and str(bad) in r.err and len(r.err.strip().splitlines()) == 1


def test_suite_option_differing_from_baseline_is_an_error(baseline: Path, data_dir: Path):
    r = call(main, "--baseline", baseline, "--data-dir", data_dir, "-k", "5")
    assert r.code == 2 and "differs from the baseline's k=10" in r.err


def test_readme_workflow_is_the_shipped_workflow_and_runs_the_gate():
    import yaml

    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    shipped = (REPO / ".github" / "workflows" / "annbench-gate.yml").read_text()
    assert f"```yaml\n{shipped}```" in readme
    steps = yaml.safe_load(shipped)["jobs"]["gate"]["steps"]
    script = "\n".join(s.get("run", "") for s in steps)
    assert "gate.py --save-baseline" in script and "gate.py --baseline" in script
    assert "--markdown" in script and "GITHUB_STEP_SUMMARY" in script and "gh pr comment" in script
