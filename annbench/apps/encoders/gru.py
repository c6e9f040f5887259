"""Character-level GRU over strings (PyTorch, the ``torch`` extra), e.g. surnames → nationality.

embedding(32) → causal 1-D convolution (``hidden`` channels, width ``conv_width``, ReLU;
``conv_width = 0``: none) → GRU(``dim``) → the GRU's output at each string's last real
character (a length-aware gather, the tutorial's ``column_gather(y_out, x_lengths)``) = the
penultimate features of width ``dim`` → linear classifier over the classes. Class-weighted
cross-entropy (``n / (n_classes · n_c)``, scikit-learn's "balanced"), since classes can run
from thousands of rows to tens.

The vocabulary is the train split's characters (sorted); index :data:`PAD` pads, :data:`UNKNOWN`
stands for any character not seen in training. The padding embedding is zero and the
convolution is causal (it sees only a character and those before it), so a string's vector
does not depend on how much padding follows it, i.e. on the batch it is encoded in.

The trained network is saved beside its dataset (:func:`save`) as safetensors: the weights as
arrays, the vocabulary, classes and architecture as JSON metadata; :func:`load` rebuilds it
without pickle, and encodes new strings with exactly the same network.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from annbench.apps.encoders.base import EncoderSettings, TrainedEncoder, TrainingData
from annbench.apps.encoders.torch_loop import batched, deterministic, fit
from annbench.core.errors import UserError

#: This model reads the rows' keys (strings), not their vectors.
SEQUENCE_INPUT = True
EMBEDDING = 32
PAD, UNKNOWN = 0, 1
#: Written into every saved encoder; :func:`load` refuses any other.
FORMAT = "annbench-gru-encoder/1"


@dataclass(frozen=True)
class Architecture:
    """The hyper-parameters that rebuild the network (saved with its weights)."""

    vocabulary: str
    embedding: int
    conv_channels: int
    conv_width: int
    dim: int
    n_classes: int

    @property
    def symbols(self) -> int:
        return len(self.vocabulary) + 2


def codes(texts: list[str] | tuple[str, ...], vocabulary: str) -> tuple[np.ndarray, np.ndarray]:
    """``(n, longest)`` int64 symbol indices (characters → ``2 + position in vocabulary``, unknown ones →
    :data:`UNKNOWN`, padding :data:`PAD`) and the ``(n,)`` lengths."""
    index = {c: i + 2 for i, c in enumerate(vocabulary)}
    lengths = np.array([len(t) for t in texts], dtype=np.int64)
    if len(texts) and lengths.min() == 0:
        raise UserError(f"an empty string cannot be encoded (row {int(np.argmin(lengths))}); "
                        f"valid: 1 character or more")
    out = np.full((len(texts), max(1, int(lengths.max(initial=1)))), PAD, dtype=np.int64)
    for i, t in enumerate(texts):
        out[i, :len(t)] = [index.get(c, UNKNOWN) for c in t]
    return out, lengths


class SequenceNet(nn.Module):
    def __init__(self, a: Architecture) -> None:
        super().__init__()
        self.architecture = a
        self.embed = nn.Embedding(a.symbols, a.embedding, padding_idx=PAD)
        self.conv = nn.Conv1d(a.embedding, a.conv_channels, a.conv_width) if a.conv_width else None
        self.gru = nn.GRU(a.conv_channels if a.conv_width else a.embedding, a.dim, batch_first=True)
        self.head = nn.Linear(a.dim, a.n_classes)

    def penultimate(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The GRU's output at each row's last real character: ``y[i, lengths[i] - 1]``."""
        h = self.embed(x)
        if self.conv is not None:  # causal: left-pad by width - 1, so position t sees t - width + 1 .. t
            h = torch.relu(self.conv(nn.functional.pad(h.transpose(1, 2), (self.conv.kernel_size[0] - 1, 0))))
            h = h.transpose(1, 2)
        y, _ = self.gru(h)
        return y[torch.arange(len(y)), lengths - 1]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.penultimate(x, lengths))


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """``w_c = n / (n_classes · n_c)`` (classes absent from ``y`` get weight 0)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return np.divide(len(y), n_classes * counts, out=np.zeros_like(counts), where=counts > 0).astype(np.float32)


def describe(a: Architecture, settings: EncoderSettings) -> str:
    conv = f"causal conv1d({a.conv_channels}, width {a.conv_width}, relu)-" if a.conv_width else ""
    return (f"char GRU: embedding({a.symbols}x{a.embedding})-{conv}GRU({a.dim}) at the last character-"
            f"fc({a.n_classes}) (class-weighted cross-entropy; PyTorch, adam, batch {settings.batch_size}, "
            f"lr {settings.learning_rate:g})")


class Encoder:
    """A trained network and its vocabulary: ``encode(texts)`` gives the penultimate features."""

    def __init__(self, model: SequenceNet, seed: int, threads: int) -> None:
        self.model, self.seed, self.threads = model, seed, threads

    @property
    def architecture(self) -> Architecture:
        return self.model.architecture

    def encode(self, texts: list[str] | tuple[str, ...]) -> np.ndarray:
        x, lengths = codes(texts, self.architecture.vocabulary)
        with deterministic(self.seed, self.threads):
            return batched(self.model, self.model.penultimate, x, lengths).astype(np.float32)


def train(data: TrainingData, settings: EncoderSettings, progress: bool = True) -> TrainedEncoder:
    if data.texts_train is None or data.texts_test is None:
        raise UserError("--model gru reads strings: the dataset needs keys and test_keys (e.g. surnames)")
    vocabulary = "".join(sorted(set("".join(data.texts_train))))
    a = Architecture(vocabulary, EMBEDDING, settings.hidden, settings.conv_width, settings.dim, len(data.classes))
    x, lengths = (torch.from_numpy(v) for v in codes(data.texts_train, vocabulary))
    y = torch.from_numpy(data.y_train.astype(np.int64))
    weights = torch.from_numpy(class_weights(data.y_train, len(data.classes)))
    with deterministic(settings.seed, settings.threads):
        model = SequenceNet(a)

        def logits(idx: torch.Tensor) -> torch.Tensor:
            n = lengths[idx]
            return model(x[idx, :int(n.max())], n)

        training_s = fit(model, logits, y, settings, nn.CrossEntropyLoss(weight=weights), progress)
    encoder = Encoder(model, settings.seed, settings.threads)
    test_x, test_lengths = codes(data.texts_test, vocabulary)
    with deterministic(settings.seed, settings.threads):
        predicted = batched(model, model.forward, test_x, test_lengths).argmax(axis=1)
    return TrainedEncoder(architecture=describe(a, settings), library="torch", training_s=training_s,
                          test_accuracy=float(np.mean(predicted == data.y_test)), features=encoder.encode,
                          model=encoder)


def save(trained: TrainedEncoder, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Write the network of ``trained`` to ``path`` (safetensors; temporary file, then rename).

    ``metadata`` (e.g. the dataset's checksum) is stored beside the architecture as JSON strings."""
    from safetensors.numpy import save_file

    encoder: Encoder = trained.model
    path = Path(path)
    tensors = {k: v.detach().cpu().numpy().copy() for k, v in encoder.model.state_dict().items()}
    meta = {"format": FORMAT, "architecture": json.dumps(asdict(encoder.architecture)),
            "seed": str(encoder.seed), "threads": str(encoder.threads),
            **{k: json.dumps(v) for k, v in metadata.items()}}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load(path: str | Path) -> tuple[Encoder, dict[str, Any]]:
    """The encoder saved at ``path`` and its metadata (JSON values decoded); no pickle involved."""
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import load_file

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise UserError(f"encoder file {path} is unreadable ({e}); "
                        f"encode the dataset again (encode.py --force)") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"encoder file {path} has format {meta.get('format')!r}; valid: {FORMAT}")
    a = Architecture(**json.loads(meta.pop("architecture")))
    seed, threads = int(meta.pop("seed")), int(meta.pop("threads"))
    model = SequenceNet(a)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    model.eval()
    return Encoder(model, seed, threads), {k: json.loads(v) for k, v in meta.items() if k != "format"}
