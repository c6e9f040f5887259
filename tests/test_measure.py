"""The measurement contract: warm-up + R passes, every pass kept, one pass's values stored together."""

from __future__ import annotations

import numpy as np
import pytest

import annbench.measure as measure
from annbench.adapter import Adapter
from annbench.measure import ResultError, batch_passes, single_query_passes


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class PassAware(Adapter):
    """Each pass takes a scripted time per query and answers with its own pass number."""

    def __init__(self, clock: FakeClock, per_query_ns: list[int]) -> None:
        super().__init__("euclidean")
        self.clock, self.per_query_ns, self.calls = clock, per_query_ns, 0

    def fit(self, X: np.ndarray) -> None:
        pass

    def query(self, q: np.ndarray, k: int) -> np.ndarray:
        pass_no = self.calls // 4
        self.calls += 1
        self.clock.now += self.per_query_ns[pass_no]
        return np.full(k, pass_no)[:1]


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(measure.time, "perf_counter_ns", c)
    return c


def test_single_query_mode_keeps_every_pass_and_stores_the_fastest(clock: FakeClock) -> None:
    # pass 0 is the warm-up (fastest of all, and never counted); then passes 1..3
    adapter = PassAware(clock, [1, 50, 20, 30])
    m = single_query_passes(adapter, np.zeros((4, 2), dtype=np.float32), k=3, runs=3)
    assert m.pass_times_ns.tolist() == [200, 80, 120]
    assert m.best_pass == 1
    assert m.latencies_ns.tolist() == [20, 20, 20, 20]
    assert (m.neighbors[:, 0] == 2).all() and (m.neighbors[:, 1:] == -1).all()  # answers of that same pass


def test_batch_mode_times_the_whole_call_and_keeps_no_latencies(clock: FakeClock) -> None:
    class Batch(PassAware):
        def batch_query(self, Q: np.ndarray, k: int) -> np.ndarray:
            return np.stack([np.resize(self.query(q, k), k) + np.arange(k) for q in Q])

    m = batch_passes(Batch(clock, [5, 7, 3]), np.zeros((4, 2), dtype=np.float32), k=2, runs=2)
    assert m.pass_times_ns.tolist() == [28, 12]
    assert m.best_pass == 1 and m.latencies_ns is None
    assert m.neighbors.tolist() == [[2, 3]] * 4


def test_wrong_result_shapes_are_errors(clock: FakeClock) -> None:
    class TooMany(PassAware):
        def query(self, q: np.ndarray, k: int) -> np.ndarray:
            return np.arange(k + 1)

    with pytest.raises(ResultError, match="expected at most 3 ids"):
        single_query_passes(TooMany(clock, [1]), np.zeros((2, 2), dtype=np.float32), k=3, runs=1)

    class Floats(PassAware):
        def query(self, q: np.ndarray, k: int) -> np.ndarray:
            return np.array([0.5, np.nan])

    with pytest.raises(ResultError, match="non-integer ids"):
        single_query_passes(Floats(clock, [1]), np.zeros((2, 2), dtype=np.float32), k=3, runs=1)


def test_peak_memory_growth_sees_a_temporary_allocation() -> None:
    with measure.peak_memory_growth() as grown:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        del block
    assert grown["bytes"] >= 48 * 2**20
