"""``run.py --runbook``: the parts of a sweep that follow a runbook (see README, "Indexes that change")."""

from __future__ import annotations

import argparse
from pathlib import Path

from annbench.core.results import RunResult, Status
from annbench.plan.grid import Plan
from annbench.plan.runbook import Runbook


def add_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("indexes that change (see README: Indexes that change)")
    g.add_argument("--runbook", metavar="FILE[:ENTRY]",
                   help="follow a big-ann-benchmarks runbook (or a shipped one: simple, sliding-window, "
                        "expiration-time, clustered): inserts, deletes, replaces, every query setting measured at "
                        "each search step; ENTRY picks the file's dataset key (default: its only one, or the "
                        "dataset's name)")
    g.add_argument("--rebuild-fallback", action="store_true",
                   help="with --runbook: an adapter that cannot delete rebuilds its index from the live points at "
                        "each delete or replace (timed as that step; its runs are marked rebuild_fallback)")


def summary_frame(results_dir: Path, dataset: str, runbook: Runbook, k: int):
    from annbench.analyse.frames import results_frame

    frame = results_frame(results_dir, dataset, runbook=runbook.name)
    return frame[frame["k"] == k] if len(frame) else frame


def summary_text(frame) -> str:
    """One row per run of the runbook: mean and minimum recall, QPS, throughput of each change, total time."""
    cols = ["algorithm", "build_params", "query_params", "status", "recall", "recall_min", "qps", "insert_per_s",
            "delete_per_s", "replace_per_s", "total_s", "deleted_returned", "index_bytes"]
    view = frame[[c for c in cols if c in frame]].dropna(axis=1, how="all")
    return view.to_string(index=False, float_format=lambda v: f"{v:.4g}", max_colwidth=40)


def warnings(frame) -> list[str]:
    """The closing summary's warnings: runs that returned ids deleted before the search."""
    if "deleted_returned" not in frame:
        return []
    bad = frame[frame["deleted_returned"].fillna(0) > 0]
    return [f"{row['algorithm']} {row['build_params']} {row['query_params']} runbook {row['runbook']}: returned "
            f"{int(row['deleted_returned'])} deleted ids (never counted as hits)" for _, row in bad.iterrows()]


def close(results_dir: Path, dataset: str, runbook: Runbook, args: argparse.Namespace, results: list[RunResult],
          plan: Plan, left_alone: list[str]) -> int:
    """The closing summary of a runbook sweep; its exit code (1 when a run failed)."""
    failed = [r for r in results if r.status == Status.ERROR]
    frame = summary_frame(results_dir, dataset, runbook, args.k)
    if len(frame):
        print(summary_text(frame))
    for r in failed:
        print(f"failed: {r.key.label()}: {r.error} (log: {r.attrs.get('log_path') or '-'})")
    print(f"{len(results) - len(failed)} runs of runbook {runbook.name} ({len(runbook.steps)} steps, "
          f"{len(runbook.searches)} searches) done, {len(failed)} failed, {plan.n_runs - len(results)} already stored; "
          f"results in {results_dir}")
    if not args.no_plot and len(frame):
        from annbench.report.streaming import write_figures

        for path in write_figures(results_dir, dataset, runbook.name, args.k).values():
            print(f"plot: {path}")
    for line in left_alone:
        print(line)
    for line in warnings(frame):
        print(f"warning: {line}")
    return 1 if failed else 0
