"""Which children ran beside which: one counter per core slot, shared by the sweep and its children.

The sweep's executor owns a small file (:class:`Occupancy`) holding one 64-bit counter per core
slot; it increments a slot's counter when a child (or a warm parent warming up) starts on that
slot and again when it has ended, so an odd value means "busy". A child reads the counters of the
other slots each time it stores a run (:class:`Beside`): a slot counts as having run beside this
run if it was busy when the previous run was stored (or this child started) or its counter has
moved since. :meth:`Beside.since_last` is therefore the number of other slots that held a process
at some moment while this run was built or measured: exactly the largest number of other
children running beside it with two slots, an upper bound of it with more.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Bytes per slot: one uint64 counter (aligned 8-byte loads and stores are atomic).
SLOT_BYTES = 8


@dataclass(frozen=True)
class SlotRef:
    """What a child needs to look at the others: the shared file and its own slot's index."""

    path: Path
    slot: int


class Occupancy:
    """The sweep's side: the file, and marking a slot busy while a process runs on it."""

    def __init__(self, slots: int) -> None:
        fd, name = tempfile.mkstemp(prefix="annbench-occupancy-")
        self.path, self.slots = Path(name), slots
        os.ftruncate(fd, slots * SLOT_BYTES)
        self._map = mmap.mmap(fd, slots * SLOT_BYTES)
        os.close(fd)
        self._counters = np.frombuffer(self._map, dtype=np.uint64)
        self._lock = threading.Lock()

    def ref(self, slot: int) -> SlotRef:
        return SlotRef(self.path, slot)

    def mark(self, slot: int) -> None:
        """Flip ``slot`` between idle and busy."""
        with self._lock:
            if not self._map.closed:
                self._counters[slot] += np.uint64(1)

    def close(self) -> None:
        with self._lock:
            del self._counters
            self._map.close()
            self.path.unlink(missing_ok=True)


class Beside:
    """A child's side: how many other slots held a process since the last look."""

    def __init__(self, ref: SlotRef) -> None:
        self.ref = ref
        with open(ref.path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._counters = np.frombuffer(self._map, dtype=np.uint64)
        self.slots = len(self._counters)
        self._last = self._counters.copy()

    def since_last(self) -> int:
        """Other slots busy at the last look or whose counter moved since (then look again)."""
        now = self._counters.copy()
        ran = (self._last % 2 == 1) | (now != self._last)
        ran[self.ref.slot] = False
        self._last = now
        return int(ran.sum())
