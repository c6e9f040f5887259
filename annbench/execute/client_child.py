"""The body of one client process forked after the build (``--client-kind process``): what runs in the
fork, nothing else. The parent side is :mod:`annbench.execute.client_processes`.

The fork shares the built index with the child that measured it, copy-on-write, and queries it through
its own handle (:meth:`annbench.backends.adapter.Adapter.client`). It dies with that child
(``PR_SET_PDEATHSIG``), pins itself, says it is ready, waits for the window, runs
:func:`annbench.execute.clients.client_loop` with the garbage collector off, closes its handle, sends its
trace back pickled, and leaves with ``os._exit`` (never the interpreter's teardown, which would run the
parent's handlers).
"""

from __future__ import annotations

import os
import pickle
import struct
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

import numpy as np

from annbench.backends.adapter import Adapter
from annbench.core.processes import die_with_parent
from annbench.execute.clients import ClientTrace, Window, client_loop, close_handles, pin_here
from annbench.execute.measure import collector_off

#: The window as the parent sends it: start and end, ``perf_counter_ns`` (a system-wide clock on Linux).
WINDOW = struct.Struct("qq")

#: What a fork runs: given ``start`` (say ready, wait for the window, return it), its result to send back.
Body = Callable[[Callable[[], Window]], object]


def read_exactly(fd: int, size: int) -> bytes:
    """``size`` bytes from ``fd``, fewer only at end of file."""
    data = b""
    while len(data) < size and (chunk := os.read(fd, size - len(data))):
        data += chunk
    return data


def client_body(adapter: Adapter, rows: Sequence[np.ndarray], k: int, offset: int, block: int, size: int,
                every: int, cores: tuple[int, ...] | None) -> Body:
    """One client in a fork, timing one query in ``every``, through its own handle (``adapter.client()``,
    closed after its loop): its :class:`ClientTrace`."""

    def body(start: Callable[[], Window]) -> ClientTrace:
        pinned = pin_here(cores)
        handle = adapter.client()
        try:
            with collector_off():
                trace = client_loop(handle.query, rows, k, offset, start, block, size, every)
        finally:
            close_handles(adapter, [handle])
        trace.cores, trace.own_handle = pinned, handle is not adapter
        return trace

    return body


def serve(body: Body, parent_pid: int, ready: int, go: int, out: int) -> NoReturn:
    """Run ``body`` in this forked process; ``ready``, ``go``, ``out``: its ends of the three pipes."""
    code = 1
    try:
        die_with_parent(parent_pid)

        def start() -> Window:
            os.write(ready, b"r")
            return Window(*WINDOW.unpack(read_exactly(go, WINDOW.size)))

        message: tuple[str, object] = ("ok", body(start))
        code = 0
    except BaseException:  # reported to the parent, which raises it
        message = ("error", traceback.format_exc())
    try:
        with os.fdopen(out, "wb") as f:
            pickle.dump(message, f, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        os._exit(code)
