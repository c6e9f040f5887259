"""annbench: a benchmark harness for approximate-nearest-neighbour search libraries.

From Python, ``annbench.run_sweep(annbench.SweepRequest(dataset, ...))`` runs a sweep as ``annbench run`` does
and returns its outcome (:mod:`annbench.sweep.steps`).
"""

from __future__ import annotations

from typing import Any

from annbench.core.version import __version__

__all__ = ["SweepOutcome", "SweepRequest", "__version__", "run_sweep"]
#: The Python entry point, imported on first use so that ``import annbench`` stays light.
_SWEEP = ("run_sweep", "SweepRequest", "SweepOutcome")


def __getattr__(name: str) -> Any:
    if name in _SWEEP:
        from annbench.sweep import steps

        return getattr(steps, name)
    raise AttributeError(f"module 'annbench' has no attribute {name!r}")
