"""Where things live: the project's folders and the user-selectable defaults."""

from __future__ import annotations

import os
from pathlib import Path

#: The imported ``annbench`` package and the folder that holds it: a checkout's root, or ``site-packages``
#: of an installation. Child processes get it first on their path, so they import this same annbench.
PACKAGE_DIR = Path(__file__).resolve().parent.parent
PROJECT_ROOT = PACKAGE_DIR.parent

#: The shipped backends: package data of annbench, found the same way from a checkout or a wheel.
BACKENDS_DIR = PACKAGE_DIR / "backends"
#: Adapters shipped with annbench (plain files, loaded by path; see annbench.backends.discovery).
ALGORITHMS_DIR = BACKENDS_DIR / "algorithms"
#: Parameter grids shipped with annbench, one YAML file per algorithm.
CONFIGS_DIR = BACKENDS_DIR / "configs"

ENV_DATA_DIR = "ANNBENCH_DATA_DIR"
ENV_RESULTS_DIR = "ANNBENCH_RESULTS_DIR"
ENV_ALGORITHMS_PATH = "ANNBENCH_ALGORITHMS_PATH"
ENV_CONFIGS_PATH = "ANNBENCH_CONFIGS_PATH"
ENV_SOURCE_DIR = "ANNBENCH_SOURCE_DIR"


def default_data_dir() -> Path:
    """``$ANNBENCH_DATA_DIR`` or ``datasets/`` in the current folder."""
    return Path(os.environ.get(ENV_DATA_DIR) or "datasets")


def default_source_dir() -> Path | None:
    """``$ANNBENCH_SOURCE_DIR``: a local mirror of datasets' upstream files, or None."""
    value = os.environ.get(ENV_SOURCE_DIR)
    return Path(value) if value else None


def default_results_dir() -> Path:
    """``$ANNBENCH_RESULTS_DIR`` or ``results/`` in the current folder."""
    return Path(os.environ.get(ENV_RESULTS_DIR) or "results")


def _env_dirs(variable: str) -> list[Path]:
    return [Path(p) for p in os.environ.get(variable, "").split(os.pathsep) if p]


def algorithm_dirs(extra: list[Path] | None = None) -> list[Path]:
    """Adapter search path: ``extra``, then ``$ANNBENCH_ALGORITHMS_PATH``, then the shipped folder."""
    return [*(extra or []), *_env_dirs(ENV_ALGORITHMS_PATH), ALGORITHMS_DIR]


def config_dirs(extra: list[Path] | None = None) -> list[Path]:
    """Grid search path: ``extra``, then ``$ANNBENCH_CONFIGS_PATH``, then the shipped folder."""
    return [*(extra or []), *_env_dirs(ENV_CONFIGS_PATH), CONFIGS_DIR]
