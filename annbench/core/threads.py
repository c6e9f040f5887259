"""Keeping numerical libraries to the thread count a run asks for."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

#: Environment variables read by OpenMP, OpenBLAS, MKL, BLIS, Accelerate, numexpr and numba at load time.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")


def available_cores() -> list[int]:
    """The cores this process may run on (its affinity: a process pinned to one core of many gets one)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


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
    """The largest count of a command line's ``--threads N`` or ``--threads N,N,...`` (also
    ``--threads=...``); 1 when absent or not a number.

    For pinning this process's thread variables before numpy loads; the command's own parser checks
    the value, and each sweep's child processes pin their own count
    (:func:`annbench.execute.isolation.child_environment`), so nothing measured runs under this one."""
    def largest(text: str) -> int:
        return max([1, *(int(t) for t in text.split(",") if t.strip().isdigit())])

    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return largest(argv[i + 1])
        if a.startswith("--threads="):
            return largest(a.split("=", 1)[1])
    return 1
