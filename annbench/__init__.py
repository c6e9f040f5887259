"""annbench: a benchmark harness for approximate-nearest-neighbour search libraries."""

from annbench.core.version import __version__

__all__ = ["__version__"]
