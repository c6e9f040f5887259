"""README's backend table is the one ``run.py --list-algorithms --markdown`` generates from the adapters."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from annbench.backends.adapter import Adapter, build_parameters, query_parameters
from annbench.backends.discovery import load_adapter
from annbench.backends.table import COLUMNS, markdown_table, parameter_docs
from annbench.cli.run import main
from annbench.core import paths
from annbench.core.paths import ALGORITHMS_DIR, CONFIGS_DIR
from annbench.plan.config import all_configs

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- backends:start -->", "<!-- backends:end -->"
COMMAND = "python -m annbench run --list-algorithms --markdown"


def readme_table() -> str:
    text = README.read_text(encoding="utf-8")
    assert text.count(START) == 1 and text.count(END) == 1, f"README.md needs one {START} and one {END}"
    return text[text.index(START) + len(START):text.index(END)].strip("\n")


@pytest.fixture
def generated(monkeypatch, capsys) -> str:
    """The command's table over the shipped adapters only (no extra adapter or grid folders)."""
    monkeypatch.delenv(paths.ENV_ALGORITHMS_PATH, raising=False)
    monkeypatch.delenv(paths.ENV_CONFIGS_PATH, raising=False)
    code = main(["--list-algorithms", "--markdown"])
    out, err = capsys.readouterr()
    assert code == 0, f"the table needs every backend library importable (install annbench[all]): {err.strip()}"
    return out.strip("\n")


def test_readme_backend_table_is_the_generated_one(generated: str) -> None:
    readme = readme_table()
    if readme != generated:
        diff = "\n".join(difflib.unified_diff(readme.splitlines(), generated.splitlines(), "README.md",
                                              COMMAND, lineterm="", n=0))
        pytest.fail(f"README.md's backend table differs from what `{COMMAND}` prints; regenerate it: run "
                    f"`{COMMAND}` and put its output between {START} and {END} in README.md\n{diff}")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_table_has_a_well_formed_row_per_shipped_algorithm(generated: str) -> None:
    lines = generated.splitlines()
    assert _cells(lines[0]) == list(COLUMNS)
    rows = [_cells(line) for line in lines[2:]]
    assert [r[0] for r in rows] == [f"`{a}`" for a in sorted(all_configs([CONFIGS_DIR]))]
    assert all(len(r) == len(COLUMNS) and all(r) for r in rows), rows


def test_every_shipped_parameter_has_a_docstring_line() -> None:
    undocumented = {}
    for algorithm in sorted(all_configs([CONFIGS_DIR])):
        cls = load_adapter(algorithm, [ALGORITHMS_DIR])
        docs = parameter_docs(cls)
        missing = [n for n in [*build_parameters(cls), *query_parameters(cls)] if not docs.get(n)]
        if missing:
            undocumented[algorithm] = missing
    assert not undocumented, f"parameters without a `name: text` line under the docstring's Parameters: {undocumented}"


def test_markdown_escapes_pipes_and_reads_parameter_docs() -> None:
    class Toy(Adapter):
        """``Toy``: one | two.

        Parameters:
            width: how wide,
                continued on the next line
            effort: how hard
        """

        native_metrics = {"euclidean": "l2", "ip": "dot"}
        libraries = ("toylib",)

        def __init__(self, metric: str, width: int | None = None, threads: int = 1) -> None:
            super().__init__(metric, threads)

        def fit(self, X) -> None: ...

        def set_query_params(self, effort: float = 0.5) -> None: ...

        def query(self, q, k): ...

    table = markdown_table({"toy": Toy})
    row = _cells(table.splitlines()[2])
    assert row == ["`toy`", "toylib", "`Toy`: one \\| two", "euclidean (`l2`), ip (`dot`)", "float32 (euclidean, ip)",
                   "`width` (int or null; default null): how wide, continued on the next line",
                   "`effort` (float; default 0.5): how hard"]


def test_point_types_column_says_native_and_converted() -> None:
    class Bits(Adapter):
        """``Bits``: packed or not."""

        native_metrics = {"euclidean": "l2", "hamming": "hamming", "jaccard": "jaccard"}
        point_types = ("float32", "uint8", "set")

        def __init__(self, metric: str, threads: int = 1) -> None:
            super().__init__(metric, threads)

        def fit(self, X) -> None: ...

        def query(self, q, k): ...

    row = _cells(markdown_table({"bits": Bits}).splitlines()[2])
    assert row[4] == "float32, uint8 (euclidean); bit as float32 (hamming); set (jaccard)"

    class Int8(Bits):
        native_metrics = {"euclidean": "l2", "angular": "cos"}
        point_types = ("float32", "int8")

    row = _cells(markdown_table({"int8": Int8}).splitlines()[2])
    assert row[4] == "float32, int8, uint8 as int8 (euclidean); float32, int8 (angular)"  # x - 128: euclidean only


def test_markdown_is_an_option_of_list_algorithms(capsys) -> None:
    assert main(["--markdown"]) == 2
    assert capsys.readouterr().err.strip() == "error: --markdown is an option of --list-algorithms; give both"


def test_a_grid_that_lists_fewer_metrics_shows_only_those() -> None:
    """The table says what ``run`` accepts: an adapter's library may serve hamming, but a grid that lists
    euclidean only makes the row say euclidean only (its point types too)."""
    class Wide(Adapter):
        """``Wide``: serves more than its grid asks."""

        native_metrics = {"euclidean": "l2", "hamming": "bit_hamming"}
        point_types = ("float32", "bit")

        def __init__(self, metric: str, threads: int = 1) -> None:
            super().__init__(metric, threads)

        def fit(self, X) -> None: ...

        def query(self, q, k): ...

    every = _cells(markdown_table({"wide": Wide}).splitlines()[2])
    assert every[3:5] == ["euclidean (`l2`), hamming (`bit_hamming`)", "float32 (euclidean); bit (hamming)"]
    row = _cells(markdown_table({"wide": Wide}, {"wide": ["euclidean"]}).splitlines()[2])
    assert row[3:5] == ["euclidean (`l2`)", "float32 (euclidean)"]
