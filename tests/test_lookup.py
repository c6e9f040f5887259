"""Lookups: keys, key expressions (checked against gensim), new strings, vectors; saved indexes; bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import SHARED_DATA, call

from annbench.apps.lookup import SAVEABLE, Lookup, index_folder, open_index
from annbench.backends.adapter import saveable
from annbench.backends.discovery import load_adapter
from annbench.cli.dataset import main as dataset_main
from annbench.core.errors import UserError
from annbench.core.paths import algorithm_dirs
from annbench.datasets.format import load_dataset
from annbench.datasets.registry import prepare
from annbench.quality.groundtruth import exact_knn

GLOVE = SHARED_DATA / "glove-subset" / "glove.6B.50d.first2446.txt"


@pytest.fixture(scope="module")
def glove_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("glove")
    r = call(dataset_main, "--data-dir", d, "create", "--from", GLOVE, "--distance", "angular", "--test-size", "200",
             "--name", "glove-small")
    assert r.code == 0, r.err
    return d


@pytest.fixture(scope="module")
def glove(glove_dir):
    return Lookup("glove-small", glove_dir, exact=True)


@pytest.mark.parametrize("positive,negative", [(["king", "woman"], ["man"]), (["paris", "germany"], ["france"]),
                                               (["good"], []), (["president"], ["war"]),
                                               (["city", "state", "country"], ["government", "world"])])
def test_expressions_equal_gensim_most_similar(glove, positive, negative) -> None:
    from gensim.models import KeyedVectors

    ds = glove.dataset
    kv = KeyedVectors(vector_size=ds.dimension)
    kv.add_vectors(list(ds.keys), np.asarray(ds.train))
    expected = kv.most_similar(positive=positive, negative=negative, topn=10)
    expression = " + ".join(positive) + "".join(f" - {n}" for n in negative)
    answer = glove.nearest(expression, 10)
    assert answer.keys == [w for w, _ in expected]
    np.testing.assert_allclose(answer.distances, [1 - s for _, s in expected], rtol=0, atol=1e-6)
    assert not set(answer.keys) & {*positive, *negative}


def test_expression_syntax(glove) -> None:
    assert glove.terms("king - man + woman") == [(1, "king"), (-1, "man"), (1, "woman")]
    assert glove.terms("king+woman") == [(1, "king"), (1, "woman")]
    assert glove.terms("- man + king") == [(-1, "man"), (1, "king")]
    from annbench.core.errors import UserError

    for bad in ("king +", "- + man", "  "):
        with pytest.raises(UserError):
            glove.terms(bad)


def test_key_lookup_excludes_itself_and_equals_brute_force(glove) -> None:
    ds = glove.dataset
    answer = glove.nearest("king", 5)
    own = list(ds.keys).index("king")
    q = ds.train[own]
    sims = ds.train @ q / (np.linalg.norm(ds.train, axis=1) * np.linalg.norm(q))
    sims[own] = -np.inf
    assert answer.keys == [str(ds.keys[i]) for i in np.argsort(-sims)[:5]]
    assert answer.majority_label is None and answer.labels == [None] * 5


#: Words of a small made-up vocabulary (GloVe's text format) for the tests that need no upstream file.
WORDS = ["king", "queen", "man", "woman", "prince", "princess", "boy", "girl", "father", "mother", "son", "daughter",
         *(f"word{i:03d}" for i in range(140))]


@pytest.fixture(scope="module")
def words(tmp_path_factory) -> Lookup:
    """A keyed angular dataset made from a word-vector text file (as the GloVe subset is), exact search."""
    d = tmp_path_factory.mktemp("words")
    rng = np.random.default_rng(3)
    lines = [f"{w} " + " ".join(f"{v:.5f}" for v in rng.standard_normal(6)) for w in WORDS]
    (d / "words.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = call(dataset_main, "--data-dir", d, "create", "--from", d / "words.txt", "--distance", "angular",
             "--test-size", "4", "--name", "words")
    assert r.code == 0, r.err
    return Lookup("words", d, exact=True)


def test_expressions_of_keys_without_upstream_files(words: Lookup) -> None:
    """The expression rules on a made-up vocabulary: parsing, the sum of signed unit vectors, its terms excluded
    from the answer, unknown keys named with the closest ones (the GloVe tests check the same against gensim)."""
    assert words.terms("king - man + woman") == [(1, "king"), (-1, "man"), (1, "woman")]
    assert words.terms("king+woman") == [(1, "king"), (1, "woman")]
    assert words.terms("- man + king") == [(-1, "man"), (1, "king")]
    for bad in ("king +", "- + man", "  "):
        with pytest.raises(UserError):
            words.terms(bad)
    ds = words.dataset
    keys = [str(k) for k in ds.keys]
    terms = [t for t in ("king", "man", "woman") if t in keys]  # the held-out queries may have taken one
    expression = " - ".join(terms[:2]) + "".join(f" + {t}" for t in terms[2:])
    unit = ds.train / np.linalg.norm(ds.train, axis=1, keepdims=True)
    signs = [1.0, -1.0, 1.0][:len(terms)]
    v = sum(s * unit[keys.index(t)] for s, t in zip(signs, terms))
    cosine = unit @ (v / np.linalg.norm(v))
    cosine[[keys.index(t) for t in terms]] = -np.inf
    answer = words.nearest(expression, 5)
    assert answer.keys == [keys[i] for i in np.argsort(-cosine, kind="stable")[:5]]
    np.testing.assert_allclose(answer.distances, 1 - np.sort(cosine)[::-1][:5], rtol=0, atol=1e-5)
    with pytest.raises(UserError, match=r"^key 'kingg' is not in dataset words; did you mean king\?"):
        words.nearest("kingg", 3)
    r = call(dataset_main, "--data-dir", ds.path.parent, "lookup", "words", f"{terms[0]} +")
    assert r.code == 2 and r.out == "" and r.err.strip() == (
        f"error: expression '{terms[0]} +' has an operator without a key beside it; valid: e.g. 'king - man + woman' "
        "(spaces around '-')")


@pytest.fixture(scope="module")
def surnames_dir(tmp_path_factory):
    """The first 2,000 train / 200 test surnames and their 12-d GRU encoding (2 epochs), with its encoder."""
    from annbench.cli.encode import main

    d = tmp_path_factory.mktemp("surnames")
    prepare("surnames-train2000-test200", d, SHARED_DATA)
    r = call(main, "--from", "surnames-train2000-test200", "--model", "gru", "--dim", "12", "--epochs", "2",
             "--data-dir", d, "--no-progress", "-q")
    assert r.code == 0, r.err
    return d


ENCODED = "surnames-train2000-test200-encoded-gru-12-euclidean"


def test_every_row_of_a_repeated_key_is_reported_and_the_query_key_excluded(surnames_dir) -> None:
    lookup = Lookup(ENCODED, surnames_dir, exact=True)
    keys = list(lookup.dataset.keys)
    repeated = next(k for k in keys if keys.count(k) > 1)
    rows = [i for i, k in enumerate(keys) if k == repeated]
    vector = lookup.dataset.train[rows[0]]
    ids, dists = lookup.search(vector, len(rows) + 3)
    assert set(rows) <= set(ids[:len(rows)].tolist()) and np.allclose(dists[:len(rows)], 0, atol=1e-6)
    answer = lookup.nearest(repeated, 10)
    assert repeated not in answer.keys and len({n.row for n in answer.neighbours}) == 10
    # a vector query excludes nothing: every row of that key comes first
    by_vector = lookup.nearest(np.asarray(vector), len(rows))
    assert sorted(n.row for n in by_vector.neighbours) == rows


def test_text_is_encoded_with_the_saved_network_and_labels_vote(surnames_dir) -> None:
    lookup = Lookup(ENCODED, surnames_dir, exact=True)
    ds = lookup.dataset
    i = 11
    np.testing.assert_allclose(lookup.text_vector(ds.keys[i]), ds.train[i], rtol=0, atol=1e-6)
    answer = lookup.nearest(ds.keys[i], 9, text=True)  # a string: nothing excluded, so it finds itself
    assert answer.neighbours[0].distance == pytest.approx(0, abs=1e-6) and answer.keys[0] == ds.keys[i]
    names = json.loads(ds.attrs["label_names"])
    assert answer.labels == [names[ds.train_labels[n.row]] for n in answer.neighbours]
    votes = {label: answer.labels.count(label) for label in answer.labels}
    assert votes[answer.majority_label] == max(votes.values())
    r = call(dataset_main, "--data-dir", surnames_dir, "lookup", ENCODED, "--text", "Nakamura", "-k", "4", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["query"] == "text 'Nakamura'" and len(out["neighbours"]) == 4 and out["how"] == "exact"
    assert {"rank", "row", "key", "distance", "label"} == set(out["neighbours"][0])
    expected = lookup.nearest("Nakamura", 4, text=True)
    assert [n["key"] for n in out["neighbours"]] == expected.keys


def test_a_saved_annoy_index_is_used_and_memory_mapped(surnames_dir) -> None:
    r = call(dataset_main, "--data-dir", surnames_dir, "index", ENCODED, "--algorithm", "annoy", "--build",
             "n_trees=20", "--query", "search_k=20000")
    assert r.code == 0, r.err
    folder = index_folder(surnames_dir / f"{ENCODED}.hdf5")
    meta = json.loads((folder / "index.json").read_text())
    ds = load_dataset(surnames_dir / f"{ENCODED}.hdf5")
    assert meta["algorithm"] == "annoy" and meta["build"] == {"n_trees": 20} and meta["query"] == {"search_k": 20000}
    assert meta["dataset_checksum"] == ds.checksum and meta["build_s"] > 0 and (folder / "index.ann").is_file()
    saved = Lookup(ENCODED, surnames_dir)
    assert saved.how == "annoy n_trees=20,search_k=20000 (saved index)"
    exact = Lookup(ENCODED, surnames_dir, exact=True)
    # search_k covers every train point here, so the saved index answers as the exact search
    for key in ds.test_keys[:20]:
        assert saved.nearest(key, 10).keys == exact.nearest(key, 10).keys
    r = call(dataset_main, "--data-dir", surnames_dir, "lookup", ENCODED, ds.test_keys[0], "-k", "3")
    assert r.code == 0 and "(saved index)" in r.out.splitlines()[0] and "majority label of the 3" in r.out
    with open("/proc/self/maps") as maps:  # annoy maps its file instead of reading it
        assert str(folder / "index.ann") in maps.read()
    # --query overrides the saved query parameters; the saved ones stay in index.json
    low = Lookup(ENCODED, surnames_dir, query={"search_k": 10})
    assert low.how == "annoy n_trees=20,search_k=10 (saved index)" and low.index.search_k == 10
    assert json.loads((folder / "index.json").read_text())["query"] == {"search_k": 20000}


def test_a_saved_index_for_another_checksum_is_refused(surnames_dir, tmp_path) -> None:
    shutil.copy(surnames_dir / f"{ENCODED}.hdf5", tmp_path)
    r = call(dataset_main, "--data-dir", tmp_path, "index", ENCODED, "--algorithm", "hnswlib", "--build", "M=8")
    assert r.code == 0, r.err
    meta_path = index_folder(tmp_path / f"{ENCODED}.hdf5") / "index.json"
    meta = json.loads(meta_path.read_text())
    meta["dataset_checksum"] = "sha256:" + "0" * 64
    meta_path.write_text(json.dumps(meta))
    r = call(dataset_main, "--data-dir", tmp_path, "lookup", ENCODED, "Abel")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    assert "was built for dataset checksum sha256:000" in r.err and "--exact" in r.err
    key = load_dataset(tmp_path / f"{ENCODED}.hdf5").keys[0]
    r = call(dataset_main, "--data-dir", tmp_path, "lookup", ENCODED, key, "--exact")
    assert r.code == 0, r.err


@pytest.mark.parametrize("algorithm,build,query", [
    ("annoy", {"n_trees": 5}, {"search_k": 200}),
    ("hnswlib", {"M": 8, "ef_construction": 50}, {"ef": 20}),
    ("faiss-flat", {}, {}),
    ("faiss-ivf", {"nlist": 16}, {"nprobe": 2}),
    ("faiss-hnsw", {"M": 8, "efConstruction": 40}, {"efSearch": 16}),
    ("faiss-ivfpq", {"nlist": 16, "M": 4}, {"nprobe": 2, "k_factor": 4}),
    ("usearch", {"connectivity": 8}, {"expansion_search": 32}),
    ("nmslib-hnsw", {"M": 8, "efConstruction": 50}, {"efSearch": 20}),
])
@pytest.mark.parametrize("metric", ["angular", "euclidean"])
def test_every_saveable_adapter_answers_the_same_after_loading(data_dir, tmp_path, algorithm, build, query,
                                                               metric) -> None:
    ds = load_dataset(data_dir / f"random-xs-20-{metric}.hdf5")
    cls = load_adapter(algorithm, algorithm_dirs())
    assert saveable(cls) and algorithm in SAVEABLE
    built = cls(metric, **build)
    built.fit(ds.train)
    built.set_query_params(**query)
    before = [np.asarray(built.query(q, 10)).ravel().tolist() for q in ds.test[:30]]
    built.save(tmp_path)
    loaded = cls(metric, **build)
    loaded.load(tmp_path, ds.dimension)
    loaded.set_query_params(**query)
    assert [np.asarray(loaded.query(q, 10)).ravel().tolist() for q in ds.test[:30]] == before
    truth = exact_knn(ds.train, ds.test[:30], metric, 10)[0]
    hits = np.mean([len(set(b) & set(t)) / 10 for b, t in zip(before, truth.tolist())])
    assert hits > 0.5  # a real index, not an empty one


@pytest.mark.parametrize("algorithm", ["kdtree", "nmslib-swgraph", "bruteforce"])
def test_an_algorithm_that_cannot_save_is_refused(data_dir, tmp_path, algorithm) -> None:
    shutil.copy(data_dir / "random-xs-20-euclidean.hdf5", tmp_path)
    r = call(dataset_main, "--data-dir", tmp_path, "index", "random-xs-20-euclidean", "--algorithm", algorithm)
    assert r.code == 2 and r.err.strip() == (f"error: {algorithm} cannot save its index; valid: an algorithm with a "
                                             f"save/load hook ({', '.join(SAVEABLE)})")
    assert not index_folder(tmp_path / "random-xs-20-euclidean.hdf5").exists()


def test_vector_queries_and_datasets_without_keys(data_dir, tmp_path) -> None:
    ds = load_dataset(data_dir / "digits-64-euclidean.hdf5")
    np.save(tmp_path / "q.npy", ds.test[3])
    r = call(dataset_main, "--data-dir", data_dir, "lookup", "digits-64-euclidean", "--vector", tmp_path / "q.npy",
             "-k", "5", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert [n["row"] for n in out["neighbours"]] == ds.neighbors[3, :5].tolist()
    assert [n["key"] for n in out["neighbours"]] == [str(i) for i in ds.neighbors[3, :5]]
    np.testing.assert_allclose([n["distance"] for n in out["neighbours"]], ds.distances[3, :5], rtol=1e-5)
    assert out["majority_label"] == str(np.bincount(ds.train_labels[ds.neighbors[3, :5]]).argmax())
    np.save(tmp_path / "bad.npy", ds.test[3, :10])
    r = call(dataset_main, "--data-dir", data_dir, "lookup", "digits-64-euclidean", "--vector", tmp_path / "bad.npy")
    assert r.code == 2 and "valid: 64 finite numbers" in r.err and len(r.err.strip().splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (["glove-small", "kingg"], "error: key 'kingg' is not in dataset glove-small; did you mean king, taking, making?"),
    (["glove-small", "king - mann + woman"],
     "error: term of expression 'king - mann + woman': 'mann' is not in dataset glove-small; did you mean man, mean, "
     "many?"),
    (["glove-small", "--text", "Nakamura"], "error: dataset glove-small has no saved encoder"),
    (["glove-small", "king", "-k", "2247"], "error: k=2247 is out of range for the 2246 train points of dataset "
                                            "glove-small; valid: 1..2246"),
    (["glove-small"], "error: lookup needs exactly one of QUERY, --text STRING or --vector FILE.npy; got none"),
    (["glove-small", "king", "--text", "x"], "error: lookup needs exactly one of QUERY, --text STRING or --vector "
                                             "FILE.npy; got QUERY, --text"),
    (["glove-small", "king +"], "error: expression 'king +' has an operator without a key beside it"),
    (["glove-small", "king", "--vector", "nothere.npy"], "error: lookup needs exactly one"),
])
def test_bad_input_is_one_line_and_exit_2(glove_dir, args, message) -> None:
    r = call(dataset_main, "--data-dir", glove_dir, "lookup", *args)
    assert r.code == 2 and r.err.startswith(message) and len(r.err.strip().splitlines()) == 1, r.err
    assert r.out == ""


def test_majority_label_ties_go_to_the_smallest_label() -> None:
    from annbench.apps.lookup import majority

    assert majority(np.array([3, 1, 3, 1, 2])) == 1 and majority(np.array([2, 2, 1])) == 2
    assert majority(np.array([], dtype=np.int64)) is None


def test_lookup_cli_output_lists_rank_key_distance(glove_dir) -> None:
    r = call(dataset_main, "--data-dir", glove_dir, "lookup", "glove-small", "king - man + woman", "-k", "3")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "nearest keys of 'king - man + woman' in glove-small (angular, exact):"
    assert [ln.split()[:2] for ln in lines[1:]] == [["1", "daughter"], ["2", "kingdom"], ["3", "son"]]
    assert open_index(load_dataset(glove_dir / "glove-small.hdf5")) is None
