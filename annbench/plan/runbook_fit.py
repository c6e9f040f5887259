"""A sweep's runbook (:mod:`annbench.plan.runbook`): read and refused where it cannot run, and which adapters
can follow it (an adapter that cannot is left out of the plan, or refused when named)."""

from __future__ import annotations

import dataclasses
from typing import Any

from annbench.backends.discovery import load_adapter
from annbench.core.errors import UserError
from annbench.datasets.format import Dataset
from annbench.plan.grid import Plan
from annbench.plan.runbook import Operation, Runbook, read_runbook


def sweep_runbook(spec: str | None, dataset: Dataset, k: int, executor: str, clients: tuple[int, ...] | list[int],
                  rebuild_fallback: bool) -> Runbook | None:
    """The sweep's validated runbook (``spec``: ``--runbook FILE[:ENTRY]``; None without), refused where it
    cannot run (``executor``, ``clients``: the sweep's)."""
    if not spec:
        if rebuild_fallback:
            raise UserError("--rebuild-fallback is an option of --runbook; give both")
        return None
    if executor == "dask":
        raise UserError("--runbook with --executor dask: a runbook's ground truth is read by the child from this "
                        "machine's data folder; valid: --executor local or inprocess")
    if any(n != 1 for n in clients):
        raise UserError("--runbook with --clients: a runbook's searches are measured with one client; valid: drop "
                        "--clients")
    if dataset.filters is not None:
        raise UserError(f"--runbook on the filtered dataset {dataset.name}: runbooks measure unfiltered search; "
                        f"valid: a dataset without filters")
    runbook = read_runbook(spec, dataset.name, len(dataset.train))
    runbook.check_k(k)
    return runbook


def cannot_follow(adapter: Any, runbook: Runbook, rebuild: bool) -> str:
    """Why the adapter class cannot follow the runbook ("" if it can). A replace needs the adapter's own
    replace or a delete (the default replace is a delete then an insert); ``rebuild`` stands in for both."""
    changes = set(adapter.changes)
    if "insert" not in changes:
        return "cannot insert (it declares no changes)"
    if Operation.DELETE in runbook.operations and not ("delete" in changes or rebuild):
        return "cannot delete, and the runbook deletes (--rebuild-fallback rebuilds the index at each delete)"
    if Operation.REPLACE in runbook.operations and not ({"delete", "replace"} & changes or rebuild):
        return "cannot replace, and the runbook replaces (--rebuild-fallback rebuilds the index at each replace)"
    return ""


def capable(plan: Plan, runbook: Runbook, rebuild: bool, explicit: bool) -> tuple[Plan, list[str]]:
    """The plan without the build settings whose adapters cannot follow the runbook, and a line for each such
    algorithm. An algorithm named on the command line that cannot is an error."""
    kept, notes = [], {}
    for build in plan.builds:
        why = cannot_follow(load_adapter(build.algorithm, list(plan.adapter_dirs)), runbook, rebuild)
        if not why:
            kept.append(build)
        elif explicit:
            raise UserError(f"--algorithm {build.algorithm} {why}; valid: an algorithm that declares the runbook's "
                            f"changes (see README: Indexes that change)")
        else:
            notes[build.algorithm] = f"not measured on runbook {runbook.name}: {build.algorithm} {why}"
    if plan.builds and not kept:
        raise UserError(f"nothing to run: no algorithm of the sweep can follow runbook {runbook.name} "
                        f"({'; '.join(notes.values())})")
    return dataclasses.replace(plan, builds=tuple(kept)), list(notes.values())
