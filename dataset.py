#!/usr/bin/env python3
"""Manage datasets: ``python dataset.py --help`` (the same as ``annbench dataset``)."""

import sys

from annbench.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["dataset", *sys.argv[1:]]))
