"""Readers of every supported vector format, on small files the tests write, and their bad input."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from annbench.core.errors import UserError
from annbench.datasets.readers import (
    parse_idx,
    read_csv,
    read_idx,
    read_labels,
    read_text_vectors,
    read_vecs,
    read_vectors,
)

RNG = np.random.default_rng(3)


def idx_bytes(a: np.ndarray, code: int) -> bytes:
    big = a.astype(a.dtype.newbyteorder(">"))
    return bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + big.tobytes()


@pytest.mark.parametrize("dtype,code", [("u1", 0x08), ("i1", 0x09), ("i2", 0x0B), ("i4", 0x0C), ("f4", 0x0D),
                                        ("f8", 0x0E)])
def test_idx_every_type_code(tmp_path, dtype, code):
    a = (RNG.normal(size=(7, 3, 4)) * 50).astype(dtype)
    f = tmp_path / "x-idx3-ubyte.gz"
    f.write_bytes(gzip.compress(idx_bytes(a, code)))
    got = read_idx(f)
    assert got.shape == (7, 3, 4) and got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, a)


def test_idx_equals_a_struct_loop(tmp_path):
    a = RNG.integers(0, 256, size=(20, 5, 5), dtype=np.uint8)
    raw = idx_bytes(a, 0x08)
    loop = [[struct.unpack("!B", raw[16 + i * 25 + j:17 + i * 25 + j])[0] for j in range(25)] for i in range(20)]
    np.testing.assert_array_equal(parse_idx(raw).reshape(20, -1), np.array(loop))


def test_idx_wrong_magic(tmp_path):
    f = tmp_path / "bad-idx3-ubyte"
    f.write_bytes(b"\x12\x34\x08\x03" + bytes(100))
    with pytest.raises(UserError, match=r"bad-idx3-ubyte: wrong idx magic number 0x12340803; valid: .*0x00000803"):
        read_idx(f)


def test_idx_truncated(tmp_path):
    f = tmp_path / "t-idx3-ubyte"
    f.write_bytes(idx_bytes(np.zeros((4, 2, 2), np.uint8), 0x08)[:-3])
    with pytest.raises(UserError, match="truncated or corrupt"):
        read_idx(f)


def test_corrupt_gzip(tmp_path):
    f = tmp_path / "c-idx3-ubyte.gz"
    good = gzip.compress(idx_bytes(np.zeros((40, 28, 28), np.uint8), 0x08))
    f.write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match=r"c-idx3-ubyte.gz: corrupt gzip data"):
        read_idx(f)


def vecs_bytes(a: np.ndarray, header_dtype=np.int32) -> bytes:
    n, d = a.shape
    return b"".join(np.array([d], np.int32).tobytes() + row.tobytes() for row in a)


@pytest.mark.parametrize("kind,dtype", [("fvecs", np.float32), ("ivecs", np.int32), ("bvecs", np.uint8)])
def test_vecs_round_trip(tmp_path, kind, dtype):
    a = (RNG.normal(size=(9, 6)) * 40 + 100).astype(dtype)
    f = tmp_path / f"x.{kind}"
    f.write_bytes(vecs_bytes(a))
    got = read_vecs(f)
    assert got.dtype == np.dtype(dtype) and got.shape == (9, 6)
    np.testing.assert_array_equal(got, a)


def test_truncated_fvecs(tmp_path):
    f = tmp_path / "x.fvecs"
    f.write_bytes(vecs_bytes(np.ones((5, 4), np.float32))[:-6])
    with pytest.raises(UserError, match=r"x.fvecs: truncated fvecs: 94 bytes is not a whole number of 4-d records"):
        read_vecs(f)


def test_fvecs_inconsistent_dimension(tmp_path):
    f = tmp_path / "x.fvecs"
    raw = bytearray(vecs_bytes(np.ones((4, 4), np.float32)))
    raw[20:24] = np.array([7], np.int32).tobytes()  # the second vector's header
    f.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="vector 1 declares dimension 7, the first declares 4"):
        read_vecs(f)


def test_glove_text_matches_a_line_parser(tmp_path):
    words = ["the", ",", "naïve", "king"]
    a = RNG.normal(size=(4, 5)).astype(np.float32)
    text = "".join(f"{w} {' '.join(repr(float(v)) for v in row)}\n" for w, row in zip(words, a))
    f = tmp_path / "g.txt"
    f.write_text(text, encoding="utf-8")
    v = read_text_vectors(f)
    assert list(v.keys) == words
    ref = np.array([[float(t) for t in line.split()[1:]] for line in text.splitlines()], dtype=np.float32)
    np.testing.assert_array_equal(v.data, ref)


def test_word2vec_text_header(tmp_path):
    f = tmp_path / "w.vec"
    f.write_text("2 3\nab 1 2 3\ncd 4 5 6\n")
    v = read_vectors(f)
    assert list(v.keys) == ["ab", "cd"]
    np.testing.assert_array_equal(v.data, [[1, 2, 3], [4, 5, 6]])
    f.write_text("3 3\nab 1 2 3\ncd 4 5 6\n")
    with pytest.raises(UserError, match="header says 3 vectors of 3 values, found 2 of 3"):
        read_vectors(f)


def test_text_with_ragged_rows(tmp_path):
    f = tmp_path / "g.txt"
    f.write_text("a 1 2 3\nb 1 2\n")
    with pytest.raises(UserError, match="g.txt: vector text: not every line"):
        read_vectors(f)


@pytest.mark.parametrize("newline", [b"", b"\n"])
def test_word2vec_binary(tmp_path, newline):
    a = RNG.normal(size=(3, 4)).astype("<f4")
    words = [b"alpha", b"b", "ü".encode()]
    f = tmp_path / "w.bin"
    f.write_bytes(b"3 4\n" + b"".join(w + b" " + row.tobytes() + newline for w, row in zip(words, a)))
    v = read_vectors(f)
    assert list(v.keys) == ["alpha", "b", "ü"]
    np.testing.assert_array_equal(v.data, a)
    f.write_bytes(f.read_bytes()[:-9])
    with pytest.raises(UserError, match="truncated word2vec binary"):
        read_vectors(f)


def test_npy_npz_csv(tmp_path):
    a = RNG.normal(size=(6, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "one.npz", x=a)
    np.savez(tmp_path / "two.npz", x=a, y=a * 2)
    np.testing.assert_array_equal(read_vectors(tmp_path / "a.npy").data, a)
    np.testing.assert_array_equal(read_vectors(tmp_path / "one.npz").data, a)
    np.testing.assert_array_equal(read_vectors(f"{tmp_path / 'two.npz'}:y").data, a * 2)
    with pytest.raises(UserError, match="choose one array as FILE.npz:NAME; valid names: x, y"):
        read_vectors(tmp_path / "two.npz")
    (tmp_path / "a.csv").write_text("c1,c2,c3\n" + "\n".join(",".join(repr(float(v)) for v in r) for r in a))
    np.testing.assert_array_equal(read_csv(tmp_path / "a.csv"), a)


def test_labels_and_unknown_format(tmp_path):
    (tmp_path / "l.txt").write_text("3\n1\n2\n")
    np.testing.assert_array_equal(read_labels(tmp_path / "l.txt"), [3, 1, 2])
    (tmp_path / "x.parquet").write_bytes(b"x")
    with pytest.raises(UserError, match=r"x.parquet: unknown vector format; valid: idx"):
        read_vectors(tmp_path / "x.parquet")
