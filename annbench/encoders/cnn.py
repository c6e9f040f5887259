"""Small convolutional network (PyTorch, the ``torch`` extra):
conv3×3(16)–pool2–conv3×3(32)–pool2–fc(hidden)–fc(dim)–fc(classes), ReLU after each hidden layer.

Inputs are square single-channel images (``d = side²``, side ≥ 4). Deterministic for a
seed: ``torch.manual_seed``, a seeded shuffling generator, deterministic algorithms and a
fixed thread count (all restored afterwards).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from annbench.encoders.base import EncoderSettings, TrainedEncoder, TrainingData
from annbench.errors import UserError

CHANNELS = (16, 32)
#: Rows per forward pass when computing features.
INFERENCE_BATCH = 2048


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


@contextlib.contextmanager
def deterministic(seed: int, threads: int) -> Iterator[None]:
    """Seeded, deterministic, ``threads``-threaded torch for the duration; previous state restored."""
    previous = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.random.get_rng_state())
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(previous[0])
        torch.use_deterministic_algorithms(previous[1])
        torch.random.set_rng_state(previous[2])


def _batched(model: ConvNet, fn, x: np.ndarray) -> np.ndarray:  # noqa: ANN001 - a bound method of model
    model.eval()
    with torch.no_grad():
        parts = [fn(torch.from_numpy(np.ascontiguousarray(x[s:s + INFERENCE_BATCH], dtype=np.float32))).numpy()
                 for s in range(0, len(x), INFERENCE_BATCH)]
    return np.concatenate(parts)


def train(data: TrainingData, settings: EncoderSettings, progress: bool = True) -> TrainedEncoder:
    side = image_side(data.x_train.shape[1])
    with deterministic(settings.seed, settings.threads):
        model = ConvNet(side, settings.hidden, settings.dim, len(data.classes))
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
        loss_fn = nn.CrossEntropyLoss()
        x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train.astype(np.int64))
        shuffler = torch.Generator().manual_seed(settings.seed)
        start = time.perf_counter()
        with tqdm(range(settings.epochs), desc=f"cnn dim={settings.dim}", unit="epoch", disable=not progress) as bar:
            for _ in bar:
                model.train()
                order, total = torch.randperm(len(x), generator=shuffler), 0.0
                for s in range(0, len(x), settings.batch_size):
                    idx = order[s:s + settings.batch_size]
                    optimizer.zero_grad()
                    loss = loss_fn(model(x[idx]), y[idx])
                    loss.backward()
                    optimizer.step()
                    total += loss.item() * len(idx)
                bar.set_postfix(loss=f"{total / len(x):.4f}")
        training_s = time.perf_counter() - start
        accuracy = float(np.mean(_batched(model, model.forward, data.x_test).argmax(axis=1) == data.y_test))

    def features(inputs: np.ndarray) -> np.ndarray:
        with deterministic(settings.seed, settings.threads):
            return _batched(model, model.penultimate, inputs).astype(np.float32)

    c1, c2 = CHANNELS
    return TrainedEncoder(
        architecture=f"CNN {side}x{side}: conv3x3({c1})-pool2-conv3x3({c2})-pool2-fc({settings.hidden})-"
                     f"fc({settings.dim})-fc({len(data.classes)}) (relu; PyTorch, adam, batch {settings.batch_size}, "
                     f"lr {settings.learning_rate:g})",
        library="torch", training_s=training_s, test_accuracy=accuracy, features=features, model=model)
