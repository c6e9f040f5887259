"""The ground truth of a runbook's search steps, cached beside the dataset file.

``<folder>/<name>.runbook-<runbook digest>.npz`` beside ``<folder>/<name>.hdf5`` holds, per search
step, the exact top-100 tags and distances over the points live then
(:func:`annbench.quality.streaming.step_ground_truth`), with the dataset checksum it was computed
for: a re-run with the same runbook and dataset content reads it; another checksum recomputes it.
The parent computes it once before any child starts; the children read it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annbench.core.atomic import write_npz
from annbench.datasets.format import GROUND_TRUTH_K, Dataset
from annbench.quality.streaming import LiveSet, step_ground_truth

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepTruth:
    """``neighbors`` (searches, nq, K) int32 tags (``-1`` padded) and ``distances`` float32 (``inf`` padded)."""

    checksum: str
    digest: str
    neighbors: np.ndarray
    distances: np.ndarray
    seconds: float


def sidecar_path(dataset_path: str | Path, digest: str) -> Path:
    p = Path(dataset_path)
    return p.with_name(f"{p.stem}.runbook-{digest}.npz")


def sidecars(dataset_path: str | Path) -> list[Path]:
    """Every runbook ground truth stored beside the dataset file (``dataset.py remove`` removes them)."""
    p = Path(dataset_path)
    return sorted(p.parent.glob(f"{p.stem}.runbook-*.npz"))


def read(path: Path) -> StepTruth | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return StepTruth(str(z["checksum"]), str(z["digest"]), z["neighbors"], z["distances"], float(z["seconds"]))
    except (OSError, KeyError, ValueError) as e:
        log.warning("runbook ground truth %s is unreadable (%s); recomputing", path, e)
        return None


def write(path: Path, truth: StepTruth) -> Path:
    return write_npz(path, checksum=truth.checksum, digest=truth.digest, neighbors=truth.neighbors,
                     distances=truth.distances, seconds=truth.seconds)


def compute(dataset: Dataset, digest: str, live_sets: Sequence[LiveSet], k: int = GROUND_TRUTH_K,
            threads: int | None = None) -> StepTruth:
    start = time.perf_counter()
    nq = len(dataset.test)
    ids = np.empty((len(live_sets), nq, k), dtype=np.int32)
    dist = np.empty((len(live_sets), nq, k), dtype=np.float32)
    for i, (step_ids, step_d) in enumerate(step_ground_truth(dataset.train, dataset.test, dataset.distance,
                                                              live_sets, k, threads)):
        ids[i], dist[i] = step_ids, step_d
    return StepTruth(dataset.checksum, digest, ids, dist, time.perf_counter() - start)


def load_or_compute(dataset: Dataset, digest: str, live_sets: Sequence[LiveSet], threads: int | None = None
                    ) -> tuple[StepTruth, Path]:
    """The runbook's ground truth from its sidecar when that holds this dataset checksum and runbook, else
    computed and stored (a folder that cannot be written only costs a warning), and the sidecar's path."""
    path = sidecar_path(dataset.path, digest)
    stored = read(path)
    if stored is not None and stored.checksum == dataset.checksum and stored.digest == digest \
            and stored.neighbors.shape[:2] == (len(live_sets), len(dataset.test)):
        return stored, path
    if stored is not None:
        log.info("runbook ground truth %s is for dataset checksum %s, the dataset has %s: recomputing", path,
                 stored.checksum, dataset.checksum)
    truth = compute(dataset, digest, live_sets, threads=threads)
    log.info("runbook ground truth of %s: %d search steps in %.2f s", dataset.name, len(live_sets), truth.seconds)
    try:
        write(path, truth)
    except OSError as e:
        log.warning("could not store the runbook ground truth in %s (%s); it will be computed again", path, e)
    return truth, path
