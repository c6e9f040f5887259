"""What every command-line entry point shares: the parser, option types and the user-error boundary."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from annbench.core.errors import UserError
from annbench.core.results import batch_suffix

if TYPE_CHECKING:
    import pandas as pd

    from annbench.report.plotting import View


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (and exit code 2), like every user error.

    Abbreviated options are refused (``allow_abbrev=False``): ``--thread 2`` is an error, never
    silently ``--threads 2`` (run.py pins threads from the exact spelling before parsing)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer; valid: an integer >= {low}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value} is out of range; valid: an integer >= {low}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


_SIZE_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
               "g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40, "tib": 2**40}


def memory_size(text: str) -> int:
    """``"512M"``, ``"2G"``, ``"1.5GiB"``, ``"1000000"`` → bytes (binary units: 1K = 1024 bytes)."""
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; valid: a number with an optional unit "
                                         f"K, M, G or T (binary), e.g. 512M or 2G")
    value = int(float(m.group(1)) * _SIZE_UNITS[unit])
    if value < 2**20:
        raise argparse.ArgumentTypeError(f"{text!r} is below 1M; valid: a size of at least 1M")
    return value


def _finite(text: str, valid: str, ok: Callable[[float], bool]) -> float:
    """``text`` as a finite number for which ``ok`` holds, else an argparse error saying ``valid``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; valid: {valid}") from None
    if not (ok(value) and value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text} is out of range; valid: {valid}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (seconds, rates, ...)."""
    return _finite(text, "a finite number > 0", lambda v: v > 0)


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (seconds where 0 switches something off)."""
    return _finite(text, "a finite number >= 0", lambda v: v >= 0)


def recall_level(text: str) -> float:
    """A recall threshold: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; valid: a number in [0, 1]") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is out of range; valid: a number in [0, 1]")
    return value


def names(text: str | None) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]``: a comma-separated list option, blanks dropped."""
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def stored_results(results_dir: str | Path, runbook: str | None = None) -> pd.DataFrame:
    """Every stored run in ``results_dir`` (see :func:`annbench.analyse.frames.results_frame`; ``runbook``:
    that runbook's runs, ``all`` every runbook's, instead of the static ones); a missing or empty folder is a
    :class:`UserError` saying so."""
    from annbench.analyse.frames import ANY_RUNBOOK, results_frame
    frame = results_frame(results_dir, runbook=ANY_RUNBOOK if runbook == "all" else runbook)
    if frame.empty and runbook:
        raise UserError(f"results folder {results_dir} holds no runs of runbook {runbook!r}; valid: the NAME run.py "
                        f"--runbook printed (<file stem>:<entry>), or all")
    if frame.empty:
        where = "does not exist" if not Path(results_dir).exists() else "holds no result files"
        raise UserError(f"results folder {results_dir} {where}; run `python run.py` first (or give --results DIR)")
    return frame


def guarded(main: Callable[..., int]) -> Callable[..., int]:
    """Run ``main``; a :class:`UserError` becomes one line on stderr and exit code 2; output cut short
    by its reader (``annbench plot --table csv | head``) ends quietly with 141, as a shell's own tools do."""

    def wrapper(argv: list[str] | None = None, **kwargs: str) -> int:
        try:
            code = main(argv, **kwargs)
            sys.stdout.flush()  # a reader gone shows here, not in the interpreter's final flush
            return code
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            return UserError.exit_code
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            # nothing more can be written: point stdout at /dev/null so the interpreter's final flush is silent
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 128 + signal.SIGPIPE

    return wrapper


def one_k(frame: pd.DataFrame, dataset: str, k: int | None, batch: bool) -> tuple[int, pd.DataFrame]:
    """The runs of one dataset at one k (default 10 if present) and mode."""
    part = frame[frame["dataset"] == dataset]
    ks = sorted(int(v) for v in part["k"].unique())
    chosen = k or (10 if 10 in ks else ks[0])
    if chosen not in ks:
        raise UserError(f"no results for k={chosen} on {dataset}; valid: {', '.join(map(str, ks))}")
    part = part[(part["k"] == chosen) & (part["batch"] == batch)]
    if part.empty:
        raise UserError(f"no {'batch' if batch else 'single-query'}-mode runs for {dataset} at k={chosen}; "
                        f"{'drop' if batch else 'add'} --batch")
    return chosen, part


def output_path(args: argparse.Namespace, results_dir: Path, dataset: str | None, k: int, view: View,
                several: bool) -> Path:
    """Where a figure goes: ``--output`` (suffixed by dataset and view when several are drawn) or
    ``<results>/<dataset>/<k>/<x>-<y>[-batch].png``."""
    suffix = batch_suffix(args.batch)
    if args.output is None:
        folder = results_dir / dataset / str(k) if dataset else results_dir
        return folder / f"{view.x}-{view.y}{suffix}.png"
    if not several:
        return args.output
    tag = "-".join(p for p in (dataset, view.name) if p)
    return args.output.with_name(f"{args.output.stem}-{tag}{args.output.suffix}")
