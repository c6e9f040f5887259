"""Cores claimed machine-wide: which annbench process measures on which core, seen by every sweep.

Two sweeps on one machine (two terminals, a sweep beside the test suite, two CI jobs on one runner)
must not measure on the same core at once: each halves the other's QPS and neither would know. So
the cores a measuring child runs on are claimed in a registry every annbench process sees, a folder
of lock files (:func:`registry_dir`: ``$ANNBENCH_CLAIMS_DIR``, else ``/run/annbench``, else
``<tmp>/annbench-claims``, shared by every user):

- ``core-<n>.lock``: held with an exclusive ``flock`` by the claim on core ``n``; ``core-<n>.json``
  says by whom (pid, results folder), for a sweep that has to wait to say so. The kernel drops a
  ``flock`` when its process dies, so a SIGKILLed sweep leaves no claim behind.
- ``queue.lock``: a claim that has to wait holds it while it waits, so a new claim cannot jump the
  queue (a sweep re-claiming its core between its own tasks would otherwise starve the waiter).
- ``beside/<pid>.<n>.busy``: one file per measuring process (claimed or, with ``--share-cores``,
  measuring on claimed cores anyway), exclusively locked while it runs; ``starts`` counts every one
  ever registered. A child reads both (:class:`Look`) to count the measuring processes of *any*
  sweep that ran at some moment while it built or measured a run: those alive at its last look plus
  those started since.

Work that measures nothing (building datasets, ground truth, plotting) claims nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from annbench.core.atomic import write_text

log = logging.getLogger(__name__)

ENV_CLAIMS_DIR = "ANNBENCH_CLAIMS_DIR"
#: The machine's runtime folder (root), else one in the temporary folder every user can write.
SYSTEM_DIR = Path("/run/annbench")
SHARED_TMP_NAME = "annbench-claims"
#: Seconds between two attempts of a waiting claim.
POLL_S = 0.05
_COUNTER = struct.Struct("<Q")
_serial = itertools.count()


def _usable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if folder.stat().st_uid == os.getuid():
            folder.chmod(0o1777)  # every user's sweeps claim here; sticky: none removes another's files
        return os.access(folder, os.W_OK | os.X_OK)
    except OSError:
        return False


def registry_dir() -> Path:
    """The machine's claims folder: ``$ANNBENCH_CLAIMS_DIR``, else ``/run/annbench`` where it can be
    made, else ``<tmp>/annbench-claims``."""
    if chosen := os.environ.get(ENV_CLAIMS_DIR):
        folder = Path(chosen)
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    for folder in (SYSTEM_DIR, Path(tempfile.gettempdir()) / SHARED_TMP_NAME):
        if _usable(folder):
            return folder
    raise OSError(f"no folder for annbench's core claims: neither {SYSTEM_DIR} nor "
                  f"{Path(tempfile.gettempdir()) / SHARED_TMP_NAME} is writable; set ${ENV_CLAIMS_DIR}")


def _open(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)  # another user's sweep must be able to lock it too
    return fd


def _try_lock(path: Path, mode: int = fcntl.LOCK_EX) -> int | None:
    """An open descriptor of ``path`` locked with ``mode`` (non-blocking), or None when held elsewhere."""
    fd = _open(path)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@dataclass(frozen=True)
class Holder:
    """Who holds a core: the sweep's pid and results folder."""

    pid: int
    results: str

    def describe(self) -> str:
        return f"sweep {self.pid} (results {self.results})" if self.pid >= 0 else "another sweep"


@dataclass(frozen=True)
class BesideRef:
    """What a measuring child needs to count who ran beside it: the registry, its own presence,
    whether it measures on cores another claim holds (``--share-cores``), its sweep's parallelism."""

    folder: Path
    own: str
    shared: bool = False
    parallelism: int = 1

    def to_arg(self) -> str:
        return json.dumps([str(self.folder), self.own, self.shared, self.parallelism])

    @classmethod
    def from_arg(cls, text: str) -> BesideRef:
        folder, own, shared, parallelism = json.loads(text)
        return cls(Path(folder), own, bool(shared), int(parallelism))


def _starts(folder: Path, add: int = 0) -> int:
    """The count of presences ever registered in ``folder`` (incremented by ``add``)."""
    fd = _open(folder / "starts")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if add else fcntl.LOCK_SH)
        raw = os.pread(fd, _COUNTER.size, 0)
        value = _COUNTER.unpack(raw)[0] if len(raw) == _COUNTER.size else 0
        if add:
            value += add
            os.pwrite(fd, _COUNTER.pack(value), 0)
        return value
    finally:
        os.close(fd)


@dataclass
class Presence:
    """A measuring process registered in ``beside/`` (held by the sweep for its child, from the claim
    to the child's end, a warm-up included)."""

    folder: Path
    cores: tuple[int, ...]
    name: str = field(init=False)
    _fd: int = field(init=False, default=-1)

    def __post_init__(self) -> None:
        beside = self.folder / "beside"
        beside.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            beside.chmod(0o1777)
        _starts(self.folder, add=1)  # first counted, then visible (see Look.since_last)
        self.name = f"{os.getpid()}.{next(_serial)}.{threading.get_ident()}"
        tmp = beside / f".{self.name}.new"  # locked before it gets the name readers look for
        self._fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.write(self._fd, json.dumps({"pid": os.getpid(), "cores": list(self.cores)}).encode())
        os.replace(tmp, beside / f"{self.name}.busy")

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / "beside" / f"{self.name}.busy").unlink()
            os.close(self._fd)
            self._fd = -1


def live_presences(folder: Path, own: str = "") -> set[str]:
    """The presences in ``folder`` whose process still measures, except ``own``; removes those of
    processes that died (their lock is gone)."""
    alive = set()
    for path in (folder / "beside").glob("*.busy"):
        name = path.name[: -len(".busy")]
        if name == own:
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # released meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            alive.add(name)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # its process died without releasing it
        finally:
            os.close(fd)
    return alive


class Look:
    """A child's view of the registry: how many other measuring processes ran beside it since its
    last look (or its start)."""

    def __init__(self, ref: BesideRef) -> None:
        self.ref = ref
        self._live, self._starts = self._now()

    def _now(self) -> tuple[set[str], int]:
        live = live_presences(self.ref.folder, self.ref.own)  # listed first, counted second: none counted twice
        return live, _starts(self.ref.folder)

    def since_last(self) -> int:
        """Those alive at the last look plus those registered since (then look again)."""
        live, starts = self._now()
        count = len(self._live) + max(0, starts - self._starts)
        self._live, self._starts = live, starts
        return count


@dataclass
class Claim:
    """Cores a measuring process runs on: claimed exclusively, or with ``shared`` measured on anyway
    although another claim holds them (``--share-cores``)."""

    cores: tuple[int, ...]
    shared: bool
    presence: Presence
    _fds: list[int] = field(default_factory=list, repr=False)

    def release(self) -> None:
        self.presence.release()
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()


class CoreClaims:
    """A sweep's side of the registry: claims ``threads`` free cores per measuring child, waiting
    (and saying once which sweep holds them) until there are; ``share``: never waits, measures on
    claimed cores when none are free and says so in its results.

    ``on_wait`` is called with a line saying who holds the cores when a claim starts waiting and
    with None when it got them (the progress bar shows it)."""

    def __init__(self, results: Path | str, cores: list[int], share: bool = False, folder: Path | None = None,
                 on_wait: Callable[[str | None], None] | None = None) -> None:
        self.folder = folder or registry_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.results = str(Path(results).resolve())
        self.cores = list(cores)
        self.share = share
        self.on_wait = on_wait
        self._announced: set[int] = set()
        self._mine: set[int] = set()  # cores this sweep measures on now (shared ones too)
        self._lock = threading.Lock()

    def holders(self, cores: list[int] | None = None) -> dict[int, Holder]:
        """Who holds each of ``cores`` (default: this sweep's) that is claimed now."""
        held = {}
        for core in cores if cores is not None else self.cores:
            fd = _try_lock(self.folder / f"core-{core}.lock")
            if fd is not None:
                os.close(fd)
                continue
            try:
                info = json.loads((self.folder / f"core-{core}.json").read_text())
                held[core] = Holder(int(info["pid"]), str(info["results"]))
            except (OSError, ValueError, KeyError, TypeError):
                held[core] = Holder(-1, "?")  # claimed this instant, not yet signed
            with self._lock:
                if held[core].pid == os.getpid() and core not in self._mine:
                    held[core] = Holder(-1, "?")  # this sweep's old signature: claimed this instant by another
        return held

    def _try(self, n: int) -> tuple[tuple[int, ...], list[int]] | None:
        """``n`` free cores, all or none (a claim never holds some while waiting for more)."""
        got: list[tuple[int, int]] = []
        for core in self.cores:
            if len(got) == n:
                break
            fd = _try_lock(self.folder / f"core-{core}.lock")
            if fd is not None:
                got.append((core, fd))
        if len(got) < n:
            for _, fd in got:
                os.close(fd)
            return None
        for core, _ in got:
            write_text(self.folder / f"core-{core}.json", json.dumps({"pid": os.getpid(), "results": self.results}),
                       0o666)
        return tuple(c for c, _ in got), [fd for _, fd in got]

    def _waiting(self) -> str:
        """Who holds this sweep's cores, in words; each holding sweep is logged once per sweep."""
        held = self.holders()
        sweeps = sorted({h for h in held.values() if h.pid != os.getpid()}, key=lambda h: h.pid)
        by = "; ".join(f"{h.describe()} on cores {','.join(str(c) for c, x in held.items() if x == h)}"
                       for h in sweeps)
        for h in sweeps:
            if h.pid not in self._announced:
                self._announced.add(h.pid)
                log.warning("waiting for cores: %s measures on them", h.describe())
        return f"waiting for cores: {by}" if by else "waiting for cores"

    def claim(self, n: int, cancel: threading.Event | None = None) -> Claim:
        """Claim ``n`` cores for one measuring child (see the class)."""
        got = None
        if self.share:
            got = self._try(n)
            if got is None:
                with self._lock:
                    free = [c for c in self.cores if c not in self._mine][:n]
                got = (tuple(free), [])
                log.warning("cores %s are claimed by %s: measuring on them anyway (--share-cores)",
                            ",".join(map(str, free)),
                            ", ".join(sorted({h.describe() for h in self.holders(free).values()})))
        queue: int | None = None
        said = False
        try:
            while got is None:
                if queue is None:  # in line first: a claim waiting before this one gets the next free cores
                    queue = _try_lock(self.folder / "queue.lock")
                if queue is not None and (got := self._try(n)) is not None:
                    break
                if not said:
                    text = self._waiting()
                    if self.on_wait is not None:
                        self.on_wait(text)
                    said = True
                if cancel is not None and cancel.is_set():
                    raise InterruptedError("the sweep was stopped while waiting for free cores")
                time.sleep(POLL_S)
        finally:
            if queue is not None:
                os.close(queue)
            if said and self.on_wait is not None:
                self.on_wait(None)
        cores, fds = got
        with self._lock:
            self._mine.update(cores)
        return Claim(cores, shared=not fds, presence=Presence(self.folder, cores), _fds=fds)

    def release(self, claim: Claim) -> None:
        with self._lock:
            self._mine.difference_update(claim.cores)
        claim.release()

    @contextlib.contextmanager
    def claimed(self, n: int, cancel: threading.Event | None = None) -> Iterator[Claim]:
        claim = self.claim(n, cancel)
        try:
            yield claim
        finally:
            self.release(claim)
