"""The gate's verdicts as text: a terminal table, Markdown (for a CI job summary) and JUnit XML."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np

from annbench.gate.verdicts import MISSING, NEW, REGRESSION, VERDICTS, Comparison, Session, Tolerances

COLUMNS = ("verdict", "algorithm", "build", "query", "recall then", "recall now", "QPS then", "QPS now",
           "norm. QPS change [CI]", "notes")


def _recall(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _qps(q: np.ndarray | None) -> str:
    """Median QPS over every pass ± half the interquartile range, relative to the median."""
    if q is None or not len(q):
        return "-"
    p25, med, p75 = np.percentile(q, [25, 50, 75])
    return f"{med:,.0f} ±{50 * (p75 - p25) / med:.1f}%"


def _change(c: Comparison) -> str:
    if c.ratio is None:
        return "-"
    return f"{100 * (c.ratio - 1):+.1f}% [{100 * (c.ratio_low - 1):+.1f}, {100 * (c.ratio_high - 1):+.1f}]"


def _params(text: str) -> str:
    return "" if text == "{}" else text


def rows(comparisons: list[Comparison]) -> list[tuple[str, ...]]:
    order = {v: i for i, v in enumerate(VERDICTS)}
    ranked = sorted(comparisons, key=lambda c: (order.get(c.verdict, 0), c.algorithm, c.build_params, c.query_params))
    return [(c.verdict, c.algorithm, _params(c.build_params), _params(c.query_params), _recall(c.recall_then),
             _recall(c.recall_now), _qps(c.qps_then), _qps(c.qps_now), _change(c), "; ".join(c.reasons))
            for c in ranked]


def passed_text(passed: bool) -> str:
    return "PASSED" if passed else "FAILED"


def counts_text(comparisons: list[Comparison]) -> str:
    counts = Counter(c.verdict for c in comparisons)
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS)


def _session_line(label: str, s: Session) -> str:
    p = s.provenance
    return (f"{label}: {p.get('started', '?')} on {p.get('host', '?')} ({p.get('cpu_model', '?')}), annbench "
            f"{p.get('annbench_commit', '?')}, {s.suite.get('rounds')} rounds x "
            f"{s.suite.get('processes', 1)} processes x {s.suite.get('runs')} passes")


def header_lines(baseline: Session, current: Session, tol: Tolerances, factor: float) -> list[str]:
    s = baseline.suite
    factor_text = "n/a" if math.isnan(factor) else f"{factor:.3f}"
    return [
        f"suite: {s.get('dataset')} k={s.get('k')} preset={s.get('preset')} "
        f"{'batch' if s.get('batch') else 'single-query'} threads={s.get('threads')} reference={s.get('reference')}",
        _session_line("baseline", baseline),
        _session_line("current ", current),
        f"machine factor (reference QPS now / then): {factor_text}; QPS below are raw, verdicts use "
        f"reference-normalised QPS",
        f"tolerances: recall -{tol.recall:g} absolute, normalised QPS -{100 * tol.qps:g}% with its "
        f"{100 * tol.confidence:g}% confidence interval (Welch t over the rounds) below no change",
    ]


def table_text(comparisons: list[Comparison], header: list[str], passed: bool) -> str:
    body = rows(comparisons)
    widths = [max(len(COLUMNS[i]), *(len(r[i]) for r in body)) if body else len(COLUMNS[i])
              for i in range(len(COLUMNS))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    out = [*header, "", line(COLUMNS), line(["-" * w for w in widths]), *(line(r) for r in body), "",
           f"gate {passed_text(passed)}: {counts_text(comparisons)}"]
    return "\n".join(out)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(comparisons: list[Comparison], header: list[str], passed: bool) -> str:
    body = rows(comparisons)
    out = [f"## annbench regression gate: {passed_text(passed)}", "",
           f"**{counts_text(comparisons)}**", "", *(f"- {_md(h)}" for h in header), "",
           "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in body:
        cells = [f"**{r[0]}**" if r[0] in (REGRESSION, MISSING) else r[0], *(_md(c) for c in r[1:])]
        cells[1:4] = [f"`{c}`" if c else "" for c in cells[1:4]]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def junit_xml(comparisons: list[Comparison], allow_missing: bool = False) -> str:
    """One test case per setting: regressions (and missing settings, unless allowed) fail;
    allowed missing settings are skipped; the figures go to each case's system-out."""
    suite = ET.Element("testsuite", name="annbench-gate", tests=str(len(comparisons)))
    failures = skipped = 0
    for c in comparisons:
        case = ET.SubElement(suite, "testcase", classname=f"annbench.gate.verdicts.{c.algorithm}",
                             name=f"build={c.build_params} query={c.query_params}")
        message = "; ".join(c.reasons) or c.verdict
        if c.verdict == REGRESSION or (c.verdict == MISSING and not allow_missing):
            failures += 1
            ET.SubElement(case, "failure", message=f"{c.verdict}: {message}", type=c.verdict).text = message
        elif c.verdict == MISSING:
            skipped += 1
            ET.SubElement(case, "skipped", message=f"missing: {message}")
        ET.SubElement(case, "system-out").text = (
            f"verdict={c.verdict} recall {_recall(c.recall_then)} -> {_recall(c.recall_now)}; QPS {_qps(c.qps_then)} "
            f"-> {_qps(c.qps_now)}; normalised QPS change {_change(c)}"
            + (f"; {message}" if c.verdict == NEW else ""))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    root = ET.Element("testsuites", name="annbench-gate", tests=str(len(comparisons)), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
