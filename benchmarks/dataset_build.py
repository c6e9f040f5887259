"""Time to build fashion-mnist-784-euclidean from its upstream files, split into its parts, and
idx parsing (numpy views) vs a per-vector Python loop in the style of ann-benchmarks' builder.

    python benchmarks/dataset_build.py [--source-dir ../shared/data] [--loop-file t10k-images-idx3-ubyte.gz]

Prints its figures; the target is an idx parsing speed-up >= 10x on the same file.
"""

from __future__ import annotations

import argparse
import gzip
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annbench.datasets.format import GROUND_TRUTH_K, write_dataset
from annbench.datasets.readers import read_idx
from annbench.datasets.registry import registry
from annbench.datasets.sources import locate
from annbench.datasets.spec import Inputs
from annbench.quality.groundtruth import exact_knn

NAME = "fashion-mnist-784-euclidean"
TARGET = 10.0


def loop_parse(path: Path) -> np.ndarray:
    """An idx.gz parsed one value at a time with ``struct``, one Python list per vector
    (the approach of ann-benchmarks' ``_load_mnist_vectors``)."""
    formats = {0x08: (1, "!B"), 0x09: (1, "!b"), 0x0B: (2, "!h"), 0x0C: (4, "!i"), 0x0D: (4, "!f"), 0x0E: (8, "!d")}
    with gzip.open(path) as f:
        _, code, ndim = struct.unpack("!hBB", f.read(4))
        dims = [struct.unpack("!I", f.read(4))[0] for _ in range(ndim)]
        size, fmt = formats[code]
        per_vector = int(np.prod(dims[1:]))
        vectors = []
        for _ in range(dims[0]):
            vectors.append([struct.unpack(fmt, f.read(size))[0] for _ in range(per_vector)])
    return np.array(vectors)


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source-dir", type=Path, default=root.parent / "shared" / "data")
    p.add_argument("--loop-file", default="t10k-images-idx3-ubyte.gz",
                   help="Fashion-MNIST file parsed both ways (default: the 10,000 test images)")
    args = p.parse_args()
    spec = registry()[NAME]

    with tempfile.TemporaryDirectory() as tmp:
        (found, missing), t_locate = timed(locate, spec, [args.source_dir], Path(tmp) / "cache")
        if missing:
            print(f"error: {args.source_dir} lacks {', '.join(u.name for u in missing)}", file=sys.stderr)
            return 2
        raw, t_parse = timed(spec.build, Inputs(found, str(args.source_dir)))
        (ids, dists), t_gt = timed(exact_knn, raw.train, raw.test, raw.distance, GROUND_TRUTH_K)
        _, t_write = timed(lambda: write_dataset(Path(tmp) / f"{NAME}.hdf5", train=raw.train, test=raw.test,
                                                 distance=raw.distance, neighbors=ids, distances=dists,
                                                 train_labels=raw.train_labels, test_labels=raw.test_labels))
    total = t_locate + t_parse + t_gt + t_write
    print(f"build {NAME} from {args.source_dir} ({raw.train.shape[0]}x{raw.train.shape[1]} train, "
          f"{raw.test.shape[0]} queries, top-{GROUND_TRUTH_K})")
    for label, t in (("locate + verify checksums", t_locate), ("parse (4 idx.gz files)", t_parse),
                     ("ground truth", t_gt), ("write HDF5", t_write), ("total", total)):
        print(f"  {label:<28} {t:8.2f} s  {100 * t / total:5.1f} %")

    path = found[args.loop_file]
    ours, t_ours = timed(read_idx, path)
    ours_parse_only = min(timed(read_idx, path)[1] for _ in range(3))
    theirs, t_loop = timed(loop_parse, path)
    assert np.array_equal(ours.reshape(len(ours), -1), theirs), "the two parsers disagree"
    speedup = t_loop / t_ours
    print(f"idx parsing of {path.name} ({ours.shape[0]} vectors of {int(np.prod(ours.shape[1:]))}), gunzip included:")
    print(f"  numpy view (ours)            {t_ours:8.3f} s  (best of 3 more: {ours_parse_only:.3f} s)")
    print(f"  per-vector Python loop       {t_loop:8.3f} s")
    verdict = "met" if speedup >= TARGET else "NOT met"
    print(f"  speed-up                     {speedup:8.1f}x  (target >= {TARGET:.0f}x: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
