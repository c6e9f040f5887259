"""QPS across processes (``--processes P``): one query setting's timed passes in P processes forked from the
build's child, one after another, each measuring as the child would (warm-up, calibration, ``runs`` passes).

Which process measures moves QPS on this kind of machine by more than the passes of one process vary
(README: QPS across processes), so a setting's QPS is the mean of P processes' (see
:func:`annbench.execute.evaluate.process_speed`). Where the adapter can save its index, the child saves it
once after the build and each process loads it into memory of its own (``process_index = loaded``);
otherwise each process searches the index it inherited copy-on-write from the child (``forked``: the
same physical pages). The processes run one at a time, so none shares the core with another. A process
that fails raises RuntimeError here with its traceback; each dies with the child (``PR_SET_PDEATHSIG``)
and is killed and reaped if this returns or raises first.
"""

from __future__ import annotations

import os
import pickle
import signal
import traceback
from collections.abc import Callable
from typing import Any

from annbench.core.processes import die_with_parent
from annbench.execute.measure import PassMeasurement


def in_processes(n: int, measure: Callable[[Any], PassMeasurement],
                 searcher: Callable[[], Any]) -> list[PassMeasurement]:
    """``measure(searcher())`` in each of ``n`` processes forked from this one, one after another."""
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
            raise RuntimeError(f"measuring process {i + 1} of {n} (pid {pid}) failed: {payload}")
        out.append(payload)
    return out
