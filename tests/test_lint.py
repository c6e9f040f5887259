"""The code passes the project's linter: ``ruff check`` with the configuration committed in
``pyproject.toml`` ([tool.ruff]: lines of at most 120 characters, the rule sets the code follows, and
every ``noqa`` naming a rule that would fire). ruff is in the ``test`` extra: missing, this fails."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_ruff_check_is_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, f"ruff check found problems (ruff check --fix fixes some):\n{proc.stdout}{proc.stderr}"
