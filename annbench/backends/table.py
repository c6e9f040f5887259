"""The Markdown table of adapters (``run.py --list-algorithms --markdown``, README's backend table).

Everything in it comes from the adapter classes and their grids: the library from ``libraries``, what the
index is from the first docstring line, the metrics from ``native_metrics`` and ``normalize_for`` (those its
grid's ``metrics`` list: what ``run`` accepts), the point
types it takes natively (and the distances on each) from ``point_types``, the parameters from the
``__init__`` and ``set_query_params`` signatures (type and default) and the docstrings' ``Parameters:``
sections. Nothing depends on the machine it is generated on.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Collection, Mapping
from typing import Any

from annbench.backends.adapter import Adapter, build_parameters, describe_type, query_parameters, served, type_hints

COLUMNS = ("algorithm", "library", "index", "metrics", "point types", "build parameters", "query parameters")

_SECTION = re.compile(r"^(\s*)Parameters:\s*$")
_ENTRY = re.compile(r"^(\s*)(\w+):\s*(.*)$")


def _documented(doc: str) -> dict[str, str]:
    """``name: text`` entries of the ``Parameters:`` section of one docstring (continuation lines
    indented deeper are joined on; the section ends at a blank or less indented line)."""
    found: dict[str, str] = {}
    lines = inspect.cleandoc(doc).splitlines()
    start = next((i for i, line in enumerate(lines) if _SECTION.match(line)), None)
    if start is None:
        return found
    section_indent = len(_SECTION.match(lines[start]).group(1))  # type: ignore[union-attr]
    entry_indent, name = None, None
    for line in lines[start + 1:]:
        indent = len(line) - len(line.lstrip())
        if not line.strip() or indent <= section_indent:
            break
        entry = _ENTRY.match(line)
        if entry and (entry_indent is None or indent == entry_indent):
            entry_indent, name = indent, entry.group(2)
            found[name] = entry.group(3).strip()
        elif name is not None:
            found[name] = f"{found[name]} {line.strip()}".strip()
    return found


def parameter_docs(cls: type[Adapter]) -> dict[str, str]:
    """What each documented parameter does, from the ``Parameters:`` sections of the docstrings of
    ``cls`` and its bases (the nearest class that documents a name wins)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = klass.__dict__.get("__doc__")
        if doc:
            docs.update(_documented(doc))
    return docs


def summary(cls: type[Adapter]) -> str:
    """The first line of the adapter's docstring (its own or its nearest base's)."""
    doc = inspect.getdoc(cls) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "—"


def _markdown(rst: str) -> str:
    """Docstring text (reStructuredText literals, ``x``) as Markdown (`x`)."""
    return rst.replace("``", "`")


def _yaml(value: Any) -> str:
    """A default as it is written in a YAML grid."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _parameters(params: Mapping[str, inspect.Parameter], hints: Mapping[str, Any], docs: Mapping[str, str]) -> str:
    lines = []
    for name, p in params.items():
        kind = describe_type(hints.get(name, p.annotation))
        default = "" if p.default is p.empty else f"; default {_yaml(p.default)}"
        doc = _markdown(docs.get(name, ""))
        lines.append(f"`{name}` ({kind}{default}){': ' + doc if doc else ''}")
    return "<br>".join(lines)


def metrics_text(cls: type[Adapter], metrics: Collection[str] | None = None) -> str:
    """``euclidean (`l2`), angular (`dot` on unit-norm rows)``: each metric (of ``metrics`` only, when given)
    and the library's name for it."""
    unit = "unit-norm rows and queries" if cls.normalize_queries else "unit-norm rows"
    return ", ".join(f"{m} (`{native}`{' on ' + unit if m in cls.normalize_for else ''})"
                     for m, native in cls.native_metrics.items() if metrics is None or m in metrics)


def row(algorithm: str, cls: type[Adapter], metrics: Collection[str] | None = None) -> tuple[str, ...]:
    """One algorithm's cells; its distances are those of ``metrics`` (its grid's) when given: what ``run``
    accepts, not all its library could serve."""
    docs = parameter_docs(cls)
    return (f"`{algorithm}`", ", ".join(cls.libraries), _markdown(summary(cls)).rstrip("."),
            metrics_text(cls, metrics), served(cls, metrics),
            _parameters(build_parameters(cls), type_hints(cls.__init__), docs),
            _parameters(query_parameters(cls), type_hints(cls.set_query_params), docs))


def markdown_table(adapters: Mapping[str, type[Adapter]],
                   metrics: Mapping[str, Collection[str]] | None = None) -> str:
    """One row per algorithm, in name order; ``metrics``: each algorithm's grid's distances."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for algorithm in sorted(adapters):
        grid = None if metrics is None else metrics[algorithm]
        lines.append("| " + " | ".join(_cell(c) for c in row(algorithm, adapters[algorithm], grid)) + " |")
    return "\n".join(lines)
