"""``plot.py``'s filtered-search options: the ``bands`` and ``selectivity`` views and the operating points
per selectivity band (``--operating-points FORMAT --by-band``). Kept apart from :mod:`annbench.cli.plot`,
which calls in at a few points."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from annbench.analyse.filtered import DEFAULT_EDGES, band_runs, parse_edges, qps_at_recall
from annbench.cli.common import Parser, names, one_k, output_path
from annbench.core.errors import UserError
from annbench.core.results import Status

#: Views drawn here: recall–QPS per selectivity band; QPS against selectivity at --at-recall.
FILTERED_VIEWS = ("bands", "selectivity")


def add_arguments(p: Parser) -> None:
    g = p.add_argument_group("filtered search (filtered datasets; need the dataset file, see --data-dir)")
    g.add_argument("--selectivity-bands", default=None, metavar="PCT[,PCT...]",
                   help="edges of the selectivity bands in percent (default 0.1,1,10: <0.1%%, 0.1-1%%, 1-10%%, "
                        ">=10%%) of the views 'bands' (recall vs QPS, a panel per band) and 'selectivity' (QPS at "
                        "recall >= --at-recall against selectivity) and of --by-band")
    g.add_argument("--by-band", action="store_true",
                   help="with --operating-points: one table per selectivity band, the runs' metrics on its queries")


def check(args: argparse.Namespace) -> None:
    """Option combinations, before anything is read; ``--selectivity-bands`` parsed into edges."""
    if args.by_band and not args.operating_points:
        raise UserError("--by-band applies to --operating-points; valid: --operating-points FORMAT --by-band")
    args.selectivity_bands = DEFAULT_EDGES if args.selectivity_bands is None else parse_edges(args.selectivity_bands)


def split_views(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """``--view`` split into the views drawn here and the rest."""
    wanted = names(args.view)
    mine = [v for v in wanted if v in FILTERED_VIEWS]
    rest = [v for v in wanted if v not in FILTERED_VIEWS]
    return mine, ",".join(rest) if rest else None


def banded(part: pd.DataFrame, dataset: str, args: argparse.Namespace, per_query: Any) -> pd.DataFrame:
    """``part``'s runs per selectivity band (the dataset must be filtered and its file at hand)."""
    pq = per_query.of(dataset)
    if "selectivity" not in pq:
        raise UserError(f"dataset {dataset} is not filtered: selectivity bands (views bands, selectivity; "
                        "--by-band) need a filtered dataset")
    ok = part[part["status"] == Status.OK]
    return band_runs(ok, pq[pq["path"].isin(set(ok["path"]))], args.selectivity_bands)


def plot_views(frame: pd.DataFrame, args: argparse.Namespace, results_dir: Path, wanted: list[str],
               per_query: Any) -> list[Path]:
    """The ``bands`` and ``selectivity`` views, one figure per dataset."""
    from annbench.report.filtered import plot_bands, plot_qps_by_selectivity
    from annbench.report.plotting import View

    written = []
    datasets = sorted(frame["dataset"].unique())
    several = len(datasets) * len(wanted) > 1 or len(names(args.view)) > len(wanted)
    mode = ", batch" if args.batch else ""
    for d in datasets:
        k, part = one_k(frame, d, args.k, args.batch)
        bands = banded(part, d, args, per_query)
        for name in wanted:
            if name == "bands":
                out = output_path(args, results_dir, d, k, View(name, "recall", "qps-by-band"), several)
                written.append(plot_bands(bands, out, f"{d} (k={k}{mode}): recall vs QPS per selectivity band"))
            else:
                out = output_path(args, results_dir, d, k, View(name, "selectivity", "qps"), several)
                written.append(plot_qps_by_selectivity(qps_at_recall(bands, args.at_recall), out,
                                                       f"{d} (k={k}{mode}): QPS at recall ≥ {args.at_recall:g}"))
    return written


def band_tables(frame: pd.DataFrame, args: argparse.Namespace, per_query: Any) -> list:
    """``--operating-points FORMAT --by-band``: per dataset and band, the operating-point table."""
    from annbench.report.filtered import band_tables as tables

    out = []
    for d in sorted(frame["dataset"].unique()):
        k, part = one_k(frame, d, args.k, args.batch)
        out += tables(banded(part, d, args, per_query), prefix=f"{d} (k={k}{', batch' if args.batch else ''}) ")
    return out
