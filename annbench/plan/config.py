"""Parameter grids: ``configs/<algorithm>.yml``, loaded with ``yaml.safe_load`` semantics.

Grammar::

    algorithm: annoy                 # required; adapter file algorithms/annoy.py
    metrics: [euclidean, angular]    # required; distances this grid is meant for
    opt_in: numba compiles for minutes  # optional; why the algorithm is left out of the default selection
    groups:                          # required; one entry per preset name
      demo: ...                      # the default preset (quick where a grid has no demo group)
      quick:
        build: {n_trees: [10, 50]}   # build grid = product of the lists (one index each)
        query: {search_k: [100, 1000]}  # query grid = product, all run on each index
      full: ...

A scalar is shorthand for a one-element list; an omitted ``build`` or ``query`` is the
single empty setting. Every error names ``file:line`` and what would be valid.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from annbench.backends.adapter import Adapter
from annbench.backends.params import ParamError, validate_params
from annbench.core.errors import UserError
from annbench.quality.distances import METRICS

TOP_KEYS = ("algorithm", "metrics", "groups")
#: Optional top-level keys: ``opt_in`` (text: why the algorithm is run only when asked for).
OPTIONAL_KEYS = ("opt_in",)
GROUP_KEYS = ("build", "query")

Params = dict[str, Any]


@dataclass(frozen=True)
class Group:
    """One preset of one algorithm: the build and query grids (name → list of values)."""

    name: str
    build: dict[str, list[Any]]
    query: dict[str, list[Any]]

    def build_settings(self) -> list[Params]:
        return expand(self.build)

    def query_settings(self) -> list[Params]:
        return expand(self.query)


@dataclass(frozen=True)
class AlgorithmConfig:
    algorithm: str
    path: Path
    metrics: tuple[str, ...]
    groups: dict[str, Group]
    lines: dict[tuple[Any, ...], int]
    #: Why this algorithm is left out of a sweep that names no algorithms ('' = it is not).
    opt_in: str = ""

    def where(self, *key: Any) -> str:
        """``file:line`` of a key path (the nearest enclosing key that has a line)."""
        while key and key not in self.lines:
            key = key[:-1]
        return f"{self.path}:{self.lines.get(key, 1)}"


def expand(grid: dict[str, list[Any]]) -> list[Params]:
    """Cartesian product of a grid, in file order: ``{a: [1, 2], b: [3]}`` → ``[{a:1,b:3}, {a:2,b:3}]``."""
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def _compose(path: Path) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """``yaml.safe_load`` of the file, plus the line of every mapping key and list item."""
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"config {path}: cannot read ({e.strerror})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[tuple[Any, ...], int] = {}

        def walk(n: yaml.Node, key: tuple[Any, ...]) -> Any:
            if isinstance(n, yaml.MappingNode):
                out = {}
                for k_node, v_node in n.value:
                    k = loader.construct_object(k_node, deep=True)
                    lines[key + (k,)] = k_node.start_mark.line + 1
                    out[k] = walk(v_node, key + (k,))
                return out
            if isinstance(n, yaml.SequenceNode):
                items = []
                for i, item in enumerate(n.value):
                    lines[key + (i,)] = item.start_mark.line + 1
                    items.append(walk(item, key + (i,)))
                return items
            return loader.construct_object(n, deep=True)

        data = walk(node, ()) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise UserError(f"config {where}: malformed YAML: {problem}") from None
    finally:
        loader.dispose()
    return data, lines


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def load_config(path: str | Path) -> AlgorithmConfig:
    """Read one grid file and check its structure (parameters are checked by :func:`check_against`)."""
    path = Path(path)
    data, lines = _compose(path)

    def err(key: tuple[Any, ...], what: str) -> UserError:
        k = key
        while k and k not in lines:
            k = k[:-1]
        return UserError(f"config {path}:{lines.get(k, 1)}: {what}")

    if not isinstance(data, dict):
        raise err((), f"expected a mapping with keys {', '.join(TOP_KEYS)}")
    for key in data:
        if key not in TOP_KEYS + OPTIONAL_KEYS:
            raise err((key,), f"unknown key {key!r}; valid: {', '.join(TOP_KEYS + OPTIONAL_KEYS)}")
    for key in TOP_KEYS:
        if key not in data:
            raise err((), f"missing key {key!r}")
    algorithm = data["algorithm"]
    if not isinstance(algorithm, str) or not algorithm:
        raise err(("algorithm",), "'algorithm' must be a name")
    opt_in = data.get("opt_in", "")
    if not isinstance(opt_in, str) or ("opt_in" in data and not opt_in.strip()):
        raise err(("opt_in",), "'opt_in' must be a sentence saying why the algorithm runs only when asked for")
    metrics = _as_list(data["metrics"])
    if not metrics:
        raise err(("metrics",), f"'metrics' is an empty list; valid: {', '.join(METRICS)}")
    for i, m in enumerate(metrics):
        if m not in METRICS:
            raise err(("metrics", i), f"unknown metric {m!r}; valid: {', '.join(METRICS)}")
    groups_data = data["groups"]
    if not isinstance(groups_data, dict) or not groups_data:
        raise err(("groups",), "'groups' must map preset names (e.g. quick, full) to build/query grids")
    groups = {}
    for gname, g in groups_data.items():
        if g is None:
            g = {}
        if not isinstance(g, dict):
            raise err(("groups", gname), f"group {gname!r} must be a mapping with keys build, query")
        grids: dict[str, dict[str, list[Any]]] = {}
        for key in g:
            if key not in GROUP_KEYS:
                raise err(("groups", gname, key), f"unknown key {key!r} in group {gname!r}; valid: build, query")
        for part in GROUP_KEYS:
            grid = g.get(part) or {}
            if not isinstance(grid, dict):
                raise err(("groups", gname, part), f"'{part}' must map parameter names to lists of values")
            for pname, values in grid.items():
                values = _as_list(values)
                if not values:
                    raise err(("groups", gname, part, pname), f"parameter {pname!r} has an empty list")
                grid[pname] = values
            grids[part] = grid
        groups[str(gname)] = Group(str(gname), grids["build"], grids["query"])
    return AlgorithmConfig(algorithm, path, tuple(metrics), groups, lines, opt_in.strip())


def check_against(config: AlgorithmConfig, adapter: type[Adapter]) -> None:
    """Every parameter of every group is one the adapter takes, with a value of its type;
    every metric is one the adapter supports (:func:`annbench.backends.params.validate_params`)."""
    for i, m in enumerate(config.metrics):
        try:
            validate_params(adapter, None, None, m, algorithm=config.algorithm)
        except ParamError as e:
            raise UserError(f"config {config.where('metrics', i)}: {e}") from None
    for gname, group in config.groups.items():
        try:
            validate_params(adapter, group.build, group.query, None, algorithm=config.algorithm, lists=True)
        except ParamError as e:
            raise UserError(f"config {config.where('groups', gname, *e.path)}: {e}") from None


def find_config(algorithm: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        for ext in (".yml", ".yaml"):
            f = Path(d) / f"{algorithm}{ext}"
            if f.is_file():
                return f
    return None


def all_configs(dirs: list[Path]) -> dict[str, Path]:
    """Algorithm name → grid file, the first folder on the path winning."""
    found: dict[str, Path] = {}
    for d in dirs:
        for f in sorted([*Path(d).glob("*.yml"), *Path(d).glob("*.yaml")]) if Path(d).is_dir() else []:
            found.setdefault(f.stem, f)
    return found
