"""Runbooks: big-ann-benchmarks' NeurIPS'23 streaming format, read unchanged, validated before anything is built.

A runbook file maps dataset keys to entries; an entry has ``max_pts`` (the most points live at once)
and steps numbered 1, 2, ... (read in order up to the first missing number, as big-ann-benchmarks'
``load_runbook`` does; other keys such as ``gt_url`` are ignored)::

    random-xs:
      max_pts: 10000
      1: {operation: insert, start: 0, end: 10000}     # train rows [start, end) under tags = rows
      2: {operation: search}
      3: {operation: delete, start: 0, end: 5000}      # tags [start, end)
      4: {operation: replace, tags_start: 0, tags_end: 2500, ids_start: 7500, ids_end: 10000}

``replace`` gives the live tags ``[tags_start, tags_end)`` the vectors of train rows
``[ids_start, ids_end)`` (big-ann-benchmarks' ``compute_gt.py``). The live points are simulated here
step by step (as runs of tags on rows), so a range beyond the train rows, an insert of live tags, a delete
or replace of tags that are not live, more than ``max_pts`` live points or an unknown operation is
one :class:`UserError` naming the file, entry and step.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from annbench.core.errors import UserError
from annbench.core.results import canonical
from annbench.quality.streaming import LiveSet, Piece

#: ``yaml.safe_load``'s semantics, in C where PyYAML has it (big-ann-benchmarks' runbooks have ~1,000 steps).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Operation(enum.StrEnum):
    INSERT = "insert"
    DELETE = "delete"
    REPLACE = "replace"
    SEARCH = "search"


#: The integer fields each operation needs.
FIELDS = {Operation.INSERT: ("start", "end"), Operation.DELETE: ("start", "end"),
          Operation.REPLACE: ("tags_start", "tags_end", "ids_start", "ids_end"), Operation.SEARCH: ()}


@dataclass(frozen=True)
class Step:
    """One numbered step. ``start``/``end``: the rows (= tags) of an insert or delete; a replace gives
    tags ``[tags_start, tags_end)`` the rows ``[ids_start, ids_end)``."""

    number: int
    operation: Operation
    start: int = 0
    end: int = 0
    tags_start: int = 0
    tags_end: int = 0
    ids_start: int = 0
    ids_end: int = 0

    @property
    def count(self) -> int:
        """Points the step inserts, deletes or replaces (0 for a search)."""
        if self.operation is Operation.REPLACE:
            return self.tags_end - self.tags_start
        return self.end - self.start if self.operation is not Operation.SEARCH else 0

    def as_dict(self) -> dict[str, Any]:
        return {"operation": self.operation.value, **{f: getattr(self, f) for f in FIELDS[self.operation]}}


@dataclass(frozen=True)
class Runbook:
    """A validated runbook entry: its steps and the live points at each search step."""

    path: str
    entry: str
    max_pts: int
    steps: tuple[Step, ...]
    live_sets: tuple[LiveSet, ...]

    @property
    def name(self) -> str:
        """``<file stem>:<entry>``, as results and views label it."""
        return f"{Path(self.path).stem}:{self.entry}"

    @property
    def digest(self) -> str:
        """A short hash of what the runbook does (``max_pts`` and the steps; not comments, key order or
        ``gt_url``): the key of its ground truth and of its results."""
        text = canonical({"max_pts": self.max_pts, "steps": [s.as_dict() for s in self.steps]})
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    @property
    def operations(self) -> frozenset[Operation]:
        return frozenset(s.operation for s in self.steps)

    @property
    def searches(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.operation is Operation.SEARCH)

    def min_live_at_search(self) -> int:
        return min((sum(p.length for p in live) for live in self.live_sets), default=0)

    def check_k(self, k: int) -> None:
        """Every search step must have at least ``k`` live points to be scored at k."""
        for step, live in zip(self.searches, self.live_sets):
            n = sum(p.length for p in live)
            if n < k:
                raise UserError(f"runbook {self.where(step)}: search with {n} live points, fewer than k={k}; "
                                f"valid: -k at most {self.min_live_at_search()}, or a runbook with more points live")

    def where(self, step: Step | None = None) -> str:
        return f"{self.path}:{self.entry}" + (f" step {step.number}" if step else "")


def read_runbook(spec: str, dataset: str, n_train: int) -> Runbook:
    """``FILE[:ENTRY]`` → the validated :class:`Runbook` for a dataset of ``n_train`` rows. ENTRY
    defaults to the file's only key, else to ``dataset``."""
    path, entry = _split(spec)
    if not Path(path).is_file():
        from annbench.plan.runbook_gen import KINDS, shipped

        found = shipped(path)
        if found is None:
            raise UserError(f"runbook {path}: no such file; valid: a runbook file (FILE[:ENTRY]) or a shipped "
                            f"runbook: {', '.join(KINDS)}")
        path = str(found)
    try:
        document = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except OSError as e:
        raise UserError(f"runbook {path}: cannot be read ({e.strerror or e}); valid: a YAML file") from None
    except yaml.YAMLError as e:
        raise UserError(f"runbook {path}: not valid YAML ({e}); valid: big-ann-benchmarks' runbook format") from None
    if not isinstance(document, dict) or not document:
        raise UserError(f"runbook {path}: holds no dataset entries; valid: a mapping of dataset names to "
                        f"max_pts and numbered steps")
    keys = [str(key) for key in document]
    if entry is None:
        entry = keys[0] if len(keys) == 1 else dataset
    if entry not in keys:
        raise UserError(f"runbook {path}: no entry {entry!r}; valid: {', '.join(keys)} (pick one with "
                        f"--runbook {path}:ENTRY)")
    body = document[next(key for key in document if str(key) == entry)]
    return parse_entry(body, str(path), entry, n_train)


def _split(spec: str) -> tuple[str, str | None]:
    """``FILE:ENTRY`` → (FILE, ENTRY); a bare FILE (also one whose name has a colon) → (FILE, None)."""
    if Path(spec).is_file() or ":" not in spec:
        return spec, None
    path, _, entry = spec.rpartition(":")
    return path, entry or None


def parse_entry(body: Any, path: str, entry: str, n_train: int) -> Runbook:
    """Validate one runbook entry against ``n_train`` rows and simulate its live points."""
    where = f"{path}:{entry}"
    if not isinstance(body, dict):
        raise UserError(f"runbook {where}: is {type(body).__name__}, not a mapping; valid: max_pts and numbered steps")
    max_pts = body.get("max_pts")
    if max_pts is None:
        raise UserError(f"runbook {where}: no max_pts; valid: max_pts: N, the most points live at once")
    if not _is_int(max_pts) or max_pts < 1:
        raise UserError(f"runbook {where}: max_pts is {max_pts!r}; valid: an integer >= 1")
    steps = []
    number = 1
    while number in body:
        steps.append(_step(body[number], number, where, n_train))
        number += 1
    if not steps:
        raise UserError(f"runbook {where}: no step 1; valid: steps numbered 1, 2, ...")
    return Runbook(path, entry, int(max_pts), tuple(steps), _simulate(steps, int(max_pts), where))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _step(raw: Any, number: int, where: str, n_train: int) -> Step:
    at = f"runbook {where} step {number}"
    if not isinstance(raw, dict) or "operation" not in raw:
        raise UserError(f"{at}: has no operation; valid: operation: insert, delete, replace or search")
    try:
        operation = Operation(raw["operation"])
    except ValueError:
        raise UserError(f"{at}: unknown operation {raw['operation']!r}; valid: "
                        f"{', '.join(o.value for o in Operation)}") from None
    values = {}
    for name in FIELDS[operation]:
        value = raw.get(name)
        if not _is_int(value):
            raise UserError(f"{at}: {operation} needs {name} as an integer, got {value!r}; valid: "
                            f"{', '.join(FIELDS[operation])}")
        values[name] = value
    step = Step(number, operation, **values)
    for lo, hi in (("start", "end"), ("tags_start", "tags_end"), ("ids_start", "ids_end")):
        if lo in values and not 0 <= values[lo] < values[hi] <= n_train:
            raise UserError(f"{at}: {operation} range [{values[lo]}, {values[hi]}) ({lo}, {hi}) is empty or beyond "
                            f"the dataset's {n_train} train rows; valid: 0 <= {lo} < {hi} <= {n_train}")
    if operation is Operation.REPLACE and step.tags_end - step.tags_start != step.ids_end - step.ids_start:
        raise UserError(f"{at}: replace of {step.tags_end - step.tags_start} tags by {step.ids_end - step.ids_start} "
                        f"rows; valid: tags_end - tags_start == ids_end - ids_start")
    return step


def _simulate(steps: list[Step], max_pts: int, where: str) -> tuple[LiveSet, ...]:
    """Run the steps on the live pieces (sorted by tag; see :class:`Piece`); the pieces at each search step."""
    live: list[Piece] = []
    out = []
    for step in steps:
        at = f"runbook {where} step {step.number}"
        if step.operation is Operation.SEARCH:
            out.append(tuple(live))
            continue
        lo, hi = (step.tags_start, step.tags_end) if step.operation is Operation.REPLACE else (step.start, step.end)
        inside = [(max(p.tag, lo), min(p.tag + p.length, hi)) for p in live if p.tag < hi and p.tag + p.length > lo]
        covered = sum(b - a for a, b in inside)
        if step.operation is Operation.INSERT and covered:
            raise UserError(f"{at}: inserts {covered} points that are live already (first: {inside[0][0]}); valid: "
                            f"insert tags not live (delete them first, or replace)")
        if step.operation is not Operation.INSERT and covered < hi - lo:
            first = lo  # the first tag of [lo, hi) no live piece covers
            for a, b in inside:
                if a > first:
                    break
                first = b
            raise UserError(f"{at}: {step.operation}s {hi - lo - covered} points that are not live (first: {first}); "
                            f"valid: tags inserted earlier and not deleted since")
        live = _cut(live, lo, hi)
        if step.operation is not Operation.DELETE:
            row = step.ids_start if step.operation is Operation.REPLACE else lo
            live = _joined(sorted([*live, Piece(lo, row, hi - lo)], key=lambda p: p.tag))
        n = sum(p.length for p in live)
        if n > max_pts:
            raise UserError(f"{at}: {n} points live, more than max_pts={max_pts}; valid: at most max_pts live")
    return tuple(out)


def _cut(live: list[Piece], lo: int, hi: int) -> list[Piece]:
    """The pieces without the tags ``[lo, hi)``."""
    out = []
    for p in live:
        end = p.tag + p.length
        if end <= lo or p.tag >= hi:
            out.append(p)
            continue
        if p.tag < lo:
            out.append(Piece(p.tag, p.row, lo - p.tag))
        if end > hi:
            out.append(Piece(hi, p.row + hi - p.tag, end - hi))
    return out


def _joined(live: list[Piece]) -> list[Piece]:
    """Adjacent pieces whose rows continue each other joined into one (maximal runs, so equal live sets are
    described alike)."""
    out: list[Piece] = []
    for p in live:
        q = out[-1] if out else None
        if q is not None and q.tag + q.length == p.tag and q.row + q.length == p.row:
            out[-1] = Piece(q.tag, q.row, q.length + p.length)
        else:
            out.append(p)
    return out
