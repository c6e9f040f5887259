#!/usr/bin/env python3
"""A raw dataset and its encodings side by side: ``python compare.py --help`` (the same as ``annbench compare``)."""

import sys

from annbench.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
