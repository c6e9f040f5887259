"""Labelled dataset → trained classifier network → a new dataset of its penultimate-layer features.

The encoded dataset ``<base>-encoded-<model>-<dim>-<distance>`` (``base`` = the source name
without its ``-<dimension>-<distance>`` suffix) holds the features of the train and test
splits, the source's labels, fresh exact ground truth, and attrs recording how it was made.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annbench.apps.encoders.base import EncoderSettings, TrainingData, encoder_path
from annbench.core.errors import UserError
from annbench.datasets.format import Dataset, load_dataset
from annbench.datasets.registry import dataset_path, materialize
from annbench.datasets.spec import RawData

log = logging.getLogger(__name__)

#: Model name → module in :mod:`annbench.apps.encoders` and the extra its library comes from.
MODELS = {"mlp": ("annbench.apps.encoders.mlp", None), "cnn": ("annbench.apps.encoders.cnn", "torch"),
          "gru": ("annbench.apps.encoders.gru", "torch")}
#: Models that read the rows' keys (strings) rather than their vectors.
SEQUENCE_MODELS = ("gru",)
#: k of the exact k-NN accuracies stored in an encoding's attrs.
KNN_KS = (5, 10)
#: Attrs that must agree for an existing encoded file to count as the same encoding.
IDENTITY_ATTRS = ("source_checksum", "encoder_model", "encoder_width", "encoder_epochs", "encoder_seed",
                  "encoder_hidden", "encoder_batch_size", "encoder_learning_rate", "encoder_conv_width")


@dataclass(frozen=True)
class EncodeOutcome:
    name: str
    path: Path
    test_accuracy: float
    training_s: float
    encoding_s: float
    reused: bool = False


def encoded_prefix(source: str) -> str:
    """What every encoding of ``source`` is named with: ``fashion-mnist-784-euclidean`` → ``fashion-mnist-encoded-``."""
    return re.sub(r"-\d+-(euclidean|angular|ip)$", "", source) + "-encoded-"


def encoded_name(source: str, model: str, dim: int, distance: str) -> str:
    """``fashion-mnist-784-euclidean`` → ``fashion-mnist-encoded-mlp-64-euclidean``."""
    return f"{encoded_prefix(source)}{model}-{dim}-{distance}"


def model_module(model: str) -> Any:
    """The module of ``model`` in :mod:`annbench.apps.encoders` (``train``, and ``save`` / ``load`` where it saves)."""
    if model not in MODELS:
        raise UserError(f"unknown model {model!r}; valid: {', '.join(MODELS)}")
    module, extra = MODELS[model]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise UserError(f"model {model!r} needs {extra or e.name}, which does not import ({e}); install it with "
                        f"pip install -e \".[{extra}]\"") from None


def _trainer(model: str) -> Any:
    return model_module(model).train


def _identity(settings: EncoderSettings, source: Dataset) -> dict[str, Any]:
    skip = ("dim", "threads") + (() if settings.model in SEQUENCE_MODELS else ("conv_width",))
    return {"source_checksum": source.checksum, **{f"encoder_{k}": v for k, v in asdict(settings).items()
                                                   if k not in skip},
            "encoder_width": settings.dim}


def _reusable(path: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """The attrs of an existing encoding made the same way; one made differently is an error."""
    existing = {k: v.item() if isinstance(v, np.generic) else v for k, v in load_dataset(path).attrs.items()}
    differing = [k for k in IDENTITY_ATTRS if existing.get(k) != identity.get(k)]
    if differing:
        k = differing[0]
        raise UserError(f"dataset file {path} exists, made with {k}={existing.get(k)!r} (now {identity[k]!r}); "
                        f"give --force to replace it, or another --data-dir")
    return existing


def exact_knn_accuracies(train: np.ndarray, test: np.ndarray, distance: str, train_labels: np.ndarray,
                         test_labels: np.ndarray, ks: tuple[int, ...] = KNN_KS) -> dict[str, float]:
    """``knn_accuracy_exact_k<k>``: the accuracy of an exact k-NN vote (:func:`annbench.quality.metrics.knn_accuracy`)
    of the test rows among the train rows, for each k of ``ks``."""
    from annbench.quality.groundtruth import exact_knn
    from annbench.quality.metrics import knn_accuracy

    ids = exact_knn(train, test, distance, min(max(ks), len(train)))[0]
    return {f"knn_accuracy_exact_k{k}": knn_accuracy(ids, train_labels, test_labels, k) for k in ks}


def encode(source: Dataset, settings: EncoderSettings, distance: str, data_dir: Path, force: bool = False,
           progress: bool = True) -> EncodeOutcome:
    """Train ``settings.model`` on ``source``'s train split and write the encoded dataset to ``data_dir``.

    An existing file made the same way is reused (``reused=True``) unless ``force``.
    """
    if source.train_labels is None or source.test_labels is None:
        raise UserError(f"dataset {source.name} ({source.path}) has no train_labels/test_labels; encoding trains a "
                        f"classifier, so it needs a labelled dataset (e.g. digits-64-euclidean)")
    module = model_module(settings.model)
    sequences = settings.model in SEQUENCE_MODELS
    if sequences and (source.keys is None or source.test_keys is None):
        raise UserError(f"--model {settings.model} reads strings, but dataset {source.name} ({source.path}) has no "
                        f"keys/test_keys; valid: a dataset whose keys are the sequences (e.g. surnames)")
    name = encoded_name(source.name, settings.model, settings.dim, distance)
    path = dataset_path(name, data_dir)
    identity = _identity(settings, source)
    if path.is_file() and not force:
        attrs = _reusable(path, identity)
        log.info("%s: already encoded with the same settings in %s", name, path)
        return EncodeOutcome(name, path, float(attrs["encoder_test_accuracy"]), float(attrs["encoder_training_s"]),
                             float(attrs["encoder_encoding_s"]), reused=True)
    data = TrainingData.from_arrays(source.train, source.train_labels, source.test, source.test_labels,
                                    source.keys if sequences else None, source.test_keys if sequences else None)
    from annbench.core.threads import limited_threads

    with limited_threads(settings.threads):
        trained = module.train(data, settings, progress)
        start = time.perf_counter()
        if sequences:
            train_x, test_x = trained.features(data.texts_train), trained.features(data.texts_test)
        else:
            train_x, test_x = trained.features(data.x_train), trained.features(data.x_test)
        encoding_s = time.perf_counter() - start
    if not (np.isfinite(train_x).all() and np.isfinite(test_x).all()):
        raise UserError(f"training {settings.model} on {source.name} diverged (non-finite features); "
                        f"lower --learning-rate (now {settings.learning_rate:g})")
    log.info("%s: network test accuracy %.4f, trained in %.1f s, features in %.1f s", name, trained.test_accuracy,
             trained.training_s, encoding_s)
    version = importlib.import_module("torch" if trained.library == "torch" else "sklearn").__version__
    attrs = {
        **identity, "source": f"penultimate layer of a {trained.architecture} trained on {source.name}",
        "source_dataset": source.name, "encoder_architecture": trained.architecture,
        "encoder_library": f"{trained.library} {version}", "encoder_training_s": trained.training_s,
        "encoder_encoding_s": encoding_s, "encoder_test_accuracy": trained.test_accuracy,
        **{k: source.attrs[k] for k in ("label_names",) if k in source.attrs},
        **exact_knn_accuracies(train_x, test_x, distance, source.train_labels, source.test_labels),
    }
    saved = encoder_path(path)
    saved.unlink(missing_ok=True)  # never leave another network's file beside the new features
    materialize(RawData(train=train_x, test=test_x, distance=distance, train_labels=source.train_labels,
                        test_labels=source.test_labels, keys=source.keys, test_keys=source.test_keys, attrs=attrs),
                path, name)
    if hasattr(module, "save"):
        module.save(trained, saved, {"dataset_checksum": load_dataset(path).checksum, "dataset": name,
                                     "distance": distance})
        log.info("%s: encoder saved in %s", name, saved)
    return EncodeOutcome(name, path, trained.test_accuracy, trained.training_s, encoding_s)
