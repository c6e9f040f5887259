#!/usr/bin/env python3
"""Encode a labelled dataset with a trained network's penultimate layer: ``python encode.py --help`` (the same
as ``annbench encode``)."""

import sys

from annbench.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["encode", *sys.argv[1:]]))
