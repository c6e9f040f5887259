"""Lossless early stop: the query settings of a build that an earlier exact setting dominates.

Query grids are written in increasing order of effort. Once a query setting of a build answers
every query exactly (:func:`is_exact`), every setting after it *along the innermost query
parameter* (the last one of the grid, which :func:`annbench.plan.config.expand` varies fastest), with
every other query parameter at the same value, can only be slower at the same quality: it cannot
be on any Pareto front nor in any operating-point table. Such settings are stored as
:attr:`~annbench.core.results.Status.SKIPPED` instead of being measured.

Only the innermost parameter is followed. With ``query: {nprobe: [1, 4], k_factor: [0, 2, 8]}``
the settings run as (1,0) (1,2) (1,8) (4,0) (4,2) (4,8); if (1,2) is exact, only (1,8) is skipped:
(4,0) lowers ``k_factor`` while raising ``nprobe``, so it may be faster, and is measured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from annbench.core.results import Params, Reason, RunKey, RunResult, Status, canonical
from annbench.store.folder import ResultStore

#: Quality metrics that must all be 1.0 for a run to count as exact.
EXACT_METRICS = ("recall", "id_recall")


def is_exact(metrics: Mapping[str, Any]) -> bool:
    """Every query answered exactly: ``recall = 1`` and ``id_recall = 1`` (see README, Metrics), so
    every returned id is one of the true k nearest (or ties with the k-th)."""
    return all(float(metrics.get(m, float("nan"))) >= 1.0 for m in EXACT_METRICS)


def dominated_by(settings: Sequence[Params], query: Params, exact: Iterable[Params]) -> Params | None:
    """The first of the ``exact`` settings that comes before ``query`` along the innermost
    parameter of the grid ``settings`` (same value of every other parameter), or None.

    ``settings`` are one build's query settings in grid order (:meth:`annbench.plan.config.Group.query_settings`);
    settings not among them, and grids without query parameters, dominate nothing.
    """
    position = {canonical(s): i for i, s in enumerate(settings)}
    here = position.get(canonical(query))
    if here is None or not query:
        return None
    outer = list(query)[:-1]
    earlier = [(position[canonical(e)], e) for e in exact
               if canonical(e) in position and position[canonical(e)] < here
               and list(e) == list(query) and all(e[n] == query[n] for n in outer)]
    return min(earlier, key=lambda p: p[0])[1] if earlier else None


def describe(setting: Params) -> str:
    """``search_k=2000`` / ``nprobe=4 k_factor=2``."""
    return " ".join(f"{n}={v}" for n, v in setting.items())


def skipped(key: RunKey, by: Params, attrs: Mapping[str, Any]) -> RunResult:
    """The stored record of a run skipped because the setting ``by`` of its build was exact."""
    return RunResult(key, Status.SKIPPED, attrs={**attrs, "reason": Reason.DOMINATED, "dominated_by": canonical(by),
                                                 "note": f"dominated: recall 1.0 reached at {describe(by)}"})


def stored_exact(store: ResultStore, keys: Iterable[RunKey], dataset_checksum: str) -> list[Params]:
    """Query settings of ``keys`` whose stored result is an exact measurement of this dataset file."""
    out = []
    for key in keys:
        attrs = store.attrs_of(key) or {}
        if attrs.get("status") == Status.OK and attrs.get("dataset_checksum") == dataset_checksum and is_exact(attrs):
            out.append(key.query_params)
    return out


def standing_skips(store: ResultStore, keys: Sequence[RunKey], done: Sequence[bool]) -> list[bool]:
    """Per key (one build's runs, grid order): stored as skipped and still dominated by an exact
    run among those ``done`` (finished, not to be re-run). A skip whose exact run is to be run
    again is not standing: it is decided afresh after that run."""
    attrs = [store.attrs_of(k) or {} for k in keys]
    exact = [k.query_params for k, a, d in zip(keys, attrs, done)
             if d and a.get("status") == Status.OK and is_exact(a)]
    settings = [k.query_params for k in keys]
    return [a.get("status") == Status.SKIPPED and a.get("reason") == Reason.DOMINATED
            and dominated_by(settings, k.query_params, exact) is not None for k, a in zip(keys, attrs)]

