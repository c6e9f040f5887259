"""Measuring processes (annbench.execute.process_passes): what a process's failure comes back as, so that P
processes are recorded as one would be."""

from __future__ import annotations

import os
import signal

import pytest

from annbench.execute.process_passes import Fatal, RemoteTraceback, in_processes


class Unpicklable(Exception):
    def __init__(self, what: str, code: int) -> None:  # pickle rebuilds it with one argument: it cannot
        super().__init__(f"{what} ({code})")


def _raises_at(j: int, error: BaseException):
    def measure(target, at):
        for setting in range(j + 1):
            at(setting)
        raise error
    return measure


def test_an_exception_comes_back_as_raised_with_the_processs_traceback() -> None:
    with pytest.raises(ValueError, match="^query exploded on purpose$") as info:
        in_processes(3, _raises_at(1, ValueError("query exploded on purpose")), lambda: None)
    assert isinstance(info.value.__cause__, RemoteTraceback) and "in measure" in str(info.value.__cause__)
    # one pickle cannot carry: an exception of a class of the same name and message, so the error reads the same
    with pytest.raises(Exception, match=r"^lost \(3\)$") as info:
        in_processes(1, _raises_at(0, Unpicklable("lost", 3)), lambda: None)
    assert type(info.value).__name__ == "Unpicklable"


def _dies_at(j: int, how: str):
    def measure(target, at):
        at(j)
        if how == "signal":
            os.kill(os.getpid(), signal.SIGSEGV)
        if how == "exit":
            os._exit(3)
        raise SystemExit("the process ends here")
    return measure


@pytest.mark.parametrize(("how", "expected"), [("signal", {"signum": signal.SIGSEGV, "code": None}),
                                               ("exit", {"signum": None, "code": 3}),
                                               ("raise", {"signum": None, "code": None})])
def test_a_process_that_ends_says_where_and_how(how: str, expected: dict) -> None:
    import faulthandler

    was = faulthandler.is_enabled()
    faulthandler.disable()  # a SIGSEGV of the fork: no stack dump in the test's output
    try:
        with pytest.raises(Fatal) as info:
            in_processes(2, _dies_at(2, how), lambda: None)
    finally:
        if was:
            faulthandler.enable()
    fatal = info.value
    assert fatal.at == 2 and {"signum": fatal.signum, "code": fatal.code} == expected
    assert isinstance(fatal.exception, SystemExit) == (how == "raise")


def test_each_process_gets_what_the_earlier_ones_learnt() -> None:
    learnt: list[int] = []
    out = in_processes(3, lambda target, at: (os.getpid(), len(learnt) + target), lambda: 10,
                       lambda result: learnt.append(result[1]))
    assert [r[1] for r in out] == learnt == [10, 11, 12]
    assert len({r[0] for r in out}) == 3 and os.getpid() not in {r[0] for r in out}
