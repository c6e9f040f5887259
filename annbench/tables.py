"""Result tables rendered as text: terminal, CSV, Markdown, LaTeX (booktabs), JSON and HTML.

Pure functions from a DataFrame to a string; every cell that came from the user (names,
parameters, error messages) is escaped for the target format.
"""

from __future__ import annotations

import html
import json
import math
import re
from typing import Any

import numpy as np
import pandas as pd

FORMATS = ("text", "csv", "md", "latex", "json")

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def cell(value: Any) -> str:
    """A value as display text: 4 significant digits for floats, ``-`` for missing."""
    if _missing(value):
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return " ".join(str(value).split())  # one line


def _numeric(frame: pd.DataFrame) -> list[bool]:
    return [frame[c].dtype.kind in "fiu" for c in frame.columns]


def latex_escape(text: str) -> str:
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group()], text)


def to_latex(frame: pd.DataFrame) -> str:
    """A booktabs ``tabular``: numeric columns right-aligned, text escaped."""
    align = "".join("r" if n else "l" for n in _numeric(frame))
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(latex_escape(str(c)) for c in frame.columns) + r" \\", r"\midrule"]
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(latex_escape(cell(v)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def to_markdown(frame: pd.DataFrame) -> str:
    def md(value: Any) -> str:
        return cell(value).replace("\\", "\\\\").replace("|", "\\|")

    header = "| " + " | ".join(md(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---:" if n else "---" for n in _numeric(frame)) + "|"
    body = ["| " + " | ".join(md(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def to_json(frame: pd.DataFrame) -> str:
    """A list of records; missing values are ``null``."""
    def plain(v: Any) -> Any:
        if _missing(v):
            return None
        return v.item() if isinstance(v, np.generic) else v

    records = [{c: plain(v) for c, v in zip(frame.columns, row)} for row in frame.itertuples(index=False)]
    return json.dumps(records, indent=1, default=str) + "\n"


def to_html(frame: pd.DataFrame, links: dict[str, list[str | None]] | None = None) -> str:
    """An HTML ``<table>``; every cell escaped. ``links`` maps a column to one href (or None) per row."""
    numeric = _numeric(frame)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = []
        for c, v, n in zip(frame.columns, row, numeric):
            text = html.escape(cell(v))
            href = (links or {}).get(c, [None] * len(frame))[i]
            if href:
                text = f'<a href="{html.escape(href)}">{text}</a>'
            cells.append(f'<td class="num">{text}</td>' if n else f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>\n"


def render(frame: pd.DataFrame, fmt: str) -> str:
    """``frame`` as ``text``, ``csv``, ``md``, ``latex`` or ``json``."""
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "md":
        return to_markdown(frame)
    if fmt == "latex":
        return to_latex(frame)
    if fmt == "json":
        return to_json(frame)
    if fmt == "text":
        if frame.empty:
            return "(no rows)\n"
        return frame.to_string(index=False, formatters={c: cell for c in frame.columns}, max_colwidth=60) + "\n"
    raise ValueError(f"unknown table format {fmt!r}; valid: {', '.join(FORMATS)}")
