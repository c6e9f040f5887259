"""The regression gate's pure parts: verdicts on synthetic sessions, the baseline file, bad baselines and the
shipped workflow. Nothing is measured here, so these tests do not wait for the machine's exclusive lock
(the end-to-end tests, which compare timings, are in test_gate.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, call

from annbench.cli.gate import main
from annbench.gate import verdicts as gate
from annbench.gate.baseline import session_from_json, session_to_json
from annbench.gate.verdicts import Round, Session, SettingRecord, Tolerances

# ---------------------------------------------------------------- synthetic sessions (pure)

def _round(recall: float, setting_ns: np.ndarray, reference_ns: np.ndarray) -> Round:
    """A round whose processes each made one pass of 1000 queries taking these times, and one of the reference
    (process j's: ``reference_ns[j]``)."""
    qps, reference = 1000 / (setting_ns * 1e-9), 1000 / (reference_ns * 1e-9)
    return Round(recall, setting_ns.astype(np.int64), qps, reference, qps[:, None], reference[:, None])


def _setting(algorithm: str, factor: float, recall: float = 1.0, machine: float = 1.0, seed: int = 0,
             rounds: int = 4, processes: int = 3, params: dict | None = None, noise: float = 0.03) -> SettingRecord:
    """Per process one pass: reference ~1 ms, setting ~2 ms × factor, all × machine, with 3 % process noise."""
    rng = np.random.default_rng(seed)
    rs = [_round(recall, 2e6 * factor * machine * rng.lognormal(0, noise, processes),
                 1e6 * machine * rng.lognormal(0, noise, processes)) for _ in range(rounds)]
    return SettingRecord(algorithm, params or {"n": 1}, {}, 1000, rs)


def _session(*settings: SettingRecord, unavailable: dict | None = None) -> Session:
    return Session({"rounds": 4, "runs": 1, "processes": 3}, {}, list(settings), unavailable or {})


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
    c = gate.compare(base, _session(_setting("a", 1.02, seed=2)))[0]
    assert c.verdict == gate.OK and c.ratio > 1 - Tolerances().qps  # a 2 % drop is below the 5 % tolerance
    assert gate.compare(base, _session(_setting("a", 1.0, recall=0.995, seed=2)))[0].verdict == gate.OK


def test_the_gate_target_a_ten_percent_slowdown_is_flagged_and_its_figures_are_the_process_ratio():
    """The slowdown benchmarks/gate.py injects (+10 % time, QPS / 1.1) with this project's process noise."""
    from annbench.analyse.processes import process_ratio

    base = _session(_setting("a", 1.0, seed=1))
    now = _session(_setting("a", 1.1, seed=2))
    (c,) = gate.compare(base, now)
    assert c.verdict == gate.REGRESSION and c.timing_only and c.ratio == pytest.approx(1 / 1.1, abs=0.03)
    r = process_ratio(base.settings[0].round_values(), now.settings[0].round_values())
    assert (c.ratio, c.ratio_low, c.ratio_high) == (r.ratio, r.low, r.high)
    assert len(now.settings[0].round_values()) == 4  # the rounds are the replicates, each the mean of 3 processes


def test_normalised_values_by_hand():
    # Three passes in each of two processes, each pass over the reference's just before it: process 1 at
    # 100/20, 50/10 (a slow step that took both), 100/25 (it fell between them): 5, 5, 4, median 5; process 2
    # at 60.5/10 twice and 121/10: 6.05; the round's value their geometric mean sqrt(5 · 6.05) = 5.5. A second
    # round of one pass a process, 120/30 and 120/120: 4 and 1, geometric mean 2.
    r = Round(1.0, np.ones(6, np.int64), np.array([100.0, 121.0]), np.array([25.0, 10.0]),
              np.array([[100.0, 50.0, 100.0], [60.5, 60.5, 121.0]]), np.array([[20.0, 10.0, 25.0], [10.0] * 3]))
    np.testing.assert_allclose(r.normalised(), [5.0, 6.05])
    r2 = Round(1.0, np.ones(2, np.int64), np.array([120.0, 120.0]), np.array([30.0, 120.0]),
               np.array([[120.0], [120.0]]), np.array([[30.0], [120.0]]))
    np.testing.assert_allclose(SettingRecord("a", {}, {}, 1, [r, r2]).round_values(), [5.5, 2.0])


def test_processes_of_one_round_are_not_independent_replicates():
    """Two rounds a side that disagree by ±5-7 % (their builds) while each round's four
    processes agree to 1 %: a 7.7 % drop is within the round-to-round noise, though the 8 processes a side,
    taken as independent, would call it a significant regression."""
    from annbench.analyse.processes import process_ratio

    processes = np.array([0.99, 1.0, 1.0, 1.01])

    def session(factor: float, rounds: tuple[float, float]) -> SettingRecord:
        return SettingRecord("a", {}, {}, 1000, [_round(1.0, 2e6 * factor * m * processes, np.full(4, 1e6))
                                                 for m in rounds])

    then, now = session(1.0, (0.95, 1.05)), session(1.08, (0.93, 1.07))
    c = gate.compare_setting(then, now, Tolerances())
    assert c.verdict == gate.OK and c.ratio < 0.95 and c.ratio_high > 1, c
    every = process_ratio(*(np.concatenate([r.normalised() for r in s.rounds]) for s in (then, now)))
    assert every.high < 1  # what the processes alone would say


def test_drop_beyond_tolerance_but_within_noise_is_not_flagged():
    """Huge process-to-process noise: a 20 % point drop whose interval includes 1 is not a regression."""
    rng = np.random.default_rng(0)

    def noisy(factor: float) -> SettingRecord:
        rs = [_round(1.0, 2e6 * factor * rng.lognormal(0, 0.4, 3), np.full(3, 1e6)) for _ in range(2)]
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
    np.testing.assert_array_equal(back.settings[0].round_values(), s.settings[0].round_values())


# ---------------------------------------------------------------- end to end through gate.py

BAD_ROUND = ('{{"format": "annbench-gate-baseline", "version": 3, "suite": {{"dataset": "x", "algorithms": null, '
             '"preset": "q", "k": 1, "batch": false, "threads": 1, "runs": 1, "rounds": 2, "reference": "b", '
             '"processes": 2}}, "settings": [{{"algorithm": "a", "build_params": {{}}, "query_params": {{}}, '
             '"n_queries": 5, "rounds": [{{"recall": 1, "pass_times_ns": [5, 5], "process_qps": {process}, '
             '"reference_qps": {reference}, "pass_qps": {passes}, "reference_pass_qps": [[3], [3]]}}]}}]}}')


@pytest.mark.parametrize("content, expected", [
    ("not json", "is not readable JSON"),
    ('{"format": "other"}', "'format' must be 'annbench-gate-baseline'"),
    ('{"format": "annbench-gate-baseline", "version": 3, "suite": {"dataset": "x"}}', "'suite' lacks algorithms"),
    ('{"format": "annbench-gate-baseline", "version": 2}', "version 2 is not supported; valid: 3"),
    (BAD_ROUND.format(process='[1, -2]', reference='[3, 3]', passes='[[1], [2]]'),
     "settings[0].rounds[0].process_qps must be a non-empty list of positive numbers"),
    (BAD_ROUND.format(process='[1, 2]', reference='[3]', passes='[[1], [2]]'),
     "settings[0].rounds[0].reference_qps has 1 values, process_qps 2; valid: one reference QPS per measuring process"),
    (BAD_ROUND.format(process='[1, 2]', reference='[3, 3]', passes='[[1], [2, 2]]'),
     "settings[0].rounds[0].pass_qps must be 2 equally long non-empty lists (one per measuring process)"),
    (BAD_ROUND.format(process='[1, 2]', reference='[3, 3]', passes='[[1, 1], [2, 2]]'),
     "settings[0].rounds[0].reference_pass_qps has 1 passes a process, pass_qps 2; valid: as many"),
])
def test_bad_baseline_is_a_one_line_error(tmp_path: Path, content: str, expected: str):
    bad = tmp_path / "b.json"
    bad.write_text(content)
    r = call(main, "--baseline", bad, "--current", bad)
    assert r.code == 2 and expected in r.err and str(bad) in r.err and len(r.err.strip().splitlines()) == 1


def test_readme_workflow_is_the_shipped_workflow_and_runs_the_gate():
    import yaml

    readme = (REPO / "README.md").read_text()
    shipped = (REPO / ".github" / "workflows" / "annbench-gate.yml").read_text()
    assert f"```yaml\n{shipped}```" in readme
    steps = yaml.safe_load(shipped)["jobs"]["gate"]["steps"]
    script = "\n".join(s.get("run", "") for s in steps)
    assert "gate.py --save-baseline" in script and "gate.py --baseline" in script
    assert "--markdown" in script and "GITHUB_STEP_SUMMARY" in script and "gh pr comment" in script


@pytest.mark.parametrize("value, expected", [("0", "0 is out of range; valid: an integer >= 1"),
                                             ("two", "'two' is not an integer; valid: an integer >= 1")])
def test_bad_process_count_is_a_one_line_error_and_nothing_is_written(tmp_path: Path, value: str, expected: str):
    import contextlib
    import io

    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stderr(err):
        main(["--save-baseline", str(tmp_path / "b.json"), "--processes", value])
    assert exit_info.value.code == 2 and "--processes" in err.getvalue() and expected in err.getvalue()
    assert len(err.getvalue().strip().splitlines()) == 1 and not (tmp_path / "b.json").exists()
