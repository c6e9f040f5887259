"""Keeping numerical libraries to the thread count a run asks for."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

#: Environment variables read by OpenMP, OpenBLAS, MKL, BLIS, Accelerate, numexpr and numba at load time.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")


def pin_environment(threads: int) -> None:
    """Set every thread variable to ``threads``; call before the libraries are imported."""
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(threads)


@contextlib.contextmanager
def limited_threads(threads: int) -> Iterator[None]:
    """Limit the BLAS and OpenMP pools already loaded (threadpoolctl) for the duration."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield


def threads_in_argv(argv: list[str]) -> int:
    """The ``--threads N`` (or ``--threads=N``) of a command line, 1 when absent or not a number.

    For pinning the thread variables before numpy loads; the command's own parser checks the value."""
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv) and argv[i + 1].isdigit():
            return max(1, int(argv[i + 1]))
        if a.startswith("--threads=") and a.split("=", 1)[1].isdigit():
            return max(1, int(a.split("=", 1)[1]))
    return 1
