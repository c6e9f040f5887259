"""The adapter protocol: what every backend in ``algorithms/`` implements.

An adapter is one small class wrapping one library's own API::

    class Annoy(Adapter):
        metrics = ("euclidean", "angular")
        libraries = ("annoy",)

        def __init__(self, metric: str, n_trees: int, threads: int = 1): ...   # build params
        def fit(self, X): ...
        def set_query_params(self, search_k: int = -1): ...                   # query params
        def query(self, q, k): ...

Build parameters are the keyword parameters of ``__init__`` (besides ``metric`` and
``threads``), query parameters those of ``set_query_params``; their annotations (``int``,
``float``, ``str``, ``bool``, ``Literal[...]``, ``X | None``) are what configs are
validated against. Constructors only record parameters; ``fit`` does the work. Arrays
handed to an adapter are read-only: an adapter that needs to change them copies them.
"""

from __future__ import annotations

import abc
import inspect
import typing
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

#: ``__init__`` parameters that are not build parameters.
RESERVED = ("self", "metric", "threads")


def at_least(minimum: int, **params: int) -> None:
    """Raise a ValueError naming the first of ``params`` below ``minimum``, and what is valid."""
    for name, value in params.items():
        if value < minimum:
            raise ValueError(f"{name}={value}; valid: an int >= {minimum}")


class Adapter(abc.ABC):
    """Base class of every backend adapter."""

    #: Distances the library supports (``euclidean``, ``angular``, ``ip``).
    metrics: ClassVar[tuple[str, ...]] = ("euclidean", "angular")
    #: Distribution names whose versions are recorded in each result's provenance.
    libraries: ClassVar[tuple[str, ...]] = ()
    #: True for exact methods (recall 1.0 is expected of them).
    exact: ClassVar[bool] = False
    #: Whether a child forked from a warm parent that imported the library (and ran ``warm_up``)
    #: works as a fresh interpreter would (see README, "Warm parents"). False: every build
    #: setting starts a fresh interpreter. Set it False for libraries that start thread pools
    #: (OpenMP, ...) or other per-process state at import.
    fork_safe: ClassVar[bool] = True

    def __init__(self, metric: str, threads: int = 1) -> None:
        self.metric = metric
        self.threads = threads

    def warm_up(self, X: np.ndarray) -> None:
        """Untimed one-off work that is not part of building this index (e.g. JIT compilation),
        run before the timed ``fit``. Must not build the index itself. Default: nothing."""

    @abc.abstractmethod
    def fit(self, X: np.ndarray) -> None:
        """Build the index over the rows of ``X`` (n×d float32, read-only)."""

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

    def batch_latencies_ns(self) -> np.ndarray | None:
        """Per-query latencies of the last batch, only where the library itself reports them."""
        return None

    def index_size_bytes(self) -> int | None:
        """Size of the library's own serialized index (None where it cannot serialize)."""
        return None

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
