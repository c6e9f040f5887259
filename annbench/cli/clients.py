"""``plot.py``'s client-level options: ``--clients N`` (the runs of one level) and the scaling views
``clients-qps`` and ``clients-p99``. Kept apart from :mod:`annbench.cli.plot`, which calls in at a few points."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from annbench.analyse.concurrency import at_level, client_scaling, levels
from annbench.cli.common import Parser, names, one_k, output_path, positive_int
from annbench.core.errors import UserError

log = logging.getLogger("annbench.plot")

#: The scaling views: metric on the y axis against concurrent clients.
CLIENT_VIEWS = {"clients-qps": "qps", "clients-p99": "p99_ms"}


def add_arguments(p: Parser) -> None:
    p.add_argument("--clients", type=positive_int, default=None, metavar="N",
                   help="keep the runs of N concurrent clients (default: 1, single-query mode, where the results "
                        f"hold several levels; the {' and '.join(CLIENT_VIEWS)} views use every level)")


def filter_clients(frame: pd.DataFrame, args: argparse.Namespace, quiet: bool = False) -> pd.DataFrame:
    """The runs of ``--clients N``; by default of level 1 (a front through several levels would set N clients'
    total QPS against one client's), said in a log line unless ``quiet``."""
    found = levels(frame)
    if args.clients is None:
        if len(found) > 1 and not quiet:
            log.info("these results hold client levels %s: views and tables show level 1 (single-query mode); "
                     "give --clients N for another, or --view clients-qps,clients-p99 for the scaling",
                     ", ".join(map(str, found)))
        return at_level(frame, 1)
    if args.clients not in found:
        raise UserError(f"--clients {args.clients}: no runs measured with that many clients; valid: "
                        f"{', '.join(map(str, found))}")
    return at_level(frame, args.clients)


def split_views(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """``--view`` split into the client views drawn here and the rest."""
    wanted = names(args.view)
    mine = [v for v in wanted if v in CLIENT_VIEWS]
    rest = [v for v in wanted if v not in CLIENT_VIEWS]
    return mine, ",".join(rest) if rest else None


def plot_clients(every_level: pd.DataFrame, args: argparse.Namespace, results_dir: Path,
                 wanted: list[str]) -> list[Path]:
    """The client views, one figure per dataset, from the runs of every level."""
    from annbench.report.difficulty_plots import plot_client_scaling
    from annbench.report.plotting import View

    written = []
    datasets = sorted(every_level["dataset"].unique())
    several = len(datasets) * len(wanted) > 1
    mode = ", batch" if args.batch else ""
    for name in wanted:
        y = CLIENT_VIEWS[name]
        for d in datasets:
            k, part = one_k(every_level, d, args.k, args.batch)
            if len(levels(part)) < 2:
                raise UserError(f"--view {name}: {d} has runs of one client level only; measure more with "
                                f"run.py --clients 1,2,4")
            table = client_scaling(part, args.at_recall)
            out = output_path(args, results_dir, d, k, View(name, "clients", y), several)
            written.append(plot_client_scaling(table, y, out, f"{d} (k={k}{mode}): {y.removesuffix('_ms')} vs "
                                                              f"clients at recall ≥ {args.at_recall:g}"))
    return written
