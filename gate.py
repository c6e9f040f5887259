#!/usr/bin/env python3
"""CI regression gate: ``python gate.py --help`` (see README, "Regression gate")."""

import sys

from annbench.threads import pin_environment

if __name__ == "__main__":
    from annbench.cli_gate import main, threads_for

    pin_environment(threads_for(sys.argv[1:]))  # before numpy and the libraries load their thread pools
    sys.exit(main(sys.argv[1:]))
