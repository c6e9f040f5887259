#!/usr/bin/env python3
"""Plot and tabulate results: ``python plot.py --help``."""

import sys

from annbench.cli_plot import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
