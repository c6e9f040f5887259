#!/usr/bin/env python3
"""Run benchmarks: ``python run.py --help`` (the same as ``annbench run``)."""

import sys

from annbench.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
