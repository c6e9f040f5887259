"""annbench: a benchmark harness for approximate-nearest-neighbour search libraries."""

__version__ = "0.1.0"
