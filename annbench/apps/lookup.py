"""Nearest neighbours of any item of a dataset, or of a new one: a key, a key expression, a string, a vector.

A lookup searches the dataset's train vectors, by exact search or by one algorithm setting:
the index saved beside the dataset with :func:`save_index` (``dataset.py index``), opened
memory-mapped where the library can, or one built on the spot. Queries:

* a key (``king``): its vector (a train row, else a test row); every train row with that key is
  excluded from the answer, every other row is reported (repeated keys are separate rows);
* an expression of keys with ``+`` and ``-`` (``king - man + woman``; a ``-`` needs spaces around it,
  since keys may contain hyphens): ``Σ ± v_term``, each ``v`` unit-normalised first on angular
  datasets (as gensim's ``most_similar``); the rows of every term are excluded;
* a new string (``text=True``): encoded with the network saved beside an encoded sequence dataset
  (``encode.py --model gru``); nothing is excluded;
* a vector (``numpy`` array of the dataset's dimension; on a bit or set dataset its 0/1 values: the bits, or
  the indicator of the set's items); nothing is excluded.

An index is given the dataset's rows and queries in the dataset's point type, converted where its library does
not take that type as every run's are (:func:`annbench.backends.adapter.adapter_for`): so a query an index
searches must be a point of that type (a uint8 dataset's: integers 0..255); exact search takes any vector.

Every distance reported is recomputed here from the vectors (:func:`annbench.quality.distances.distances_to_ids`).
"""

from __future__ import annotations

import datetime
import difflib
import json
import logging
import os
import re
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annbench.apps.encoders.base import encoder_path
from annbench.backends.adapter import Adapter, adapter_for, saveable
from annbench.backends.params import validate_params
from annbench.core import paths
from annbench.core.errors import UserError
from annbench.core.processes import temporary_name
from annbench.datasets.format import Dataset
from annbench.quality.distances import distances_to_ids, normalized
from annbench.quality.groundtruth import exact_knn
from annbench.quality.points import NUMERIC_TYPES, exactly, pack_bits, set_rows

log = logging.getLogger(__name__)

#: The metadata file of a saved index, inside its folder.
META_FILE = "index.json"
#: Adapters shipped with a save/load hook (for messages; :func:`annbench.backends.adapter.saveable` decides).
SAVEABLE = ("annoy", "hnswlib", "faiss-flat", "faiss-ivf", "faiss-hnsw", "faiss-ivfpq", "usearch", "nmslib-hnsw")
#: ``+`` or ``-`` between two terms, with spaces around it (keys may contain hyphens).
_OPERATOR = re.compile(r"\s+([+-])\s+")


def index_folder(dataset_file: str | Path) -> Path:
    """Where a dataset's saved index lives: the folder ``NAME.index`` beside ``NAME.hdf5``."""
    dataset_file = Path(dataset_file)
    return dataset_file.with_name(f"{dataset_file.stem}.index")


@dataclass(frozen=True)
class IndexMeta:
    """What a saved index is (the ``index.json`` beside the library's own file)."""

    algorithm: str
    build: dict[str, Any]
    query: dict[str, Any]
    dataset: str
    dataset_checksum: str
    distance: str
    n_train: int
    dimension: int
    build_s: float
    created: str
    versions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, folder: Path) -> IndexMeta:
        path = Path(folder) / META_FILE
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError) as e:
            raise UserError(f"saved index {path} is unreadable ({e}); rebuild it with dataset.py index") from None


def params_text(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items())


def make_adapter(algorithm: str, dataset: Dataset, build: dict[str, Any], query: dict[str, Any],
                 adapter_dirs: list[Path] | None = None) -> tuple[type[Adapter], Adapter]:
    """The adapter class of ``algorithm`` and an instance with ``build`` parameters for ``dataset``'s distance,
    given its rows in its point type as a run's adapter is (converted inside its calls where it does not take
    them), every parameter checked."""
    from annbench.backends.discovery import load_adapter

    cls = load_adapter(algorithm, adapter_dirs or paths.algorithm_dirs())
    validate_params(cls, build, query, dataset.distance, algorithm=algorithm)
    try:
        return cls, adapter_for(cls, dataset.distance, dataset.point_type, dataset.dimension, **build)
    except (ValueError, TypeError) as e:
        raise UserError(f"{algorithm} build parameters {params_text(build)} on dataset {dataset.path}: {e}") from None


def conversion_text(index: Adapter) -> str:
    """``; uint8 points given as int8`` where the harness converts the index's points, else empty."""
    c = index.conversion()
    return f"; {c['converted_from']} points given as {c['converted_to']}" if c else ""


def _set_query(index: Adapter, algorithm: str, query: dict[str, Any]) -> None:
    try:
        index.set_query_params(**query)
    except (ValueError, TypeError) as e:
        raise UserError(f"{algorithm} query parameters {params_text(query)}: {e}") from None


def save_index(dataset: Dataset, algorithm: str, build: dict[str, Any], query: dict[str, Any] | None = None,
               adapter_dirs: list[Path] | None = None) -> tuple[Path, IndexMeta]:
    """Build one setting of ``algorithm`` over ``dataset.train`` and save it (the library's own file plus
    ``index.json``) in :func:`index_folder`, replacing any index saved there before."""
    from annbench.core.provenance import library_versions

    query = query or {}
    cls, index = make_adapter(algorithm, dataset, build, query, adapter_dirs)
    if not saveable(cls):
        raise UserError(f"{algorithm} cannot save its index; valid: an algorithm with a save/load hook "
                        f"({', '.join(SAVEABLE)})")
    start = time.perf_counter()
    index.fit(dataset.train)
    build_s = time.perf_counter() - start
    _set_query(index, algorithm, query)
    folder = index_folder(dataset.path)
    tmp = folder.with_name(temporary_name(folder.name))
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    meta = IndexMeta(algorithm=algorithm, build=dict(build), query=dict(query), dataset=dataset.name,
                     dataset_checksum=dataset.checksum, distance=dataset.distance, n_train=len(dataset.train),
                     dimension=dataset.dimension, build_s=build_s,
                     created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                     versions=library_versions(cls.libraries))
    try:
        index.save(tmp)
        (tmp / META_FILE).write_text(json.dumps(asdict(meta), indent=2) + "\n")
        old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.debug("saved %s %s over %s in %s (built in %.2f s)", algorithm, params_text(build), dataset.name, folder,
             build_s)
    return folder, meta


def open_index(dataset: Dataset, query: dict[str, Any] | None = None,
               adapter_dirs: list[Path] | None = None) -> tuple[Adapter, IndexMeta] | None:
    """The index saved beside ``dataset`` (query parameters: ``query``, else the saved ones), or None if
    there is none. One saved for another dataset checksum is refused."""
    folder = index_folder(dataset.path)
    if not (folder / META_FILE).is_file():
        return None
    meta = IndexMeta.read(folder)
    if meta.dataset_checksum != dataset.checksum:
        raise UserError(f"saved index {folder} was built for dataset checksum {meta.dataset_checksum}, but "
                        f"{dataset.path} has {dataset.checksum}; rebuild it with dataset.py index {dataset.name} "
                        f"--algorithm {meta.algorithm}, or pass --exact")
    query = meta.query if query is None else query
    _, index = make_adapter(meta.algorithm, dataset, meta.build, query, adapter_dirs)
    index.load(folder, dataset.dimension)
    _set_query(index, meta.algorithm, query)
    return index, IndexMeta(**{**asdict(meta), "query": dict(query)})


@dataclass(frozen=True)
class Neighbour:
    rank: int
    row: int
    key: str
    distance: float
    label: str | None = None


@dataclass(frozen=True)
class Answer:
    """The neighbours of one query, nearest first, and their majority label (None without labels)."""

    query: str
    how: str
    neighbours: tuple[Neighbour, ...]
    majority_label: str | None = None

    @property
    def keys(self) -> list[str]:
        return [n.key for n in self.neighbours]

    @property
    def distances(self) -> np.ndarray:
        return np.array([n.distance for n in self.neighbours], dtype=np.float64)

    @property
    def labels(self) -> list[str | None]:
        return [n.label for n in self.neighbours]

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "how": self.how, "majority_label": self.majority_label,
                "neighbours": [asdict(n) for n in self.neighbours]}


def majority(labels: np.ndarray) -> Any:
    """The most frequent of ``labels`` (a tie goes to the smallest, as ``knn_accuracy``); None if empty."""
    counts = Counter(np.asarray(labels).tolist())
    if not counts:
        return None
    most = max(counts.values())
    return min(v for v, c in counts.items() if c == most)


class Lookup:
    """Nearest neighbours in one dataset: by exact search, a saved index or an index built now.

    ``algorithm`` (with ``build`` / ``query`` parameters) builds that setting in memory; otherwise the
    index saved beside the dataset is used (``query`` overriding its saved query parameters) unless
    ``exact`` or there is none.
    """

    def __init__(self, name_or_path: str | Path, data_dir: str | Path | None = None,
                 source_dir: str | Path | None = None, *, exact: bool = False, algorithm: str | None = None,
                 build: dict[str, Any] | None = None, query: dict[str, Any] | None = None,
                 adapter_dirs: list[Path] | None = None) -> None:
        from annbench.datasets.registry import load

        self.dataset = load(str(name_or_path), Path(data_dir) if data_dir else paths.default_data_dir(),
                            Path(source_dir) if source_dir else None)
        ds = self.dataset
        self._rows: dict[str, list[int]] = {}
        for i, key in enumerate(ds.keys if ds.keys is not None else ()):
            self._rows.setdefault(key, []).append(i)
        self._test_rows: dict[str, int] = {}
        for i, key in enumerate(ds.test_keys if ds.test_keys is not None else ()):
            self._test_rows.setdefault(key, i)
        names = ds.attrs.get("label_names")
        self._label_names = json.loads(names) if isinstance(names, str) else None
        self._encoder = None
        self._train_label_texts: np.ndarray | None = None
        self.index: Adapter | None = None
        self.how = "exact"
        if algorithm is not None:
            _, self.index = make_adapter(algorithm, ds, build or {}, query or {}, adapter_dirs)
            start = time.perf_counter()
            self.index.fit(ds.train)
            _set_query(self.index, algorithm, query or {})
            self.how = f"{algorithm} {params_text({**(build or {}), **(query or {})})} (built now in " \
                       f"{time.perf_counter() - start:.2f} s{conversion_text(self.index)})"
        elif build:
            raise UserError("build parameters need an algorithm (--algorithm)")
        elif not exact:
            opened = open_index(ds, query, adapter_dirs)
            if opened is not None:
                self.index, meta = opened
                self.how = f"{meta.algorithm} {params_text({**meta.build, **meta.query})} (saved index" \
                           f"{conversion_text(self.index)})"

    # ----- queries -----

    def _label(self, row: int) -> str | None:
        if self._train_label_texts is None:
            labels = self.dataset.train_labels
            if labels is None:
                return None
            values, inverse = np.unique(labels, return_inverse=True)
            self._train_label_texts = np.array([self._label_text(v) for v in values], dtype=object)[inverse.ravel()]
        return self._train_label_texts[row]

    def _label_text(self, value: Any) -> str:
        names = self._label_names
        if names is not None and np.issubdtype(type(value), np.integer) and 0 <= value < len(names):
            return str(names[int(value)])
        return str(value.decode() if isinstance(value, bytes) else value)

    def _unknown(self, key: str, what: str) -> UserError:
        known = list(dict.fromkeys([*self._rows, *self._test_rows]))
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return UserError(f"{what} {key!r} is not in dataset {self.dataset.name}{hint}")

    def key_vector(self, key: str, what: str = "key") -> Any:
        """The row of ``key`` (in the dataset's point type): its first train row, else its test row."""
        if self.dataset.keys is None:
            raise UserError(f"dataset {self.dataset.name} has no keys; valid: a dataset with keys (glove-*, surnames*, "
                            f"or one made with 'create --keys'), or query by --vector/--text")
        if key in self._rows:
            return self.dataset.train[self._rows[key][0]]
        if key in self._test_rows:
            return self.dataset.test[self._test_rows[key]]
        raise self._unknown(key, what)

    def terms(self, expression: str) -> list[tuple[int, str]]:
        """``"king - man + woman"`` → ``[(1, "king"), (-1, "man"), (1, "woman")]``; a key is one term."""
        if expression in self._rows or expression in self._test_rows:
            return [(1, expression)]
        text, first = re.sub(r"\s*\+\s*", " + ", expression.strip()), 1
        if text.startswith("-"):
            first, text = -1, text[1:]
        parts = _OPERATOR.split(f" {text} ")
        names = [p.strip() for p in parts[0::2]]
        if not any(names):
            raise UserError(f"query {expression!r} is empty; "
                            f"valid: a key or an expression such as 'king - man + woman'")
        if not all(names):
            raise UserError(f"expression {expression!r} has an operator without a key beside it; valid: e.g. "
                            f"'king - man + woman' (spaces around '-')")
        signs = [first] + [1 if op == "+" else -1 for op in parts[1::2]]
        return list(zip(signs, names))

    def expression_vector(self, expression: str) -> tuple[Any, list[str]]:
        """The query of ``expression`` and its terms: one key's own row (in the dataset's point type), else
        ``Σ sign · v_term`` (float32; unit-normalised terms on angular datasets; numeric datasets only)."""
        terms = self.terms(expression)
        what = "key" if len(terms) == 1 else f"term of expression {expression!r}:"
        if terms[0][0] == 1 and len(terms) == 1:
            return self.key_vector(terms[0][1], what), [terms[0][1]]
        ds = self.dataset
        if ds.point_type not in NUMERIC_TYPES:
            raise UserError(f"expression {expression!r} adds and subtracts vectors, but dataset {ds.name} ({ds.path}) "
                            f"holds {ds.point_type} points; valid: one key, or --vector")
        vectors = np.array([self.key_vector(t, what) for _, t in terms], dtype=np.float32)
        if self.dataset.distance == "angular":
            vectors = normalized(vectors)
        signs = np.array([s for s, _ in terms], dtype=np.float32)
        return (signs[:, None] * vectors).sum(axis=0), [t for _, t in terms]

    def text_vector(self, text: str) -> np.ndarray:
        """``text`` encoded with the dataset's saved encoder."""
        if self._encoder is None:
            path = encoder_path(self.dataset.path)
            if not path.is_file():
                raise UserError(f"dataset {self.dataset.name} has no saved encoder ({path.name} beside "
                                f"{self.dataset.path} is missing); --text needs a dataset encoded from strings, "
                                f"e.g. encode.py --from surnames --model gru")
            from annbench.apps.encoders import gru

            encoder, meta = gru.load(path)
            if meta.get("dataset_checksum") != self.dataset.checksum:
                raise UserError(f"encoder file {path} was saved for dataset checksum {meta.get('dataset_checksum')}, "
                                f"but {self.dataset.path} has {self.dataset.checksum}; "
                                f"encode again (encode.py --force)")
            self._encoder = encoder
        return self._encoder.encode([text])[0]

    def _vector(self, vector: np.ndarray) -> Any:
        """A vector given by the user as a query: finite numbers (float32), or on a bit or set dataset 0/1 values
        made its packed bits or its set."""
        ds = self.dataset
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        numeric = ds.point_type in NUMERIC_TYPES
        if v.shape != (ds.dimension,) or not (np.isfinite(v).all() if numeric else np.isin(v, (0, 1)).all()):
            valid = "finite numbers" if numeric else \
                "values 0 or 1 (" + ("its bits)" if ds.point_type == "bit" else "1 for each item of the set)")
            raise UserError(f"query vector of shape {np.shape(vector)} does not fit dataset {ds.name} ({ds.point_type}"
                            f" points); valid: {ds.dimension} {valid}")
        if numeric:
            return v
        return pack_bits(v[None])[0] if ds.point_type == "bit" else \
            set_rows(np.flatnonzero(v), np.array([np.count_nonzero(v)]), ds.dimension)

    def _point(self, vector: Any) -> Any:
        """``vector`` as a point of the dataset's type, as the index is given its queries; a UserError where it is
        not one (numbers an integer or float16 dataset cannot hold exactly)."""
        ds = self.dataset
        if ds.point_type not in NUMERIC_TYPES:
            return vector
        point = exactly(vector, ds.point_type)
        if point is None:
            dtype = np.dtype(ds.point_type)
            valid = f"integers {np.iinfo(dtype).min}..{np.iinfo(dtype).max}" if dtype.kind in "iu" else \
                f"numbers {ds.point_type} holds exactly"
            raise UserError(f"query vector is not a {ds.point_type} point, which the index ({self.how}) searches on "
                            f"dataset {ds.name} ({ds.path}); valid: {ds.dimension} {valid}, or --exact")
        return point

    def search(self, vector: Any, k: int,
               exclude: list[int] | tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Ids and recomputed distances of the ``k`` nearest train rows of ``vector`` outside ``exclude``."""
        n = len(self.dataset.train)
        if not 1 <= k <= n:
            raise UserError(f"k={k} is out of range for the {n} train points of dataset {self.dataset.name}; "
                            f"valid: 1..{n}")
        want = min(n, k + len(exclude))
        queries = vector if self.dataset.point_type == "set" else np.ascontiguousarray(vector)[None]  # one row
        if self.index is None:
            ids = exact_knn(self.dataset.train, queries, self.dataset.distance, want, threads=1)[0][0]
        else:
            ids = np.asarray(self.index.query(self._point(vector), want), dtype=np.int64).ravel()
        skip = set(exclude)
        ids = np.array([i for i in ids.tolist() if i >= 0 and i not in skip][:k], dtype=np.int64)
        dists = distances_to_ids(queries, self.dataset.train, ids[None], self.dataset.distance)[0]
        order = np.argsort(dists, kind="stable")
        return ids[order], dists[order]

    def nearest(self, query: str | np.ndarray, k: int = 10, *, text: bool = False) -> Answer:
        """The ``k`` nearest train rows of ``query``: a key or an expression of keys (a ``str``), a new
        string to encode (``text=True``), or a vector (an array)."""
        exclude: list[int] = []
        if isinstance(query, np.ndarray):
            vector, shown = self._vector(query), "vector"
        elif text:
            vector, shown = self.text_vector(str(query)), f"text {query!r}"
        else:
            vector, terms = self.expression_vector(str(query))
            exclude = [r for t in terms for r in self._rows.get(t, ())]
            shown = repr(str(query))
        ids, dists = self.search(vector, k, exclude)
        keys = self.dataset.keys
        neighbours = tuple(Neighbour(rank=r, row=int(i), key=str(keys[i]) if keys is not None else str(int(i)),
                                     distance=float(d), label=self._label(int(i)))
                           for r, (i, d) in enumerate(zip(ids, dists), 1))
        vote = None if self.dataset.train_labels is None else majority(self.dataset.train_labels[ids])
        return Answer(shown, self.how, neighbours, None if vote is None else self._label_text(vote))
