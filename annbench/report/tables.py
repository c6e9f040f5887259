"""Result tables rendered as text: terminal, CSV, Markdown, LaTeX (booktabs), JSON and HTML.

Pure functions from a DataFrame to a string; every cell that came from the user (names,
parameters, error messages) is escaped for the target format.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

FORMATS = ("text", "csv", "md", "latex", "json")


@dataclass(frozen=True)
class Table:
    """A table that compares: ``values``; optionally ``bold`` (same shape, True = the best cell of
    its column), ``notes`` (same shape, text behind a cell: shown on hover in HTML; in text,
    Markdown and LaTeX a second table lists each row's distinct notes with the columns they are
    behind; in CSV and JSON ``<column> <notes_suffix>`` columns), a ``caption`` (a line above it)
    and ``context`` (name, value) pairs that lead as columns in CSV and JSON (in the caption elsewhere)."""

    values: pd.DataFrame
    bold: pd.DataFrame | None = None
    notes: pd.DataFrame | None = None
    caption: str = ""
    notes_caption: str = ""
    notes_suffix: str = "params"
    #: Columns of ``values`` that name a row (repeated in the notes table).
    keys: tuple[str, ...] = ()
    context: tuple[tuple[str, Any], ...] = ()

    def _noted(self) -> list[str]:
        assert self.notes is not None
        return [c for c in self.notes.columns if c not in self.keys and self.notes[c].astype(bool).any()]

    def flat(self) -> pd.DataFrame:
        """Context, values and notes side by side in one frame (CSV and JSON)."""
        lead = pd.DataFrame({n: [v] * len(self.values) for n, v in self.context}, index=self.values.index)
        parts = [lead, self.values]
        if self.notes is not None:
            parts.append(self.notes[self._noted()].rename(columns=lambda c: f"{c} {self.notes_suffix}"))
        return pd.concat(parts, axis=1)

    def notes_table(self) -> pd.DataFrame:
        """Per row, each distinct note once with the columns it is behind (``recall>=0.5, 0.8``)."""
        noted = self._noted()
        rows = []
        for i in range(len(self.values)):
            by_note: dict[str, list[str]] = {}
            for c in noted:
                note = self.notes[c].iloc[i]
                if note:
                    by_note.setdefault(str(note), []).append(str(c))
            for note, columns in by_note.items():
                rows.append({**{k: self.values[k].iloc[i] for k in self.keys}, "cells": _short(columns),
                             self.notes_suffix: note})
        return pd.DataFrame(rows, columns=[*self.keys, "cells", self.notes_suffix])


def _short(columns: list[str]) -> str:
    """``recall>=0.5, 0.8`` for columns ``recall>=0.5`` and ``recall>=0.8`` (a shared ``...=`` prefix once)."""
    head = columns[0]
    prefix = head[:head.rfind("=") + 1] if "=" in head else ""
    if prefix and all(c.startswith(prefix) for c in columns):
        return prefix + ", ".join(c[len(prefix):] for c in columns)
    return ", ".join(columns)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX_SPECIAL))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def cell(value: Any) -> str:
    """A value as display text: 4 significant digits for floats (no exponent from 10^4 to 10^15),
    ``-`` for missing."""
    if _missing(value):
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        if 1e4 <= abs(value) < 1e15:  # 48280, not 4.828e+04
            return f"{float(f'{float(value):.4g}'):.0f}"
        return f"{float(value):.4g}"
    return " ".join(str(value).split())  # one line


def _numeric(frame: pd.DataFrame) -> list[bool]:
    return [frame[c].dtype.kind in "fiu" for c in frame.columns]


def latex_escape(text: str) -> str:
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group()], text)


def _bold_rows(frame: pd.DataFrame, bold: pd.DataFrame | None) -> list[list[bool]]:
    if bold is None:
        return [[False] * len(frame.columns) for _ in range(len(frame))]
    mask = bold.reindex(index=frame.index, columns=frame.columns, fill_value=False).astype(bool)
    return mask.to_numpy().tolist()


def to_latex(frame: pd.DataFrame, bold: pd.DataFrame | None = None) -> str:
    """A booktabs ``tabular``: numeric columns right-aligned, text escaped, ``bold`` cells in ``\\textbf``."""
    align = "".join("r" if n else "l" for n in _numeric(frame))
    lines = [rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(latex_escape(str(c)) for c in frame.columns) + r" \\", r"\midrule"]
    for row, marks in zip(frame.itertuples(index=False), _bold_rows(frame, bold)):
        lines.append(" & ".join(rf"\textbf{{{latex_escape(cell(v))}}}" if b else latex_escape(cell(v))
                                for v, b in zip(row, marks)) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")


def to_markdown(frame: pd.DataFrame, bold: pd.DataFrame | None = None) -> str:
    """A pipe table; ``bold`` cells in ``**``."""
    def md(value: Any) -> str:
        return _md_escape(cell(value))

    header = "| " + " | ".join(md(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---:" if n else "---" for n in _numeric(frame)) + "|"
    body = ["| " + " | ".join(f"**{md(v)}**" if b else md(v) for v, b in zip(row, marks)) + " |"
            for row, marks in zip(frame.itertuples(index=False), _bold_rows(frame, bold))]
    return "\n".join([header, rule, *body]) + "\n"


def to_json(frame: pd.DataFrame) -> str:
    """A list of records; missing values are ``null``."""
    def plain(v: Any) -> Any:
        if _missing(v):
            return None
        return v.item() if isinstance(v, np.generic) else v

    records = [{c: plain(v) for c, v in zip(frame.columns, row)} for row in frame.itertuples(index=False)]
    return json.dumps(records, indent=1, default=str) + "\n"


def to_html(frame: pd.DataFrame, links: dict[str, list[str | None]] | None = None,
            bold: pd.DataFrame | None = None, titles: pd.DataFrame | None = None, caption: str = "") -> str:
    """An HTML ``<table>``; every cell escaped. ``links`` maps a column to one href (or None) per row;
    ``bold`` (same shape, bool) marks cells ``<strong>``; ``titles`` (same shape, text) is shown on
    hover (a ``title`` attribute, the cell underlined dotted)."""
    numeric = _numeric(frame)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    tips = (titles.reindex(index=frame.index, columns=frame.columns, fill_value="").to_numpy().tolist()
            if titles is not None else [[""] * len(frame.columns) for _ in range(len(frame))])
    rows = []
    for i, (row, marks, tip) in enumerate(zip(frame.itertuples(index=False), _bold_rows(frame, bold), tips)):
        cells = []
        for c, v, n, b, t in zip(frame.columns, row, numeric, marks, tip):
            text = html.escape(cell(v))
            href = (links or {}).get(c, [None] * len(frame))[i]
            if href:
                text = f'<a href="{html.escape(href)}">{text}</a>'
            if b:
                text = f"<strong>{text}</strong>"
            attrs = (' class="num"' if n else "") + (f' title="{html.escape(str(t))}"' if t else "")
            cells.append(f"<td{attrs}>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>\n" if caption else ""
    return (f"<table>\n{cap}<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows)
            + "\n</tbody>\n</table>\n")


def to_text(frame: pd.DataFrame, bold: pd.DataFrame | None = None) -> str:
    """Aligned columns for a terminal; ``bold`` cells marked with a trailing ``*``."""
    if frame.empty:
        return "(no rows)\n"
    if bold is not None:
        marks = pd.DataFrame(_bold_rows(frame, bold), index=frame.index, columns=frame.columns)
        shown = pd.DataFrame({c: [cell(v) + ("*" if m else "") for v, m in zip(frame[c], marks[c])]
                              for c in frame.columns}, index=frame.index)
        return shown.to_string(index=False, max_colwidth=100) + "\n"
    return frame.to_string(index=False, formatters={c: cell for c in frame.columns}, max_colwidth=100) + "\n"


def render(frame: pd.DataFrame, fmt: str, bold: pd.DataFrame | None = None) -> str:
    """``frame`` as ``text``, ``csv``, ``md``, ``latex`` or ``json`` (``bold``: text, md and latex)."""
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "md":
        return to_markdown(frame, bold)
    if fmt == "latex":
        return to_latex(frame, bold)
    if fmt == "json":
        return to_json(frame)
    if fmt == "text":
        return to_text(frame, bold)
    raise ValueError(f"unknown table format {fmt!r}; valid: {', '.join(FORMATS)}")


def _caption(text: str, fmt: str) -> str:
    if not text:
        return ""
    if fmt == "md":
        return f"**{_md_escape(' '.join(text.split()))}**\n\n"
    if fmt == "latex":
        return "% " + " ".join(text.split()) + "\n"
    return " ".join(text.split()) + "\n"


def render_tables(tables: list[Table], fmt: str) -> str:
    """Comparison tables in ``fmt``: text, md and latex give each table under its caption, bold
    marks kept, then its notes as a second table; csv and json give one flat table of them all
    (values and notes side by side, captions dropped)."""
    if fmt in ("csv", "json"):
        flat = [t.flat() for t in tables]
        return render(pd.concat(flat, ignore_index=True) if flat else pd.DataFrame(), fmt)
    out = []
    for t in tables:
        out.append(_caption(t.caption, fmt) + render(t.values, fmt, t.bold))
        if t.notes is not None and len(t.notes_table()):
            out.append(_caption(t.notes_caption, fmt) + render(t.notes_table(), fmt))
    return "\n".join(out)
