"""What the sweep and a warm parent say to each other (:mod:`annbench.execute.forkclient` on the sweep's
side, :mod:`annbench.execute.forkserver` in the warm parent): plain picklable messages, no I/O.

Start: the sweep writes the :class:`WarmUp` (pickled, after its length on a line) on the server's
stdin; the server answers :data:`READY` on its stdout once it is warm and listening. Then, over a
Unix socket in a private folder (``<tmp>/<SOCKET_DIR_PREFIX><sweep pid>-<random>``), one connection
per child (pickled messages framed by :mod:`multiprocessing.connection`): the sweep sends a
:class:`ForkRequest`; the server answers ``("forked", pid)`` or ``("error", message)``, then
``("exit", code)`` once the child has ended (``-N`` for signal N); the sweep closes the connection,
and the server reaps the child. Closing the server's stdin shuts it down (any child still running
is killed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from annbench.core.claims import BesideRef
from annbench.plan.task import Task

#: The line a server writes on its stdout once it is warm and listening.
READY = b"ready\n"
#: A fork server's private folder (its socket) is ``<tmp>/annbench-forkserver-<sweep pid>-<random>``.
SOCKET_DIR_PREFIX = "annbench-forkserver-"


@dataclass(frozen=True)
class WarmKey:
    """What one fork server is for: children of other keys need another server."""

    algorithm: str
    threads: int
    adapter_dirs: tuple[Path, ...]


@dataclass(frozen=True)
class WarmUp:
    """What the server needs to get warm: the key, and the dataset and build setting to warm up on."""

    key: WarmKey
    dataset: str
    dataset_path: Path
    build_params: dict


@dataclass(frozen=True)
class ForkRequest:
    """One child to fork: its task, its log file, its cores, its address-space cap and its core slot."""

    task: Task
    log_path: Path
    cpus: list[int] | None
    address_space: int | None
    beside: BesideRef | None = None
