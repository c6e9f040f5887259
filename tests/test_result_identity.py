"""A stored result counts as finished only for the measurement it made: the dataset's content, k,
mode, threads, runs, every other run option and the measurement contract (issue 13, section 1)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import call

from annbench.analyse.frames import results_frame
from annbench.cli.dataset import main as dataset_main
from annbench.cli.plot import main as plot_main
from annbench.cli.run import main as run_main
from annbench.core.results import (
    MEASUREMENT_CONTRACT,
    Reason,
    RunKey,
    RunResult,
    Status,
    batch_suffix,
    measurement,
    measurement_changes,
    run_name,
)
from annbench.plan.grid import RunOptions
from annbench.plan.task import Ended
from annbench.store.folder import ResultStore, read_attrs, read_result


def _snapshot(results: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(results.rglob("*.hdf5"))}


def _create(tmp_path: Path, data: Path, seed: int, *extra: str) -> None:
    vectors = np.random.default_rng(seed).normal(size=(1200, 8)).astype(np.float32)
    np.save(tmp_path / f"a{seed}.npy", vectors)
    r = call(dataset_main, "create", "--from", tmp_path / f"a{seed}.npy", "--name", "mine", "--distance", "euclidean",
             "--test-size", 50, "--data-dir", data, *extra)  # --data-dir after the subcommand (section 6)
    assert r.code == 0, r.err


def _sweep(data: Path, results: Path, algorithms: str, *extra: object):
    r = call(run_main, "--dataset", "mine", "--algorithm", algorithms, "--runs", 1, "--data-dir", data,
             "--results", results, "--no-plot", *extra)
    assert r.code == 0, r.err
    return r


def test_recreated_dataset_is_measured_again_in_place_and_mixing_is_warned(tmp_path: Path) -> None:
    data, results = tmp_path / "data", tmp_path / "results"
    _create(tmp_path, data, seed=1)
    first = _sweep(data, results, "bruteforce,kdtree")
    assert "2 runs done" in first.out and "different contents" not in first.out
    files = sorted(ResultStore(results).paths())
    old_checksums = {p: read_attrs(p)["dataset_checksum"] for p in files}

    _create(tmp_path, data, 2, "--force")  # same name, other vectors
    again = _sweep(data, results, "bruteforce")
    assert "1 runs done, 0 failed, 0 already stored" in again.out, again.out
    assert "1 of 1 stored runs measured other work, run again: dataset checksum changed" in again.err
    assert sorted(ResultStore(results).paths()) == files  # replaced in place: one file per key
    frame = results_frame(results).set_index("algorithm")
    assert frame.loc["bruteforce", "dataset_checksum"] != frame.loc["kdtree", "dataset_checksum"]
    # kdtree's run is of the old vectors: the summary and every table say so
    assert "warning: dataset mine: these runs were measured on 2 different contents of its file" in again.out
    table = call(plot_main, "--results", results, "--table", "text")
    assert table.code == 0 and "measured on 2 different contents" in table.err and "bruteforce" in table.err

    last = _sweep(data, results, "bruteforce,kdtree")
    assert "1 runs done, 0 failed, 1 already stored" in last.out, last.out
    assert sorted(ResultStore(results).paths()) == files
    new = {p: read_attrs(p)["dataset_checksum"] for p in files}
    assert len(set(new.values())) == 1 and not set(new.values()) & set(old_checksums.values())
    assert "different contents" not in last.out
    quiet = call(plot_main, "--results", results, "--table", "text")
    assert quiet.code == 0 and "different contents" not in quiet.err


def test_more_runs_re_measure_and_the_same_options_store_nothing_new(tmp_path: Path) -> None:
    data, results = tmp_path / "data", tmp_path / "results"
    _create(tmp_path, data, seed=3)
    _sweep(data, results, "bruteforce")
    [path] = ResultStore(results).paths()
    assert json.loads(read_attrs(path)["measurement"])["runs"] == 1
    three = _sweep(data, results, "bruteforce", "--runs", 3)
    assert "1 runs done" in three.out and "runs 1 → 3" in three.err
    assert list(ResultStore(results).paths()) == [path]
    attrs = read_attrs(path)
    assert attrs["runs"] == 3 and json.loads(attrs["measurement"])["runs"] == 3 and len(attrs["measurement_hash"]) == 16
    before = _snapshot(results)
    same = _sweep(data, results, "bruteforce", "--runs", 3)
    assert "0 runs done, 0 failed, 1 already stored" in same.out and "other work" not in same.err
    assert _snapshot(results) == before


def test_results_of_an_earlier_annbench_are_measured_again(tmp_path: Path) -> None:
    data, results = tmp_path / "data", tmp_path / "results"
    _create(tmp_path, data, seed=4)
    _sweep(data, results, "bruteforce")
    [path] = ResultStore(results).paths()
    with h5py.File(path, "r+") as f:  # what every result written before measurement contract 2 looks like
        del f.attrs["measurement"], f.attrs["measurement_hash"]
    r = _sweep(data, results, "bruteforce")
    assert "1 runs done" in r.out and "written by an annbench older than measurement contract 2" in r.err
    assert "measurement" in read_attrs(path)


def test_every_run_option_but_force_is_part_of_the_measurement() -> None:
    @dataclasses.dataclass(frozen=True)
    class Later(RunOptions):  # fields a later change adds to RunOptions join without touching this code
        policy: str = "one-pass"
        budget: float = 0.2

    defaults = RunOptions()
    m = measurement(Later(k=5, runs=2, batch=True, threads=2, force=True, processes=3), "xxh3:abc")
    assert m == {"contract": MEASUREMENT_CONTRACT, "dataset_checksum": "xxh3:abc", "k": 5, "runs": 2, "batch": True,
                 "threads": 2, "warmup": defaults.warmup, "min_pass_time": defaults.min_pass_time,
                 "processes": 3, "policy": "one-pass", "budget": 0.2}
    # one measuring process is what a result stored before --processes existed measured
    assert "processes" not in measurement(Later(processes=1), "x")
    assert measurement(Later(force=True), "x") == measurement(Later(force=False), "x")
    changed = measurement(Later(runs=3, budget=0.5), "y")
    assert measurement_changes(measurement(Later(runs=1), "x"), changed) == [
        "budget 0.2 → 0.5", "dataset checksum changed (x… → y…)", "runs 1 → 3"]
    old = {**changed, "contract": 1}
    del old["policy"]
    assert measurement_changes(old, changed) == ['measurement contract 1 → 2', 'policy unset → "one-pass"']


@pytest.mark.parametrize("field", ["k", "batch", "threads"])
def test_fields_in_the_result_path_are_in_the_measurement_too(field: str) -> None:
    base = RunOptions()
    other = dataclasses.replace(base, **{field: {"k": 20, "batch": True, "threads": 2}[field]})
    assert measurement_changes(measurement(base, "c"), measurement(other, "c"))[0].startswith(field)


def _stored_attrs(path: Path) -> dict[str, tuple[object, str, tuple[int, ...]]]:
    """Every attr of a result file with its HDF5 type and shape: what a reader of the file sees."""
    with h5py.File(path, "r") as f:
        return {n: (f.attrs[n], str(f.attrs.get_id(n).dtype), f.attrs.get_id(n).shape) for n in f.attrs}


def test_statuses_and_reasons_are_stored_as_the_plain_strings_of_before(tmp_path: Path) -> None:
    assert {s.value for s in Status} == {"ok", "error", "skipped"}
    assert {e.value for e in Ended} == {"ok", "exit", "signal", "timeout", "memory", "start", "worker"}
    assert {r.value for r in Reason} == {"exception", "dominated"}
    key = RunKey("mine", 10, "kdtree", True, {"leaf_size": 40}, {})
    attrs = {"timestamp": "2024-01-01T00:00:00", "exit_code": -9}
    as_enums = RunResult(key, Status.ERROR, error="killed", attrs={**attrs, "reason": Ended.MEMORY,
                                                                   "then": [Reason.EXCEPTION]})
    as_strings = RunResult(key, "error", error="killed", attrs={**attrs, "reason": "memory", "then": ["exception"]})
    enums, strings = ResultStore(tmp_path / "enums"), ResultStore(tmp_path / "strings")
    assert _stored_attrs(enums.write(as_enums)) == _stored_attrs(strings.write(as_strings))
    stored = read_attrs(enums.path_for(key))
    assert type(stored["status"]) is str and type(stored["reason"]) is str and stored["then"] == ["exception"]


def test_mappings_and_lists_come_back_decoded_and_the_parameters_as_canonical_text(tmp_path: Path) -> None:
    key = RunKey("mine", 10, "kdtree", False, {"leaf_size": 40}, {"q": 1})
    versions, cores, note = {"numpy": "2.1", "scikit-learn": "1.5"}, [[0], [1]], '{"not": "decoded"}'
    result = RunResult(key, Status.OK, attrs={"library_versions": versions, "client_cores": cores, "note": note,
                                              "pair": (1, 2), "measurement": '{"runs":1}'}, metrics={"recall": 1.0})
    store = ResultStore(tmp_path)
    path = store.write(result)
    stored = read_attrs(path)
    assert stored["library_versions"] == versions and stored["client_cores"] == cores and stored["pair"] == [1, 2]
    assert stored["note"] == note  # text that looks like JSON but was text stays text
    assert stored["build_params"] == '{"leaf_size":40}' and stored["query_params"] == '{"q":1}'
    assert stored["measurement"] == '{"runs":1}' and "json_attrs" not in stored
    # read back and written again: the same file content
    again = ResultStore(tmp_path / "again").write(read_result(path, key))
    assert _stored_attrs(again) == _stored_attrs(path)
    # a result written before json_attrs existed: its mappings and lists are decoded too
    with h5py.File(path, "a") as f:
        del f.attrs["json_attrs"]
    legacy = read_attrs(path)
    assert legacy["library_versions"] == versions and legacy["client_cores"] == cores
    assert legacy["build_params"] == '{"leaf_size":40}' and legacy["measurement"] == '{"runs":1}'


def test_batch_runs_keep_their_folder_and_label_names(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    key = RunKey("mine", 10, "kdtree", True, {"leaf_size": 40}, {"q": 1})
    assert store.path_for(key).parent == tmp_path / "mine" / "10" / "kdtree-batch"
    assert store.log_dir("mine", 10, "kdtree", True) == tmp_path / "mine" / "10" / "logs" / "kdtree-batch"
    assert key.label() == 'kdtree-batch {"leaf_size":40} {"q":1}'
    assert run_name("kdtree", False) == "kdtree" and batch_suffix(False) == "" and batch_suffix(True) == "-batch"
