"""``annbench`` (the console script) and ``python -m annbench``: one command, one subcommand per stage.

``annbench run``, ``plot``, ``dataset``, ``encode``, ``compare`` and ``gate`` take exactly the options
of the matching top-level script (``run.py`` ...); ``annbench SUBCOMMAND --help`` lists them. Nothing
heavy is imported before the subcommand's thread count is pinned (numpy and the libraries read the
thread variables once, when they load).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from annbench import __version__
from annbench.core.threads import pin_environment, threads_in_argv

#: Subcommand → (module with ``main(argv)``, one line of help).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("annbench.cli.run", "build indexes, run the query grids, store and summarise results"),
    "plot": ("annbench.cli.plot", "Pareto plots, tables and the HTML report (--report DIR) of stored results"),
    "dataset": ("annbench.cli.dataset", "list, prepare, describe, create datasets; look up nearest keys"),
    "encode": ("annbench.cli.encode", "encode a labelled dataset with a trained network"),
    "compare": ("annbench.cli.compare", "a raw dataset and its encodings side by side"),
    "gate": ("annbench.cli.gate", "the CI regression gate: save a baseline, compare a fresh run with it"),
}


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in SUBCOMMANDS.items())
    return (f"usage: annbench SUBCOMMAND [options]   (annbench SUBCOMMAND --help for its options)\n\n"
            f"subcommands:\n{rows}\n")


def _threads(name: str, argv: list[str]) -> int:
    if name == "gate":  # the gate's thread count may come from its baseline file
        from annbench.cli.gate import threads_for

        return threads_for(argv)
    return threads_in_argv(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"annbench {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        sys.stderr.write(f"error: annbench: unknown subcommand {name!r}; valid: {', '.join(SUBCOMMANDS)}\n")
        return 2
    pin_environment(_threads(name, rest))
    module = __import__(SUBCOMMANDS[name][0], fromlist=["main"])
    entry: Callable[..., int] = module.main
    return entry(rest, prog=f"annbench {name}")


if __name__ == "__main__":
    sys.exit(main())
