#!/usr/bin/env python3
"""Plot and tabulate results: ``python plot.py --help`` (the same as ``annbench plot``)."""

import sys

from annbench.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["plot", *sys.argv[1:]]))
