"""Options several subcommands share, each declared once and handed to a subcommand's parser as an
argparse parent: ``Parser(parents=[shared("results", "data-dir", "verbose")])``."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import MappingProxyType
from typing import Any

from annbench.cli.common import Parser
from annbench.core import paths

#: name → (flags, keyword arguments of ``add_argument``) of every shared option.
OPTIONS: MappingProxyType[str, tuple[tuple[str, ...], dict[str, Any]]] = MappingProxyType({
    "results": (("--results",), dict(type=Path, default=None, metavar="DIR",
                                     help=f"results folder (default ${paths.ENV_RESULTS_DIR} or ./results)")),
    "data-dir": (("--data-dir",), dict(type=Path, default=None, metavar="DIR",
                                       help=f"dataset folder (default ${paths.ENV_DATA_DIR} or ./datasets)")),
    "source-dir": (("--source-dir",), dict(type=Path, default=None, metavar="DIR",
                                           help="folder of upstream dataset files for offline builds "
                                                f"(also ${paths.ENV_SOURCE_DIR})")),
    "algorithms-dir": (("--algorithms-dir",), dict(type=Path, action="append", default=[], metavar="DIR",
                                                   help="extra adapter folder searched first "
                                                        f"(also ${paths.ENV_ALGORITHMS_PATH})")),
    "configs-dir": (("--configs-dir",), dict(type=Path, action="append", default=[], metavar="DIR",
                                             help="extra grid folder searched first "
                                                  f"(also ${paths.ENV_CONFIGS_PATH})")),
    "verbose": (("-v", "--verbose"), dict(action="count", default=0, help="more log lines (-vv: debug)")),
    "quiet": (("-q", "--quiet"), dict(action="store_true", help="warnings and errors only, no progress bar")),
})


def shared(*names: str, defaults: bool = True) -> Parser:
    """A parent parser with the shared options ``names`` (keys of :data:`OPTIONS`). With
    ``defaults=False`` an option left out sets nothing, so a subcommand's parser can take the same
    option as its parent command without either position overwriting the other."""
    p = Parser(add_help=False)
    for name in names:
        flags, kwargs = OPTIONS[name]
        p.add_argument(*flags, **(kwargs if defaults else {**kwargs, "default": argparse.SUPPRESS}))
    return p
