"""The adapter protocol: what every backend in ``algorithms/`` implements.

An adapter is one small class wrapping one library's own API::

    class Annoy(Adapter):
        '''``AnnoyIndex``: a forest of random-projection trees.

        Parameters:
            n_trees: trees built (build time, memory vs recall)
            search_k: tree nodes inspected per query
        '''

        native_metrics = {"euclidean": "euclidean", "angular": "angular", "ip": "dot"}
        libraries = ("annoy",)

        def __init__(self, metric: str, n_trees: int, threads: int = 1): ...   # build params
        def fit(self, X): ...               # AnnoyIndex(d, self.metric_name) ...
        def set_query_params(self, search_k: int = -1): ...                   # query params
        def query(self, q, k): ...

``native_metrics`` maps every annbench metric the adapter supports to the library's own name
for it; the base checks the metric in ``__init__`` and gives the library's name as
``self.metric_name``, and ``metrics`` is the read-only tuple of its keys. Build parameters are
the keyword parameters of ``__init__`` (besides ``metric`` and ``threads``), query parameters
those of ``set_query_params``; their annotations (``int``, ``float``, ``str``, ``bool``,
``Literal[...]``, ``X | None``) are what configs are validated against, and the ``Parameters:``
section of the class docstring (one ``name: what it does`` line each, found along the class's
bases) describes them in ``run.py --list-algorithms --markdown``. Constructors only record
parameters; ``fit`` does the work. Arrays handed to an adapter are read-only: an adapter that
needs to change them copies them.

Unit-norm data: an adapter whose library has no cosine space declares the metrics it serves on
unit-norm rows, ``normalize_for = ("angular",)``. Under those metrics its ``fit`` is given a
unit-norm copy of the train rows and, if it sets ``normalize_queries = True``, its ``query`` and
``batch_query`` unit-norm copies of the queries; under every metric its ``fit`` gets a read-only,
C-contiguous float32 ``X``. The copies are made inside the call, so inside its timed region.

Point types (:mod:`annbench.quality.points`): ``point_types`` lists the types the library takes
natively (``float32``, ``float16``, ``uint8``, ``int8``, ``bit`` packed, ``set`` CSR). The harness
calls :meth:`Adapter.accept` with the dataset's type before ``warm_up``; an adapter that takes it
gets the rows as they are, else the rows its ``warm_up``/``fit``/``query``/``batch_query``, its
changes (``insert``/``replace``) and its ``filtered_query`` are given are converted (numbers to float32,
uint8 to shifted int8 under euclidean; bits and sets to dense 0/1 rows, sets to packed bits), the
conversion inside the call, so inside the timed region, and the result records ``converted_from``.
"""

from __future__ import annotations

import abc
import copy
import functools
import inspect
import threading
import typing
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from annbench.quality.distances import METRICS, normalized
from annbench.quality.points import METRICS_OF, NUMERIC_TYPES, conversion_target, convert
from annbench.quality.predicates import Attributes, Predicate

#: ``__init__`` parameters that are not build parameters.
RESERVED = ("self", "metric", "threads")


def at_least(minimum: int, **params: int) -> None:
    """Raise a ValueError naming the first of ``params`` below ``minimum``, and what is valid."""
    for name, value in params.items():
        if value < minimum:
            raise ValueError(f"{name}={value}; valid: an int >= {minimum}")


#: The methods whose first argument (rows, or one query) :meth:`Adapter.accept` converts; those given one query.
_CONVERTED = ("warm_up", "fit", "insert", "replace", "query", "batch_query", "filtered_query")
_SINGLE_QUERIES = ("query", "filtered_query")
#: The methods given prepared arrays under ``normalize_for`` (train rows; queries).
_PREPARED_DATA = ("fit", "insert", "replace")
_PREPARED_QUERIES = ("query", "batch_query", "filtered_query")


def _preparing(method: Callable[..., Any], queries: bool) -> Callable[..., Any]:
    """``method`` given ``self._prepared(array)`` in place of its first argument: always for the train
    rows, for queries only under a unit-norm metric. Calls from within one (``super().fit(X)``, an
    override calling the library's method) pass the prepared array on as it is: per thread, since
    concurrent clients may query one adapter from several (README: Concurrent clients)."""

    @functools.wraps(method)
    def prepared(self: Adapter, a: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        if queries and not self._unit_norm_queries:
            return method(self, a, *args, **kwargs)
        thread = threading.get_ident()
        if thread in self._preparing:
            return method(self, a, *args, **kwargs)
        self._preparing.add(thread)
        try:
            return method(self, self._prepared(a), *args, **kwargs)
        finally:
            self._preparing.discard(thread)

    prepared.prepares = True  # type: ignore[attr-defined]
    return prepared


class AdapterType(abc.ABCMeta):
    """The adapters' metaclass: freezes ``native_metrics``, derives the read-only ``metrics`` from
    it, checks the declarations, and hands prepared arrays to adapters that declare ``normalize_for``."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> AdapterType:
        if isinstance(namespace.get("metrics"), (tuple, list)):  # the declaration of old: names are the library's
            if "native_metrics" in namespace:
                raise TypeError(f"{name} declares both metrics and native_metrics; declare native_metrics only")
            namespace["native_metrics"] = {m: m for m in namespace.pop("metrics")}
        if "native_metrics" in namespace:
            namespace["native_metrics"] = MappingProxyType(dict(namespace["native_metrics"]))
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        unknown = [m for m in cls.native_metrics if m not in METRICS]
        if unknown:
            raise TypeError(f"{name}.native_metrics has {', '.join(map(repr, unknown))}; valid keys: "
                            f"{', '.join(map(repr, METRICS))}")
        unknown = [c for c in cls.changes if c not in ("insert", "delete", "replace")]
        if unknown:
            raise TypeError(f"{name}.changes has {', '.join(map(repr, unknown))}; valid: 'insert', 'delete', 'replace'")
        unserved = [m for m in cls.normalize_for if m not in cls.native_metrics]
        if unserved:
            raise TypeError(f"{name}.normalize_for has {', '.join(map(repr, unserved))}, which are not in "
                            f"its native_metrics: {', '.join(map(repr, cls.native_metrics))}")
        if cls.normalize_for:  # wrap each method once, where it is first declared (or inherited unwrapped)
            for names, queries in ((_PREPARED_DATA, False), (_PREPARED_QUERIES, True)):
                for method in names if cls.normalize_queries or not queries else ():
                    f = getattr(cls, method)
                    if not getattr(f, "prepares", False) and not getattr(f, "__isabstractmethod__", False):
                        setattr(cls, method, _preparing(f, queries))
        return cls

    @property
    def metrics(cls) -> tuple[str, ...]:
        """The annbench metrics the adapter supports: the keys of ``native_metrics`` (read-only)."""
        return tuple(cls.native_metrics)


class Adapter(metaclass=AdapterType):
    """Base class of every backend adapter."""

    #: Every annbench metric the adapter supports (see :data:`annbench.quality.distances.METRICS`)
    #: → the library's own name for it (``self.metric_name``).
    native_metrics: ClassVar[Mapping[str, Any]] = MappingProxyType({"euclidean": "euclidean", "angular": "angular"})
    #: Metrics the library serves on unit-norm rows (it has no cosine space): ``fit`` gets unit-norm copies.
    normalize_for: ClassVar[tuple[str, ...]] = ()
    #: Whether ``query`` / ``batch_query`` get unit-norm copies of the queries too under ``normalize_for``
    #: (where a query's norm changes the ranking, e.g. euclidean search on unit-norm rows).
    normalize_queries: ClassVar[bool] = False
    #: Distribution names whose versions are recorded in each result's provenance.
    libraries: ClassVar[tuple[str, ...]] = ()
    #: True for exact methods (recall 1.0 is expected of them).
    exact: ClassVar[bool] = False
    #: Whether a child forked from a warm parent that imported the library (and ran ``warm_up``)
    #: works as a fresh interpreter would (see README, "Warm parents"). False: every build
    #: setting starts a fresh interpreter. Set it False for libraries that start thread pools
    #: (OpenMP, ...) or other per-process state at import.
    fork_safe: ClassVar[bool] = True
    #: The filter kinds the adapter answers natively in ``filtered_query``, from
    #: :data:`annbench.quality.predicates.FILTER_KINDS` (``"tags"``, ``"range"``). On a filtered dataset
    #: an adapter that does not declare every kind its predicates use is measured through the harness's
    #: post-filter strategy (:mod:`annbench.backends.filtering`).
    filters: ClassVar[tuple[str, ...]] = ()
    #: Whether ``fit_attributes`` comes right before ``fit`` instead of after it (both inside the timed
    #: build): for a database, whose table or collection takes each row with its attributes (a schema
    #: fixed at creation, as Milvus's) rather than a second pass over rows already loaded.
    attributes_first: ClassVar[bool] = False
    #: What the adapter can change in a built index (runbooks, see README "Indexes that change"): a subset
    #: of :data:`CHANGES`. ``insert`` means an adapter with no index yet builds one by inserting.
    changes: ClassVar[tuple[str, ...]] = ()
    #: Whether ``--client-kind process`` may fork the built index into client processes (copy-on-write, each
    #: querying through its own :meth:`client`). False where the built index does not survive a fork; the
    #: one-line reason in ``fork_clients_reason`` is what ``run.py`` says when it refuses.
    fork_clients: ClassVar[bool] = True
    fork_clients_reason: ClassVar[str] = ""
    #: The most ``--threads`` with which a built index can still be forked (None: any). GNU OpenMP, for one,
    #: does not survive a fork once a parallel region has run (README: Warm parents); ``fork_clients_reason``
    #: says why.
    fork_clients_threads: ClassVar[int | None] = None
    #: The point types the library takes natively (:data:`annbench.quality.points.POINT_TYPES`);
    #: any other is converted by the harness, inside the timed calls (see :meth:`accept`).
    point_types: ClassVar[tuple[str, ...]] = ("float32",)

    def __init__(self, metric: str, threads: int = 1) -> None:
        if metric not in self.native_metrics:
            raise ValueError(f"metric={metric!r}; valid: {', '.join(map(repr, self.native_metrics))}")
        self.metric = metric
        self.metric_name = self.native_metrics[metric]
        self.threads = threads
        self._unit_norm = metric in self.normalize_for
        self._unit_norm_queries = self._unit_norm and self.normalize_queries
        self._preparing: set[int] = set()  # threads inside a preparing call
        self._native: str | None = None  # the point type accept() settled on; None: float32 as ever
        self._converted_from: str | None = None  # the dataset's point type where accept() converts it
        self._accepted: tuple[str, int] | None = None  # accept()'s arguments, for handle_copy
        self._converting: set[int] = set()  # threads inside a converting call

    @property
    def metrics(self) -> tuple[str, ...]:
        return type(self).metrics

    @classmethod
    def takes(cls, metric: str, point_type: str) -> str | None:
        """The point type ``point_type`` rows are given in under ``metric`` (itself where native), or
        None where the adapter cannot take them (or ``metric`` is not defined on them). Unit-norm copies
        (``normalize_for``) are float32."""
        if metric not in METRICS_OF[point_type]:
            return None
        return conversion_target(point_type, ("float32",) if metric in cls.normalize_for else cls.point_types,
                                 metric)

    def accept(self, point_type: str, dimension: int) -> str | None:
        """Be given rows of ``point_type`` (``dimension``: bits or universe) from now on: None when the
        adapter takes them as they are; else ``point_type`` (the result's ``converted_from``), its
        ``warm_up``, ``fit``, ``query``, ``batch_query``, ``insert``, ``replace`` and ``filtered_query`` now
        converting their rows inside the call to :meth:`takes`'s type. A ValueError when there is none."""
        target = self.takes(self.metric, point_type)
        if target is None:
            raise ValueError(f"{type(self).__name__} cannot serve {self.metric} on {point_type} points: it takes "
                             f"{served(type(self))}")
        self._native = target
        self._accepted = (point_type, dimension)
        if target == point_type:
            return None
        self._converted_from = point_type
        for name in _CONVERTED:
            setattr(self, name, _converting(self, getattr(self, name), point_type, target, dimension,
                                            name in _SINGLE_QUERIES))
        return point_type

    def conversion(self) -> dict[str, str]:
        """What :meth:`accept` settled on, for the results: ``converted_from`` (the dataset's point type) and
        ``converted_to`` (the type the adapter is given) where the harness converts; empty where it does not."""
        if self._converted_from is None or self._native is None:
            return {}
        return {"converted_from": self._converted_from, "converted_to": self._native}

    def _prepared(self, a: np.ndarray) -> np.ndarray:
        """``a`` as the adapter gets it: a read-only C-contiguous float32 array, unit-norm rows under
        ``normalize_for`` (a copy; ``a`` itself is never modified)."""
        if self._unit_norm:
            a = np.ascontiguousarray(normalized(a))
        elif self._native not in (None, "float32"):  # a type the adapter takes natively: as it is
            return a
        else:
            a = np.ascontiguousarray(a, dtype=np.float32).view()
        a.flags.writeable = False
        return a

    def warm_up(self, X: np.ndarray) -> None:
        """Untimed one-off work that is not part of building this index (e.g. JIT compilation),
        run before the timed ``fit``. Must not build the index itself. Default: nothing."""

    @abc.abstractmethod
    def fit(self, X: np.ndarray) -> None:
        """Build the index over the rows of ``X`` (n×d float32, read-only)."""

    def fit_attributes(self, attrs: Attributes) -> None:
        """Take the train points' attributes (tags CSR, optional values), inside the timed build, after
        ``fit`` (before it where ``attributes_first``): whatever the adapter builds from them (an inverted
        index, a bitmap per tag, the rows' columns) is build time. Adapters that declare ``filters`` override it."""
        raise NotImplementedError(f"{type(self).__name__} does not filter natively")

    def filtered_query(self, q: np.ndarray, k: int, predicate: Predicate) -> np.ndarray:
        """Ids of (up to) ``k`` nearest train rows of ``q`` among those matching ``predicate``, nearest
        first. Whatever it makes from the predicate (a mask, an id selector) counts as query time."""
        raise NotImplementedError(f"{type(self).__name__} does not filter natively")

    def set_query_params(self) -> None:
        """Apply one query setting; called after ``fit``. Adapters with query parameters override."""

    @abc.abstractmethod
    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        """Ids of (up to) ``k`` nearest train rows of ``q`` (d float32, read-only), nearest first."""

    def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
        """Ids for all rows of ``Q``, ``(nq, k)``, ``-1`` padded. Override with the library's batch API."""
        out = np.full((len(Q), k), -1, dtype=np.int64)
        for i, q in enumerate(Q):
            r = np.asarray(self.query(q, k)).ravel()[:k]
            out[i, :len(r)] = r
        return out

    def insert(self, X: np.ndarray, ids: np.ndarray) -> None:
        """Add the rows of ``X`` under the ids ``ids`` (int64, not live), which queries then return. The
        first insert of an adapter that has no index (``fit`` not called) creates it. Declared in ``changes``."""
        raise NotImplementedError(f"{type(self).__name__} cannot insert")

    def delete(self, ids: np.ndarray) -> None:
        """Remove the live points ``ids``: no query returns them afterwards. Declared in ``changes``."""
        raise NotImplementedError(f"{type(self).__name__} cannot delete")

    def replace(self, X: np.ndarray, ids: np.ndarray) -> None:
        """Give the live points ``ids`` the vectors ``X``. Default: :meth:`delete` then :meth:`insert`;
        an adapter whose library replaces in place overrides it (see :func:`replace_method`)."""
        self.delete(ids)
        self.insert(X, ids)

    def client(self) -> Adapter:
        """A handle one concurrent client queries the built index through (README: Concurrent clients), made
        after ``fit`` and ``set_query_params``, one per client, outside any timed region (in a client process:
        after the fork). Default: the adapter itself, whose ``query`` clients then call from several threads
        at once. An adapter with per-query state of its own, or a database adapter (one with its own
        connection), returns another."""
        return self

    def close_client(self) -> None:
        """Release what :meth:`client` opened for this handle (its connection). The harness calls it once on
        every handle ``client()`` returned that is not the adapter itself, once its client's window has ended,
        outside any timed region (thread clients: after all of them ended; a client process: in that process).
        Default: nothing."""

    def batch_latencies_ns(self) -> np.ndarray | None:
        """Per-query latencies of the last batch, only where the library itself reports them."""
        return None

    def index_size_bytes(self) -> int | None:
        """Size of the library's own serialized index (None where it cannot serialize)."""
        return None

    def build_stats(self) -> dict[str, float]:
        """Figures of the last ``fit`` that the adapter measured itself (e.g. a database's ``load_s`` and
        ``index_s``, the parts of ``build_s``); stored as metrics of every run of the build. Default: none."""
        return {}

    def stats(self) -> dict[str, float]:
        """Library counters of the last query pass (e.g. distance computations)."""
        return {}

    def save(self, folder: Path) -> None:
        """Write the built index into the existing ``folder`` in the library's own format.
        Adapters whose library serializes override this and :meth:`load`."""
        raise NotImplementedError(f"{type(self).__name__} cannot save its index")

    def load(self, folder: Path, dimension: int) -> None:
        """Instead of ``fit``: open the index :meth:`save` wrote into ``folder`` (memory-mapped where the
        library can), on an adapter made with the same build parameters; then ``set_query_params``."""
        raise NotImplementedError(f"{type(self).__name__} cannot load a saved index")


A = typing.TypeVar("A", bound=Adapter)


def handle_copy(adapter: A) -> A:
    """A shallow copy of ``adapter`` for :meth:`Adapter.client` (a database adapter then gives it its own
    connection): the conversion wrappers of :meth:`Adapter.accept` are bound to ``adapter``, so the copy
    gets its own, calling its own methods."""
    handle = copy.copy(adapter)
    for name in _CONVERTED:
        handle.__dict__.pop(name, None)
    if adapter._accepted is not None:
        handle.accept(*adapter._accepted)
    return handle


def adapter_for(cls: type[A], metric: str, point_type: str, dimension: int, threads: int = 1,
                **build: Any) -> A:
    """An adapter of ``cls`` with ``build`` parameters, not built yet, given rows of ``point_type``
    (``dimension``: bits or universe): converting them inside its calls where it does not take them as they are
    (:meth:`Adapter.accept`). How every path makes one (runs, runbooks, filtered runs, measuring processes, the
    warm parents, lookups and saved indexes), so each gets the same rows. A ValueError when ``cls`` cannot
    take the parameters or serve ``metric`` on ``point_type``."""
    adapter = cls(metric, threads=threads, **build)
    adapter.accept(point_type, dimension)
    return adapter


#: The changes an adapter may declare (``Adapter.changes``).
CHANGES = ("insert", "delete", "replace")


def replace_method(cls: type[Adapter]) -> str:
    """How the adapter replaces: ``native`` (its library's own call) or ``delete+insert`` (the default)."""
    return "delete+insert" if getattr(cls.replace, "__wrapped__", cls.replace) is Adapter.replace else "native"


def _converting(adapter: Adapter, method: Callable[..., Any], source: str, target: str, dimension: int,
                single: bool) -> Callable[..., Any]:
    """``method`` given its first argument converted from ``source`` to ``target`` rows in the call;
    calls from within one (the base ``batch_query`` looping over ``query``) pass the rows on as they are."""

    def converted(a: Any, *args: Any, **kwargs: Any) -> Any:
        thread = threading.get_ident()  # per thread, as _preparing: concurrent clients share the adapter
        if thread in adapter._converting:
            return method(a, *args, **kwargs)
        adapter._converting.add(thread)
        try:
            return method(convert(a, source, target, dimension, single=single), *args, **kwargs)
        finally:
            adapter._converting.discard(thread)

    return converted


def served(cls: type[Adapter], metrics: Collection[str] | None = None) -> str:
    """The point types an adapter takes for each distance it serves (of ``metrics`` only, when given: its
    grid's), in words: natively (``float32, uint8 (euclidean, angular)``) or converted by the harness
    (``bit as float32 (hamming)``; beside native types, the numbers given as another type than float32:
    ``uint8 as int8``)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for m in cls.native_metrics:
        if metrics is not None and m not in metrics:
            continue
        types = tuple(t for t in cls.point_types if m in METRICS_OF[t])
        types += tuple(f"{t} as {cls.takes(m, t)}" for t in NUMERIC_TYPES
                       if types and t not in cls.point_types and cls.takes(m, t) not in (None, "float32"))
        if not types:
            source = next(t for t, ms in METRICS_OF.items() if m in ms)
            target = cls.takes(m, source)
            types = (f"{source} as {target}",) if target else ("none",)
        groups.setdefault(types, []).append(m)
    return "; ".join(f"{', '.join(types)} ({', '.join(ms)})" for types, ms in groups.items())


def saveable(cls: type[Adapter]) -> bool:
    """Whether the adapter class can save and load its index (:meth:`Adapter.save` / :meth:`Adapter.load`)."""
    return cls.save is not Adapter.save and cls.load is not Adapter.load


def _params(function: Any, skip: tuple[str, ...]) -> dict[str, inspect.Parameter]:
    sig = inspect.signature(function)
    return {n: p for n, p in sig.parameters.items()
            if n not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def build_parameters(cls: type[Adapter]) -> dict[str, inspect.Parameter]:
    return _params(cls.__init__, RESERVED)


def query_parameters(cls: type[Adapter]) -> dict[str, inspect.Parameter]:
    return _params(cls.set_query_params, ("self",))


def type_hints(function: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # unresolvable annotations: accept any value
        return {}


def describe_type(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "any value"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(describe_type(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def value_matches(value: Any, annotation: Any) -> bool:
    """Whether a YAML value fits a parameter annotation (bool is not an int; int is a float)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(value_matches(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True
