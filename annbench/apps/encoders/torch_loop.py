"""What the PyTorch encoders share: deterministic torch, the training loop, batched inference.

Deterministic for a seed and thread count: ``torch.manual_seed``, a seeded shuffling
generator, deterministic algorithms and a fixed thread count (all restored afterwards).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from annbench.apps.encoders.base import EncoderSettings

#: Rows per forward pass when computing features.
INFERENCE_BATCH = 2048


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


def fit(model: nn.Module, logits: Callable[[torch.Tensor], torch.Tensor], targets: torch.Tensor,
        settings: EncoderSettings, loss_fn: nn.Module, progress: bool = True) -> float:
    """Train ``model`` with Adam for ``settings.epochs`` epochs of shuffled mini-batches; return the seconds taken.

    ``logits(idx)`` is the model's output for the training rows ``idx``; ``targets`` their class
    indices. Call inside :func:`deterministic`.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    shuffler = torch.Generator().manual_seed(settings.seed)
    n = len(targets)
    start = time.perf_counter()
    with tqdm(range(settings.epochs), desc=f"{settings.model} dim={settings.dim}", unit="epoch",
              disable=not progress) as bar:
        for _ in bar:
            model.train()
            order, total = torch.randperm(n, generator=shuffler), 0.0
            for s in range(0, n, settings.batch_size):
                idx = order[s:s + settings.batch_size]
                optimizer.zero_grad()
                loss = loss_fn(logits(idx), targets[idx])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            bar.set_postfix(loss=f"{total / n:.4f}")
    return time.perf_counter() - start


def batched(model: nn.Module, fn: Callable[..., torch.Tensor], *arrays: np.ndarray) -> np.ndarray:
    """``fn`` (a bound method of ``model``) over the rows of ``arrays`` in blocks, in eval mode, without gradients."""
    model.eval()
    with torch.no_grad():
        parts = [fn(*(torch.from_numpy(np.ascontiguousarray(a[s:s + INFERENCE_BATCH])) for a in arrays)).numpy()
                 for s in range(0, len(arrays[0]), INFERENCE_BATCH)]
    return np.concatenate(parts)
