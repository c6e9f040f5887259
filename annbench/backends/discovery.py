"""Finding adapters by algorithm name.

Algorithm ``faiss-ivf`` lives in ``faiss_ivf.py`` in the first folder of the adapter
search path (see :func:`annbench.core.paths.algorithm_dirs`) that has it; the file defines
exactly one :class:`~annbench.backends.adapter.Adapter` subclass. Files whose names start with
``_`` are helpers shared by adapters (import them as ``from ._faiss import ...``).
The folders are mounted as the package ``annbench_algorithms``, so adapters never
shadow or import each other by accident.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from pathlib import Path

from annbench.backends.adapter import Adapter
from annbench.core.errors import UserError

PACKAGE = "annbench_algorithms"


class AdapterUnavailable(UserError):
    """The adapter exists but its library failed to import."""


def module_name(algorithm: str) -> str:
    return algorithm.replace("-", "_")


def _mount(dirs: list[Path]) -> None:
    paths = [str(Path(d).resolve()) for d in dirs]
    pkg = sys.modules.get(PACKAGE)
    if pkg is None:
        pkg = types.ModuleType(PACKAGE)
        pkg.__path__ = []  # type: ignore[attr-defined]
        sys.modules[PACKAGE] = pkg
    if list(pkg.__path__) != paths:  # type: ignore[attr-defined]
        pkg.__path__[:] = paths  # type: ignore[attr-defined]
        importlib.invalidate_caches()


def install_hint(missing_module: str) -> str:
    """``"; install it with: pip install 'annbench[faiss]'"`` for a missing backend library: the extra of
    this installation of annbench whose name the module's top-level name starts with (``faiss`` for
    ``faiss``, ``ngt`` for ``ngtpy``), else the smallest extra requiring a distribution of that name
    (``pgvector`` for ``psycopg``, ``milvus`` for ``milvus_lite``); empty where annbench is not
    installed or no extra fits."""
    import re
    from importlib import metadata

    top = missing_module.split(".")[0].lower()
    try:
        meta = metadata.metadata("annbench")
    except metadata.PackageNotFoundError:
        return ""
    extras = meta.get_all("Provides-Extra") or []
    fitting = sorted((e for e in extras if top.startswith(e.lower())), key=len, reverse=True)
    if not fitting:  # "psycopg[binary]>=3.1; extra == 'pgvector'": distribution names as import names
        requiring: dict[str, int] = {}
        for requirement in meta.get_all("Requires-Dist") or []:
            name = re.match(r"[A-Za-z0-9._-]+", requirement)
            extra = re.search(r"extra\s*==\s*[\"']([^\"']+)", requirement)
            if extra:
                requiring[extra[1]] = requiring.get(extra[1], 0) + 1
                if name and re.sub(r"[-.]", "_", name[0].lower()) == top:
                    fitting.append(extra[1])
        fitting.sort(key=lambda e: requiring[e])
    return f"; install it with: pip install 'annbench[{fitting[0]}]'" if fitting else ""


def adapter_file(algorithm: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        f = Path(d) / f"{module_name(algorithm)}.py"
        if f.is_file():
            return f
    return None


def load_adapter(algorithm: str, dirs: list[Path]) -> type[Adapter]:
    """The adapter class of ``algorithm``; :class:`AdapterUnavailable` if its library fails to import."""
    path = adapter_file(algorithm, dirs)
    if path is None:
        raise UserError(f"algorithm {algorithm!r} has no adapter file {module_name(algorithm)}.py in "
                        f"{', '.join(str(d) for d in dirs)}")
    _mount(dirs)
    name = f"{PACKAGE}.{module_name(algorithm)}"
    cached = sys.modules.get(name)
    if cached is not None and Path(getattr(cached, "__file__", "") or "").resolve() != path.resolve():
        del sys.modules[name]  # loaded from another folder of an earlier search path: load this one
    try:
        module = importlib.import_module(name)
    except Exception as e:  # ImportError, OSError from a shared library, ...
        hint = install_hint(e.name) if isinstance(e, ModuleNotFoundError) and e.name else ""
        raise AdapterUnavailable(f"algorithm {algorithm!r} is unavailable: {type(e).__name__}: {e}{hint}") from None
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, Adapter) and c.__module__ == module.__name__ and not inspect.isabstract(c)]
    if len(classes) != 1:
        raise UserError(f"adapter file {module.__file__} must define exactly one Adapter subclass, "
                        f"found {len(classes)}")
    return classes[0]
