"""Wrapper adapters that inject a known slowdown or recall loss into an existing adapter.

:func:`write_wrapper` writes ``<folder>/<algorithm>.py``; passing the folder as
``--algorithms-dir`` makes it shadow the real adapter under the same name, parameters and
grid, so a gate run sees exactly the injected change. Used by the gate's tests and benchmark.

Slowdown: after each ``query`` / ``batch_query`` call that used ``t`` of CPU time, the wrapper
busy-waits until it has used another ``(factor - 1) * t`` (a spin on ``time.thread_time_ns``,
precise to about a microsecond, unlike ``sleep``), so the library's work is multiplied by
``factor`` on any machine. CPU time, not wall time: on a loaded machine a wall-clock spin
overshoots whenever the process is preempted inside it. Recall loss: the
last ``drop`` ids of every answer are replaced by ``-1``.
"""

from __future__ import annotations

from pathlib import Path

from annbench.discovery import adapter_file, module_name
from annbench.errors import UserError

TEMPLATE = '''"""Injected by annbench.inject: {algorithm} x{factor} slower, last {drop} ids dropped."""

import importlib.util
import inspect
import sys
import time

import numpy as np

from annbench.adapter import Adapter

_spec = importlib.util.spec_from_file_location("annbench_algorithms._inner_{module}", {source!r})
_inner = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _inner
_spec.loader.exec_module(_inner)
_Inner = next(c for c in vars(_inner).values() if inspect.isclass(c) and issubclass(c, Adapter)
              and c.__module__ == _inner.__name__ and not inspect.isabstract(c))
_EXTRA = {factor!r} - 1.0
_DROP = {drop!r}


def _spin_after(start):
    clock = time.thread_time_ns
    end = clock() + int((clock() - start) * _EXTRA)
    while clock() < end:
        pass


def _dropped(ids):
    if not _DROP:
        return ids
    ids = np.array(ids, dtype=np.int64)
    ids[..., -_DROP:] = -1
    return ids


class Injected(_Inner):
    def query(self, q, k):
        start = time.thread_time_ns()
        ids = super().query(q, k)
        _spin_after(start)
        return _dropped(ids)

    def batch_query(self, Q, k):
        start = time.thread_time_ns()
        ids = super().batch_query(Q, k)
        _spin_after(start)
        return _dropped(ids)
'''


def write_wrapper(folder: str | Path, algorithm: str, source_dirs: list[Path], factor: float = 1.0,
                  drop: int = 0) -> Path:
    """Write a wrapper of ``algorithm`` (found in ``source_dirs``) into ``folder``; returns its path."""
    if factor < 1.0 or drop < 0:
        raise UserError(f"slowdown factor {factor} / drop {drop}; valid: factor >= 1, drop >= 0")
    source = adapter_file(algorithm, source_dirs)
    if source is None:
        raise UserError(f"algorithm {algorithm!r} has no adapter in {', '.join(str(d) for d in source_dirs)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module_name(algorithm)}.py"
    path.write_text(TEMPLATE.format(algorithm=algorithm, module=module_name(algorithm), source=str(source.resolve()),
                                    factor=float(factor), drop=int(drop)))
    return path
