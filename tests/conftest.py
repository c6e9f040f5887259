"""Shared fixtures: built-in datasets built once per session, and in-process CLI calls."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: The shared upstream files beside the checkout; $ANNBENCH_SHARED_DATA for a checkout elsewhere (a git worktree).
SHARED_DATA = Path(os.environ.get("ANNBENCH_SHARED_DATA") or REPO.parent / "shared" / "data")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def call(main, *args: str) -> CliResult:
    """Run a CLI ``main`` in-process, capturing its output."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session", autouse=True)
def no_default_folders(tmp_path_factory):
    """The default data and results folders (``./datasets``, ``./results``) point at empty folders of
    the session, so no test reads or writes the checkout's own (a dataset left in ``./datasets``
    by a developer's run would otherwise change what a CLI called without ``--data-dir`` finds)."""
    from annbench.core.paths import ENV_DATA_DIR, ENV_RESULTS_DIR

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_DATA_DIR, str(tmp_path_factory.mktemp("default-datasets")))
        mp.setenv(ENV_RESULTS_DIR, str(tmp_path_factory.mktemp("default-results")))
        yield


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A data folder with the small built-ins made once for the whole session."""
    from annbench.datasets.registry import resolve

    d = tmp_path_factory.mktemp("data")
    for name in ("random-xs-20-euclidean", "random-xs-20-angular", "digits-64-euclidean"):
        resolve(name, d)
    return d


@pytest.fixture
def results_dir(tmp_path) -> Path:
    return tmp_path / "results"

