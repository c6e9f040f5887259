"""From a measurement to metrics: validates the answer, recomputes distances, scores it."""

from __future__ import annotations

import numpy as np

from annbench.datasets.format import Dataset
from annbench.execute.clients import LevelMeasurement, untimed_blocks
from annbench.execute.measure import PassMeasurement, ResultError, stack_answers
from annbench.quality import filtered as F
from annbench.quality import metrics as M
from annbench.quality.distances import distances_to_ids

#: ε values of the reported ε-recall columns (``eps_recall_0.01``, ``eps_recall_0.1``).
EPSILONS = (0.01, 0.1)


def check_answer(neighbors: np.ndarray, nq: int, n: int, k: int) -> None:
    """Raise :class:`ResultError` unless ``neighbors`` is ``(nq, k)`` of ids in ``[0, n)`` or ``-1``, none
    twice in a row."""
    if neighbors.shape != (nq, k):
        raise ResultError(f"result has shape {neighbors.shape}, expected {(nq, k)}")
    bad = (neighbors < -1) | (neighbors >= n)
    if bad.any():
        raise ResultError(f"result has ids outside [0, {n}) in {int(bad.any(axis=1).sum())} queries")
    dup = M.duplicate_rows(neighbors)
    if len(dup):
        raise ResultError(f"result lists the same id twice in {len(dup)} queries (first: query {dup[0]})")


def quality(dataset: Dataset, neighbors: np.ndarray, k: int) -> tuple[dict[str, float], np.ndarray]:
    """Quality metrics of ``neighbors`` (nq×k, -1 padded) and the distances recomputed from them.

    Raises :class:`ResultError` for ids out of range, duplicate ids in a row, or NaN distances.
    """
    found_d = checked_distances(dataset, neighbors, k)
    if dataset.filters is not None:
        return filtered_quality(dataset, neighbors, found_d, k), found_d
    true_d, true_ids = dataset.distances, dataset.neighbors
    out = {
        "recall": float(M.recall(found_d, true_d, k).mean()),
        "id_recall": float(M.id_recall(neighbors, true_ids, true_d, k).mean()),
        **{f"eps_recall_{e:g}": float(M.epsilon_recall(found_d, true_d, k, e).mean()) for e in EPSILONS},
        **{M.one_recall_column(r): float(M.one_recall_at(found_d, true_d, r).mean())
           for r in M.ONE_RECALL_RS if r <= k},
        "rel": M.relative_error(found_d, true_d, k),
        **classification(dataset, neighbors, k),
    }
    return out, found_d


def checked_distances(dataset: Dataset, neighbors: np.ndarray, k: int) -> np.ndarray:
    """The distances of ``neighbors`` (nq×k, -1 padded) recomputed from the vectors, after checking the ids.

    Raises :class:`ResultError` for a wrong shape, ids out of range, duplicate ids in a row, or NaN distances.
    """
    check_answer(neighbors, len(dataset.test), len(dataset.train), k)
    found_d = distances_to_ids(dataset.test, dataset.train, neighbors, dataset.distance)
    if np.isnan(found_d).any():
        raise ResultError("recomputed distances contain NaN")
    return found_d


def filtered_quality(dataset: Dataset, neighbors: np.ndarray, found_d: np.ndarray, k: int) -> dict[str, float]:
    """The metrics of an answer on a filtered dataset (:func:`annbench.quality.filtered.filtered_quality`):
    recall over the neighbours each query can have, returned ids failing the predicate counted as
    ``filter_violations`` and never as hits."""
    return F.summary(filtered_per_query(dataset, neighbors, found_d, k))


def filtered_per_query(dataset: Dataset, neighbors: np.ndarray, found_d: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per query, the metrics of an answer on a filtered dataset
    (:func:`annbench.quality.filtered.per_query_scores`)."""
    f = dataset.filters
    assert f is not None
    expected = F.expected(f.selectivity, len(dataset.train), k)
    violations = F.violating(f.index, f.predicates, neighbors)
    return F.per_query_scores(found_d, neighbors, dataset.neighbors, dataset.distances, k, expected, violations,
                              EPSILONS)


def classification(dataset: Dataset, neighbors: np.ndarray, k: int) -> dict[str, float]:
    """``knn_accuracy`` of the returned neighbours and ``knn_accuracy_exact`` of the true ones,
    for datasets with ``train_labels`` and ``test_labels`` (none otherwise)."""
    if dataset.train_labels is None or dataset.test_labels is None:
        return {}
    return {"knn_accuracy": M.knn_accuracy(neighbors, dataset.train_labels, dataset.test_labels, k),
            "knn_accuracy_exact": M.knn_accuracy(dataset.neighbors, dataset.train_labels, dataset.test_labels, k)}


def pass_qps(m: PassMeasurement) -> list[float]:
    """QPS of every timed pass, in order (queries answered per pass, ``repeats · nq``, over its time)."""
    return [M.qps(m.answered_per_pass(), float(t)) for t in m.pass_times_ns]


def speed(m: PassMeasurement) -> dict[str, float]:
    """QPS of the fastest and of the median pass (queries answered per pass, ``repeats · nq``,
    over its time), pass-time spread, latency percentiles of every timed query of the fastest pass."""
    times = m.pass_times_ns.astype(np.float64)
    answered = m.answered_per_pass()
    return {
        "qps": M.qps(answered, float(times.min())),
        "qps_median": M.qps(answered, float(np.median(times))),
        "pass_time_min_s": float(times.min()) * 1e-9,
        "pass_time_median_s": float(np.median(times)) * 1e-9,
        "pass_time_max_s": float(times.max()) * 1e-9,
        **M.latency_percentiles_ms(m.latencies_ns),
    }


def process_speed(ms: list[PassMeasurement]) -> tuple[dict[str, float], dict[str, object]]:
    """Metrics and attrs of one query setting measured in ``P = len(ms)`` processes (see
    :mod:`annbench.execute.process_passes`), each process's QPS being that of its fastest pass:

    - ``qps`` = mean of the P processes' QPS; ``qps_sd`` their standard deviation (ddof 1);
      ``qps_ci95_low`` / ``qps_ci95_high`` = ``qps ∓ t(0.975, P−1) · qps_sd / √P``; ``process_cv`` =
      ``qps_sd / qps``; ``qps_median`` = the median process's QPS;
    - the pass times over every pass of every process; latency percentiles over every timed query of
      every process's fastest pass (pooled);
    - attrs ``qps_processes`` (each process's QPS, in order) and ``processes``.
    """
    from scipy import stats

    per = np.array([speed(m)["qps"] for m in ms], dtype=np.float64)
    p = len(per)
    mean = float(per.mean())
    sd = float(per.std(ddof=1)) if p > 1 else float("nan")
    half = float(stats.t.ppf(0.975, p - 1)) * sd / np.sqrt(p) if p > 1 else float("nan")
    times = np.concatenate([m.pass_times_ns for m in ms]).astype(np.float64)
    latencies = None if any(m.latencies_ns is None for m in ms) else np.concatenate([m.latencies_ns for m in ms])
    metrics = {
        "qps": mean, "qps_median": float(np.median(per)), "qps_sd": sd, "qps_ci95_low": mean - half,
        "qps_ci95_high": mean + half, "process_cv": sd / mean if mean > 0 else float("nan"),
        "pass_time_min_s": float(times.min()) * 1e-9, "pass_time_median_s": float(np.median(times)) * 1e-9,
        "pass_time_max_s": float(times.max()) * 1e-9, **M.latency_percentiles_ms(latencies),
    }
    return metrics, {"qps_processes": [float(q) for q in per], "processes": p}


def client_counts(level: LevelMeasurement, nq: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per client, the latencies (ns) of its timed queries answered inside the window, how many times it
    answered each query there (length ``nq``; their sum: its queries in the window) and how many times it
    timed each there (the answers it kept: all of them where it timed every query). A block of queries (one
    query where every query is timed) is inside when the clock reading that ends it is in ``[start, end]``."""
    latencies, counts, timed_counts = [], [], []
    w = level.window
    for trace in level.traces:
        s = trace.stamps
        inside = np.flatnonzero((s[1:] >= w.start_ns) & (s[1:] <= w.end_ns))  # block c ends at stamps[c + 1]
        timed = np.bincount((trace.offset + inside) % nq, minlength=nq)  # block c's timed query
        timed_counts.append(timed)
        if trace.every == 1:
            latencies.append((s[inside + 1] - s[inside]).astype(np.int64))
            counts.append(timed)
            continue
        assert trace.timed_ns is not None
        latencies.append(trace.timed_ns[inside].astype(np.int64))
        runs = untimed_blocks(nq, trace.offset, trace.every)
        times = np.bincount(inside % len(runs), minlength=len(runs))  # how often each untimed run ran inside
        untimed = np.bincount(np.concatenate(runs), np.repeat(times, [len(r) for r in runs]), minlength=nq)
        counts.append(timed + untimed.astype(np.int64))
    return latencies, counts, timed_counts


def client_speed(level: LevelMeasurement, nq: int) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Metrics of one client level's window, every timed latency in it (clients concatenated) and each client's
    QPS: ``qps`` = queries answered inside the window / its length; latency percentiles over the timed ones
    (every one, or one in ``every``: ``latency_samples`` says how many); per-client QPS ``client_qps_min`` /
    ``client_qps_max`` and ``client_fairness`` = min / max (1: every client served alike)."""
    latencies, counts, _ = client_counts(level, nq)
    seconds = level.window.length_ns * 1e-9
    per_client = np.array([c.sum() for c in counts], dtype=np.float64) / seconds
    every = np.concatenate(latencies) if latencies else np.empty(0, dtype=np.int64)
    return {
        "qps": float(per_client.sum()),
        "client_qps_min": float(per_client.min()),
        "client_qps_max": float(per_client.max()),
        "client_fairness": float(per_client.min() / per_client.max()) if per_client.max() > 0 else float("nan"),
        "latency_samples": int(len(every)),
        **M.latency_percentiles_ms(every),
    }, every, per_client


def client_quality(dataset: Dataset, level: LevelMeasurement, k: int,
                   single: np.ndarray) -> tuple[dict[str, float], np.ndarray, np.ndarray, int]:
    """Quality of the answers the clients gave inside the window (where a client timed one query in ``every``,
    of its timed queries' answers, the ones it kept): per query answered there, the mean over the answers
    given to it (a client's first answer to a query in the window stands for its every answer to it), then the mean over
    those queries; ``single_client_recall``: the recall of ``single`` (the single-client
    answers of the same setting) over the same queries, equal for a library that answers alike under load.
    Also the answers kept (per query, the first client's that answered it inside the window; -1 rows
    where none did) with their distances, and how many (client, query) answers differ from ``single``."""
    nq = len(dataset.test)
    _, _, counts = client_counts(level, nq)
    weights = np.stack(counts).astype(np.float64)
    per_query = weights.sum(axis=0)
    answered = per_query > 0
    if not answered.any():
        raise ResultError("no client answered a query inside the window")
    names = ["recall", "id_recall", *(f"eps_recall_{e:g}" for e in EPSILONS)]
    sums = {name: np.zeros(nq) for name in names}
    kept = np.full((nq, k), -1, dtype=np.int64)
    unset = np.ones(nq, dtype=bool)
    differ = 0
    true_d = dataset.distances
    for trace, w in zip(level.traces, weights):
        asked = w > 0
        ids = stack_answers([a if a is not None else () for a in trace.answers], k)
        ids[~asked] = -1
        found_d = checked_distances(dataset, ids, k)
        sums["recall"] += w * M.recall(found_d, true_d, k)
        sums["id_recall"] += w * M.id_recall(ids, dataset.neighbors, true_d, k)
        for e in EPSILONS:
            sums[f"eps_recall_{e:g}"] += w * M.epsilon_recall(found_d, true_d, k, e)
        differ += int((asked & (ids != single).any(axis=1)).sum())
        take = asked & unset
        kept[take] = ids[take]
        unset &= ~asked
    scores = {name: float(np.mean(total[answered] / per_query[answered])) for name, total in sums.items()}
    single_d = checked_distances(dataset, single, k)
    scores["single_client_recall"] = float(np.mean(M.recall(single_d, true_d, k)[answered]))
    scores["queries_answered"] = int(answered.sum())
    kept_d = distances_to_ids(dataset.test, dataset.train, kept, dataset.distance)
    return scores, kept, kept_d, differ
