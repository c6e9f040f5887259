#!/usr/bin/env python3
"""Run benchmarks: ``python run.py --help``."""

import sys

from annbench.threads import pin_environment


def _threads(argv: list[str]) -> int:
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv) and argv[i + 1].isdigit():
            return max(1, int(argv[i + 1]))
        if a.startswith("--threads=") and a.split("=", 1)[1].isdigit():
            return max(1, int(a.split("=", 1)[1]))
    return 1


if __name__ == "__main__":
    pin_environment(_threads(sys.argv[1:]))  # before numpy and the libraries load their thread pools
    from annbench.cli_run import main

    sys.exit(main(sys.argv[1:]))
