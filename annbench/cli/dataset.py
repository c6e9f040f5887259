"""``python dataset.py``: list, prepare, describe, remove and create datasets; save a lookup index; look up
nearest neighbours."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from annbench.cli.common import Parser, guarded, positive_int
from annbench.cli.options import shared
from annbench.core import paths
from annbench.core.errors import UserError
from annbench.core.logs import setup_logging
from annbench.report.catalogue import catalogue, describe


def local_file(dataset: str, data_dir: Path) -> Path:
    """The file of a dataset that must already be here: a ``.hdf5`` path or a name in ``data_dir``."""
    from annbench.datasets.registry import dataset_path

    p = Path(dataset)
    local = p if p.suffix in (".hdf5", ".h5") else dataset_path(dataset, data_dir)
    if not local.is_file():
        raise UserError(f"dataset {dataset} is not in {data_dir}; get it with: dataset.py prepare {dataset}")
    return local


def verify(path: Path, every_query: bool = False) -> str:
    """Load ``path`` (checksum of every array, the 8-query audit), with ``every_query`` audit the
    ground truth of all queries too; a report of what was checked. A defect is a :class:`UserError`."""
    import os

    import numpy as np

    from annbench.datasets.audit import AUDIT_QUERIES, first_mismatch
    from annbench.datasets.digest import CHECKSUM_ALGORITHM
    from annbench.datasets.format import load_dataset, rebuild_hint

    start = time.perf_counter()
    ds = load_dataset(path, name=path.stem)
    loaded = time.perf_counter() - start
    stored = str(ds.attrs.get("checksum") or "")
    if stored == ds.checksum:
        checksum = f"{ds.checksum} (verified; covers every array)"
    elif stored and not stored.startswith(f"{CHECKSUM_ALGORITHM}:"):
        checksum = f"{ds.checksum} (the file's {stored.split(':')[0]} checksum of train and test verified; " \
                   f"it does not cover the ground truth: {rebuild_hint(path, ds.attrs)})"
    else:
        checksum = f"{ds.checksum} (computed: the file records none)"
    audited = f"{min(AUDIT_QUERIES, len(ds.test))} seeded queries exact (top-{ds.ground_truth_k})"
    if every_query:
        start = time.perf_counter()
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        if ds.filters is None:
            bad = first_mismatch(ds.train, ds.test, ds.neighbors, ds.distances, ds.distance, backend="auto",
                                 threads=threads, stop_at_first=False)
        else:  # the filtered ground truth: recomputed from the tags (stops at the first bad query)
            from annbench.datasets.attributes import first_filtered_mismatch

            bad = first_filtered_mismatch(ds.train, ds.test, ds.neighbors, ds.distances, ds.distance, ds.filters,
                                          np.arange(len(ds.test)), backend="auto", threads=threads)
        if bad is not None:
            raise UserError(f"dataset file {path}: the stored ground truth is wrong for {bad.bad_queries} of "
                            f"{len(ds.test)} queries, the first at {bad}; {rebuild_hint(path, ds.attrs)}")
        audited = f"all {len(ds.test)} queries exact (top-{ds.ground_truth_k}), in {time.perf_counter() - start:.2f} s"
    rows = [("dataset", ds.name), ("file", str(path)), ("checksum", checksum), ("ground truth", audited),
            ("loaded", f"{loaded:.2f} s (read, checksum, validation, {min(AUDIT_QUERIES, len(ds.test))}-query audit)")]
    return "\n".join(f"{k:<13} {v}" for k, v in rows)


def parser(prog: str = "dataset.py") -> Parser:
    p = Parser(prog=prog, description="Manage benchmark datasets.", parents=[shared("data-dir", "verbose")])
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    # the main parser's options again on each subcommand, without defaults: `dataset.py --data-dir X
    # create ...` and `dataset.py create ... --data-dir X` both work, neither overwriting the other
    again = shared("data-dir", "verbose", defaults=False)

    def add(name: str, *parents: Parser, **kwargs: Any) -> Parser:
        return sub.add_parser(name, parents=[again, *parents], **kwargs)

    add("list", help="registered and local datasets")
    for cmd, text in (("prepare", "get or build a dataset (sources: data folder, --source-dir, "
                                  "ann-benchmarks HDF5, upstream download)"),
                      ("describe", "shape, distance, labels, keys, checksum, origin of a dataset")):
        s = add(cmd, shared("source-dir"), help=text)
        s.add_argument("dataset", help="registered name, local dataset name, or .hdf5 path")
        s.add_argument("--max-train", type=positive_int, default=None, help="first N train rows only (cached)")
        s.add_argument("--max-test", type=positive_int, default=None, help="first M test rows only (cached)")
        if cmd == "prepare":
            s.add_argument("--force", action="store_true", help="obtain or build it again even if present (a damaged "
                           "file; the old one is replaced atomically)")
    s = add("verify", help="check datasets: checksum of every array, ground truth recomputed for 8 queries "
                           "(--all: every query)")
    s.add_argument("datasets", nargs="+", metavar="dataset", help="local dataset name or .hdf5 path")
    s.add_argument("--all", action="store_true", help="audit the ground truth of every query, not 8")
    s = add("remove", help="delete dataset files from the data folder")
    s.add_argument("names", nargs="+")
    s = add("create", help="a dataset from your own embeddings (any supported format)")
    s.add_argument("--from", dest="source", required=True, help="vectors: idx, fvecs/ivecs/bvecs, GloVe or "
                   "word2vec text, word2vec .bin, .npy, .npz[:NAME], .csv, .fbin/.u8bin/.i8bin[:START:STOP] "
                   "(big-ann-benchmarks; .u8bin/.i8bin stay uint8/int8)")
    s.add_argument("--name", required=True)
    s.add_argument("--distance", required=True, help="euclidean, angular or ip")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--test-size", type=positive_int, help="hold out N random rows as queries (random_state=1)")
    g.add_argument("--queries", help="query vectors file (same formats)")
    s.add_argument("--labels", help="one label per vector: text lines, .npy or idx")
    s.add_argument("--keys", help="one key per vector: text lines or .npy (GloVe/word2vec files carry their own)")
    f = s.add_argument_group("filtered search (see README: Filtered search; needs --queries)")
    f.add_argument("--train-tags", help="tags of each vector: a scipy sparse matrix (scipy.sparse.save_npz .npz, "
                                        "row i = the tags of vector i) or a 1-D integer .npy (one tag per vector)")
    f.add_argument("--test-tags", help="the tags each query requires, all of them: same formats, one row per query")
    f.add_argument("--train-values", help="one number per vector (.npy), for value ranges")
    f.add_argument("--test-ranges", help="a half-open range [low, high) per query (.npy, queries x 2)")
    f.add_argument("--train-rows", metavar="START:STOP", help="only these rows of --from (and of its tags and "
                   "values), e.g. a slice of big-ann-benchmarks' YFCC-10M base.10M.u8bin")
    f.add_argument("--test-rows", metavar="START:STOP", help="only these rows of --queries (and of their tags, ranges)")
    s.add_argument("--force", action="store_true", help="overwrite an existing dataset of that name")
    s = add("export", shared("source-dir"), help="write a dataset for other tools: big-ann-benchmarks' "
                                                 ".u8bin/.i8bin/.fbin (+ .gt.ibin ids) or ann-benchmarks' HDF5")
    s.add_argument("dataset", help="registered name, local dataset name, or .hdf5 path")
    s.add_argument("--format", required=True, help="u8bin, i8bin, fbin or ab-hdf5")
    s.add_argument("--out", required=True, type=Path, help="folder to write into")
    s.add_argument("--force", action="store_true", help="overwrite existing files")
    from annbench.cli.lookup import add_parsers

    add_parsers(add)  # index, lookup
    return p


@guarded
def main(argv: list[str] | None = None, prog: str = "dataset.py") -> int:
    args = parser(prog).parse_args(argv)
    setup_logging(args.verbose)
    data_dir = args.data_dir or paths.default_data_dir()
    from annbench.datasets import registry

    if args.command == "list":
        print(catalogue(data_dir))
    elif args.command in ("prepare", "describe"):
        if args.command == "describe" and not (args.max_train or args.max_test):
            local = local_file(args.dataset, data_dir)
            print(describe(local, local.stem, difficulty=True))
            return 0
        prepared = registry.prepare(args.dataset, data_dir, args.source_dir, max_train=args.max_train,
                                    max_test=args.max_test, force=getattr(args, "force", False))
        print(describe(prepared.path, prepared.name, prepared.how))
    elif args.command == "verify":
        for i, name in enumerate(args.datasets):
            print(("\n" if i else "") + verify(local_file(name, data_dir), every_query=args.all))
    elif args.command == "remove":
        for name in args.names:
            if "/" in name or "\\" in name:
                raise UserError(f"dataset name {name!r} has path separators; valid: a name listed by dataset.py list")
            path = registry.dataset_path(name, data_dir)
            if not path.is_file():
                raise UserError(f"dataset {name} is not in {data_dir}; nothing removed")
        from annbench.analyse.difficulty import sidecar_path

        for name in args.names:
            registry.dataset_path(name, data_dir).unlink()
            sidecar_path(registry.dataset_path(name, data_dir)).unlink(missing_ok=True)  # its query difficulty
            print(f"removed {registry.dataset_path(name, data_dir)}")
            from annbench.datasets.step_truth import sidecars

            for path in sidecars(registry.dataset_path(name, data_dir)):  # its runbooks' ground truth
                path.unlink(missing_ok=True)
                print(f"removed {path}")
            from annbench.cli.lookup import remove_companions

            for path in remove_companions(registry.dataset_path(name, data_dir)):
                print(f"removed {path}")
    elif args.command == "create":
        from annbench.datasets.bigann import parse_rows
        from annbench.datasets.user import create

        prepared = create(args.source, args.name, args.distance, data_dir, test_size=args.test_size,
                          queries=args.queries, labels=args.labels, keys=args.keys, force=args.force,
                          filters={"train_tags": args.train_tags, "test_tags": args.test_tags,
                                   "train_values": args.train_values, "test_ranges": args.test_ranges},
                          train_rows=parse_rows(args.train_rows), test_rows=parse_rows(args.test_rows))
        print(describe(prepared.path, prepared.name, prepared.how))
    elif args.command == "export":
        from annbench.datasets.export import export

        ds = registry.load(args.dataset, data_dir, args.source_dir)
        for path in export(ds, args.format, args.out, force=args.force):
            print(f"wrote {path}")
    elif args.command in ("index", "lookup"):
        from annbench.cli.lookup import run

        run(args, data_dir)
    return 0
