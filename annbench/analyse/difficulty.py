"""How hard each query of a dataset is: relative contrast, local intrinsic dimensionality, expansion.

Every measure comes from exact distances, smaller = nearer: the dataset's stored top-100
``distances`` (sorted, ties broken by the smaller id) and, for RC, the mean distance from the
query to every train point (a blocked exact scan, :func:`mean_distances`).

* euclidean: the distances as stored, ``‖q − x‖``.
* angular: the angle ``θ = arccos(1 − d) = arccos(⟨q, x⟩ / (‖q‖ ‖x‖))`` in ``[0, π]``, not the
  stored cosine distance ``d = 1 − cos θ``: ``1 − cos θ ≈ θ²/2`` near a query, so ratios of
  cosine distances are squared ratios of angles and LID computed from them comes out halved.
  ``θ`` ranks the neighbours exactly as ``d`` does.
* ip: not defined. ``−⟨q, x⟩`` is not a distance (it can be negative or zero for far points and
  ``x`` is not its own nearest neighbour), so ratios of it (RC, expansion) and logarithms of them
  (LID) have no meaning; :func:`check_metric` refuses it.

Zero distances, ties and duplicates: a train point equal to the query (distance 0) and duplicated
train points are ordinary neighbours, each counted once per copy (a point stored three times fills
three neighbour slots). LID skips zero distances (``ln 0`` is undefined), RC and expansion keep
them. Ties need no rule: each measure depends on the sorted distance values only, never on which
of the tied ids comes first. Where a ratio has a zero denominator the measure is ``+inf`` (a
positive numerator) or NaN (``0/0``: the query sits on at least ``k`` train points); NaN queries
are in no ``hard`` or ``easy`` subset (only in ``all``).

Results are kept in a sidecar next to the dataset file, ``<name>.difficulty.npz``, keyed by the
dataset's checksum (:attr:`Dataset.checksum`) and recomputed when that changes.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annbench.core.atomic import write_npz
from annbench.core.errors import UserError
from annbench.datasets.format import Dataset
from annbench.quality.distances import in_blocks, normalized

log = logging.getLogger(__name__)

#: Bumped whenever a measure's definition changes: a sidecar of another version is recomputed.
DIFFICULTY_VERSION = 1
#: Distance values per tile of the mean-distance scan (~4 MB of float32: the element-wise passes stay in cache).
_BLOCK_VALUES = 1_000_000
#: Queries per block of the scan: each train point is read once per block (a BLAS product of this height).
_QUERY_BLOCK = 1024
#: Fraction of the queries in the ``hard`` / ``easy`` subsets by default.
DEFAULT_QUANTILE = 0.1
SUBSETS = ("hard", "easy", "all")


@dataclass(frozen=True)
class Measure:
    """One difficulty measure: its kind (``rc``, ``lid``, ``expansion``) and k."""

    kind: str
    k: int

    @property
    def name(self) -> str:
        return f"{self.kind}@{self.k}"

    @property
    def harder_when_higher(self) -> bool:
        """LID: a higher dimension is harder; RC and expansion: a lower contrast is harder."""
        return self.kind == "lid"

    @property
    def depth(self) -> int:
        """Stored neighbours the measure needs."""
        return 2 * self.k if self.kind == "expansion" else self.k


MEASURES: tuple[Measure, ...] = (Measure("rc", 10), Measure("rc", 100), Measure("lid", 10), Measure("lid", 100),
                                 Measure("expansion", 10), Measure("expansion", 50))
#: ``--difficulty rc`` means the measure at this k.
DEFAULT_K = {"rc": 10, "lid": 10, "expansion": 10}


def measure_named(text: str) -> Measure:
    """``rc`` / ``lid`` / ``expansion`` (at their default k) or ``rc@100``, ``lid@100``, ``expansion@50``, ..."""
    kind, _, k = text.strip().partition("@")
    known = {m.name: m for m in MEASURES}
    name = f"{kind}@{k or DEFAULT_K.get(kind, '')}"
    if name not in known:
        raise UserError(f"--difficulty {text!r}: unknown measure; valid: {', '.join(DEFAULT_K)} or "
                        f"{', '.join(known)}")
    return known[name]


def check_metric(metric: str) -> None:
    if metric not in ("euclidean", "angular"):
        raise UserError(f"query difficulty is defined for euclidean and angular distances, not {metric!r} "
                        f"(inner products are not distances: their ratios mean nothing)")


def as_metric_distance(d: np.ndarray, metric: str) -> np.ndarray:
    """Stored distances → the distances the measures use: euclidean unchanged; angular
    ``θ = arccos(1 − d)`` (``d`` the stored cosine distance, clipped to ``[0, 2]``)."""
    d = np.asarray(d, dtype=np.float64)
    return np.arccos(np.clip(1.0 - d, -1.0, 1.0)) if metric == "angular" else d


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den``; ``x/0 = +inf`` for ``x > 0``, ``0/0 = NaN``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(num > 0, np.inf, np.nan))


def relative_contrast(mean_d: np.ndarray, knn_d: np.ndarray, k: int) -> np.ndarray:
    """RC@k per query: ``RC = mean_{x ∈ train} dist(q, x) / d_k``, ``d_k`` the k-th nearest distance.

    Near 1: the nearest neighbours are hardly nearer than an average point (hard); large: easy.
    ``d_k = 0`` gives ``+inf`` (NaN if every train point is at distance 0).
    """
    return _ratio(np.asarray(mean_d, dtype=np.float64), np.asarray(knn_d, dtype=np.float64)[:, k - 1])


def lid_mle(knn_d: np.ndarray, k: int) -> np.ndarray:
    """LID@k per query, maximum-likelihood estimate over the k nearest distances ``d_1 ≤ … ≤ d_k``:

    ``LID = −( (1/m) Σ_{i ≤ k, d_i > 0} ln(d_i / d_k) )^{−1}``, ``m = |{i ≤ k : d_i > 0}|``.

    Zero distances (the query's duplicates among the train points) are skipped. The i = k term is 0,
    as in the estimator's usual form. All k distances equal (ties) give ``+inf``; ``d_k = 0`` gives NaN.
    High: the neighbourhood looks high-dimensional (hard).
    """
    d = np.asarray(knn_d, dtype=np.float64)[:, :k]
    dk = d[:, k - 1:k]
    positive = (d > 0) & (dk > 0)
    logs = np.log(np.where(positive, d, 1.0) / np.where(dk > 0, dk, 1.0))
    m = np.count_nonzero(positive, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_log = np.where(m > 0, logs.sum(axis=1, where=positive) / np.maximum(m, 1), np.nan)
        return np.where(mean_log < 0, -1.0 / np.where(mean_log < 0, mean_log, -1.0),
                        np.where(mean_log == 0, np.inf, np.nan))


def expansion(knn_d: np.ndarray, k: int) -> np.ndarray:
    """Expansion@k per query: ``d_{2k} / d_k``. Near 1: the 2k-th neighbour is hardly farther than
    the k-th, so near-misses abound (hard). ``d_k = 0`` gives ``+inf`` (NaN if ``d_{2k} = 0`` too)."""
    d = np.asarray(knn_d, dtype=np.float64)
    return _ratio(d[:, 2 * k - 1], d[:, k - 1])


def mean_distances(train: np.ndarray, test: np.ndarray, metric: str, threads: int = 1) -> np.ndarray:
    """``mean_{x ∈ train} dist(q, x)`` for each test row, exact over every train point, in blocks of
    queries (float32 products, sums in float64), ``threads`` blocks at a time (BLAS on one thread each).

    euclidean ``‖q − x‖`` from ``‖q‖² + ‖x‖² − 2⟨q, x⟩`` on rows centred on the train mean (no
    distance changes, less cancellation), clipped at 0; angular the angle ``arccos ⟨q̂, x̂⟩``.
    """
    check_metric(metric)
    if metric == "angular":
        x, q = normalized(train), normalized(test)
        x_sq = q_sq = None
    else:
        centre = np.asarray(train, dtype=np.float64).mean(axis=0)
        x = (np.asarray(train, dtype=np.float64) - centre).astype(np.float32)
        q = (np.asarray(test, dtype=np.float64) - centre).astype(np.float32)
        x_sq = np.einsum("ij,ij->i", x, x, dtype=np.float64).astype(np.float32)
        q_sq = np.einsum("ij,ij->i", q, q, dtype=np.float64).astype(np.float32)
    out = np.zeros(len(q), dtype=np.float64)
    rows = min(len(q), _QUERY_BLOCK)
    cols = max(1, _BLOCK_VALUES // max(1, rows))  # train points per tile: each tile of distances stays in cache

    def fill(start: int) -> None:
        s = slice(start, start + rows)
        for c in range(0, len(x), cols):
            d = q[s] @ x[c:c + cols].T
            if x_sq is None:
                np.arccos(np.clip(d, -1.0, 1.0, out=d), out=d)
            else:  # in place: ‖q‖² + ‖x‖² − 2⟨q, x⟩, clipped at 0, square root
                d *= -2.0
                d += x_sq[c:c + cols]
                d += q_sq[s, None]
                np.sqrt(np.maximum(d, 0.0, out=d), out=d)
            out[s] += d.sum(axis=1, dtype=np.float64)
        out[s] /= len(x)

    from annbench.core.threads import limited_threads

    with limited_threads(1):
        in_blocks(fill, range(0, len(q), rows), threads)
    return out


@dataclass(frozen=True)
class Difficulty:
    """The difficulty measures of one dataset's queries: name (``rc@10``, ...) → one value per query."""

    checksum: str
    metric: str
    values: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = float("nan")

    @property
    def n_queries(self) -> int:
        return len(next(iter(self.values.values()))) if self.values else 0

    def frame(self):  # a pandas DataFrame
        """One row per query (``query`` = its index in the test set), one column per measure."""
        import pandas as pd

        frame = pd.DataFrame(self.values)
        frame.insert(0, "query", np.arange(self.n_queries))
        return frame

    def quartiles(self):  # a pandas DataFrame
        """Per measure: min, 25 %, median, 75 %, max over the queries with a finite value, and how many are not."""
        import pandas as pd

        rows = []
        for name, v in self.values.items():
            finite = v[np.isfinite(v)]
            q = np.percentile(finite, [0, 25, 50, 75, 100]) if len(finite) else [np.nan] * 5
            rows.append({"measure": name, "min": q[0], "q25": q[1], "median": q[2], "q75": q[3], "max": q[4],
                         "not finite": len(v) - len(finite)})
        return pd.DataFrame(rows)


def compute(dataset: Dataset, threads: int | None = None, measures: Sequence[Measure] = MEASURES) -> Difficulty:
    """Every measure of ``measures`` the stored ground truth is deep enough for (others are skipped
    with a log line), from the stored distances and one exact mean-distance scan."""
    check_metric(dataset.distance)
    threads = threads or os.cpu_count() or 1
    t0 = time.perf_counter()
    knn = as_metric_distance(dataset.distances, dataset.distance)
    usable = [m for m in measures if m.depth <= knn.shape[1] and m.k <= len(dataset.train)]
    for m in measures:
        if m not in usable:
            log.info("%s needs %d neighbours; %s stores %d: skipped", m.name, m.depth, dataset.name, knn.shape[1])
    mean_d = mean_distances(dataset.train, dataset.test, dataset.distance, threads) \
        if any(m.kind == "rc" for m in usable) else None
    functions = {"rc": lambda k: relative_contrast(mean_d, knn, k), "lid": lambda k: lid_mle(knn, k),
                 "expansion": lambda k: expansion(knn, k)}
    values = {m.name: functions[m.kind](m.k) for m in usable}
    return Difficulty(dataset.checksum, dataset.distance, values, time.perf_counter() - t0)


def sidecar_path(dataset_path: str | Path) -> Path:
    """``<folder>/<name>.difficulty.npz`` beside ``<folder>/<name>.hdf5``."""
    p = Path(dataset_path)
    return p.with_name(f"{p.stem}.difficulty.npz")


def read_sidecar(path: Path) -> Difficulty | None:
    """The stored measures, or None when the file is missing, unreadable or of another version."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != DIFFICULTY_VERSION:
                return None
            values = {n[len("m:"):]: z[n].astype(np.float64) for n in z.files if n.startswith("m:")}
            return Difficulty(str(z["checksum"]), str(z["metric"]), values, float(z["seconds"]))
    except (OSError, KeyError, ValueError) as e:
        log.warning("difficulty file %s is unreadable (%s); recomputing", path, e)
        return None


def write_sidecar(path: Path, difficulty: Difficulty) -> Path:
    """Write atomically: a temporary file in the same folder, then rename."""
    write_npz(path, version=DIFFICULTY_VERSION, checksum=difficulty.checksum, metric=difficulty.metric,
              seconds=difficulty.seconds, **{f"m:{n}": v for n, v in difficulty.values.items()})
    return path


def load_or_compute(dataset: Dataset, threads: int | None = None) -> Difficulty:
    """The measures of ``dataset``: from its sidecar when that holds this checksum, else computed
    and stored there (a folder that cannot be written to only costs a warning)."""
    path = sidecar_path(dataset.path)
    stored = read_sidecar(path)
    if stored is not None and stored.checksum == dataset.checksum and stored.n_queries == len(dataset.test):
        return stored
    if stored is not None:
        log.info("difficulty file %s is for checksum %s, the dataset has %s: recomputing", path, stored.checksum,
                 dataset.checksum)
    difficulty = compute(dataset, threads)
    log.info("query difficulty of %s: %d queries in %.2f s", dataset.name, difficulty.n_queries, difficulty.seconds)
    try:
        write_sidecar(path, difficulty)
    except OSError as e:
        log.warning("could not store the query difficulty in %s (%s); it will be computed again", path, e)
    return difficulty


def hardness(values: np.ndarray, measure: Measure) -> np.ndarray:
    """A score where larger = harder: LID itself, RC and expansion negated."""
    v = np.asarray(values, dtype=np.float64)
    return v if measure.harder_when_higher else -v


def subset_mask(values: np.ndarray, measure: Measure, subset: str, quantile: float = DEFAULT_QUANTILE) -> np.ndarray:
    """Queries of ``subset``: ``hard`` = the ``ceil(quantile · n)`` hardest of the ``n`` queries with a
    defined value (lowest RC / expansion, highest LID; among equal values the lower query index
    first), ``easy`` = the as many easiest, ``all`` = every query."""
    if subset not in SUBSETS:
        raise UserError(f"--subset {subset!r}; valid: {', '.join(SUBSETS)}")
    if not 0 < quantile <= 1:
        raise UserError(f"--quantile {quantile}: valid: a fraction in (0, 1]")
    v = np.asarray(values, dtype=np.float64)
    mask = np.zeros(len(v), dtype=bool)
    if subset == "all":
        mask[:] = True
        return mask
    defined = np.flatnonzero(~np.isnan(v))
    score = hardness(v[defined], measure)
    order = defined[np.lexsort((defined, -score if subset == "hard" else score))]
    mask[order[:math.ceil(quantile * len(defined))]] = True
    return mask


def deciles(values: np.ndarray, measure: Measure, bins: int = 10) -> np.ndarray:
    """Each query's difficulty bin, ``1`` (easiest tenth) … ``bins`` (hardest), by rank among the
    queries with a defined value (among equal values the lower index counts as harder, as in
    :func:`subset_mask`); 0 for NaN."""
    v = np.asarray(values, dtype=np.float64)
    defined = np.flatnonzero(~np.isnan(v))
    order = defined[np.lexsort((-defined, hardness(v[defined], measure)))]
    out = np.zeros(len(v), dtype=np.int64)
    out[order] = np.arange(len(order)) * bins // max(1, len(order)) + 1
    return out
