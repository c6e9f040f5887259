"""Runbook runs as figures and a section of the HTML report (see :mod:`annbench.analyse.streaming`).

Four views of one runbook's runs on one dataset and k: recall over the search steps (the drift), one line per
run; QPS over the search steps; insert and delete (and replace) throughput per build setting; mean recall
against total time, each algorithm's Pareto front across its query settings.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from annbench.analyse.frames import measured
from annbench.analyse.streaming import step_frame
from annbench.core.results import runbook_folder
from annbench.report.plotting import _save, plain_text, plot_metric_pair, styles
from annbench.report.tables import Table

#: The figure files of one runbook's views, by view.
FIGURES = {"recall-steps": "recall-steps.png", "qps-steps": "qps-steps.png", "throughput": "throughput.png",
           "recall-total": "recall-total-time.png"}
#: Columns of the report's table of runbook runs.
RUN_COLUMNS = ["algorithm", "build_params", "query_params", "recall", "recall_min", "qps", "insert_per_s",
               "delete_per_s", "replace_per_s", "total_s", "deleted_returned", "rebuild_fallback", "index_bytes"]


def _run_label(row: pd.Series) -> str:
    return plain_text(f"{row['algorithm']} {row['build_params']} {row['query_params']}")


def plot_over_steps(steps: pd.DataFrame, metric: str, output: Path, title: str, log: bool = False) -> Path:
    """``metric`` of every search step, one line per run (colour: its algorithm)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    search = steps[steps["operation"] == "search"]
    fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
    try:
        palette = styles(search["algorithm"].astype(str))
        for _, run in search.groupby(["algorithm", "build_params", "query_params"], sort=True):
            colour, marker = palette[str(run["algorithm"].iloc[0])]
            ax.plot(run["step"], run[metric], color=colour, marker=marker, markersize=3.5, linewidth=1.0,
                    label=_run_label(run.iloc[0]))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("runbook step")
        ax.set_ylabel({"recall": "recall (ann-benchmarks' rule)", "qps": "queries per second"}.get(metric, metric))
        if log:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.35)
        fig.suptitle(plain_text(title), fontsize=10)
        if len(search):
            fig.legend(loc="outside right upper", frameon=False, fontsize=6)
        return _save(fig, output)
    finally:
        plt.close(fig)


def plot_throughput(runs: pd.DataFrame, output: Path, title: str) -> Path:
    """Vectors per second of each change (all its points over all its time), one group of bars per build
    setting (its query settings share the changes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = [c for c in ("insert_per_s", "delete_per_s", "replace_per_s") if c in runs and runs[c].notna().any()]
    builds = runs.drop_duplicates(["algorithm", "build_params"]).sort_values(["algorithm", "build_params"])
    fig, ax = plt.subplots(figsize=(9, 0.5 + 0.4 * max(1, len(builds)) * max(1, len(ops))), layout="constrained")
    try:
        width = 0.8 / max(1, len(ops))
        for i, op in enumerate(ops):
            ax.barh([b + i * width for b in range(len(builds))], builds[op], height=width,
                    label=op.removesuffix("_per_s"))
        ax.set_yticks([b + width * (len(ops) - 1) / 2 for b in range(len(builds))],
                      [plain_text(f"{r.algorithm} {r.build_params}") for r in builds.itertuples()], fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("vectors per second")
        ax.grid(True, axis="x", alpha=0.35)
        ax.set_title(plain_text(title))
        if ops:
            ax.legend(frameon=False)
        return _save(fig, output)
    finally:
        plt.close(fig)


def write_figures(results_dir: str | Path, dataset: str, runbook: str, k: int, out: Path | None = None
                  ) -> dict[str, Path]:
    """The four views of ``runbook``'s runs at ``k`` (default folder: the runbook's results folder); {} if none."""
    from annbench.analyse.frames import results_frame

    runs = measured(results_frame(results_dir, dataset, runbook=runbook))
    runs = runs[runs["k"] == k] if len(runs) else runs
    if runs.empty:
        return {}
    steps = step_frame(results_dir, dataset, runbook)
    steps = steps[steps["k"] == k]
    out = out or Path(results_dir) / dataset / str(k) / runbook_folder(runbook)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{dataset}, runbook {runbook} (k={k})"
    return {
        "recall-steps": plot_over_steps(steps, "recall", out / FIGURES["recall-steps"], f"{title}: recall per step"),
        "qps-steps": plot_over_steps(steps, "qps", out / FIGURES["qps-steps"], f"{title}: QPS per step", log=True),
        "throughput": plot_throughput(runs, out / FIGURES["throughput"], f"{title}: changes"),
        "recall-total": plot_metric_pair(runs, "recall", "total_s", out / FIGURES["recall-total"],
                                         f"{title}: mean recall vs total time", x_scale="linear", y_scale="log"),
    }


def streaming_section(results_dir: str | Path | None, out: Path, d: str, name: str,
                      render: Callable[[Table], str]) -> str:
    """HTML of the dataset page's section on its runbook runs (figures written into ``out / d``): per runbook
    and k, the four views and the table of runs. Empty where the dataset has none."""
    from annbench.analyse.frames import ANY_RUNBOOK, results_frame

    if results_dir is None:
        return ""
    runs = measured(results_frame(results_dir, name, runbook=ANY_RUNBOOK))
    if runs.empty:
        return ""
    body = ["<h2>Indexes that change: runbooks</h2>",
            "<p>Each run followed the runbook's inserts, deletes and replaces on one index; recall is measured at "
            "every search step against the points live then (mean and minimum over the steps), throughput is "
            "vectors per second of each change.</p>"]
    for (runbook, k), part in runs.groupby(["runbook", "k"], sort=True):
        tag = f"{runbook_folder(str(runbook))}-k{int(k)}"
        figures = write_figures(results_dir, name, str(runbook), int(k), out / d / tag)
        body.append(f"<h3>{html.escape(str(runbook))}, k = {int(k)}</h3>")
        body += [f'<figure><img src="{html.escape(f"{tag}/{p.name}")}" alt="{html.escape(view)}"></figure>'
                 for view, p in figures.items()]
        table = part[[c for c in RUN_COLUMNS if c in part]].dropna(axis=1, how="all")
        body.append(render(Table(table.reset_index(drop=True), caption=f"runs of {runbook}, k = {int(k)}")))
    return "\n".join(body)
