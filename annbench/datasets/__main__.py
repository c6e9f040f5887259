"""``python -m annbench.datasets``: the same as ``python dataset.py``."""

import sys

from annbench.cli_dataset import main

sys.exit(main(sys.argv[1:]))
