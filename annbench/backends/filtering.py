"""How an adapter is measured on a filtered dataset: natively, or through the harness's post-filter.

* **native**: the adapter declares every filter kind the dataset's predicates use (``filters``); its
  ``fit_attributes`` runs inside the timed build and its ``filtered_query`` is what the timed loops call.
* **post** (every other adapter, or any with ``--filter-strategy post``): one generic strategy owned by
  the harness. In the timed build it indexes the attributes (:class:`~annbench.quality.predicates.AttributeIndex`:
  the tags' inverted index, the values sorted). Per query, inside the timed query: it estimates the
  predicate's selectivity ``s`` from that index (posting-list lengths; tags taken as independent), asks
  the adapter for ``k' = ceil(k / s)`` neighbours, drops the ids that fail the predicate, and doubles ``k'``
  until ``k`` pass or the whole index was asked (``k' = n``). A predicate the index shows no point can
  match (a tag nobody carries, an empty range) is answered empty without a search.

:class:`FilteredSearch` is what the timed loops of :mod:`annbench.execute.measure` are given in place of
the adapter: its queries are ``(vector, predicate)`` pairs.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence

import numpy as np

from annbench.backends.adapter import Adapter
from annbench.quality.predicates import AttributeIndex, Attributes, Predicate


class Strategy(enum.StrEnum):
    """How a run filters (the ``strategy`` attr of each result on a filtered dataset)."""

    NATIVE = "native"
    POST = "post"


#: ``--filter-strategy`` values: ``auto`` = native where the adapter declares the filters, else post.
STRATEGY_CHOICES = ("auto", "native", "post")
#: The suffix of a post-filtered run's algorithm name (its own curve beside the adapter's native one).
POST_SUFFIX = "+post"


def native_capable(adapter_cls: type[Adapter], kinds: Sequence[str]) -> bool:
    """Whether the adapter filters natively on every kind of ``kinds``."""
    return set(kinds) <= set(adapter_cls.filters)


def choose(adapter_cls: type[Adapter], kinds: Sequence[str], wanted: str) -> Strategy:
    """The strategy of ``adapter_cls`` on predicates of ``kinds`` for ``--filter-strategy wanted``;
    ValueError where ``native`` was asked of an adapter that cannot."""
    if wanted == "post":
        return Strategy.POST
    if native_capable(adapter_cls, kinds):
        return Strategy.NATIVE
    if wanted == "native":
        has = ", ".join(adapter_cls.filters) or "none"
        raise ValueError(f"it does not filter natively on {', '.join(kinds)} (its filters: {has}); valid: "
                         f"--filter-strategy post or auto")
    return Strategy.POST


def run_algorithm(algorithm: str, strategy: str) -> str:
    """The algorithm name a run is stored under: ``hnswlib`` (native or unfiltered), ``hnswlib+post``."""
    return f"{algorithm}{POST_SUFFIX}" if strategy == Strategy.POST else algorithm


class FilteredSearch:
    """An adapter as the timed loops call it on a filtered dataset: ``query((q, predicate), k)``."""

    def __init__(self, adapter: Adapter, strategy: Strategy) -> None:
        self.adapter = adapter
        self.strategy = strategy
        self._index: AttributeIndex | None = None

    def fit(self, X: np.ndarray, attrs: Attributes) -> None:
        """The timed build: the adapter's ``fit`` and the attributes (:meth:`fit_attributes`), natively before
        ``fit`` where the adapter declares ``attributes_first`` (a database loading each row with its attributes)."""
        first = self.strategy == Strategy.NATIVE and self.adapter.attributes_first
        if first:
            self.adapter.fit_attributes(attrs)
        self.adapter.fit(X)
        if not first:
            self.fit_attributes(attrs)

    def fit_attributes(self, attrs: Attributes) -> None:
        """Inside the timed build, after ``fit``: the adapter's own (native) or the post-filter's index."""
        if self.strategy == Strategy.NATIVE:
            self.adapter.fit_attributes(attrs)
        else:
            self._index = AttributeIndex(attrs)

    def query(self, row: tuple[np.ndarray, Predicate], k: int) -> np.ndarray:
        q, predicate = row
        if self.strategy == Strategy.NATIVE:
            return self.adapter.filtered_query(q, k, predicate)
        return self._post_filtered(q, k, predicate)

    def _post_filtered(self, q: np.ndarray, k: int, predicate: Predicate) -> np.ndarray:
        index = self._index
        assert index is not None, "fit_attributes runs before any query"
        s = index.estimate(predicate)
        if s == 0.0:
            return np.empty(0, dtype=np.int64)
        n = index.n
        asked = min(n, max(k, math.ceil(k / s)))
        while True:
            ids = np.asarray(self.adapter.query(q, asked)).ravel()
            kept = ids[index.matches(predicate, ids)]
            if len(kept) >= k or asked >= n:
                return kept[:k]
            asked = min(n, 2 * asked)

    #: Each query in turn, ``-1`` padded (no library's batch call takes one predicate per query): the
    #: base adapter's loop over :meth:`query`; no per-query latencies reported.
    batch_query = Adapter.batch_query
    batch_latencies_ns = Adapter.batch_latencies_ns
