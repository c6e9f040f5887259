"""One client level of one query setting, in the child that built the index: the clients run
(:mod:`annbench.execute.clients` as threads, :mod:`annbench.execute.client_processes` as forked processes),
their window is scored (:mod:`annbench.execute.evaluate`), and the level's result is made for the child to
store. Level 1 is the single-query run the child measured just before (its QPS, latencies and answers are
the reference: the clients' buffers are sized from its latency, their answers compared with its answers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from annbench.backends.adapter import Adapter
from annbench.core.results import RunKey, RunResult, Status, canonical, measurement_attrs
from annbench.datasets.format import Dataset
from annbench.execute.client_processes import process_clients
from annbench.execute.clients import client_cores, clock_cost_ns, ramp_seconds, sample_every, thread_clients
from annbench.execute.evaluate import client_quality, client_speed
from annbench.execute.isolation import available_cores
from annbench.execute.measure import PassMeasurement
from annbench.plan.grid import ClientKind, RunOptions

log = logging.getLogger(__name__)


def single_latency_ns(single: PassMeasurement, statistic: Callable[[np.ndarray], Any] = np.mean) -> float | None:
    """Mean latency of the single-client run (what a client's buffers are sized from), or another statistic."""
    if single.latencies_ns is None or not len(single.latencies_ns):
        return None
    return float(statistic(single.latencies_ns))


def measure_level(adapter: Adapter, dataset: Dataset, options: RunOptions, key: RunKey, single: PassMeasurement,
                  attrs: dict[str, Any]) -> RunResult:
    """Run ``key.clients`` clients on the built ``adapter`` (query parameters set) for the options' window
    and make the level's result: QPS, latency percentiles and fairness of the window, quality of the answers
    given; ``attrs`` (the run's provenance) extended by how the clients ran. Raises what the clients raise."""
    n, k = key.clients, options.k
    cores = available_cores()
    pins = client_cores(n, options.threads, cores)
    rows = list(dataset.test)
    latency = single_latency_ns(single)
    latency_median, clock = single_latency_ns(single, np.median), clock_cost_ns()
    every = sample_every(latency_median, clock, len(rows))
    run = process_clients if options.client_kind == ClientKind.PROCESS else thread_clients
    level = run(adapter, rows, k, options.client_seconds, pins, latency, every)
    speed, latencies, per_client = client_speed(level, len(rows))
    samples = speed.pop("latency_samples")
    scores, kept, kept_d, differ = client_quality(dataset, level, k, single.neighbors)
    parallel = max(1, len(cores) // max(1, options.threads))
    over = n > parallel
    single_recall = scores.pop("single_client_recall")
    answered = scores.pop("queries_answered")
    differs = not np.isclose(scores["recall"], single_recall, rtol=1e-12, atol=0)
    if differs:
        log.warning("%s: recall %.6f with %d clients, %.6f with one on the same %d queries: the library answered "
                    "differently under load (%d answers differ)", key.label(), scores["recall"], n, single_recall,
                    answered, differ)
    if every > 1:
        log.info("%s: queries of %.0f ns, a clock reading %.0f ns: each client timed one query in %d (%d timed in "
                 "the window, of %d answered)", key.label(), latency_median, clock, every, samples,
                 round(speed["qps"] * level.window.length_ns * 1e-9))
    if over:
        log.info("%s: %d clients on %d cores (%d threads each): some share a core", key.label(), n, len(cores),
                 options.threads)
    client_attrs = {
        **measurement_attrs(options, attrs["dataset_checksum"], options.level_identity(n)),
        "client_kind": str(level.kind), "client_seconds": options.client_seconds,
        "client_window_s": level.window.length_ns * 1e-9, "client_ramp_s": ramp_seconds(options.client_seconds),
        "client_cores": [list(t.cores) if t.cores is not None else None for t in level.traces],
        "client_cores_available": len(cores), "clients_over_cores": over,
        "client_qps": [float(q) for q in per_client],
        "client_latency_every": every, "client_latency_samples": samples,
        "client_connections": sum(t.own_handle for t in level.traces),
        "queries_answered": answered, "answers_differ": differ, "single_client_recall": single_recall,
        "recall_differs": differs,
    }
    return RunResult(key, Status.OK, metrics={**scores, **speed},
                     attrs={**attrs, **client_attrs}, neighbors=kept.astype("int32"),
                     distances=kept_d.astype("float32"), latencies_ns=latencies)


def by_query_setting(keys: list[RunKey]) -> list[list[RunKey]]:
    """The keys of one build setting grouped by query setting, in their order; each group starts with its
    level-1 key, or with the level-1 key's stand-in, its lowest level, where level 1 is not to be run
    (level 1 is measured for every group: it is the other levels' reference)."""
    groups: dict[str, list[RunKey]] = {}
    for key in keys:
        groups.setdefault(canonical(key.query_params), []).append(key)
    return [sorted(g, key=lambda k: k.clients) for g in groups.values()]
