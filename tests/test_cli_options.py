"""Small things a user trips over (issue 13, section 6): no abbreviated options in any CLI, and the
options every ``dataset.py`` subcommand shares work before and after the subcommand."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import call

from annbench.cli.compare import main as compare_main
from annbench.cli.dataset import main as dataset_main
from annbench.cli.encode import main as encode_main
from annbench.cli.gate import main as gate_main
from annbench.cli.plot import main as plot_main
from annbench.cli.run import main as run_main


@pytest.mark.parametrize(("main", "args", "prefix"), [
    (run_main, ["--thread", "2"], "--thread"),             # was taken as --threads 2 (while run.py pins 1)
    (run_main, ["--run", "2", "--algorithm", "bruteforce"], "--run"),
    (plot_main, ["--datase", "x"], "--datase"),
    (compare_main, ["--dataset", "x", "--min-rec", "0.5"], "--min-rec"),
    (gate_main, ["--save-baseline", "b.json", "--thread", "2"], "--thread"),
    (encode_main, ["--from", "x", "--dim", "8", "--epoch", "2"], "--epoch"),
    (dataset_main, ["--verb", "list"], "--verb"),
    (dataset_main, ["create", "--from", "a.npy", "--name", "n", "--distance", "ip", "--test-size", "5", "--forc"],
     "--forc"),
])
def test_abbreviated_options_are_errors(main, args: list[str], prefix: str, tmp_path: Path, capsys) -> None:
    results = ["--results", tmp_path / "none"] if main in (run_main, plot_main, compare_main) else []
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in [*args, *results]])
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and f"unrecognized arguments: {prefix}" in line, line
    assert not (tmp_path / "none").exists()


def test_shared_dataset_options_before_or_after_the_subcommand(tmp_path: Path) -> None:
    import numpy as np

    np.save(tmp_path / "a.npy", np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32))
    before, after = tmp_path / "before", tmp_path / "after"
    create = ["--from", tmp_path / "a.npy", "--name", "mine", "--distance", "euclidean", "--test-size", 20]
    assert call(dataset_main, "--data-dir", before, "create", *create).code == 0
    r = call(dataset_main, "create", *create, "--data-dir", after, "-v")
    assert r.code == 0, r.err
    assert (before / "mine.hdf5").is_file() and (after / "mine.hdf5").is_file()
    listed = call(dataset_main, "list", "--data-dir", after)
    assert listed.code == 0 and "mine" in listed.out
    # given in both places, the one after the subcommand is used (not overwritten by the default)
    both = call(dataset_main, "--data-dir", tmp_path / "nowhere", "describe", "mine", "--data-dir", after)
    assert both.code == 0 and str(after / "mine.hdf5") in both.out
    kept = call(dataset_main, "--data-dir", before, "describe", "mine")
    assert kept.code == 0 and str(before / "mine.hdf5") in kept.out
