"""The contract every shipped adapter and grid must meet (issue: the backends).

Grid convention these tests rely on: in each config's ``quick`` group, every list is
ordered by increasing effort, so the last build setting is the highest-effort index and,
for each query parameter with the others held fixed, recall must not fall along its list.
"""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest

from annbench.backends.discovery import load_adapter
from annbench.core.paths import ALGORITHMS_DIR, CONFIGS_DIR
from annbench.plan.config import all_configs, check_against, load_config
from annbench.quality.distances import distances_to_ids
from annbench.quality.groundtruth import exact_knn
from annbench.quality.metrics import recall
from annbench.quality.points import SetRows, pack_bits, sets_from_lists

CONFIGS = all_configs([CONFIGS_DIR])
K = 10
NOISE = 0.02  # recall may dip this much between neighbouring query settings


def _cases() -> list[tuple[str, str]]:
    return [(name, m) for name, path in sorted(CONFIGS.items()) for m in load_config(path).metrics]


@pytest.fixture(scope="module")
def clustered() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from sklearn.datasets import make_blobs

    x, _ = make_blobs(n_samples=3200, n_features=16, centers=40, random_state=7)
    x = x.astype(np.float32)
    train, test = x[:3000], x[3000:]
    data = {m: (train, test, "float32") for m in ("euclidean", "angular", "ip")}
    # bits: 64-bit codes of clustered points (ann-benchmarks' random_bitstring: the sign of each coordinate),
    # clusters overlapping (wide blobs): well-separated ones leave graph indexes disconnected components
    y, _ = make_blobs(n_samples=3200, n_features=64, centers=40, cluster_std=6.0, random_state=7)
    bits = pack_bits(y > 0)
    data["hamming"] = (bits[:3000], bits[3000:], "bit")
    # sets: ann-benchmarks' random-s-jaccard distribution (20 items of 40 at random): no clusters to
    # leave a k-NN graph disconnected, many exact ties
    rng = np.random.default_rng(7)
    sets = [rng.choice(40, 20, replace=False) for _ in range(3200)]
    data["jaccard"] = (sets_from_lists(sets[:3000], 40), sets_from_lists(sets[3000:], 40), "set")
    return {m: (a, b, exact_knn(a, b, m, K)[1], t) for m, (a, b, t) in data.items()}


def _read_only(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    if isinstance(a, SetRows):
        return a.read_only()
    a.setflags(write=False)
    return a


def _digest(a: np.ndarray) -> str:
    parts = (a.data, a.indices, a.indptr) if isinstance(a, SetRows) else (a,)
    return hashlib.sha256(b"".join(p.tobytes() for p in parts)).hexdigest()


@pytest.mark.parametrize("algorithm", sorted(CONFIGS))
def test_shipped_config_validates_against_its_adapter(algorithm: str) -> None:
    config = load_config(CONFIGS[algorithm])
    assert config.algorithm == algorithm
    adapter = load_adapter(algorithm, [ALGORITHMS_DIR])  # an import failure fails here, never skips
    check_against(config, adapter)
    assert {"demo", "quick", "full"} <= set(config.groups)


@pytest.mark.parametrize(("algorithm", "metric"), _cases())
def test_adapter_contract(algorithm: str, metric: str, clustered) -> None:
    config = load_config(CONFIGS[algorithm])
    adapter_cls = load_adapter(algorithm, [ALGORITHMS_DIR])
    train, test, true_d, point_type = clustered[metric]
    train_ro, test_ro = _read_only(train), _read_only(test)
    before = (_digest(train_ro), _digest(test_ro))
    group = config.groups["quick"]
    adapter = adapter_cls(metric, threads=1, **group.build_settings()[-1])
    adapter.accept(point_type, 40 if point_type == "set" else train.shape[1] * (8 if point_type == "bit" else 1))
    adapter.fit(train_ro)
    size = adapter.index_size_bytes()
    if algorithm == "qdrant-local":  # its quick grid keeps the points in the client's memory: no files to size
        assert size is None and adapter.storage == "memory", f"{algorithm}: index_size_bytes() = {size}"
    else:
        assert size is not None and size > 0, f"{algorithm}: index_size_bytes() = {size}"

    settings = group.query_settings()
    recalls = []
    for params in settings:
        adapter.set_query_params(**params)
        ids = adapter.batch_query(test_ro, K)
        assert ids.shape == (len(test), K)
        recalls.append(recall(distances_to_ids(test, train, ids, metric), true_d, K).mean())
    # single-query mode answers like batch mode at the last setting
    single = np.full((len(test), K), -1)
    for i, q in enumerate(test_ro):
        r = np.asarray(adapter.query(q, K)).ravel()
        single[i, :len(r)] = r
    single_recall = recall(distances_to_ids(test, train, single, metric), true_d, K).mean()
    assert abs(single_recall - recalls[-1]) <= NOISE, (single_recall, recalls[-1])

    best = max(recalls)
    if adapter_cls.exact:
        assert min(recalls) == 1.0, f"{algorithm} is exact but recall={recalls}"
    else:
        assert best >= 0.95, f"{algorithm}/{metric}: best recall {best:.3f} over {settings}"
    # for each query parameter, others fixed, recall does not fall along its list
    names = list(group.query)
    for name in names:
        others = [n for n in names if n != name]
        for fixed in itertools.product(*(group.query[n] for n in others)):
            seq = [r for p, r in zip(settings, recalls) if all(p[o] == v for o, v in zip(others, fixed))]
            drops = [a - b for a, b in zip(seq, seq[1:]) if a - b > NOISE]
            assert not drops, f"{algorithm}/{metric}: recall falls along {name} (others {fixed}): {seq}"
    assert (_digest(train_ro), _digest(test_ro)) == before, "adapter modified its input arrays"
