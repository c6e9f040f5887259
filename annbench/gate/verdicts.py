"""The regression gate's comparison: a gate session against a baseline session. Pure: no I/O, no runs.

A *session* measures every (algorithm, build params, query params) setting of a suite in
``rounds`` rounds. Each run measures its settings in ``processes`` processes; each process also builds a
fixed *reference* setting (by default ``bruteforce``) on the same data and measures it beside them, its
passes interleaved with theirs (reference, every setting, reference, ...: ``RunOptions.reference``). Each
pass of a setting is *normalised* by the reference's pass just before it in the same process (a fraction of
a second apart), a process's value is the median over its passes, and a round's value is the geometric
mean over its processes::

    v_rj = median_i(qps_rji / ref_rji)   (pass i of the setting and of the reference in process j of round r)
    v_r  = geomean_j(v_rj)

The reference cancels the machine's speed and load at that moment: on this project's VM the speed of a
process moves in steps (a whole process, or tens of seconds, at about half speed: a neighbour on the host),
which a reference measured in other processes, seconds away, does not see alike; the interleaved passes of
one process do, and the median leaves out a pass pair that a step fell between. The change of normalised
throughput, current against baseline, is :func:`annbench.analyse.processes.process_ratio` of the two
sessions' round values, the one rule annbench compares QPS by: ``rho`` = ratio of the geometric means
(< 1: slower now) with Welch's t-interval on the logs. The rounds are the replicates, not the processes:
the processes of a round share its build (for an adapter that can save, the very index they load), so they
need not be independent; a round's mean carries what they share, so the interval does too.

Verdicts: ``regression`` when mean recall fell by more than ``recall_tolerance`` (absolute), or
when ``rho < 1 - qps_tolerance`` *and* the interval's upper end is below 1 (the drop is not noise and
not below the smallest change worth a failure), or when the setting's run failed; ``improved``
symmetrically (``rho > 1 + qps_tolerance`` and the lower end above 1, or recall up by more than the
tolerance);
``missing`` (in the baseline, not measured now, with the reason); ``new`` (measured now, not in
the baseline); otherwise ``ok``.

Confirmation (:func:`confirm`): a regression on normalised throughput alone (recall within its
tolerance, the run did not fail) is *timing-only*; it stands only if a further, independent session
judges it a regression too. On a shared runner a session now and then runs an algorithm slow
throughout (one false regression in 10 sessions of unchanged code on this project's VM); a real
slowdown shows in every session, a fluke of one session rarely in the next.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annbench.analyse.processes import process_ratio
from annbench.core.results import Params, canonical

OK, REGRESSION, IMPROVED, MISSING, NEW = "ok", "regression", "improved", "missing", "new"
VERDICTS = (REGRESSION, MISSING, NEW, IMPROVED, OK)

SettingKey = tuple[str, str, str]


@dataclass(frozen=True)
class Round:
    """One round's measurement of a setting, and of the reference measured beside it in each of its processes."""

    recall: float
    pass_times_ns: np.ndarray       # every timed pass of the setting (of every process), per query set
    process_qps: np.ndarray         # (processes,) each measuring process's QPS (its fastest pass)
    reference_qps: np.ndarray       # (processes,) each process's QPS of the reference (its fastest pass)
    pass_qps: np.ndarray            # (processes, passes) the QPS of every pass of the setting
    reference_pass_qps: np.ndarray  # (processes, passes) of the reference: pass i just before the setting's pass i
    timestamp: str = ""

    def normalised(self) -> np.ndarray:
        """Per process, the median over its passes of the setting's QPS over the reference's just before it."""
        return np.median(self.pass_qps / self.reference_pass_qps, axis=1)


@dataclass
class SettingRecord:
    """Every round of one setting in one session; ``error`` non-empty when a run failed."""

    algorithm: str
    build_params: Params
    query_params: Params
    n_queries: int
    rounds: list[Round] = field(default_factory=list)
    error: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)  # provenance of the runs (library versions, ...)

    @property
    def key(self) -> SettingKey:
        return self.algorithm, canonical(self.build_params), canonical(self.query_params)

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.rounds)

    def recall(self) -> float:
        return float(np.mean([r.recall for r in self.rounds]))

    def qps(self) -> np.ndarray:
        """Raw QPS of every pass of every round."""
        return self.n_queries / (np.concatenate([r.pass_times_ns for r in self.rounds]) * 1e-9)

    def round_values(self) -> np.ndarray:
        """Per round, the geometric mean of its processes' normalised QPS (:meth:`Round.normalised`): the
        replicates the verdict compares."""
        return np.array([np.exp(np.mean(np.log(r.normalised()))) for r in self.rounds])


@dataclass
class Session:
    """A measured suite: what was run, where, and every setting's rounds."""

    suite: dict[str, Any]        # dataset, algorithms, preset, k, batch, threads, runs, rounds, reference
    provenance: dict[str, Any]   # machine, versions, dataset checksum, timestamps, command
    settings: list[SettingRecord]
    #: Algorithms asked for that could not run in this session: name → reason.
    unavailable: dict[str, str] = field(default_factory=dict)

    def by_key(self) -> dict[SettingKey, SettingRecord]:
        return {s.key: s for s in self.settings}

    def reference_qps(self) -> np.ndarray:
        """Raw QPS of the reference in every process of the session."""
        values = [r.reference_qps for s in self.settings if s.ok for r in s.rounds]
        return np.concatenate(values) if values else np.empty(0)


@dataclass(frozen=True)
class Tolerances:
    recall: float = 0.01      # absolute drop of mean recall
    qps: float = 0.05         # relative drop of normalised throughput (a +10 % slowdown is a 9.1 % drop)
    confidence: float = 0.95  # two-sided level of the interval of the throughput ratio


@dataclass(frozen=True)
class Comparison:
    """One setting's verdict and the figures behind it (None where a side has no measurement)."""

    algorithm: str
    build_params: str
    query_params: str
    verdict: str
    reasons: tuple[str, ...] = ()
    recall_then: float | None = None
    recall_now: float | None = None
    qps_then: np.ndarray | None = None   # raw QPS of every pass
    qps_now: np.ndarray | None = None
    ratio: float | None = None           # normalised throughput now / then
    ratio_low: float | None = None
    ratio_high: float | None = None
    #: A regression on normalised throughput alone: what a confirmation session re-judges.
    timing_only: bool = False

    @property
    def key(self) -> SettingKey:
        return self.algorithm, self.build_params, self.query_params


def compare_setting(then: SettingRecord, now: SettingRecord, tol: Tolerances) -> Comparison:
    """Verdict for a setting measured in both sessions (see the module docstring for the rules)."""
    base = dict(algorithm=then.algorithm, build_params=then.key[1], query_params=then.key[2])
    if not then.ok:
        if not now.ok:
            return Comparison(**base, verdict=MISSING,
                              reasons=(f"failed in the baseline ({then.error}) and now ({now.error})",))
        return Comparison(**base, verdict=NEW, reasons=(f"failed in the baseline ({then.error}), runs now",),
                          recall_now=now.recall(), qps_now=now.qps())
    figures: dict[str, Any] = dict(recall_then=then.recall(), qps_then=then.qps())
    if not now.ok:
        return Comparison(**base, verdict=REGRESSION, reasons=(f"run failed: {now.error}",), **figures)
    figures.update(recall_now=now.recall(), qps_now=now.qps())
    worse: list[str] = []
    better: list[str] = []
    notes: list[str] = []
    x0, x1 = then.round_values(), now.round_values()
    if len(x0) < 2 or len(x1) < 2:
        notes.append("throughput not judged: an interval needs at least 2 rounds on each side")
        rho = low = high = float("nan")
    else:
        change = process_ratio(x0, x1, tol.confidence)
        rho, low, high = change.ratio, change.low, change.high
        figures.update(ratio=rho, ratio_low=low, ratio_high=high)
    d_recall = figures["recall_now"] - figures["recall_then"]
    recall_worse = d_recall < -tol.recall - 1e-12
    if recall_worse:
        worse.append(f"recall down {-d_recall:.4f} (tolerance {tol.recall:g})")
    elif d_recall > tol.recall + 1e-12:
        better.append(f"recall up {d_recall:.4f}")
    span = _span(rho, low, high)
    if rho < 1 - tol.qps and high < 1:
        figures["timing_only"] = not recall_worse
        worse.append(f"normalised QPS {span} (tolerance -{100 * tol.qps:g}%)")
    elif rho > 1 + tol.qps and low > 1:
        better.append(f"normalised QPS {span}")
    if (high - low) / 2 > tol.qps:
        notes.append(f"noisy: interval half-width {50 * (high - low):.0f}% exceeds the tolerance; "
                     f"more --rounds (or --processes) narrow it")
    verdict = REGRESSION if worse else IMPROVED if better else OK
    return Comparison(**base, verdict=verdict, reasons=tuple(worse + better + notes), **figures)


def _span(rho: float, low: float, high: float) -> str:
    return f"{100 * (rho - 1):+.1f}% [{100 * (low - 1):+.1f}%, {100 * (high - 1):+.1f}%]"


def confirm(first: list[Comparison], again: list[Comparison]) -> list[Comparison]:
    """``first`` with each timing-only regression re-judged by ``again``, a later session's comparison
    with the same baseline: it stays a regression (with the later figures in its reasons) if
    ``again`` judges the same setting a regression, or does not have it; otherwise it becomes ``ok``,
    its reasons saying what each session measured. Every other comparison is kept as it is."""
    later = {c.key: c for c in again}
    out = []
    for c in first:
        second = later.get(c.key)
        if c.verdict != REGRESSION or not c.timing_only or second is None or second.verdict == MISSING:
            out.append(c)
        elif second.verdict == REGRESSION:
            seen = _span(second.ratio, second.ratio_low, second.ratio_high) if second.ratio is not None else ""
            out.append(dataclasses.replace(c, timing_only=second.timing_only, reasons=(
                *c.reasons, f"confirmed by a further session: {seen or '; '.join(second.reasons)}")))
        else:
            seen = _span(second.ratio, second.ratio_low, second.ratio_high)
            out.append(dataclasses.replace(c, verdict=OK, timing_only=False, reasons=(
                f"not confirmed: normalised QPS {_span(c.ratio, c.ratio_low, c.ratio_high)} in one session, "
                f"{seen} ({second.verdict}) in a further one",)))
    return out


def compare(baseline: Session, current: Session, tol: Tolerances | None = None) -> list[Comparison]:
    """One :class:`Comparison` per setting of either session: baseline order, then new settings."""
    tol = tol or Tolerances()
    now = current.by_key()
    out = []
    for key, then in baseline.by_key().items():
        if key in now:
            out.append(compare_setting(then, now[key], tol))
            continue
        reason = current.unavailable.get(then.algorithm, "setting not in the current suite's grid")
        out.append(Comparison(then.algorithm, key[1], key[2], MISSING, (reason,),
                              recall_then=then.recall() if then.ok else None,
                              qps_then=then.qps() if then.ok else None))
    known = baseline.by_key()
    for key, setting in now.items():
        if key not in known:
            out.append(Comparison(setting.algorithm, key[1], key[2], NEW,
                                  ("not in the baseline" if setting.ok else f"not in the baseline; failed: "
                                   f"{setting.error}",),
                                  recall_now=setting.recall() if setting.ok else None,
                                  qps_now=setting.qps() if setting.ok else None))
    return out


def gate_passes(comparisons: list[Comparison], allow_missing: bool = False) -> bool:
    """False on any regression, and on any missing setting unless ``allow_missing``."""
    return not any(c.verdict == REGRESSION or (c.verdict == MISSING and not allow_missing) for c in comparisons)


def machine_factor(baseline: Session, current: Session) -> float:
    """How much faster the reference ran now than in the baseline (median raw QPS ratio)."""
    then, now = baseline.reference_qps(), current.reference_qps()
    return float(np.median(now) / np.median(then)) if len(then) and len(now) else float("nan")
