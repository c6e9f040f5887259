#!/usr/bin/env python3
"""Encode a labelled dataset with a trained network's penultimate layer: ``python encode.py --help``."""

import sys

from annbench.cli_encode import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
