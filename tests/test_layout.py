"""The package's layout shows the data flow: stage subpackages, each importing only from the
stages below it, and no import circle between modules (both checked on the import graph of every
module, lazy imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "annbench"

#: Lowest first: a module may import from its own stage and the stages before it, never after.
STAGES = ("core", "quality", "datasets", "backends", "store", "plan", "execute", "apps", "analyse", "report", "sweep",
          "gate", "cli")
#: The top level: the package (its version and the Python entry point run_sweep), the command, and the
#: adapter import path of old.
TOP = {"annbench": len(STAGES), "annbench.__main__": len(STAGES), "annbench.adapter": len(STAGES)}
#: The subcommands: each may use the shared CLI modules, none imports another subcommand.
SUBCOMMANDS = {"run", "plot", "dataset", "encode", "compare", "gate"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str | None = None) -> set[str]:
    """Every ``annbench`` module ``path`` imports, at any depth of its code (``from annbench.x import y``
    counts as ``annbench.x.y`` where that is a module, else as ``annbench.x``)."""
    name = name or module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "annbench"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            if base.split(".")[0] != "annbench":
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return found - {name}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def stage(module: str) -> int:
    if module in TOP:
        return TOP[module]
    part = module.split(".")[1]
    assert part in STAGES, f"{module} is outside every stage; stages: {', '.join(STAGES)}"
    return STAGES.index(part)


def test_every_module_is_in_a_stage() -> None:
    loose = sorted(m for m in MODULES if m not in TOP and m.split(".")[1] not in STAGES)
    assert loose == []


def upward(module: str, path: Path) -> list[str]:
    return sorted(i for i in imports(path, module) if stage(i) > stage(module))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_only_downwards(module: str) -> None:
    assert upward(module, MODULES[module]) == [], f"{module} imports from later stages"


def test_subcommands_do_not_import_each_other() -> None:
    crossing = {}
    for module, path in MODULES.items():
        if module.startswith("annbench.cli."):
            others = {i for i in imports(path) if i.startswith("annbench.cli.")
                      and i.rpartition(".")[2] in SUBCOMMANDS}
            if others:
                crossing[module] = sorted(others)
    assert crossing == {}


def test_the_rule_catches_upward_and_relative_imports(tmp_path: Path) -> None:
    """The checker itself: a lazy import of the CLI and a relative one of the report, both from the store."""
    source = (PACKAGE / "store" / "folder.py").read_text(encoding="utf-8")
    copy = tmp_path / "folder.py"
    copy.write_text(source + "\n\ndef _probe():\n    from annbench.cli.common import names\n"
                    "    from ..report import tables\n", encoding="utf-8")
    assert upward("annbench.store.folder", MODULES["annbench.store.folder"]) == []
    assert upward("annbench.store.folder", copy) == ["annbench.cli.common", "annbench.report.tables"]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (an import circle), each sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def import_graph() -> dict[str, set[str]]:
    """Module → the modules it imports, at any depth of its code (a package's import counts as its
    ``__init__``'s, which is how Python runs it)."""
    return {m: {i for i in imports(p, m) if i in MODULES} for m, p in MODULES.items()}


def test_no_import_circle() -> None:
    assert cycles(import_graph()) == [], "modules that import each other, directly or round a circle"


def test_the_circle_check_finds_a_lazy_circle(tmp_path: Path) -> None:
    """The checker itself: a lazy import of the in-process executor (which runs the child's body) from
    inside a function of the child's body closes a circle of two modules."""
    copy = tmp_path / "child.py"
    copy.write_text(MODULES["annbench.execute.child"].read_text(encoding="utf-8")
                    + "\n\ndef _probe():\n    from annbench.execute import inprocess\n", encoding="utf-8")
    graph = import_graph()
    graph["annbench.execute.child"] = {i for i in imports(copy, "annbench.execute.child") if i in MODULES}
    assert ["annbench.execute.child", "annbench.execute.inprocess"] in cycles(graph)
