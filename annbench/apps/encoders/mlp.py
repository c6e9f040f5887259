"""Multi-layer perceptron (scikit-learn ``MLPClassifier``): input → hidden → dim → classes.

Trained one epoch per ``partial_fit`` call (adam, shuffled mini-batches, ``random_state=seed``);
the features are the ReLU activations of the ``dim`` layer, computed from the fitted
``coefs_`` / ``intercepts_``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from tqdm import tqdm

from annbench.apps.encoders.base import EncoderSettings, TrainedEncoder, TrainingData

#: scikit-learn's hidden activations, as numpy functions.
ACTIVATIONS = {
    "relu": lambda a: np.maximum(a, 0),
    "tanh": np.tanh,
    "logistic": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "identity": lambda a: a,
}


def penultimate(clf, x: np.ndarray) -> np.ndarray:  # a fitted MLPClassifier
    """Activations of the last hidden layer: ``a_0 = x``, ``a_{i+1} = f(a_i W_i + b_i)`` for every
    layer but the output one (``f`` = the classifier's ``activation``)."""
    f = ACTIVATIONS[clf.activation]
    a = np.asarray(x, dtype=clf.coefs_[0].dtype)
    for w, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        a = f(a @ w + b)
    return np.asarray(a, dtype=np.float32)


def train(data: TrainingData, settings: EncoderSettings, progress: bool = True) -> TrainedEncoder:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(hidden_layer_sizes=(settings.hidden, settings.dim), activation="relu", solver="adam",
                        batch_size=settings.batch_size, learning_rate_init=settings.learning_rate,
                        random_state=settings.seed, shuffle=True)
    all_classes = np.arange(len(data.classes))
    start = time.perf_counter()
    with tqdm(range(settings.epochs), desc=f"mlp dim={settings.dim}", unit="epoch", disable=not progress) as bar:
        for _ in bar:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.partial_fit(data.x_train, data.y_train, classes=all_classes)
            bar.set_postfix(loss=f"{clf.loss_:.4f}")
    training_s = time.perf_counter() - start
    accuracy = float(np.mean(clf.predict(data.x_test) == data.y_test))
    widths = [data.x_train.shape[1], settings.hidden, settings.dim, len(data.classes)]
    return TrainedEncoder(
        architecture=f"MLP {'-'.join(map(str, widths))} (relu; softmax output; scikit-learn MLPClassifier, adam, "
                     f"batch {settings.batch_size}, lr {settings.learning_rate:g})",
        library="scikit-learn", training_s=training_s, test_accuracy=accuracy,
        features=lambda x: penultimate(clf, x), model=clf)
