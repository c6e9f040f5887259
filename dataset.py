#!/usr/bin/env python3
"""Manage datasets: ``python dataset.py --help`` (list, prepare, describe, remove, create, lookup)."""

import sys

if __name__ == "__main__":
    from annbench.cli_dataset import main

    sys.exit(main(sys.argv[1:]))
