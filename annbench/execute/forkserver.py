"""The warm parent: ``python -m annbench.execute.forkserver``, one per algorithm per sweep, forks a
fresh child per build setting.

A fresh interpreter per build setting costs ~200 ms before any work, and libraries that compile
(PyNNDescent's numba) pay their JIT in every child. A fork server (a fresh interpreter started by
the sweep, :mod:`annbench.execute.forkclient`) instead imports the adapter's library once, runs the
adapter's untimed ``warm_up`` once on the sweep's dataset, then forks one child per build setting;
the child inherits the imported modules and the compiled code.

The server is single-threaded where it forks (its loop never starts a thread; see
:func:`serve`), so the sweep process, which runs its executor in threads, never forks. The
forked child does what a cold child does (:func:`annbench.execute.worker.forked_child`): new session,
stdout/stderr ``dup2``-ed onto the build setting's log, pinning, RLIMIT_AS, faulthandler, and
``PR_SET_PDEATHSIG`` towards the server, which itself dies with the sweep. The sweep holds the
child to its limits exactly as a cold one (:func:`annbench.execute.isolation.hold`): it samples the
child's ``/proc/<pid>``, signals and kills its process group; the server only reports the exit
status, which it reads without reaping (``waitid(WNOWAIT)``) so the pid cannot be reused until
the sweep has seen it. The messages: :mod:`annbench.execute.forkproto`.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import pickle
import selectors
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from annbench.core.processes import kill_group, probe_fork
from annbench.execute.forkproto import READY, ForkRequest, WarmUp

log = logging.getLogger(__name__)

#: Seconds the server's loop sleeps at most between two looks at its children.
LOOP_S = 0.5



def _warm_up(spec: WarmUp) -> None:
    """Import the adapter's library and run its ``warm_up`` once; a failure is logged, not fatal
    (the children import and warm up again and record what goes wrong)."""
    from annbench.backends.adapter import adapter_for
    from annbench.backends.discovery import load_adapter
    from annbench.core.logs import quiet_library_loggers
    from annbench.core.threads import limited_threads
    from annbench.datasets.format import load_dataset

    quiet_library_loggers()
    start = time.perf_counter()
    import annbench.execute.child  # noqa: F401 - what every child runs, imported once here
    from annbench.core import provenance

    provenance.machine()  # cached: the children inherit it (git commit, CPU model) instead of asking again
    try:
        cls = load_adapter(spec.key.algorithm, list(spec.key.adapter_dirs))
        provenance.library_versions(cls.libraries)
        log.info("%s imported in %.3f s", spec.key.algorithm, time.perf_counter() - start)
        dataset = load_dataset(spec.dataset_path, name=spec.dataset)
        with limited_threads(spec.key.threads):
            adapter = adapter_for(cls, dataset.distance, dataset.point_type, dataset.dimension, spec.key.threads,
                                  **spec.build_params)
            adapter.warm_up(dataset.train)
        del dataset
        log.info("%s warm in %.3f s", spec.key.algorithm, time.perf_counter() - start)
    except Exception:
        log.warning("warm-up failed; children will import and warm up themselves:\n%s", traceback.format_exc())
    gc.collect()
    try:  # give freed heap back to the kernel: a child's resident set starts from this process's
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _fork_child(request: ForkRequest, closing: list[int]) -> int:
    """Fork one child for ``request``; in the child, never return."""
    from annbench.execute.worker import forked_child

    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        for fd in closing:  # the server's sockets and pipes are not the child's
            try:
                os.close(fd)
            except OSError:
                pass
        forked_child(request.task, Path(request.log_path), os.getppid(), request.cpus, request.address_space,
                     request.beside)  # never returns
    return pid


def _exit_code(pid: int) -> int | None:
    """The exit code of child ``pid`` once it has ended (``-N``: signal N), left unreaped; else None."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return -signal.SIGKILL
    if info is None or info.si_pid == 0:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


@dataclass
class _Forked:
    conn: Connection
    reported: bool = False


def serve(listener: socket.socket) -> None:
    """Accept fork requests until stdin closes; report each child's end; reap it once the sweep
    has read that. Single-threaded: the only thread of this process forks."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(wake_r, selectors.EVENT_READ, "wake")
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    children: dict[int, _Forked] = {}
    running = True
    while running:
        for selected, _ in sel.select(LOOP_S):
            what = selected.data
            if what == "accept":
                sock, _ = listener.accept()
                conn = Connection(sock.detach())
                try:
                    request = conn.recv()
                    closing = [listener.fileno(), wake_r, wake_w, conn.fileno(),
                               *(c.conn.fileno() for c in children.values())]  # fds 0-2: replaced by the child
                    pid = _fork_child(request, closing)
                    conn.send(("forked", pid))
                except Exception as e:  # a request that cannot be served: the sweep starts it cold
                    log.error("fork request failed: %s", e)
                    try:
                        conn.send(("error", f"{type(e).__name__}: {e}"))
                    except OSError:
                        pass
                    conn.close()
                    continue
                children[pid] = _Forked(conn)
                sel.register(conn.fileno(), selectors.EVENT_READ, pid)
                log.info("forked child %d for %s", pid, request.task.label())
            elif what == "wake":
                while True:
                    try:
                        if not os.read(wake_r, 512):
                            break
                    except BlockingIOError:
                        break
            elif what == "stdin":
                if not os.read(sys.stdin.fileno(), 512):
                    running = False
            else:  # the sweep closed a child's connection (it has read the exit code, or gave up)
                pid = what
                sel.unregister(selected.fileobj)
                forked = children.pop(pid)
                forked.conn.close()
                if not forked.reported:
                    kill_group(pid)
                os.waitpid(pid, 0)
        for pid, forked in children.items():
            if not forked.reported and (code := _exit_code(pid)) is not None:
                try:
                    forked.conn.send(("exit", code))
                except OSError:
                    pass
                forked.reported = True
    for pid in children:
        kill_group(pid)
        os.waitpid(pid, 0)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from annbench.execute.worker import apply_limits

    p = argparse.ArgumentParser(prog="python -m annbench.execute.forkserver", description=__doc__.splitlines()[0])
    p.add_argument("--parent", type=int, required=True, help="pid of the sweep: die with it")
    p.add_argument("--socket", type=Path, required=True, help="Unix socket to listen on once warm")
    p.add_argument("--cpus", help="comma-separated cores to warm up on")
    p.add_argument("--address-space", type=int, help="RLIMIT_AS in bytes while warming up")
    args = p.parse_args(argv)
    apply_limits(args.parent, [int(c) for c in args.cpus.split(",")] if args.cpus else None, args.address_space)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname).1s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)
    spec: WarmUp = pickle.loads(sys.stdin.buffer.read(int(sys.stdin.buffer.readline())))
    log.info("warm parent pid %d for %s, threads %d", os.getpid(), spec.key.algorithm, spec.key.threads)
    _warm_up(spec)
    threads = len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1
    log.info("%d thread(s) running in this process after the warm-up", threads)
    if (code := probe_fork()) != 0:  # e.g. numba on GNU OpenMP kills every forked child at once
        log.error("a child forked after the warm-up ended with %s at once: this process cannot fork safely", code)
        return 3
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(args.socket))
    listener.listen(64)
    sys.stdout.buffer.write(READY)
    sys.stdout.flush()
    serve(listener)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
