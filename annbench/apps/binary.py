"""Binary codes of a network encoding: each feature thresholded at its training median, packed 8 bits a
byte, searched under hamming (``encode.py --binary``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annbench.apps.encode import encoded_name, exact_knn_accuracies
from annbench.datasets.format import Dataset
from annbench.datasets.registry import dataset_path, materialize
from annbench.datasets.spec import RawData
from annbench.quality.points import pack_bits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BinaryOutcome:
    name: str
    path: Path
    bits: int
    knn_accuracy: float  # exact k-NN accuracy (k = 10) of the binary codes under hamming


def binarize(encoded: Dataset, model: str, data_dir: Path) -> BinaryOutcome:
    """Write ``encoded``'s binary twin, ``<prefix>-<model>-<dim>-hamming``: feature j of a row is 1 where
    it exceeds the median of feature j over the train rows (test rows use the train medians), so each bit
    splits the train points in half. Its exact k-NN accuracies are recorded as the float encoding's are."""
    medians = np.median(encoded.train, axis=0)
    train, test = pack_bits(encoded.train > medians), pack_bits(encoded.test > medians)
    bits = encoded.dimension
    name = encoded_name(str(encoded.attrs.get("source_dataset", encoded.name)), model, bits, "hamming")
    accuracies = exact_knn_accuracies(train, test, "hamming", encoded.train_labels, encoded.test_labels)
    attrs = {k: v for k, v in encoded.attrs.items() if k.startswith(("encoder_", "source_dataset", "label_names"))}
    attrs.update(source=f"{encoded.name} thresholded at each feature's training median, packed",
                 binary_of=encoded.name, binary_of_checksum=encoded.checksum, **accuracies)
    path = dataset_path(name, data_dir)
    materialize(RawData(train=train, test=test, distance="hamming", train_labels=encoded.train_labels,
                        test_labels=encoded.test_labels, attrs=attrs, bits=bits), path, name)
    log.info("%s: %d-bit codes of %s, exact 10-NN accuracy %.4f", name, bits, encoded.name,
             accuracies["knn_accuracy_exact_k10"])
    return BinaryOutcome(name, path, bits, accuracies["knn_accuracy_exact_k10"])
