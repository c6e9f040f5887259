"""``dataset.py index`` and ``dataset.py lookup``: save a lookup index beside a dataset; nearest neighbours of
a key, a key expression, a new string or a vector."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from annbench.cli.common import positive_int
from annbench.cli.options import shared
from annbench.core import paths
from annbench.core.errors import UserError


def add_parsers(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The ``index`` and ``lookup`` subcommands of ``dataset.py``, made with ``add`` (``add_parser``
    of its subcommands, with the options they all share)."""
    s = add("index", shared("source-dir", "algorithms-dir"),
            help="build one algorithm setting over a dataset's train vectors and save it beside the dataset "
                 "(used by lookup)")
    s.add_argument("dataset", help="registered name, local dataset name, or .hdf5 path")
    s.add_argument("--algorithm", required=True, help="an algorithm whose library saves its index (annoy, hnswlib, "
                   "faiss-*, usearch, nmslib-*)")
    s.add_argument("--build", help="build parameters NAME=VALUE,... (e.g. n_trees=50)")
    s.add_argument("--query", help="query parameters NAME=VALUE,... used by lookups (e.g. search_k=2000)")
    s = add("lookup", shared("source-dir", "algorithms-dir"),
            help="nearest neighbours of a key, a key expression ('king - man + woman'), a new string (--text) "
                 "or a vector (--vector)")
    s.add_argument("dataset")
    s.add_argument("query", nargs="?", help="a key, or keys joined by ' + ' / ' - '")
    s.add_argument("-k", type=positive_int, default=10)
    s.add_argument("--text", help="a new string, encoded with the dataset's saved encoder (encode.py --model gru)")
    s.add_argument("--vector", type=Path, help="a .npy file holding one query vector")
    s.add_argument("--exact", action="store_true", help="exact neighbours even where an index is saved")
    s.add_argument("--json", action="store_true", help="the answer as JSON")
    s.add_argument("--algorithm", help="build this algorithm now instead of the saved index or exact search")
    s.add_argument("--build", help="build parameters NAME=VALUE,... for --algorithm")
    s.add_argument("--query", dest="query_params", help="query parameters NAME=VALUE,... (--algorithm, or "
                   "overriding the saved index's)")


def _vector(path: Path):  # numpy array
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"--vector {path}: not a readable .npy file ({e}); valid: numpy.save of one vector") from None


def run(args: argparse.Namespace, data_dir: Path) -> None:
    """Carry out ``index`` or ``lookup``."""
    from annbench.apps.lookup import Lookup, save_index
    from annbench.datasets.user import parse_params

    dirs = paths.algorithm_dirs(args.algorithms_dir)
    if args.command == "index":
        from annbench.datasets.registry import load

        dataset = load(args.dataset, data_dir, args.source_dir)
        folder, meta = save_index(dataset, args.algorithm, parse_params(args.build, "--build"),
                                  parse_params(args.query, "--query"), dirs)
        print(f"saved {meta.algorithm} build {json.dumps(meta.build)} query {json.dumps(meta.query)} over "
              f"{meta.n_train} train points of {meta.dataset} in {folder} (built in {meta.build_s:.2f} s; "
              f"dataset checksum {meta.dataset_checksum})")
        return
    given = [name for name, v in (("QUERY", args.query), ("--text", args.text), ("--vector", args.vector)) if v]
    if len(given) != 1:
        raise UserError(f"lookup needs exactly one of QUERY, --text STRING or --vector FILE.npy; got "
                        f"{', '.join(given) or 'none'}")
    if (args.build or args.query_params) and not args.algorithm and args.exact:
        raise UserError("--build/--query do not apply with --exact")
    if args.build and not args.algorithm:
        raise UserError("--build needs --algorithm")
    lookup = Lookup(args.dataset, data_dir, args.source_dir, exact=args.exact, algorithm=args.algorithm,
                    build=parse_params(args.build, "--build"),
                    query=parse_params(args.query_params, "--query") if args.query_params else None,
                    adapter_dirs=dirs)
    if args.vector:
        try:
            answer = lookup.nearest(_vector(args.vector), args.k)
        except UserError as e:  # the vector does not fit the dataset, or its index
            raise UserError(f"--vector {args.vector}: {e}") from None
    else:
        answer = lookup.nearest(args.text if args.text else args.query, args.k, text=bool(args.text))
    if args.json:
        print(json.dumps({"dataset": lookup.dataset.name, "distance": lookup.dataset.distance, "k": args.k,
                          **answer.to_json()}, indent=2))
        return
    print(f"nearest keys of {answer.query} in {lookup.dataset.name} ({lookup.dataset.distance}, {answer.how}):")
    for n in answer.neighbours:
        print(f"{n.rank:>3}  {n.key:<24} {n.distance:.4f}" + (f"  {n.label}" if n.label is not None else ""))
    if answer.majority_label is not None:
        votes = sum(label == answer.majority_label for label in answer.labels)
        print(f"majority label of the {len(answer.neighbours)} neighbours: {answer.majority_label} "
              f"({votes}/{len(answer.neighbours)})")


def remove_companions(dataset_file: Path) -> list[Path]:
    """Delete the saved index and encoder beside a dataset file; the paths removed."""
    import shutil

    from annbench.apps.encoders.base import encoder_path
    from annbench.apps.lookup import index_folder

    removed = []
    for path in (index_folder(dataset_file), encoder_path(dataset_file)):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed
