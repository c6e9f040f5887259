"""Where things live: the project's folders and the user-selectable defaults."""

from __future__ import annotations

import os
from pathlib import Path

#: The checkout: the folder that holds ``annbench/``, ``algorithms/`` and ``configs/``.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Adapters shipped with annbench (plain files, loaded by path; see annbench.discovery).
ALGORITHMS_DIR = PROJECT_ROOT / "algorithms"
#: Parameter grids shipped with annbench, one YAML file per algorithm.
CONFIGS_DIR = PROJECT_ROOT / "configs"

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
