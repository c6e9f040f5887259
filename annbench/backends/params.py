"""Adapter parameters checked against the adapter: the one rule the grids (:mod:`annbench.plan.config`),
the classifier (:mod:`annbench.apps.classifier`) and lookups (:mod:`annbench.apps.lookup`) all use,
with the same messages.

A parameter is valid when the adapter takes it (a keyword of ``__init__`` for build parameters, of
``set_query_params`` for query parameters) with a value of its annotated type
(:func:`annbench.backends.adapter.value_matches`), every required one is given, and the metric is one
the adapter supports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from annbench.backends.adapter import (
    Adapter,
    build_parameters,
    describe_type,
    query_parameters,
    type_hints,
    value_matches,
)
from annbench.core.errors import UserError


class ParamError(UserError, ValueError):
    """A parameter or metric the adapter does not take. A :class:`UserError` (one line, exit 2 on the command
    line) and a ``ValueError`` (what scikit-learn estimators raise). ``path`` says what it is about:
    ``("metric",)``, ``(part, name)`` for an unknown parameter, ``(part, name, i)`` for the ``i``-th value of a
    list with the wrong type (``i`` = 0 for a single value), ``(part,)`` for a missing required parameter."""

    def __init__(self, message: str, path: tuple[Any, ...]) -> None:
        super().__init__(message)
        self.path = path


def _values(value: Any, lists: bool) -> Sequence[Any]:
    return value if lists and isinstance(value, (list, tuple)) else [value]


def validate_params(adapter_class: type[Adapter], build: Mapping[str, Any] | None, query: Mapping[str, Any] | None,
                    metric: str | None, *, algorithm: str, lists: bool = False) -> None:
    """Raise :class:`ParamError` for the first thing ``adapter_class`` (the adapter of ``algorithm``) does
    not take: ``metric``, a ``build`` or ``query`` parameter it has no keyword for, a value of the wrong
    type, a required parameter missing. ``None`` skips that check. ``lists``: each parameter maps to a
    list of values (a grid), each of which is checked."""
    if metric is not None and metric not in adapter_class.metrics:
        raise ParamError(f"metric {metric!r} is not supported by {algorithm}; "
                         f"valid: {', '.join(adapter_class.metrics)}", ("metric",))
    for part, given, params, function in (("build", build, build_parameters, adapter_class.__init__),
                                          ("query", query, query_parameters, adapter_class.set_query_params)):
        if given is None:
            continue
        taken = params(adapter_class)
        hints = type_hints(function)
        for name, value in given.items():
            if name not in taken:
                raise ParamError(f"{algorithm} takes no {part} parameter {name!r}; valid: "
                                 f"{', '.join(taken) or 'none'}", (part, name))
            annotation = hints.get(name, taken[name].annotation)
            for i, v in enumerate(_values(value, lists)):
                if not value_matches(v, annotation):
                    raise ParamError(f"{part} parameter {name!r} = {v!r} has the wrong type; valid: "
                                     f"{describe_type(annotation)}", (part, name, i))
        missing = [n for n, p in taken.items() if p.default is p.empty and n not in given]
        if missing:
            raise ParamError(f"{algorithm} lacks required {part} parameter(s) {', '.join(missing)}", (part,))
