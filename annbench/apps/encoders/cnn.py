"""Small convolutional network (PyTorch, the ``torch`` extra):
conv3×3(16)–pool2–conv3×3(32)–pool2–fc(hidden)–fc(dim)–fc(classes), ReLU after each hidden layer.

Inputs are square single-channel images (``d = side²``, side ≥ 4). Deterministic for a
seed and thread count (:mod:`annbench.apps.encoders.torch_loop`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from annbench.apps.encoders.base import EncoderSettings, TrainedEncoder, TrainingData
from annbench.apps.encoders.torch_loop import batched, deterministic, fit
from annbench.core.errors import UserError

CHANNELS = (16, 32)


def image_side(dimension: int) -> int:
    side = math.isqrt(dimension)
    if side * side != dimension or side < 4:
        raise UserError(f"--model cnn needs square single-channel images of side >= 4; dimension {dimension} is not "
                        f"a square of such a side (valid: e.g. 64 = 8x8, 784 = 28x28); use --model mlp")
    return side


class ConvNet(nn.Module):
    def __init__(self, side: int, hidden: int, dim: int, n_classes: int) -> None:
        super().__init__()
        c1, c2 = CHANNELS
        self.side = side
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(c2 * (side // 4) ** 2, hidden), nn.ReLU(),
            nn.Linear(hidden, dim), nn.ReLU())
        self.head = nn.Linear(dim, n_classes)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.view(-1, 1, self.side, self.side))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.penultimate(x))


def train(data: TrainingData, settings: EncoderSettings, progress: bool = True) -> TrainedEncoder:
    side = image_side(data.x_train.shape[1])
    with deterministic(settings.seed, settings.threads):
        model = ConvNet(side, settings.hidden, settings.dim, len(data.classes))
        x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train.astype(np.int64))
        training_s = fit(model, lambda idx: model(x[idx]), y, settings, nn.CrossEntropyLoss(), progress)
        accuracy = float(np.mean(batched(model, model.forward, data.x_test).argmax(axis=1) == data.y_test))

    def features(inputs: np.ndarray) -> np.ndarray:
        with deterministic(settings.seed, settings.threads):
            return batched(model, model.penultimate, np.asarray(inputs, dtype=np.float32)).astype(np.float32)

    c1, c2 = CHANNELS
    return TrainedEncoder(
        architecture=f"CNN {side}x{side}: conv3x3({c1})-pool2-conv3x3({c2})-pool2-fc({settings.hidden})-"
                     f"fc({settings.dim})-fc({len(data.classes)}) (relu; PyTorch, adam, batch {settings.batch_size}, "
                     f"lr {settings.learning_rate:g})",
        library="torch", training_s=training_s, test_accuracy=accuracy, features=features, model=model)
