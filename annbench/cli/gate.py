"""``python gate.py``: the CI regression gate (save a baseline; compare a fresh run with it).

Module-level imports stay light (no numpy) so ``gate.py`` can pin the thread variables first.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import NoReturn

from annbench.cli.common import Parser, guarded, names, non_negative_int, positive_int
from annbench.cli.options import shared
from annbench.core import paths
from annbench.core.errors import UserError
from annbench.core.logs import setup_logging

log = logging.getLogger("annbench.gate.verdicts")

#: Suite options that must equal the baseline's when comparing (name → attribute of the parsed args).
FIXED_BY_BASELINE = ("dataset", "preset", "k", "batch", "threads", "reference")
#: Suite options a comparison may measure differently from the baseline (how much, not what).
MAY_CHANGE = ("runs", "rounds", "processes")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; valid: a number in (0, 1)") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value:g} is out of range; valid: a number in (0, 1)")
    return value


def at_least_two(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{value} is out of range; valid: an integer >= 2 (the interval needs "
                                         f"at least two rounds)")
    return value


def parser(prog: str = "gate.py") -> Parser:
    from annbench.gate.run import Suite  # numpy: after main's thread pinning
    from annbench.gate.verdicts import Tolerances
    p = Parser(
        parents=[shared("data-dir", "algorithms-dir", "configs-dir", "verbose", "quiet")],
        prog=prog, description="Regression gate: measure a suite with a reference run for machine "
        "normalisation; save it as a baseline and/or compare it with one (exit 1 on a regression).")
    g = p.add_argument_group("what to do")
    g.add_argument("--save-baseline", type=Path, metavar="FILE", help="write this session as a baseline (JSON)")
    g.add_argument("--baseline", type=Path, metavar="FILE", help="compare this session with the baseline FILE; "
                   "the suite (dataset, grid, k, mode, reference) is the baseline's")
    g.add_argument("--current", type=Path, metavar="FILE", help="with --baseline: compare with this stored "
                   "session instead of running the suite")
    g.add_argument("--markdown", type=Path, metavar="FILE", help="also write the verdicts as Markdown")
    g.add_argument("--junit", type=Path, metavar="FILE", help="also write the verdicts as JUnit XML")
    s = p.add_argument_group("the suite (with --baseline: taken from the baseline)")
    s.add_argument("--dataset", help="registered name or .hdf5 path (default random-xs-20-euclidean)")
    s.add_argument("--algorithm", help="comma-separated algorithms (default: every one with a grid)")
    s.add_argument("--preset", help="grid group (default quick)")
    s.add_argument("-k", "--count", dest="k", type=positive_int, help="neighbours per query (default 10)")
    s.add_argument("--batch", action="store_true", default=None, help="time all queries as one batch call")
    s.add_argument("--threads", type=positive_int, help="library threads (default 1)")
    s.add_argument("--runs", type=positive_int, help=f"timed passes per process after its warm-up, of each setting "
                   f"and of the reference, interleaved (default {Suite.runs})")
    s.add_argument("--rounds", type=at_least_two, help="times the whole suite is built and measured: the "
                   f"replicates the verdicts compare (default {Suite.rounds})")
    s.add_argument("--processes", type=positive_int, metavar="P", help="processes that measure each run, as "
                   f"run --processes; a round's value is their mean (default {Suite.processes})")
    s.add_argument("--reference", help="algorithm whose first setting, measured beside every setting in each of "
                   "its processes, normalises throughput (default bruteforce)")
    t = p.add_argument_group("verdicts")
    t.add_argument("--recall-tolerance", type=_fraction, default=Tolerances.recall,
                   help=f"absolute recall drop (default {Tolerances.recall:g})")
    t.add_argument("--qps-tolerance", type=_fraction, default=Tolerances.qps,
                   help=f"relative normalised-QPS drop below which no change fails (default {Tolerances.qps:g})")
    t.add_argument("--confidence", type=_fraction, default=Tolerances.confidence,
                   help=f"level of the Welch t-interval of the normalised QPS change over the processes "
                        f"(default {Tolerances.confidence:g})")
    t.add_argument("--confirm", type=non_negative_int, default=1, metavar="N",
                   help="a regression on QPS alone must reappear in N further sessions of its algorithms "
                        "(default 1; 0: the first session decides; none with --current)")
    t.add_argument("--allow-missing", action="store_true", help="missing settings do not fail the gate")
    o = p.add_argument_group("folders")
    o.add_argument("--work-dir", type=Path, help="keep the session's raw results here (default: a temporary "
                   "folder, deleted)")
    return p


class _Quiet(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        raise ValueError(message)


def threads_for(argv: list[str]) -> int:
    """The thread count a gate command will use (for pinning before numpy loads): ``--threads``,
    else the baseline's, else 1. Never fails: errors are reported later, by ``main``."""
    quiet = _Quiet(add_help=False, allow_abbrev=False)  # the full parser would print --help and errors too
    quiet.add_argument("--threads")
    quiet.add_argument("--baseline")
    try:
        args, _ = quiet.parse_known_args(argv)
        if args.threads:
            return int(args.threads)
        if args.baseline:
            return max(1, int(json.loads(Path(args.baseline).read_text())["suite"]["threads"]))
    except (SystemExit, Exception):  # best effort only
        pass
    return 1


def suite_from(args: argparse.Namespace, baseline_suite: dict | None):  # Suite, imported late
    from annbench.gate.run import Suite

    algorithms = None
    if args.algorithm is not None:
        algorithms = tuple(names(args.algorithm))
        if not algorithms:
            raise UserError("--algorithm is empty; give one or more names (see run.py --list-algorithms)")
    if baseline_suite is None:
        defaults = Suite(dataset="random-xs-20-euclidean", algorithms=None)
        given = {n: getattr(args, n) for n in (*FIXED_BY_BASELINE, *MAY_CHANGE) if getattr(args, n) is not None}
        return Suite(**{**defaults.as_dict(), **given, "algorithms": algorithms})
    for name in FIXED_BY_BASELINE:
        value = getattr(args, name)
        if value is not None and value != baseline_suite[name]:
            raise UserError(f"--{name} {value} differs from the baseline's {name}={baseline_suite[name]!r}; "
                            f"the comparison runs the baseline's suite (omit --{name})")
    fields = dict(baseline_suite)
    fields["algorithms"] = algorithms if algorithms is not None else (
        None if fields["algorithms"] is None else tuple(fields["algorithms"]))
    for name in MAY_CHANGE:
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    return Suite(**fields)


@guarded
def main(argv: list[str] | None = None, prog: str = "gate.py") -> int:
    args = parser(prog).parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose)
    if args.save_baseline is None and args.baseline is None:
        raise UserError("nothing to do: give --save-baseline FILE, --baseline FILE, or both")
    if args.current is not None and args.baseline is None:
        raise UserError("--current needs --baseline (the session to compare it with)")

    from annbench.gate import text as gate_report
    from annbench.gate import verdicts as gate
    from annbench.gate.baseline import read_baseline, write_baseline

    baseline = read_baseline(args.baseline) if args.baseline else None
    if args.current is not None:
        current = read_baseline(args.current)
    else:
        current = run_session(args, baseline)
    if args.save_baseline is not None:
        write_baseline(current, args.save_baseline)
        failed = [s for s in current.settings if not s.ok]
        print(f"baseline saved: {args.save_baseline} ({len(current.settings)} settings, {len(failed)} failed, "
              f"{current.suite['rounds']} rounds x {current.suite['processes']} processes x "
              f"{current.suite['runs']} passes)")
        for s in failed:
            print(f"failed: {s.algorithm} {s.key[1]} {s.key[2]}: {s.error}", file=sys.stderr)
        for name, reason in current.unavailable.items():
            print(f"unavailable: {name}: {reason}", file=sys.stderr)
    if baseline is None:
        return 0

    tol = gate.Tolerances(args.recall_tolerance, args.qps_tolerance, args.confidence)
    comparisons = gate.compare(baseline, current, tol)
    if args.current is None:
        from annbench.gate.run import confirm_regressions

        comparisons = confirm_regressions(baseline, comparisons, tol, args.confirm,
                                          lambda algorithms: run_session(args, baseline, algorithms))
    passed = gate.gate_passes(comparisons, args.allow_missing)
    header = gate_report.header_lines(baseline, current, tol, gate.machine_factor(baseline, current))
    print(gate_report.table_text(comparisons, header, passed))
    if args.markdown is not None:
        args.markdown.write_text(gate_report.markdown(comparisons, header, passed))
    if args.junit is not None:
        args.junit.write_text(gate_report.junit_xml(comparisons, args.allow_missing))
    return 0 if passed else 1


def run_session(args: argparse.Namespace, baseline, algorithms: tuple[str, ...] | None = None):
    """Measure the suite (of only ``algorithms`` if given) as a session; ``baseline`` (a Session or
    None) fixes the suite and the dataset it must be measured on."""
    import dataclasses

    from annbench.datasets.registry import load
    from annbench.gate.run import measure_suite

    suite = suite_from(args, baseline.suite if baseline is not None else None)
    if algorithms is not None:
        suite = dataclasses.replace(suite, algorithms=algorithms)
    dataset = load(suite.dataset, args.data_dir or paths.default_data_dir())
    if suite.k > dataset.ground_truth_k:
        raise UserError(f"-k {suite.k} exceeds the {dataset.ground_truth_k} neighbours stored in {dataset.path}; "
                        f"valid: 1..{dataset.ground_truth_k}")
    if baseline is not None:
        expected = baseline.provenance.get("dataset_checksum")
        if expected and expected.split(":")[0] != dataset.checksum.split(":")[0]:
            raise UserError(f"the baseline {args.baseline} records the dataset by a {expected.split(':')[0]} checksum, "
                            f"which an earlier annbench computed over train and test only and this one cannot compare "
                            f"with {dataset.checksum}; save a new baseline with this version (--save-baseline)")
        if expected and expected != dataset.checksum:
            raise UserError(f"dataset {dataset.path} has checksum {dataset.checksum} but the baseline {args.baseline} "
                            f"was measured on {expected}; compare on the same data or save a new baseline")
    return measure_suite(suite, dataset, paths.config_dirs(args.configs_dir), paths.algorithm_dirs(args.algorithms_dir),
                         args.work_dir)
