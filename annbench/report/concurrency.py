"""The concurrency section of a dataset page: QPS and tail latency as clients are added, at a fixed
recall, beside the ideal line; the recall–QPS fronts of each client level; which libraries serialise."""

from __future__ import annotations

import html
from typing import Any

from annbench.analyse.concurrency import at_level, client_scaling, levels, serialising
from annbench.report.difficulty_plots import plot_client_scaling
from annbench.report.plotting import plot_metric_pair
from annbench.report.tables import to_html

#: The recall of the scaling charts in the report (``plot.py --view clients-qps --at-recall R`` for another).
REPORT_RECALL = 0.9


def concurrency_section(writer: Any, part: Any) -> str:
    """A section of a dataset page (``writer``, ``part``: :class:`annbench.report.html.Writer` and ``Part``, which
    imports this module), only where the part's runs hold client levels above 1 (``run.py --clients``)."""
    found = levels(part.ok)
    if len(found) < 2:
        return ""
    table = client_scaling(part.frame, REPORT_RECALL)
    out = [f"<h3>Concurrent clients ({', '.join(map(str, found))})</h3>",
           f"<p>Each algorithm's fastest single-client setting with recall ≥ {REPORT_RECALL:g}, measured again with "
           f"N clients sharing its index, each sending its own stream of single queries for the window: total QPS "
           f"(dashed: the ideal, single-client QPS × min(clients, cores)) and p99 latency. Level 1 is the "
           f"single-query run (fastest pass); the levels above 1 are windows. Where a client timed only one query "
           f"in m (client_latency_every = m: queries so fast that reading the clock would be a visible share of "
           f"them), its QPS counts every query and its percentiles are over the timed ones.</p>", '<div class="plots">']
    for y in ("qps", "p99_ms"):
        rel = f"{part.tag}-clients-{y.removesuffix('_ms')}.svg"
        plot_client_scaling(table, y, writer.out / part.folder / rel,
                            f"{part.title}: {y.removesuffix('_ms')} vs clients at recall ≥ {REPORT_RECALL:g}")
        out.append(writer.image(part.folder, rel, f"{y} against clients"))
    for n in found:
        rel = f"{part.tag}-clients{n}-recall-qps.svg"
        plot_metric_pair(at_level(part.frame, n), "recall", "qps", writer.out / part.folder / rel,
                         f"{part.title}: recall–QPS fronts, {n} client{'s' * (n > 1)}")
        out.append(writer.image(part.folder, rel, f"recall against QPS, {n} clients"))
    out.append("</div>")
    if len(table):
        shown = table.drop(columns=["batch"]).copy()
        out.append('<div class="wide">' + to_html(shown) + "</div>")
    slow = serialising(table)
    if slow:
        out.append(f"<p>Serialising their clients (less than half a core's worth of QPS per extra core): "
                   f"{html.escape(', '.join(slow))}.</p>")
    return "\n".join(out)
