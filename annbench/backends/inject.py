"""Wrapper adapters that inject a known slowdown or recall loss into an existing adapter.

:func:`write_wrapper` writes ``<folder>/<algorithm>.py``; passing the folder as
``--algorithms-dir`` makes it shadow the real adapter under the same name, parameters and
grid, so a gate run sees exactly the injected change. Used by the gate's tests and benchmark.

Slowdown by ``factor``: the wrapper makes the library do ``factor`` times its own work, by
answering each query once and then repeating the library call on a share ``factor - 1`` of the
queries (spread evenly: a running total decides which; the repeated call answers the query of
64 calls before, whose work is no longer in the caches), or, for ``batch_query``, on that share
of the batch's rows. The pass time grows by ``factor`` in expectation with the library's own mix
of computation and memory traffic. (Sleeping is too coarse for ~100 µs queries, and spinning on
a clock was measured here to overshoot by 20-100 %: ``thread_time`` is a system call that
pollutes the caches, and wall-clock spins overshoot whenever the process is preempted.)
Recall loss: the last ``drop`` ids of every answer are replaced by ``-1``.
"""

from __future__ import annotations

from pathlib import Path

from annbench.backends.discovery import adapter_file, module_name
from annbench.core.errors import UserError

TEMPLATE = '''"""Injected by annbench.backends.inject: {algorithm} x{factor} slower, last {drop} ids dropped."""

import collections
import importlib.util
import inspect
import sys

import numpy as np

from annbench.backends.adapter import Adapter

_spec = importlib.util.spec_from_file_location("annbench_algorithms._inner_{module}", {source!r})
_inner = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _inner
_spec.loader.exec_module(_inner)
_Inner = next(c for c in vars(_inner).values() if inspect.isclass(c) and issubclass(c, Adapter)
              and c.__module__ == _inner.__name__ and not inspect.isabstract(c))
_EXTRA = {factor!r} - 1.0
_DROP = {drop!r}


def _dropped(ids):
    if not _DROP:
        return ids
    ids = np.array(ids, dtype=np.int64)
    ids[..., -_DROP:] = -1
    return ids


class Injected(_Inner):
    _owed = 0.0
    _seen = None

    def query(self, q, k):
        ids = super().query(q, k)
        if self._seen is None:
            self._seen = collections.deque(maxlen=64)
        self._seen.append(q)
        self._owed += _EXTRA
        while self._owed >= 1.0:
            self._owed -= 1.0
            super().query(self._seen[0], k)  # an older query: its answer is no longer in the caches
        return _dropped(ids)

    def batch_query(self, Q, k):
        ids = super().batch_query(Q, k)
        extra = _EXTRA
        while extra > 0:
            rows = min(len(Q), max(1, round(extra * len(Q))))
            super().batch_query(Q[:rows], k)
            extra -= 1.0
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
