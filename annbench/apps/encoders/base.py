"""What every encoder model shares: its settings, its training data and what training returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: The gru model's convolution channels (``hidden``) when none are given.
GRU_HIDDEN = 64


@dataclass(frozen=True)
class EncoderSettings:
    """How to train one network. ``dim`` is the width of the penultimate layer (the features)."""

    model: str
    dim: int
    epochs: int = 10
    seed: int = 0
    hidden: int = 256
    batch_size: int = 200
    learning_rate: float = 1e-3
    threads: int = 1
    #: Sequence models only: width of the 1-D convolution before the recurrent layer (0 = none).
    conv_width: int = 3


@dataclass(frozen=True)
class TrainingData:
    """Standardised inputs and class indices ``0..n_classes-1`` (``classes[i]`` is the label of index ``i``);
    ``texts_train`` / ``texts_test``: the rows' keys (the strings a sequence model reads), where given."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: np.ndarray
    texts_train: tuple[str, ...] | None = None
    texts_test: tuple[str, ...] | None = None

    @classmethod
    def from_arrays(cls, train: np.ndarray, train_labels: np.ndarray, test: np.ndarray,
                    test_labels: np.ndarray, train_keys: Any = None, test_keys: Any = None) -> TrainingData:
        """Inputs standardised with the train split's overall mean and standard deviation
        (one scalar each, so images keep their structure): ``x' = (x - mean) / std``."""
        mean = float(np.mean(train, dtype=np.float64))
        std = float(np.std(train, dtype=np.float64)) or 1.0
        classes, y_train = np.unique(np.asarray(train_labels), return_inverse=True)
        y_test = np.searchsorted(classes, np.asarray(test_labels))
        known = (y_test < len(classes)) & (classes[np.minimum(y_test, len(classes) - 1)] == np.asarray(test_labels))
        y_test = np.where(known, y_test, -1)  # a test label absent from train can never be predicted
        return cls(((np.asarray(train, np.float32) - mean) / std).astype(np.float32), y_train.ravel(),
                   ((np.asarray(test, np.float32) - mean) / std).astype(np.float32), y_test, classes,
                   None if train_keys is None else tuple(map(str, train_keys)),
                   None if test_keys is None else tuple(map(str, test_keys)))


@dataclass(frozen=True)
class TrainedEncoder:
    """A trained network (``model``): ``features(x)`` gives the penultimate activations of standardised inputs."""

    architecture: str
    library: str
    training_s: float
    test_accuracy: float
    features: Callable[[np.ndarray], np.ndarray]
    model: Any = None


def encoder_path(dataset_file: str | Path) -> Path:
    """Where the trained encoder of a dataset file is saved: ``NAME.encoder.safetensors`` beside ``NAME.hdf5``."""
    dataset_file = Path(dataset_file)
    return dataset_file.with_name(f"{dataset_file.stem}.encoder.safetensors")
