#!/usr/bin/env python3
"""A raw dataset and its encodings side by side: ``python compare.py --help``."""

import sys

from annbench.cli_compare import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
