"""Folders a sweep cannot write into: one line naming the folder and what is wrong, exit 2, before any
work (and mid-sweep, when the results folder fills up). Read-only and full folders are real tmpfs
mounts (the suite runs as root); without the right to mount, a read-only folder is one without write
permission (``permission denied``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import call

from annbench.cli.run import main as run_main
from annbench.core.folders import Folder, problem
from annbench.store.folder import ResultStore, read_attrs

DATASET = "random-xs-20-euclidean"

# the runbook ground-truth caches other tests of this worker write and replace beside the datasets: not needed
_DERIVED = shutil.ignore_patterns("*.runbook-*")


def _sweep(*args: object) -> tuple[int, str]:
    r = call(run_main, "--dataset", DATASET, "--algorithm", "bruteforce", "--runs", 1, "--no-plot", *args)
    return r.code, r.err


def _mount(where: Path, options: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True).returncode == 0


@pytest.fixture
def read_only(tmp_path: Path, data_dir: Path) -> Iterator[tuple[Path, str]]:
    """A read-only folder holding a copy of the session's data folder, and what the check says of it."""
    folder = tmp_path / "ro"
    if _mount(folder, "size=8m"):
        shutil.copytree(data_dir, folder / "data", ignore=_DERIVED)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        try:
            yield folder, "read-only file system"
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=True)
        return
    if os.geteuid() == 0:
        pytest.fail("running as root but `mount -t tmpfs` failed: this test needs a read-only file system")
    shutil.copytree(data_dir, folder / "data", ignore=_DERIVED)
    folder.chmod(0o555)
    (folder / "data").chmod(0o555)
    try:
        yield folder, "permission denied"
    finally:
        (folder / "data").chmod(0o755)
        folder.chmod(0o755)


@pytest.mark.parametrize("option", ["--results", "--data-dir"])
def test_a_file_where_a_folder_should_be(option: str, tmp_path: Path, data_dir: Path, results_dir: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    given = {"--results": results_dir, "--data-dir": data_dir, option: afile}
    role = "results" if option == "--results" else "data"
    code, err = _sweep(*(a for pair in given.items() for a in pair))
    assert code == 2 and err.strip() == f"error: {role} folder {afile} is a file", err
    code, err = _sweep(*(a for pair in {**given, option: afile / "sub"}.items() for a in pair))
    assert code == 2 and err.strip() == f"error: {role} folder {afile / 'sub'}: {afile} is a file", err
    assert not results_dir.exists() or not any(results_dir.rglob("*.hdf5"))


def test_a_file_as_the_temporary_folder(tmp_path: Path, data_dir: Path, results_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    monkeypatch.setenv("TMPDIR", str(afile))
    code, err = _sweep("--data-dir", data_dir, "--results", results_dir)
    assert code == 2 and err.strip() == f"error: temporary folder {afile} is a file", err
    assert not any(results_dir.rglob("*.hdf5"))


def test_read_only_results_and_data_folders(read_only: tuple[Path, str], data_dir: Path, results_dir: Path) -> None:
    folder, what = read_only
    code, err = _sweep("--data-dir", data_dir, "--results", folder / "results")
    assert code == 2 and err.strip() == f"error: results folder {folder / 'results'}: {what}", err
    code, err = _sweep("--data-dir", folder / "data", "--results", folder / "data")  # exists, not writable
    assert code == 2 and err.strip() == f"error: results folder {folder / 'data'}: {what}", err
    # a data folder that must receive the dataset; one that already holds it is fine read-only
    code, err = _sweep("--data-dir", folder / "new-data", "--results", results_dir)
    assert code == 2 and err.strip() == f"error: data folder {folder / 'new-data'}: {what}", err
    code, err = _sweep("--data-dir", folder / "data", "--results", results_dir)
    assert code == 0, err
    assert [read_attrs(p)["status"] for p in ResultStore(results_dir).paths()] == ["ok"]


def test_prepare_into_a_read_only_data_folder(read_only: tuple[Path, str]) -> None:
    folder, what = read_only
    r = call(run_main, "--dataset", DATASET, "--prepare", "--data-dir", folder / "new-data")
    assert r.code == 2 and r.err.strip() == f"error: data folder {folder / 'new-data'}: {what}", r.err


def test_results_folder_filling_up_mid_sweep(tmp_path: Path, data_dir: Path) -> None:
    """A results folder with room for a few runs: the runs it could still take are stored (some of them
    as failed, with the reason), and the sweep ends with the folder's line and exit 2, no traceback."""
    results = tmp_path / "small"
    if not _mount(results, "size=300k"):
        pytest.fail("`mount -t tmpfs` failed: this test needs a small file system of its own (run as root)")
    try:
        assert problem(Folder("results", results)) is None  # room at the start: the sweep begins
        r = call(run_main, "--dataset", DATASET, "--algorithm", "annoy,kdtree", "--runs", 1, "--no-plot",
                 "--data-dir", data_dir, "--results", results)
        assert r.code == 2, r.err
        assert r.err.strip().splitlines()[-1] == f"error: results folder {results}: no space left", r.err
        assert "Traceback" not in r.err
        statuses = [read_attrs(p)["status"] for p in ResultStore(results).paths()]
        assert statuses  # what the folder still took
        failed = [read_attrs(p)["error"] for p in ResultStore(results).paths() if read_attrs(p)["status"] == "error"]
        assert all("No space left" in e for e in failed), failed
    finally:
        subprocess.run(["umount", "-l", str(results)], check=True)
