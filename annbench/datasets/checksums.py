"""Every checksum we know of an upstream file, keyed by ``<folder>/<file name>``.

The folder is the upstream's conventional folder (``fashion-mnist``, ``mnist``, ``siftsmall``,
...), which is also where a ``--source-dir`` mirror may keep the file. Downloads and files
found in a source folder are verified against every digest listed here; a file with no
entry is accepted with a warning and its sha256 is recorded in the dataset's provenance.

Sources: the md5s are the official ones (Fashion-MNIST's README; MNIST's widely published
ones); the sha256s were computed from those same verified files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHECKSUMS: dict[str, dict[str, str]] = {
    "fashion-mnist/train-images-idx3-ubyte.gz": {
        "md5": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "sha256": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"},
    "fashion-mnist/train-labels-idx1-ubyte.gz": {
        "md5": "25c81989df183df01b3e8a0aad5dffbe",
        "sha256": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"},
    "fashion-mnist/t10k-images-idx3-ubyte.gz": {
        "md5": "bef4ecab320f06d8554ea6380940ec79",
        "sha256": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"},
    "fashion-mnist/t10k-labels-idx1-ubyte.gz": {
        "md5": "bb300cfdad3c16e7a12a480ee83cd310",
        "sha256": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"},
    "mnist/train-images-idx3-ubyte.gz": {
        "md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "sha256": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"},
    "mnist/train-labels-idx1-ubyte.gz": {
        "md5": "d53e105ee54ea40749a09fcbcd1e9432",
        "sha256": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"},
    "mnist/t10k-images-idx3-ubyte.gz": {
        "md5": "9fb629c4189551a2d022fa330f9573f3",
        "sha256": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"},
    "mnist/t10k-labels-idx1-ubyte.gz": {
        "md5": "ec29112dd5afa0611ce80d1b7f02629c",
        "sha256": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"},
    # ANN_SIFT10K, the files inside texmex's siftsmall.tar.gz
    "siftsmall/siftsmall_base.fvecs": {
        "sha256": "1e90414a3254361aba48a0d58e461f7661fb135dabb3da985290e94de8f60fe0"},
    "siftsmall/siftsmall_query.fvecs": {
        "sha256": "095af38bda2741be721447ba97e9286fa918ece946be92a9ae133276eddc1a10"},
    "siftsmall/siftsmall_groundtruth.ivecs": {
        "sha256": "b0717bf276111a166f14dcc2653fd04465b2afd6d34c72be641b622cf99f95ae"},
    # the first 2,446 lines of Stanford's glove.6B.50d.txt (the shared test subset)
    "glove-subset/glove.6B.50d.first2446.txt": {
        "sha256": "32c1e8ca4bd3ce8342c62693937bf7b4015970de6fbcdd6a4f0b727fb03f0ad3"},
    # the PyTorch NLP tutorial's surnames (checksums of ../shared/data/README.md)
    "surnames/surnames.csv": {
        "md5": "a234d1082982b6f291e29c2c94046e97",
        "sha256": "e61a6a7e8e1f0bf07b2c13020c53eabf4ee8ff6ea3606f68967946bcf5b54624"},
}

_CHUNK = 1 << 20


def file_digests(path: str | Path, algorithms: tuple[str, ...] = ("md5", "sha256")) -> dict[str, str]:
    """Hex digests of a file, read once in 1 MiB chunks."""
    hashes = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashes.items()}


def mismatch(path: str | Path, expected: dict[str, str]) -> str | None:
    """``None`` when every expected digest matches, else a description of the first mismatch."""
    if not expected:
        return None
    got = file_digests(path, tuple(expected))
    for algorithm, want in expected.items():
        if got[algorithm] != want.lower():
            return f"{algorithm} {got[algorithm]}, expected {want}"
    return None
