"""Raw vs encoded side by side: the operating-point table and the compare command."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import call

from annbench.analyse.compare import related_datasets, side_by_side
from annbench.datasets.format import load_dataset


def _run(dataset: str, algorithm: str, recall: float, qps: float, build_s: float, knn: float) -> dict:
    return {"dataset": dataset, "algorithm": algorithm, "batch": False, "status": "ok", "recall": recall, "qps": qps,
            "build_s": build_s, "index_bytes": int(build_s * 1000), "knn_accuracy": knn, "knn_accuracy_exact": 0.9,
            "build_params": f'{{"b":{build_s}}}', "query_params": f'{{"q":{qps}}}'}


def test_operating_point_is_the_fastest_run_reaching_the_recall() -> None:
    frame = pd.DataFrame([
        _run("raw", "a", 0.85, 1000.0, 1.0, 0.70),
        _run("raw", "a", 0.92, 500.0, 2.0, 0.80),
        _run("raw", "a", 0.97, 300.0, 3.0, 0.85),
        _run("raw", "b", 0.80, 900.0, 1.0, 0.60),  # never reaches 0.9
        _run("enc", "a", 0.95, 700.0, 0.5, 0.88),
        {**_run("enc", "a", 0.99, 9000.0, 0.5, 0.9), "status": "error"},  # errors never count
    ])
    t = side_by_side(frame, ["enc", "raw"], 0.9)
    assert list(zip(t["dataset"], t["algorithm"])) == [("enc", "a"), ("raw", "a"), ("raw", "b")]
    raw_a = t.iloc[1]
    measured = (raw_a["qps_at_recall"], raw_a["recall"], raw_a["build_s"], raw_a["knn_accuracy"])
    assert measured == (500.0, 0.92, 2.0, 0.80)
    assert raw_a["index_bytes"] == 2000 and raw_a["best_recall"] == 0.97
    raw_b = t.iloc[2]
    assert np.isnan(raw_b["qps_at_recall"]) and np.isnan(raw_b["knn_accuracy"]) and raw_b["best_recall"] == 0.80
    assert t.iloc[0]["qps_at_recall"] == 700.0
    assert side_by_side(frame, ["raw"], 0.96).iloc[0]["qps_at_recall"] == 300.0


def test_points_measured_in_processes_carry_their_interval_and_the_process_test_against_raw() -> None:
    def run(dataset: str, algorithm: str, per: list[float]) -> dict:
        mean = float(np.mean(per))
        return {**_run(dataset, algorithm, 0.95, mean, 1.0, 0.8), "qps_processes": json.dumps(per),
                "qps_ci95_low": mean - 1, "qps_ci95_high": mean + 1}

    frame = pd.DataFrame([run("raw", "a", [100.0, 101.0, 99.0]), run("enc", "a", [200.0, 202.0, 198.0]),
                          run("raw", "b", [100.0, 130.0, 80.0]), run("enc", "b", [105.0, 80.0, 125.0]),
                          _run("enc", "c", 0.95, 50.0, 1.0, 0.8)])  # c: one process, nothing to test
    t = side_by_side(frame, ["raw", "enc"], 0.9).set_index(["dataset", "algorithm"])
    assert t.loc[("enc", "a"), "qps_vs_raw"] == pytest.approx(2.0, abs=0.001)
    assert t.loc[("enc", "a"), "qps_vs_raw_p"] < 0.001
    assert t.loc[("enc", "b"), "qps_vs_raw_p"] > 0.5  # the same within the processes' noise
    assert np.isnan(t.loc[("raw", "a"), "qps_vs_raw"]) and np.isnan(t.loc[("enc", "c"), "qps_vs_raw"])
    assert (t.loc[("enc", "a"), "qps_low"], t.loc[("enc", "a"), "qps_high"]) == (199.0, 201.0)


def test_related_datasets_are_the_raw_one_and_its_encodings_in_natural_order() -> None:
    available = ["mnist-784-euclidean", "fashion-mnist-784-euclidean", "mnist-encoded-mlp-32-euclidean",
                 "fashion-mnist-encoded-mlp-8-euclidean", "mnist-encoded-mlp-8-euclidean",
                 "mnist-encoded-cnn-128-euclidean"]
    assert related_datasets("mnist-784-euclidean", available) == [
        "mnist-784-euclidean", "mnist-encoded-cnn-128-euclidean", "mnist-encoded-mlp-8-euclidean",
        "mnist-encoded-mlp-32-euclidean"]


def test_subsets_belong_to_their_dataset_and_pair_with_the_same_subset_of_its_encodings() -> None:
    available = ["mnist-784-euclidean-test500", "mnist-encoded-mlp-32-euclidean-test500",
                 "mnist-encoded-mlp-32-euclidean", "mnist-encoded-mlp-8-euclidean-test500",
                 "mnist-784-euclidean-test50", "mnist-784-euclidean-train9-test500"]
    assert related_datasets("mnist-784-euclidean-test500", available) == [
        "mnist-784-euclidean-test500", "mnist-encoded-mlp-8-euclidean-test500",
        "mnist-encoded-mlp-32-euclidean-test500"]
    assert related_datasets("mnist-784-euclidean", available) == [
        "mnist-784-euclidean", "mnist-encoded-mlp-32-euclidean",
        "mnist-784-euclidean-test50",
        "mnist-784-euclidean-test500", "mnist-encoded-mlp-8-euclidean-test500",
        "mnist-encoded-mlp-32-euclidean-test500",
        "mnist-784-euclidean-train9-test500"]


def test_compare_command_puts_raw_and_encoded_side_by_side(data_dir, results_dir, tmp_path) -> None:
    from annbench.cli.compare import main as compare_main
    from annbench.cli.encode import main as encode_main
    from annbench.cli.run import main as run_main

    d = tmp_path / "data"
    d.mkdir()
    shutil.copy(data_dir / "digits-64-euclidean.hdf5", d)
    r = call(encode_main, "--from", "digits-64-euclidean", "--dim", "8", "--epochs", "2", "--data-dir", d,
             "--no-progress", "-q", "--binary")
    assert r.code == 0, r.err
    for dataset in ("digits-64-euclidean", "digits-encoded-mlp-8-euclidean"):
        r = call(run_main, "--dataset", dataset, "--algorithm", "bruteforce", "--runs", "1", "--data-dir", d,
                 "--results", results_dir, "--no-plot", "-q")
        assert r.code == 0, r.err
    out = tmp_path / "side.png"
    r = call(compare_main, "--dataset", "digits-64-euclidean", "--results", results_dir, "--data-dir", d,
             "--table", "csv", "--output", out)
    assert r.code == 0, r.err
    import io

    table = pd.read_csv(io.StringIO(r.out.rsplit("plot:", 1)[0]))
    assert list(table["dataset"]) == ["digits-64-euclidean", "digits-encoded-mlp-8-euclidean"]
    assert list(table["dimension"]) == [64, 8]
    assert np.isnan(table["net_accuracy"][0]) and 0 < table["net_accuracy"][1] <= 1
    assert (table["recall"] == 1.0).all() and (table["knn_accuracy"] == table["knn_accuracy_exact"]).all()
    assert out.stat().st_size > 0

    r = call(compare_main, "--dataset", "no-such", "--results", results_dir)
    assert r.code == 2 and "valid: digits-64-euclidean, digits-encoded-mlp-8-euclidean" in r.err

    subsets = tmp_path / "subsets"  # only runs of the first 50 queries: they belong to their datasets
    encodings = ["digits-encoded-mlp-8-euclidean-test50", "digits-encoded-mlp-8-hamming-test50"]
    for dataset in ("digits-64-euclidean", "digits-encoded-mlp-8-euclidean", "digits-encoded-mlp-8-hamming"):
        r = call(run_main, "--dataset", dataset, "--algorithm", "bruteforce", "--runs", "1", "--data-dir", d,
                 "--results", subsets, "--no-plot", "-q", "--max-test", "50", "--min-pass-time", "0",
                 "--executor", "inprocess")
        assert r.code == 0, r.err
    for name in ("digits-64-euclidean", "digits-64-euclidean-test50"):
        r = call(compare_main, "--dataset", name, "--results", subsets, "--table", "csv")  # no --data-dir
        assert r.code == 0, r.err
        table = pd.read_csv(io.StringIO(r.out))
        assert list(table["dataset"]) == ["digits-64-euclidean-test50", *encodings]  # raw, float and binary
        assert list(table["dimension"]) == [64, 8, 8]  # from the files the runs recorded
        # a subset's network is its parent's: the float and binary encodings' (one network) beside the raw NaN
        net = float(load_dataset(d / "digits-encoded-mlp-8-euclidean.hdf5").attrs["encoder_test_accuracy"])
        assert np.isnan(table["net_accuracy"][0]) and (table["net_accuracy"][1:] == net).all()
        assert table["knn_accuracy"].between(0.5, 1).all()
    from annbench.cli.plot import main as plot_main

    r = call(plot_main, "--dataset", "digits-64-euclidean", "--results", subsets, "--table", "csv")
    assert r.code == 0 and list(pd.read_csv(io.StringIO(r.out))["dataset"]) == ["digits-64-euclidean-test50"], r.err
