"""What the adapter base owns: the metric-name map (``native_metrics``) and the unit-norm copies
(``normalize_for``), so that no adapter keeps its own map or normalises on its own."""

from __future__ import annotations

import numpy as np
import pytest

import annbench.backends.adapter as adapter_module
from annbench.backends.adapter import Adapter
from annbench.backends.discovery import load_adapter
from annbench.core.paths import ALGORITHMS_DIR, CONFIGS_DIR
from annbench.plan.config import all_configs

SHIPPED = sorted(all_configs([CONFIGS_DIR]))


class Recorder(Adapter):
    """Records what each call was given."""

    native_metrics = {"euclidean": "l2", "angular": "dot", "ip": "dot"}
    normalize_for = ("angular",)
    normalize_queries = True

    def fit(self, X):
        self.fitted = X

    def query(self, q, k):
        self.queried = q
        return np.arange(k)

    def batch_query(self, Q, k):
        self.batched = Q
        return np.zeros((len(Q), k), dtype=np.int64)


def _data() -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    x[3] = 0.0  # a zero row stays zero
    x.setflags(write=False)
    return x


def test_metrics_are_the_keys_of_native_metrics_and_read_only() -> None:
    assert Recorder.metrics == ("euclidean", "angular", "ip")
    a = Recorder("ip")
    assert a.metrics == Recorder.metrics and a.metric == "ip" and a.metric_name == "dot"
    with pytest.raises(AttributeError):
        Recorder.metrics = ("euclidean",)
    with pytest.raises(TypeError):
        Recorder.native_metrics["hamming"] = "x"


def test_the_declaration_of_old_still_works() -> None:
    class Old(Adapter):
        metrics = ("euclidean",)

        def fit(self, X): ...

        def query(self, q, k): ...

    assert Old.metrics == ("euclidean",) and dict(Old.native_metrics) == {"euclidean": "euclidean"}
    assert Old("euclidean").metric_name == "euclidean"


@pytest.mark.parametrize("algorithm", SHIPPED)
def test_an_unsupported_metric_is_refused_with_what_is_valid(algorithm: str) -> None:
    cls = load_adapter(algorithm, [ALGORITHMS_DIR])
    with pytest.raises(ValueError) as e:
        cls("manhattan", threads=1)
    assert str(e.value) == f"metric='manhattan'; valid: {', '.join(map(repr, cls.metrics))}"


def test_angular_fit_and_queries_get_read_only_unit_norm_float32_copies() -> None:
    x = _data()
    a = Recorder("angular")
    a.fit(x)
    a.query(x[1], 3)
    a.batch_query(x, 3)
    for got, want in ((a.fitted, x), (a.queried, x[1]), (a.batched, x)):
        assert got.dtype == np.float32 and got.flags.c_contiguous and not got.flags.writeable
        assert got is not want and not np.shares_memory(got, want)
        np.testing.assert_allclose(got, adapter_module.normalized(want))
    assert not a.fitted[3].any()
    assert not x.flags.writeable and np.array_equal(x, _data()), "the caller's array changed"


def test_other_metrics_fit_on_a_read_only_view_and_queries_pass_as_given() -> None:
    x = np.ascontiguousarray(_data())
    x.setflags(write=True)  # a writable caller array stays writable; the adapter's view is not
    a = Recorder("euclidean")
    a.fit(x)
    assert np.shares_memory(a.fitted, x) and not a.fitted.flags.writeable and x.flags.writeable
    q = x[1]
    a.query(q, 3)
    a.batch_query(x, 3)
    assert a.queried is q and a.batched is x


def test_fit_of_a_non_contiguous_float64_array_gets_contiguous_float32() -> None:
    a = Recorder("ip")
    a.fit(np.asfortranarray(_data().astype(np.float64)))
    assert a.fitted.dtype == np.float32 and a.fitted.flags.c_contiguous and not a.fitted.flags.writeable


def test_queries_are_not_normalised_unless_declared(monkeypatch) -> None:
    class TrainOnly(Recorder):
        normalize_queries = False

        def query(self, q, k):  # an override: undeclared, so given as is
            return super().query(q, k)

    x = _data()
    q = x[1]
    a = TrainOnly("angular")
    a.query(q, 3)
    a.batch_query(x, 3)
    assert a.queried is q and a.batched is x


def test_overrides_calling_super_prepare_once(monkeypatch) -> None:
    calls = []
    real = adapter_module.normalized
    monkeypatch.setattr(adapter_module, "normalized", lambda v: calls.append(len(v)) or real(v))

    class Wrapped(Recorder):  # as annbench.backends.inject's wrappers are
        def fit(self, X):
            super().fit(X)

        def query(self, q, k):
            super().query(q, k)
            return super().query(q, k)

    x = _data()
    a = Wrapped("angular")
    a.fit(x)
    a.query(x[1], 3)
    assert calls == [20, 4]
    np.testing.assert_allclose(a.queried, real(x[1]))


def test_declarations_are_checked_when_the_class_is_made() -> None:
    with pytest.raises(TypeError, match="native_metrics has 'cosine'; valid keys: 'euclidean', 'angular', 'ip'"):
        class Typo(Adapter):
            native_metrics = {"cosine": "cos"}
    with pytest.raises(TypeError, match="normalize_for has 'angular', which are not in its native_metrics"):
        class Unserved(Adapter):
            native_metrics = {"euclidean": "l2"}
            normalize_for = ("angular",)


def test_no_shipped_adapter_normalises_or_maps_metrics_on_its_own() -> None:
    adapters = sorted(ALGORITHMS_DIR.glob("*.py"))
    assert {"annoy.py", "bruteforce.py", "_faiss.py"} <= {p.name for p in adapters}, f"no adapters in {ALGORITHMS_DIR}"
    for path in adapters:
        text = path.read_text(encoding="utf-8")
        assert "normalized(" not in text and "linalg.norm" not in text, f"{path.name} normalises on its own"
        assert "[self.metric]" not in text, f"{path.name} maps metric names on its own (use self.metric_name)"
