"""Concurrent clients as processes forked after the build (``--client-kind process``): the parent side.

For libraries whose Python binding holds the GIL, threads of one process cannot query at once; forked
processes can. Each fork gets the built index copy-on-write and its own handle; the forked body is
:mod:`annbench.execute.client_child`. The parent forks every client, waits until each says it is ready,
then sends them all the same window (so each starts its ramp at once), reads their traces and reaps them.
Forks that have not ended when this returns or raises are killed and reaped; they also die with their
parent (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from annbench.backends.adapter import Adapter
from annbench.execute.client_child import WINDOW, Body, client_body, read_exactly, serve
from annbench.execute.clients import ClientTrace, LevelMeasurement, Window, block_size, capacity, offsets, open_window
from annbench.plan.grid import ClientKind


@dataclass
class _Fork:
    pid: int
    ready: int
    go: int
    out: int
    reaped: bool = False


def process_clients(adapter: Adapter, rows: Sequence[np.ndarray], k: int, window_s: float,
                    cores: Sequence[tuple[int, ...] | None], latency_ns: float | None,
                    every: int = 1) -> LevelMeasurement:
    """``len(cores)`` clients, each a process forked from this one, client i pinned to ``cores[i]``, timing one
    query in ``every``, through its own handle (made and closed in the fork). A client that fails raises
    RuntimeError here with its traceback."""
    n = len(cores)
    block = block_size(latency_ns)
    size = capacity(window_s, latency_ns, block)
    starts = offsets(n, len(rows))
    bodies = [client_body(adapter, rows, k, starts[i], block, size, every, cores[i]) for i in range(n)]
    window, traces = forked(bodies, window_s)
    return LevelMeasurement(n, ClientKind.PROCESS, window, cast(list[ClientTrace], traces))


def forked(bodies: Sequence[Body], window_s: float) -> tuple[Window, list[object]]:
    """One process forked from this one per body, each running its body
    (:func:`annbench.execute.client_child.serve`); once every one is ready, the same window (a ramp from
    now, then ``window_s``) sent to all. The window and what each body returned, in order. A body that
    fails raises RuntimeError here with its traceback."""
    forks: list[_Fork] = []
    try:
        for body in bodies:
            ready_r, ready_w = os.pipe()
            go_r, go_w = os.pipe()
            out_r, out_w = os.pipe()
            parent = os.getpid()
            pid = os.fork()
            if pid == 0:  # the fork: never returns
                for f in forks:  # its siblings' pipe ends, inherited from the parent
                    for fd in (f.ready, f.go, f.out):
                        os.close(fd)
                os.close(ready_r)
                os.close(go_w)
                os.close(out_r)
                serve(body, parent, ready_w, go_r, out_w)
            for fd in (ready_w, go_r, out_w):
                os.close(fd)
            forks.append(_Fork(pid, ready_r, go_w, out_r))
        for i, f in enumerate(forks):
            if read_exactly(f.ready, 1) != b"r":
                raise RuntimeError(f"client process {i} (pid {f.pid}) failed before it started: {_error(f)}")
        window = open_window(window_s)
        for f in forks:
            os.write(f.go, WINDOW.pack(window.start_ns, window.end_ns))
        results = []
        for i, f in enumerate(forks):
            try:
                with os.fdopen(os.dup(f.out), "rb") as pipe:
                    status, payload = pickle.load(pipe)
            except (EOFError, pickle.UnpicklingError):
                _, code = os.waitpid(f.pid, 0)
                f.reaped = True
                raise RuntimeError(f"client process {i} (pid {f.pid}) ended without its trace ({_ending(code)}); "
                                   f"its library may not survive a fork (Adapter.fork_clients)") from None
            if status != "ok":
                raise RuntimeError(f"client process {i} (pid {f.pid}) failed: {payload}")
            results.append(payload)
        for f in forks:
            os.waitpid(f.pid, 0)
            f.reaped = True
        return window, results
    finally:
        for f in forks:
            for fd in (f.ready, f.go, f.out):
                os.close(fd)
            if not f.reaped:
                try:
                    os.kill(f.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                os.waitpid(f.pid, 0)


def _error(f: _Fork) -> str:
    """What a fork that ended before it was ready sent (its traceback), or that it sent nothing."""
    try:
        with os.fdopen(os.dup(f.out), "rb") as pipe:
            status, payload = pickle.load(pipe)
        return str(payload) if status != "ok" else "it ended without saying why"
    except (EOFError, OSError, pickle.UnpicklingError):
        return "it ended without saying why (see the log)"


def _ending(status: int) -> str:
    """A wait status in words: ``killed by SIGSEGV``, ``exit code 1``."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
