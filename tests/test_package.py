"""annbench as installable software: a built wheel holds the whole harness, runs from any folder,
and the tested versions in constraints.txt are the ones installed here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from conftest import REPO, call, write_backend

from annbench.__main__ import SUBCOMMANDS, main
from annbench.backends.discovery import load_adapter
from annbench.core.errors import UserError
from annbench.core.paths import ALGORITHMS_DIR, CONFIGS_DIR

CONSTRAINTS = REPO / "constraints.txt"


def _canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them: case, ``-``, ``_`` and ``.`` do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[_canonical(metadata.distribution(name).metadata["Name"] if _installed(name) else name)] = version
    return pins


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(argv)} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, installed into a fresh virtual environment outside it.

    Offline: the wheel is built without build isolation, and the new environment sees this one's
    third-party packages through a ``.pth`` line (annbench itself is the wheel's copy: the editable
    install's hook is not loaded there); ``pip check`` then proves every requirement is met."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "annbench", src / "annbench", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "dist"), str(src)],
         tmp, env)
    wheel = next((tmp / "dist").glob("annbench-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp, env)
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp, env).stdout.strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_host_packages.pth").write_text("\n".join(sorted(ours)) + "\n")
    _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "--ignore-installed",
          "-c", str(CONSTRAINTS), str(wheel)], tmp, env)
    _run([*pip, "--python", str(python), "check"], tmp, env)
    return venv


def test_the_wheel_runs_the_harness_from_an_empty_folder(installed_wheel: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "ANNBENCH_DATA_DIR",
                                                           "ANNBENCH_RESULTS_DIR", "ANNBENCH_ALGORITHMS_PATH",
                                                           "ANNBENCH_CONFIGS_PATH")}
    work = tmp_path / "empty"
    work.mkdir()
    exe = installed_wheel / "bin" / "annbench"
    where = _run([str(installed_wheel / "bin" / "python"), "-c", "import annbench; print(annbench.__file__)"],
                 work, env).stdout
    assert str(installed_wheel) in where and str(REPO) not in where, where
    listed = _run([str(exe), "run", "--list-algorithms"], work, env).stdout
    shipped = sorted(p.stem for p in CONFIGS_DIR.glob("*.yml"))
    assert len(shipped) >= 18
    for name in shipped:
        assert re.search(rf"^\s*{re.escape(name)}\b", listed, re.M), (name, listed)
    # measured briefly (one process, no warm-up, passes of one repetition): what is tested is the package
    _run([str(exe), "run", "--dataset", "random-xs-20-euclidean", "--algorithm", "bruteforce,annoy", "--runs", "1",
          "--processes", "1", "--warmup", "none", "--min-pass-time", "0"], work, env)
    assert (work / "datasets" / "random-xs-20-euclidean.hdf5").is_file()
    logs = list((work / "results").rglob("*.log"))
    assert logs and all("Traceback" not in p.read_text() for p in logs)
    csv = _run([str(exe), "plot", "--table", "csv"], work, env).stdout
    header, *rows = csv.strip().splitlines()
    columns = header.split(",")
    algorithms = {r.split(",")[columns.index("algorithm")] for r in rows}
    assert algorithms == {"bruteforce", "annoy"}, csv
    recall = [float(r.split(",")[columns.index("recall")]) for r in rows
              if r.split(",")[columns.index("algorithm")] == "bruteforce"]
    assert recall and min(recall) == 1.0, csv


def test_shipped_adapters_and_grids_are_package_data() -> None:
    assert ALGORITHMS_DIR.parent.parent == Path(__import__("annbench").__file__).parent
    assert {p.stem.replace("_", "-") for p in ALGORITHMS_DIR.glob("[!_]*.py")} == {p.stem for p in
                                                                                  CONFIGS_DIR.glob("*.yml")}
    assert not (REPO / "algorithms").exists() and not (REPO / "configs").exists()


def test_constraints_pin_what_is_installed_and_cover_every_requirement() -> None:
    pins = _pins()
    assert pins, "constraints.txt pins nothing"
    wrong = {n: (v, metadata.version(n)) for n, v in pins.items()
             if _installed(n) and metadata.version(n).split("+")[0] != v}
    assert not wrong, f"constraints.txt differs from what is installed (pinned, installed): {wrong}"
    requirements = metadata.requires("annbench") or []
    names = {_canonical(re.split(r"[\s;<>=!~\[]", r, 1)[0]) for r in requirements}
    names.discard("annbench")
    unpinned = sorted(n for n in names if n not in pins)
    assert not unpinned, f"requirements without a tested version in constraints.txt: {unpinned}"
    exact = [r for r in requirements if "==" in r.split(";")[0]]
    assert not exact, f"pyproject.toml pins exact versions (put them in constraints.txt): {exact}"


def test_every_backend_library_is_an_extra_and_all_installs_them_all() -> None:
    requirements = metadata.requires("annbench") or []
    extras = set(metadata.metadata("annbench").get_all("Provides-Extra") or [])
    all_line = next(r for r in requirements if 'extra == "all"' in r)
    in_all = set(re.search(r"\[(.*)\]", all_line).group(1).split(","))
    # the databases have an extra each too, and one `databases` extra that installs them all
    databases_line = next(r for r in requirements if 'extra == "databases"' in r)
    in_all |= set(re.search(r"\[(.*)\]", databases_line).group(1).split(","))
    def extras_of(library: str) -> set[str]:
        return {m.group(1) for r in requirements if re.split(r"[\s;<>=!~\[]", r, 1)[0].lower() == library.lower()
                for m in [re.search(r'extra == "([^"]+)"', r)] if m}

    for path in sorted(ALGORITHMS_DIR.glob("[!_]*.py")):
        adapter = load_adapter(path.stem.replace("_", "-"), [ALGORITHMS_DIR])
        own = [lib for lib in adapter.libraries if lib not in ("numpy", "scikit-learn")]  # the core ones
        if own:  # its own library (the first one named) comes with an extra that `all` installs
            assert extras_of(own[0]) & in_all, (path.stem, own[0], extras_of(own[0]))
    assert in_all <= extras


def _backend_modules() -> list[str]:
    """The third-party modules the shipped adapters import at their top (numpy and scikit-learn are core)."""
    import ast

    found = set()
    for path in ALGORITHMS_DIR.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            found |= {n.split(".")[0] for n in names}
    return sorted(found - set(sys.stdlib_module_names) - {"__future__", "annbench", "numpy", "scipy", "sklearn"})


def test_the_shipped_adapters_import_the_expected_libraries() -> None:
    libraries = {"faiss", "ngtpy", "nmslib", "scann", "annoy", "hnswlib", "pynndescent", "usearch"}
    assert libraries <= set(_backend_modules())


@pytest.mark.parametrize("module", _backend_modules())
def test_a_missing_backend_library_names_the_install_command(module: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from annbench.backends.discovery import AdapterUnavailable

    write_backend(tmp_path, "probe", f"import {module}\nfrom annbench.backends.adapter import Adapter\n\n\n"
                                     f"class Probe(Adapter):\n    def fit(self, X): ...\n\n"
                                     f"    def query(self, q, k): ...\n")
    monkeypatch.setitem(sys.modules, module, None)  # "import faiss" now fails as if faiss were not installed
    with pytest.raises(AdapterUnavailable) as e:
        load_adapter("probe", [tmp_path])
    assert isinstance(e.value, UserError)
    extra = re.search(r"pip install 'annbench\[([\w-]+)\]'", str(e.value))
    assert extra, str(e.value)
    carried = [r for r in metadata.requires("annbench") or [] if f'extra == "{extra.group(1)}"' in r]
    assert carried, (module, extra.group(1))


def test_python_m_annbench_lists_the_subcommands_and_rejects_unknown_ones() -> None:
    r = call(main)
    assert r.code == 2 and all(name in r.out for name in SUBCOMMANDS)
    r = call(main, "runn")
    assert r.code == 2 and "unknown subcommand 'runn'" in r.err and "run" in r.err
    p = subprocess.run([sys.executable, "-m", "annbench", "run", "--list-algorithms"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "bruteforce" in p.stdout, p.stderr


@pytest.mark.parametrize("subcommand", list(SUBCOMMANDS))
def test_a_subcommand_prints_its_error_and_help_once(subcommand: str) -> None:
    """``annbench SUBCOMMAND``: the thread pinning before the subcommand must not parse aloud."""
    def annbench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "annbench", subcommand, *args], cwd=REPO, capture_output=True,
                              text=True, timeout=300)

    bad = annbench("--no-such-option")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert bad.stderr.startswith(f"error: annbench {subcommand}: ")
    helped = annbench("--help")
    assert helped.returncode == 0 and helped.stdout.count("usage:") == 1 and not helped.stderr, helped.stdout
