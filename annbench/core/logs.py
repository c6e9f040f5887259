"""Logging setup shared by every process: the command line, warm parents and their children."""

from __future__ import annotations

import logging
import sys

#: Libraries that log chatter at INFO (faiss's loader, nmslib's factory registrations, ...).
NOISY_LOGGERS = ("faiss", "matplotlib", "numba", "PIL", "distributed", "tornado", "nmslib")


def setup_logging(verbosity: int) -> None:
    """Log to stderr: WARNING for ``verbosity < 0``, INFO for 0, DEBUG above; libraries kept quiet."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname).1s %(message)s", stream=sys.stderr, force=True)
    quiet_library_loggers(level)


def quiet_library_loggers(level: int = logging.INFO) -> None:
    """Keep the libraries' own loggers at WARNING (or ``level`` if that is stricter)."""
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
