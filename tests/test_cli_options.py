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


def _actions(parser) -> dict[str, object]:  # an argparse parser
    """Every option string of ``parser`` and of its subcommands → its action."""
    import argparse

    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.update({f"{sub.prog} {k}": v for k, v in _actions(sub).items()})
        found.update({f"{parser.prog} {s}": action for s in action.option_strings})
    return found


def test_shared_options_are_declared_once_and_mean_the_same_everywhere() -> None:
    """Each shared option comes from :mod:`annbench.cli.options` (one declaration, one help text) in
    every subcommand that takes it; no CLI module declares one of them itself."""
    import re

    from annbench.__main__ import SUBCOMMANDS
    from annbench.cli.options import OPTIONS
    from annbench.core.paths import PACKAGE_DIR

    flags = {flag: kwargs for spec_flags, kwargs in OPTIONS.values() for flag in spec_flags}
    seen = set()
    for name, (module, _) in SUBCOMMANDS.items():
        import importlib

        parser = importlib.import_module(module).parser(f"annbench {name}")
        for where, action in _actions(parser).items():
            flag = where.rsplit(" ", 1)[1]
            if flag in flags:
                seen.add(flag)
                assert action.help == flags[flag]["help"], (where, action.help)
    assert seen == set(flags), set(flags) - seen  # every shared option is used somewhere
    declared = re.compile(r"add_argument\(\s*(?:\"-\w\", )?\"(" + "|".join(map(re.escape, flags)) + r")\"")
    own = {p.name: declared.findall(p.read_text())
           for p in (PACKAGE_DIR / "cli").glob("*.py") if p.name != "options.py"}
    assert {k: v for k, v in own.items() if v} == {}


@pytest.mark.parametrize("argv", [["run", "--list-algorithms", "-q", "--configs-dir", "x"],
                                  ["plot", "--table", "csv", "-v", "--results", "nowhere"],
                                  ["dataset", "list", "-v", "--data-dir", "d"],
                                  ["gate", "--save-baseline", "b.json", "--algorithms-dir", "a", "-q"]])
def test_shared_options_after_the_subcommand(argv: list[str]) -> None:
    import importlib

    from annbench.__main__ import SUBCOMMANDS

    args = importlib.import_module(SUBCOMMANDS[argv[0]][0]).parser().parse_args(argv[1:])
    given = {a.lstrip("-").replace("-", "_") for a in argv[1:] if a.startswith("--") and len(a) > 3}
    assert all(hasattr(args, g) for g in given)
    assert (getattr(args, "verbose", 0) == 1) or getattr(args, "quiet", False)


def test_output_cut_short_by_its_reader_ends_quietly() -> None:
    """``annbench run --list-algorithms --markdown | head -0``: no traceback, the shell's 141. The
    reading end is closed before the command starts, so its first write finds no reader."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "annbench", "run", "--list-algorithms", "--markdown"],
                              stdout=write, stderr=subprocess.PIPE, timeout=600)  # imports every library
    finally:
        os.close(write)
    assert proc.returncode == 141 and proc.stderr.decode() == "", proc.stderr.decode()
