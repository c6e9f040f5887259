"""Readers of the vector formats datasets are published in, as numpy views over the raw bytes.

Binary formats (idx, fvecs/ivecs/bvecs, npy) are parsed without any per-vector Python loop:
the header is checked, then the payload is reinterpreted with ``np.frombuffer`` / ``view``.
Text formats (GloVe, word2vec text, csv) split keys from numbers with vectorised byte
arithmetic and parse all numbers in one C call. word2vec binary records have variable-length
words, so locating them needs one ``bytes.find`` per record; the vectors are then gathered
in a single vectorised step.

Every defect is a one-line :class:`~annbench.core.errors.UserError` naming the file.
"""

from __future__ import annotations

import gzip
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annbench.core.errors import UserError
from annbench.datasets.bigann import is_xbin, read_xbin

#: idx type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
#: texmex ``*vecs`` component types; every vector is an int32 dimension then its components.
VECS_TYPES: dict[str, np.dtype] = {"fvecs": np.dtype("<f4"), "ivecs": np.dtype("<i4"), "bvecs": np.dtype("u1")}

#: File suffixes :func:`read_vectors` understands, for error messages.
FORMATS = ("idx (+.gz)", ".fvecs", ".ivecs", ".bvecs", ".txt/.vec (GloVe, word2vec text, +.gz)",
           ".bin (word2vec binary)", ".npy", ".npz", ".csv/.tsv", ".u8bin/.i8bin/.fbin (big-ann-benchmarks)")


@dataclass(frozen=True)
class Vectors:
    """Rows read from a file, with the keys (words) of formats that carry them."""

    data: np.ndarray
    keys: np.ndarray | None = None


def _err(origin: str | Path, what: str) -> UserError:
    return UserError(f"file {origin}: {what}")


def read_bytes(path: str | Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic bytes."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file {path} does not exist")
    data = path.read_bytes()
    return gunzip(data, path) if data[:2] == b"\x1f\x8b" else data


def gunzip(data: bytes, origin: str | Path) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise _err(origin, f"corrupt gzip data ({e}); re-download the file") from None


# ---------------------------------------------------------------- idx

def parse_idx(buf: bytes, origin: str | Path = "<bytes>") -> np.ndarray:
    """An idx buffer as an array of its declared shape (native byte order)."""
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0 or buf[2] not in IDX_TYPES or buf[3] == 0:
        magic = int.from_bytes(buf[:4].ljust(4, b"\0"), "big")
        raise _err(origin, f"wrong idx magic number 0x{magic:08x}; valid: 0x0000TTNN with type TT in "
                           f"{', '.join(f'{t:02x}' for t in IDX_TYPES)} and NN >= 1 dimensions "
                           f"(e.g. 0x00000803 for images, 0x00000801 for labels)")
    dtype, ndim = IDX_TYPES[buf[2]], buf[3]
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise _err(origin, f"truncated idx header ({len(buf)} bytes, need {header})")
    shape = tuple(int(s) for s in np.frombuffer(buf, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(buf) != expected:
        raise _err(origin, f"idx size {len(buf)} bytes does not match its header {shape} "
                           f"({expected} bytes expected); the file is truncated or corrupt")
    return np.frombuffer(buf, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | Path) -> np.ndarray:
    """An idx or idx.gz file (MNIST, Fashion-MNIST) as an array of its declared shape."""
    return parse_idx(read_bytes(path), path)


# ---------------------------------------------------------------- texmex *vecs

def parse_vecs(buf: bytes | np.ndarray, kind: str, origin: str | Path = "<bytes>") -> np.ndarray:
    """A texmex fvecs / ivecs / bvecs buffer as an ``(n, d)`` array (a view where possible)."""
    if kind not in VECS_TYPES:
        raise ValueError(f"unknown vecs kind {kind!r}; valid: {', '.join(VECS_TYPES)}")
    raw = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf.view(np.uint8).ravel()
    if len(raw) < 4:
        raise _err(origin, f"truncated {kind}: {len(raw)} bytes, not even one dimension header")
    d = int(raw[:4].view("<i4")[0])
    item = VECS_TYPES[kind].itemsize
    if d <= 0 or d > 1 << 24:
        raise _err(origin, f"{kind} dimension header is {d}; valid: 1..{1 << 24} (is this a {kind} file?)")
    record = 4 + d * item
    if len(raw) % record:
        raise _err(origin, f"truncated {kind}: {len(raw)} bytes is not a whole number of {d}-d records "
                           f"({record} bytes each); the last {len(raw) % record} bytes are a partial vector")
    rows = raw.reshape(-1, record)
    dims = rows[:, :4].copy().view("<i4").ravel()
    bad = np.flatnonzero(dims != d)
    if len(bad):
        raise _err(origin, f"{kind} vector {bad[0]} declares dimension {dims[bad[0]]}, the first declares {d}")
    return rows[:, 4:].view(VECS_TYPES[kind]) if item > 1 else rows[:, 4:]


def read_vecs(path: str | Path, kind: str | None = None) -> np.ndarray:
    """A ``.fvecs`` / ``.ivecs`` / ``.bvecs`` file (optionally gzipped), memory-mapped when plain."""
    path = Path(path)
    kind = kind or path.name.removesuffix(".gz").rsplit(".", 1)[-1]
    if not path.is_file():
        raise UserError(f"file {path} does not exist")
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    if gz:
        return parse_vecs(read_bytes(path), kind, path)
    if path.stat().st_size == 0:
        raise _err(path, f"truncated {kind}: the file is empty")
    return parse_vecs(np.memmap(path, dtype=np.uint8, mode="r"), kind, path)


# ---------------------------------------------------------------- text (GloVe, word2vec text, csv)

def _line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, newline not included) of every non-empty line."""
    nl = np.flatnonzero(buf == 0x0A)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [len(buf)]))
    keep = ends > starts
    return starts[keep], ends[keep]


def _parse_numbers(buf: np.ndarray, origin: str | Path, n_rows: int, what: str) -> np.ndarray:
    """All whitespace-separated numbers of ``buf`` in one C call, reshaped to ``n_rows`` rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            values = np.fromstring(buf.tobytes(), dtype=np.float32, sep=" ")  # noqa: NPY201 - text mode
        except (DeprecationWarning, ValueError):
            values = None
    if values is None or n_rows == 0 or len(values) % n_rows:
        raise _err(origin, f"{what}: not every line holds the same number of numeric values")
    return values.reshape(n_rows, -1)


def parse_text_vectors(data: bytes, origin: str | Path = "<bytes>", keyed: bool = True) -> Vectors:
    """GloVe text (``word v1 v2 ...`` per line) or word2vec text (the same after an ``n d`` header).

    With ``keyed=False`` every line is numbers only (a whitespace-separated matrix).
    """
    buf = np.frombuffer(data, dtype=np.uint8).copy()
    buf[(buf == 0x0D) | (buf == 0x09)] = 0x20  # \r and \t are separators too
    starts, ends = _line_bounds(buf)
    if not len(starts):
        raise _err(origin, "no vectors in the file")
    header = None
    first = bytes(buf[starts[0]:ends[0]]).split()
    if keyed and len(first) == 2 and all(t.isdigit() for t in first):  # word2vec text header "n d"
        header = (int(first[0]), int(first[1]))
        buf[starts[0]:ends[0]] = 0x20
        starts, ends = starts[1:], ends[1:]
    keys = None
    if keyed:
        spaces = np.flatnonzero(buf == 0x20)
        at = np.searchsorted(spaces, starts)
        key_end = np.where(at < len(spaces), spaces[np.minimum(at, len(spaces) - 1)], len(buf))
        key_end = np.minimum(key_end, ends)
        lengths = key_end - starts
        if (lengths == 0).any():
            line = int(np.flatnonzero(lengths == 0)[0]) + 1 + (header is not None)
            raise _err(origin, f"line {line} starts with a space; expected 'key v1 v2 ...'")
        width = int(lengths.max())
        cols = np.arange(width)
        mask = cols[None, :] < lengths[:, None]
        gathered = np.where(mask, buf[np.minimum(starts[:, None] + cols[None, :], len(buf) - 1)], 0)
        keys = np.char.decode(np.ascontiguousarray(gathered.astype(np.uint8)).view(f"S{width}").ravel(), "utf-8",
                              errors="replace").astype(object)
        # blank the keys out so only numbers remain
        blank = np.repeat(starts, lengths) + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
        buf[blank] = 0x20
    values = _parse_numbers(buf, origin, len(starts), "vector text")
    if header is not None and (values.shape != header):
        raise _err(origin, f"word2vec header says {header[0]} vectors of {header[1]} values, found "
                           f"{values.shape[0]} of {values.shape[1]}")
    return Vectors(values, keys)


def read_text_vectors(path: str | Path) -> Vectors:
    """A GloVe or word2vec text file (optionally gzipped)."""
    return parse_text_vectors(read_bytes(path), path)


def read_csv(path: str | Path) -> np.ndarray:
    """A numeric csv / tsv file (an optional non-numeric header line is skipped)."""
    data = read_bytes(path)
    sep = b"\t" if str(path).endswith((".tsv", ".tsv.gz")) else b","
    first_line = data.split(b"\n", 1)[0]
    try:
        [float(t) for t in first_line.replace(sep, b" ").split()]
    except ValueError:
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return parse_text_vectors(data.replace(sep, b" "), path, keyed=False).data


# ---------------------------------------------------------------- word2vec binary

def parse_word2vec_binary(data: bytes, origin: str | Path = "<bytes>") -> Vectors:
    """word2vec's binary format: ``n d\\n`` then per word ``word<space>`` + d little-endian float32
    (an optional newline after each vector, as the original C tool writes)."""
    head_end = data.find(b"\n")
    try:
        n, d = (int(t) for t in data[:head_end].split())
    except ValueError:
        raise _err(origin, "not a word2vec binary file: the first line must be 'n_words dimension'") from None
    size = 4 * d
    pos = head_end + 1
    keys: list[bytes] = []
    offsets = np.empty(n, dtype=np.int64)
    for i in range(n):  # records have variable-length words: one find per record, no parsing
        while pos < len(data) and data[pos] in b"\n ":
            pos += 1
        sp = data.find(b" ", pos)
        if sp < 0 or sp + 1 + size > len(data):
            raise _err(origin, f"truncated word2vec binary: header says {n} words, record {i} is incomplete")
        keys.append(data[pos:sp])
        offsets[i] = sp + 1
        pos = sp + 1 + size
    raw = np.frombuffer(data, dtype=np.uint8)
    vectors = raw[offsets[:, None] + np.arange(size)[None, :]].view("<f4").astype(np.float32)
    return Vectors(vectors, np.array([k.decode("utf-8", errors="replace") for k in keys], dtype=object))


# ---------------------------------------------------------------- dispatch

def _npz(path: Path, member: str | None) -> np.ndarray:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise _err(path, f"not a readable .npz ({e})") from None
    with z:
        names = list(z.files)
        if member is None and len(names) == 1:
            member = names[0]
        if member not in names:
            raise _err(path, f"choose one array as FILE.npz:NAME; valid names: {', '.join(names) or 'none'}")
        return z[member]


def read_vectors(spec: str | Path) -> Vectors:
    """Any supported vector file, by its suffix (``FILE.npz:NAME`` picks one array of an npz)."""
    text = str(spec)
    member = None
    if ".npz:" in text:
        text, member = text.rsplit(":", 1)
    path = Path(text)
    if not path.is_file():
        raise UserError(f"file {path} does not exist")
    name = path.name.lower()
    base = name.removesuffix(".gz")
    if "idx" in base and "ubyte" in base or base.endswith(".idx"):
        a = read_idx(path)
        return Vectors(a.reshape(len(a), -1) if a.ndim > 1 else a[:, None])
    if base.endswith((".fvecs", ".ivecs", ".bvecs")):
        return Vectors(read_vecs(path))
    if base.endswith((".txt", ".vec")):
        return read_text_vectors(path)
    if is_xbin(path):  # big-ann-benchmarks' .u8bin / .i8bin / .fbin, memory-mapped
        return Vectors(read_xbin(path))
    if base.endswith(".bin"):
        return parse_word2vec_binary(read_bytes(path), path)
    if base.endswith(".npy"):
        try:
            return Vectors(np.load(path, mmap_mode="r", allow_pickle=False))
        except (OSError, ValueError) as e:
            raise _err(path, f"not a readable .npy ({e})") from None
    if base.endswith(".npz"):
        return Vectors(_npz(path, member))
    if base.endswith((".csv", ".tsv")):
        return Vectors(read_csv(path))
    raise _err(path, f"unknown vector format; valid: {', '.join(FORMATS)}")


def read_keys(path: str | Path) -> np.ndarray:
    """One key per line (UTF-8), or a ``.npy`` of strings."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False).astype(str).astype(object)
    lines = read_bytes(path).decode("utf-8", errors="replace").splitlines()
    return np.array([ln.rstrip("\r") for ln in lines if ln.strip()], dtype=object)


def read_labels(path: str | Path) -> np.ndarray:
    """Labels: an idx labels file, a ``.npy``, or one label per line (integers when they all are)."""
    path = Path(path)
    base = path.name.lower().removesuffix(".gz")
    if "idx1" in base or base.endswith(".idx"):
        return read_idx(path).astype(np.int64)
    if base.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    values = read_keys(path)
    try:
        return values.astype(np.int64)
    except ValueError:
        return values.astype(str)
