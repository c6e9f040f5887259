"""Folders a command writes into (results, data, logs, the temporary folder): is each one usable?

A sweep checks its folders before any work (:func:`check_folders`): each must be a folder (or
creatable as one, checked in the folder it would be made in, so nothing is made by the check) in
which a file can be created, written and synced. What is wrong is said in one
line naming the folder (:class:`FolderError`, a user error: exit code 2): ``is a file``,
``read-only file system``, ``permission denied``, ``no space left``. The same trouble arising
mid-sweep (a disk filling up, a folder remounted read-only) surfaces as an ``OSError`` somewhere
deep in h5py or the standard library, often without the file's name; :func:`folder_errors` turns
it into the same one line by checking the folders again and naming the first that fails.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from annbench.core.errors import UserError

#: The errors that mean "this folder cannot hold what is written there", in words.
FOLDER_ERRNOS = {
    errno.ENOTDIR: "is a file",
    errno.EEXIST: "is a file",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left",
    errno.EDQUOT: "no space left (disk quota exceeded)",
}
#: Bytes the probe writes: a whole page, so a full file system refuses it.
PROBE_BYTES = 4096


class FolderError(UserError):
    """A folder the command must write into cannot be used: one line naming it and what is wrong."""


@dataclass(frozen=True)
class Folder:
    """A folder a command uses: ``role`` names it in messages (``results``, ``data``, ``temporary``);
    ``write``: files are created in it; ``create``: it is made when missing (else it must exist)."""

    role: str
    path: Path
    write: bool = True
    create: bool = True

    def label(self) -> str:
        return f"{self.role} folder {self.path}"


def temporary_folder() -> Folder:
    """The temporary folder child processes, warm parents and libraries use: ``$TMPDIR`` when set
    (Python would silently fall back to ``/tmp`` if it is unusable; the user asked for it), else
    Python's choice."""
    chosen = os.environ.get("TMPDIR")
    return Folder("temporary", Path(chosen) if chosen else Path(tempfile.gettempdir()), create=False)


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _probe(path: Path) -> None:
    """Create, write, sync and remove a file in ``path``; raises the ``OSError`` that stopped it."""
    fd, name = tempfile.mkstemp(prefix=".annbench-probe.", suffix=f".{os.getpid()}.tmp", dir=path)
    try:
        os.write(fd, b"\0" * PROBE_BYTES)
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(name)


def problem(folder: Folder) -> str | None:
    """What is wrong with ``folder``, as one line naming it; None when it is usable."""
    path = folder.path
    if path.exists() and not path.is_dir():
        return f"{folder.label()} is a file"
    above = _existing_ancestor(path)
    if not above.is_dir():
        return f"{folder.label()}: {above} is a file"
    if not path.exists() and not folder.create:
        return f"{folder.label()} does not exist"
    if not folder.write:
        return None
    try:
        _probe(path if path.exists() else above)  # a missing folder is made where the probe went: nothing made now
    except OSError as e:
        return f"{folder.label()}: {FOLDER_ERRNOS.get(e.errno or 0, e.strerror or str(e))}"
    return None


def check_folders(folders: Sequence[Folder]) -> None:
    """Raise :class:`FolderError` for the first folder in ``folders`` that cannot be used."""
    for folder in folders:
        if (line := problem(folder)) is not None:
            raise FolderError(line)


def folder_error(error: OSError, folders: Sequence[Folder]) -> FolderError | None:
    """``error`` as one line when it means a folder cannot hold what is written (see
    :data:`FOLDER_ERRNOS`): the first of ``folders`` that fails its check now, else the error's own
    file; None for any other error."""
    if error.errno not in FOLDER_ERRNOS:
        return None
    for folder in folders:
        if (line := problem(folder)) is not None:
            return FolderError(line)
    where = f"folder of {error.filename}" if error.filename else "a folder being written"
    return FolderError(f"{where}: {FOLDER_ERRNOS[error.errno]}")


#: An errno as Python (``[Errno 28]``) and HDF5 (``errno = 28``) write it into a message.
_ERRNO = re.compile(r"\[Errno (\d+)\]|errno = (\d+)")
#: A quoted absolute path in a message (Python's ``: '/x/y'``, HDF5's ``filename = '/x/y'``).
_PATH = re.compile(r"'(/[^']+)'")


def failure_folder_error(message: str, folders: Sequence[Folder]) -> FolderError | None:
    """The one line for a run that failed because a folder would not take a write, from the failure's
    message (written by a child, so only its text is left): an errno of :data:`FOLDER_ERRNOS` and a
    path inside one of ``folders`` name that folder; an errno without a known path names the first
    folder that fails its check now. None when the failure is not a folder's (a library's own)."""
    found = [int(a or b) for a, b in _ERRNO.findall(message)]
    number = next((n for n in found if n in FOLDER_ERRNOS), None)
    if number is None:
        return None
    for quoted in _PATH.findall(message):
        for folder in folders:
            if Path(quoted).resolve().is_relative_to(folder.path.resolve()):
                return FolderError(f"{folder.label()}: {FOLDER_ERRNOS[number]}")
    for folder in folders:
        if (line := problem(folder)) is not None:
            return FolderError(line)
    return None


@contextlib.contextmanager
def folder_errors(folders: Sequence[Folder]) -> Iterator[None]:
    """Turn an ``OSError`` meaning a full, read-only or wrong-kind folder into its one-line
    :class:`FolderError` (no traceback); every other exception passes unchanged."""
    try:
        yield
    except OSError as e:
        converted = folder_error(e, folders)
        if converted is None:
            raise
        raise converted from None
