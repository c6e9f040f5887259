"""The Python entry point: ``annbench.run_sweep(request)`` runs what ``annbench run`` runs and returns the outcome."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import call

import annbench
from annbench.cli.run import main as run_main
from annbench.core.errors import UserError
from annbench.plan.grid import RunOptions

DATASET = "random-xs-20-euclidean"


def _request(data_dir: Path, results: Path, **options) -> annbench.SweepRequest:
    return annbench.SweepRequest(DATASET, algorithms=("bruteforce", "kdtree"), preset="quick",
                                 options=RunOptions(runs=1, min_pass_time=0, **options), data_dir=data_dir,
                                 results_dir=results, executor="inprocess")


@pytest.mark.measured  # the Python entry point and the command, both at run's defaults
def test_run_sweep_returns_the_outcome_and_the_command_sees_it_stored(data_dir: Path, tmp_path: Path) -> None:
    outcome = annbench.run_sweep(_request(data_dir, tmp_path / "results"))
    assert outcome.exit_code == 0 and not outcome.failed and outcome.already_stored == 0
    assert len(outcome.results) == outcome.prepared.plan.n_runs > 0
    assert sorted(set(outcome.frame["algorithm"])) == ["bruteforce", "kdtree"]
    assert len(outcome.frame) == outcome.prepared.plan.n_runs and (outcome.frame["recall"] == 1.0).all()
    r = call(run_main, "--dataset", DATASET, "--algorithm", "bruteforce,kdtree", "--preset", "quick", "--runs", 1,
             "--min-pass-time", 0, "--data-dir", data_dir, "--results", tmp_path / "results", "--executor",
             "inprocess", "--no-plot")
    stored = outcome.prepared.plan.n_runs
    assert r.code == 0 and f"0 runs done, 0 failed, {stored} already stored" in r.out, r.out + r.err


def test_a_bad_request_is_a_user_error_before_anything_runs(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="-k 500 exceeds the 100 neighbours"):
        annbench.run_sweep(_request(data_dir, tmp_path / "results", k=500))
    assert not (tmp_path / "results").exists()


def test_unknown_attribute_of_the_package_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="run_swept"):
        _ = annbench.run_swept
