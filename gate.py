#!/usr/bin/env python3
"""CI regression gate (see README, "Regression gate"): ``python gate.py --help`` (the same as ``annbench gate``)."""

import sys

from annbench.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["gate", *sys.argv[1:]]))
