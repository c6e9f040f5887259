"""annbench's version (``annbench.__version__``; recorded with every result)."""

__version__ = "0.1.0"
