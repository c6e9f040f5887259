"""QPS across processes (``--processes P``): one build's query settings measured in P processes forked from the
build's child, one after another, each measuring as the child would (warm-up, calibration, ``runs`` passes).

Which process measures moves QPS on this kind of machine by more than the passes of one process vary
(README: What is measured), so a setting's QPS is the mean of P processes' (see
:func:`annbench.execute.evaluate.process_speed`). Each process searches an index in memory of its own:
loaded from the one the child saved where the adapter can save (``process_index = loaded``), else built
again in the process (``rebuilt``; those processes are forked before the child builds, so a library that
does not survive a fork once used, as Chroma's runtime, is fresh in them), never the child's copy-on-write
pages, which every fork would share
(``benchmarks/machine_stability.py --processes N --forked`` measures what that hides). The processes run
one at a time, so none shares the core with another; each dies with the child (``PR_SET_PDEATHSIG``) and is
killed and reaped if this returns or raises first.

What a measuring process's failure becomes, so that P processes are recorded as one would be:

- an exception it raised comes back as that exception (same type and message), its traceback in the
  process attached as the cause (:class:`RemoteTraceback`), as :mod:`multiprocessing`'s pools do;
- a process that dies (a signal, an exit without an answer) or raises what ends a process
  (``SystemExit``, ``KeyboardInterrupt``) raises :class:`Fatal` here, saying at which query setting it was
  (each process marks the setting it is about to touch in a page shared with this one): the build's child
  then stores what one process would have stored before it died there, and ends the same way
  (:meth:`Fatal.reproduce`).
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import mmap
import os
import pickle
import signal
import struct
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

from annbench.core.processes import DUMP_SIGNAL, die_with_parent

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Where a measuring process is: about to touch query setting ``at(j)``; -1 before any (loading, building).
At = Callable[[int], None]
_MARK = struct.Struct("q")


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a measuring process (the cause of the exception raised here)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n(in the measuring process)\n{self.text}"


def portable(e: BaseException) -> tuple[BaseException | None, str, str, str]:
    """What a measuring process sends back for ``e``: the exception itself where it survives pickling (else
    None), its type's name, its message and its traceback."""
    text = "".join(traceback.format_exception(e))
    try:
        sent: BaseException | None = e if isinstance(pickle.loads(pickle.dumps(e)), type(e)) else None
    except Exception:  # an exception class pickle cannot rebuild (its __init__ takes other arguments)
        sent = None
    return sent, type(e).__name__, str(e), text


def restored(sent: tuple[BaseException | None, str, str, str]) -> BaseException:
    """The exception a measuring process sent (:func:`portable`), its traceback there as its cause. One that
    pickle could not carry comes back as an Exception of a class of the same name with the same message, so
    the stored error reads the same."""
    e, name, message, text = sent
    if e is None:
        e = type(name, (Exception,), {"__module__": "builtins"})(message)
    e.__cause__ = RemoteTraceback(text)
    return e


class Fatal(BaseException):  # not an Exception: nothing between here and the child catches it
    """A measuring process ended as a process ends (killed by ``signum``, exited with ``code`` without an
    answer, or raised ``exception``, a SystemExit or KeyboardInterrupt) while at query setting ``at``
    (-1: before any)."""

    def __init__(self, at: int, signum: int | None = None, code: int | None = None,
                 exception: BaseException | None = None) -> None:
        self.at, self.signum, self.code, self.exception = at, signum, code, exception
        super().__init__(self.how())

    def how(self) -> str:
        if self.signum is not None:
            return f"was killed by {signal.Signals(self.signum).name}" if self.signum in signal.valid_signals() \
                else f"was killed by signal {self.signum}"
        if self.exception is not None:
            return f"raised {type(self.exception).__name__}: {self.exception}"
        return f"exited with code {self.code} without an answer"

    def reproduce(self) -> NoReturn:
        """End this process as the measuring process ended (what one process measuring alone would have
        done): raise its exception, kill this process with its signal, or exit with its code."""
        if self.exception is not None:
            raise self.exception
        sys.stdout.flush()
        sys.stderr.flush()
        if self.signum is not None:
            faulthandler.disable()  # the measuring process's stack is in the log already; this one's is not news
            signal.signal(self.signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {self.signum})
            os.kill(os.getpid(), self.signum)
        os._exit(self.code if self.code is not None else 128 + (self.signum or 0))


@contextlib.contextmanager
def dumps_passed_on(pid: int) -> Iterator[None]:
    """The sweep asks a child that ran out of time for its stacks (``DUMP_SIGNAL``, dumped by faulthandler into
    the log) before it kills it: while measuring process ``pid`` runs, the child passes the request on, so the
    log shows where that process is (the child itself only waits for it). Main thread only (signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    dumping = faulthandler.unregister(DUMP_SIGNAL)
    previous = signal.signal(DUMP_SIGNAL, lambda *_: os.kill(pid, DUMP_SIGNAL))
    try:
        yield
    finally:
        signal.signal(DUMP_SIGNAL, previous)
        if dumping:
            faulthandler.register(DUMP_SIGNAL, all_threads=True)


def _measuring_process(parent: int, write: int, measure: Callable[[Any, At], T], searcher: Callable[[], Any],
                       at: At) -> NoReturn:
    """The body of one measuring process: never returns into the caller's code, whatever happens."""
    try:
        try:
            die_with_parent(parent)
            payload: tuple[str, Any] = ("ok", measure(searcher(), at))
        except BaseException as e:  # everything goes back to the parent, which raises it
            payload = ("raised", portable(e))
        with os.fdopen(write, "wb") as pipe:
            try:
                data = pickle.dumps(payload)
            except Exception as e:  # an answer pickle cannot carry
                data = pickle.dumps(("raised", portable(e)))
            pipe.write(data)
    finally:
        os._exit(0)


def in_processes(n: int, measure: Callable[[Any, At], T], searcher: Callable[[], Any],
                 after: Callable[[T], None] = lambda _: None) -> list[T]:
    """``measure(searcher(), at)`` in each of ``n`` processes forked from this one, one after another (``at(j)``
    marks the query setting the process is about to touch); ``after`` is given each process's result before
    the next is forked (so the next one inherits what it learnt). An exception a process raised is raised
    here (:func:`restored`); a process that died, or raised SystemExit or KeyboardInterrupt: :class:`Fatal`."""
    out = []
    for i in range(n):
        mark = mmap.mmap(-1, _MARK.size)  # shared with the fork: where it is when it dies
        _MARK.pack_into(mark, 0, -1)

        def at(j: int, mark: mmap.mmap = mark) -> None:
            _MARK.pack_into(mark, 0, j)

        read, write = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            _measuring_process(parent, write, measure, searcher, at)
        os.close(write)
        status: int | None = None
        try:
            with dumps_passed_on(pid), os.fdopen(read, "rb") as pipe:
                try:  # up to the answer's end, not the pipe's: a server the process started may hold it open
                    received: tuple[str, Any] | None = pickle.load(pipe)
                except (EOFError, pickle.UnpicklingError):
                    received = None
            _, status = os.waitpid(pid, 0)
        finally:
            if status is None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                os.waitpid(pid, 0)
        where = _MARK.unpack_from(mark, 0)[0]
        mark.close()
        if received is None:
            fatal = Fatal(where, signum=os.WTERMSIG(status)) if os.WIFSIGNALED(status) \
                else Fatal(where, code=os.waitstatus_to_exitcode(status))
            log.error("measuring process %d of %d %s (at query setting %d)", i + 1, n, fatal.how(), where)
            raise fatal
        kind, payload = received
        if kind != "ok":
            e = restored(payload)
            if not isinstance(e, Exception):
                log.error("measuring process %d of %d raised %s (at query setting %d)", i + 1, n,
                          type(e).__name__, where)
                raise Fatal(where, exception=e)
            raise e
        after(payload)
        out.append(payload)
    return out
