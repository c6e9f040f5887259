#!/usr/bin/env python3
"""Run benchmarks: ``python run.py --help``."""

import sys

from annbench.threads import pin_environment


def _count(text: str) -> int:
    """The largest of ``N`` or ``N,N,...`` (1 when unparsable: the parser reports it)."""
    counts = [int(t) for t in text.split(",") if t.strip().isdigit()]
    return max([1, *counts])


def _threads(argv: list[str]) -> int:
    """This process's thread pools: the largest ``--threads`` count. Each sweep's child processes pin
    their own count (annbench.isolation.child_environment), so nothing measured runs under this."""
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return _count(argv[i + 1])
        if a.startswith("--threads="):
            return _count(a.split("=", 1)[1])
    return 1


if __name__ == "__main__":
    pin_environment(_threads(sys.argv[1:]))  # before numpy and the libraries load their thread pools
    from annbench.cli_run import main

    sys.exit(main(sys.argv[1:]))
