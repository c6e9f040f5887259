"""QPS across processes (``--processes P``): one query setting's timed passes in P processes forked from the
build's child, one after another, each measuring as the child would (warm-up, calibration, ``runs`` passes).

Which process measures moves QPS on this kind of machine by more than the passes of one process vary
(README: What is measured), so a setting's QPS is the mean of P processes' (see
:func:`annbench.execute.evaluate.process_speed`). Each process searches an index in memory of its own:
loaded from the one the child saved where the adapter can save (``process_index = loaded``), else built
again in the process (``rebuilt``; those processes are forked before the child builds, so a library that
does not survive a fork once used, as Chroma's runtime, is fresh in them), never the child's copy-on-write
pages, which every fork would share
(``benchmarks/machine_stability.py --processes N --forked`` measures what that hides). The processes run
one at a time, so none shares the core with another. A process
that fails raises RuntimeError here with its traceback; each dies with the child (``PR_SET_PDEATHSIG``)
and is killed and reaped if this returns or raises first.
"""

from __future__ import annotations

import os
import pickle
import signal
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from annbench.core.processes import die_with_parent

T = TypeVar("T")


def in_processes(n: int, measure: Callable[[Any], T], searcher: Callable[[], Any],
                 after: Callable[[T], None] = lambda _: None) -> list[T]:
    """``measure(searcher())`` in each of ``n`` processes forked from this one, one after another; ``after``
    is given each process's result before the next is forked (so the next one inherits what it learnt)."""
    out = []
    for i in range(n):
        read, write = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the fork: never returns
            os.close(read)
            try:
                die_with_parent(parent)
                payload: tuple[str, Any] = ("ok", measure(searcher()))
            except BaseException:  # everything goes back to the parent, which raises it
                payload = ("error", traceback.format_exc())
            with os.fdopen(write, "wb") as pipe:
                pickle.dump(payload, pipe)
            os._exit(0)
        os.close(write)
        reaped = False
        try:
            with os.fdopen(read, "rb") as pipe:
                try:
                    status, payload = pickle.load(pipe)
                except (EOFError, pickle.UnpicklingError):
                    status, payload = "error", "it ended without an answer (see the log)"
            os.waitpid(pid, 0)
            reaped = True
        finally:
            if not reaped:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                os.waitpid(pid, 0)
        if status != "ok":
            raise RuntimeError(f"measuring process {i + 1} of {n} failed: {payload}")
        after(payload)
        out.append(payload)
    return out
