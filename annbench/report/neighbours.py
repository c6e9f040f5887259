"""Pictures of neighbours: what chosen runs returned, next to the exact neighbours, wrong ones marked.

A returned neighbour is *right* by the recall rule (:func:`annbench.quality.metrics.recall`): its
distance, recomputed from the dataset, is at most the true k-th distance + 1e-3. Image
datasets (labelled, square dimension such as 8×8 digits or 28×28 Fashion-MNIST/MNIST, or an
``image_shape`` attr) give a figure; datasets with ``keys`` (words) give a table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from annbench.core.results import Status
from annbench.datasets.format import Dataset
from annbench.quality.distances import distances_to_ids
from annbench.quality.metrics import RECALL_EPSILON
from annbench.report.plotting import params_label, plain_text
from annbench.store.folder import read_arrays


@dataclass(frozen=True)
class Selection:
    """One run's answers: ``neighbors`` is ``(nq, k)`` ids, -1 padded."""

    label: str
    neighbors: np.ndarray


def choose_runs(frame: pd.DataFrame, min_recall: float = 0.9) -> pd.DataFrame:
    """Per algorithm (and batch mode): its fastest successful run with recall >= ``min_recall``,
    or its most accurate run when none reaches it."""
    ok = frame[frame["status"] == Status.OK]
    rows = []
    for _, group in ok.groupby(["algorithm", "batch"], sort=True):
        reached = group[group["recall"] >= min_recall]
        rows.append(reached.loc[reached["qps"].idxmax()] if len(reached) else group.loc[group["recall"].idxmax()])
    return pd.DataFrame(rows)


def load_selections(runs: pd.DataFrame) -> list[Selection]:
    out = []
    for _, r in runs.iterrows():
        batch = " (batch)" if r["batch"] else ""
        label = f"{r['algorithm']}{batch} {params_label(r['build_params'], r['query_params'])}"
        out.append(Selection(label, read_arrays(r["path"])["neighbors"]))
    return out


def correct(dataset: Dataset, ids: np.ndarray) -> np.ndarray:
    """``(nq, k)`` bool: returned neighbour within the true k-th distance + 1e-3 (padding is wrong)."""
    k = ids.shape[1]
    found = distances_to_ids(dataset.test, dataset.train, ids, dataset.distance)
    return found <= dataset.distances[:, k - 1:k] + RECALL_EPSILON


def pick_queries(rights: list[np.ndarray], n_total: int, n: int) -> np.ndarray:
    """``n`` query indices: those where some selection is wrong first, then the rest, in order."""
    wrong = np.zeros(n_total, dtype=bool)
    for right in rights:
        wrong |= ~right.all(axis=1)
    order = np.concatenate([np.flatnonzero(wrong), np.flatnonzero(~wrong)])
    return order[:n]


def image_shape(dataset: Dataset) -> tuple[int, int] | None:
    """The picture shape of an image dataset, else None."""
    if "image_shape" in dataset.attrs:
        shape = json.loads(str(dataset.attrs["image_shape"])) if isinstance(dataset.attrs["image_shape"], str) \
            else list(dataset.attrs["image_shape"])
        return int(shape[0]), int(shape[1])
    side = math.isqrt(dataset.dimension)
    if dataset.train_labels is not None and side * side == dataset.dimension and side >= 8:
        return side, side
    return None


def neighbour_figure(dataset: Dataset, selections: list[Selection], output: str | Path, n_queries: int = 4,
                     n_show: int = 8) -> Path:
    """Per query a block of rows: the query and its exact neighbours, then each selection's
    neighbours; wrong ones framed in red and marked ✗. Labels (if any) above each picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shape = image_shape(dataset)
    if shape is None:
        raise ValueError(f"dataset {dataset.name} is not an image dataset")
    rights = [correct(dataset, s.neighbors) for s in selections]
    queries = pick_queries(rights, len(dataset.test), n_queries)
    k = min(n_show, *(s.neighbors.shape[1] for s in selections)) if selections else n_show
    rows = len(queries) * (1 + len(selections))
    height = 1.05 * rows + 0.5
    fig, axes = plt.subplots(rows, k + 1, figsize=(1.0 * (k + 1) + 2.5, height), squeeze=False)
    fig.subplots_adjust(top=1 - 0.5 / height, bottom=0.1 / height, hspace=0.35, wspace=0.1)
    try:
        def picture(ax, vector, label, wrong=False):
            ax.imshow(np.asarray(vector, dtype=np.float32).reshape(shape), cmap="gray_r")
            if label is not None:
                ax.set_title(plain_text(str(label)), fontsize=6, pad=2)
            if wrong:
                ax.text(0.95, 0.05, "✗", transform=ax.transAxes, color="red", ha="right", va="bottom", fontsize=9)
                for spine in ax.spines.values():
                    spine.set(color="red", linewidth=2.5)

        labels = dataset.train_labels
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(True)
        row = 0
        for q in queries:
            qlabel = f"query {q}" + (f" ({dataset.test_labels[q]})" if dataset.test_labels is not None else "")
            picture(axes[row, 0], dataset.test[q], qlabel)
            exact = dataset.neighbors[q, :k]
            for j, i in enumerate(exact):
                picture(axes[row, j + 1], dataset.train[i], None if labels is None else labels[i])
            axes[row, 1].set_ylabel("exact", fontsize=7, rotation=0, ha="right", va="center")
            row += 1
            for s, all_right in zip(selections, rights):
                ids = s.neighbors[q, :k]
                right = all_right[q, :k]
                axes[row, 0].axis("off")
                axes[row, 0].text(1.0, 0.5, plain_text(s.label), fontsize=6, ha="right", va="center",
                                  transform=axes[row, 0].transAxes)
                for j, (i, ok) in enumerate(zip(ids, right)):
                    if i < 0:
                        axes[row, j + 1].text(0.5, 0.5, "none ✗", ha="center", va="center", color="red", fontsize=7)
                        continue
                    picture(axes[row, j + 1], dataset.train[i], None if labels is None else labels[i], wrong=not ok)
                row += 1
        fig.suptitle(plain_text(f"{dataset.name}: neighbours returned vs exact (✗ = farther than the true "
                                f"k-th distance + {RECALL_EPSILON:g})"), fontsize=9)
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(output, bbox_inches="tight", dpi=110)
    finally:
        plt.close(fig)
    return output


def neighbour_table(dataset: Dataset, selections: list[Selection], n_queries: int = 5,
                    n_show: int = 10) -> pd.DataFrame:
    """For a dataset with ``keys``: per query the exact neighbours' keys, then each selection's,
    wrong ones suffixed ``✗``."""
    if dataset.keys is None:
        raise ValueError(f"dataset {dataset.name} has no keys")
    keys = dataset.keys
    rights = [correct(dataset, s.neighbors) for s in selections]
    rows = []
    for q in pick_queries(rights, len(dataset.test), n_queries):
        rows.append({"query": int(q), "source": "exact", "neighbours": ", ".join(str(keys[i]) for i in
                                                                              dataset.neighbors[q, :n_show])})
        for s, all_right in zip(selections, rights):
            right = all_right[q]
            words = [("(none)" if i < 0 else str(keys[i])) + ("" if ok else " ✗")
                     for i, ok in zip(s.neighbors[q, :n_show], right[:n_show])]
            rows.append({"query": int(q), "source": s.label, "neighbours": ", ".join(words)})
    return pd.DataFrame(rows, columns=["query", "source", "neighbours"])
