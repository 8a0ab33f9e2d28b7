"""The import graph of ``mirror/`` and ``mirror_plugins/``, read from the source: the rules of ARCHITECTURE.md.

Every ``import`` counts: at module level, inside functions (lazy) and under ``if TYPE_CHECKING``.
Importing ``a.b.c`` also runs ``a.b``'s ``__init__``, so that is an edge too (except to the
importer's own packages, which Python has loaded before the importer).

* no cycles;
* layers: a module imports only from its own layer or lower ones (:data:`LAYERS`);
* ``mirror/core/`` imports only ``mirror.core``, ``mirror.errors``, ``packaging`` and the
  standard library without its I/O, clock and concurrency modules;
* the built-in filters import only the public plugin API, ``mirror.filter_api``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGES = ("mirror", "mirror_plugins")

LAYERS: tuple[tuple[str, ...], ...] = (
    ("mirror", "mirror.errors"),
    ("mirror.core",),
    (
        "mirror.filter_api",
        "mirror.testing",
        "mirror.storage",
        "mirror._config",
        "mirror._state",
        "mirror._http",
        "mirror._plugins",
        "mirror._progress",
        "mirror._decoding",
        "mirror._users",
        "mirror._gc",
        "mirror._stalls",
    ),
    (
        "mirror.sync",
        "mirror.private",
        "mirror.verify",
        "mirror.airgap",
        "mirror.serve",
        "mirror._metrics",
        "mirror._stateloss",
    ),
    ("mirror.cli", "mirror.__main__"),
)
"""Lowest first. Each module is in the layer of the longest prefix that names it (``mirror``: only itself)."""

CORE_MAY_IMPORT = ("mirror.core", "mirror.errors")
CORE_THIRD_PARTY = frozenset({"packaging"})
# Standard library modules that do I/O, read the clock or run things concurrently: not in the pure core.
CORE_FORBIDDEN_STDLIB = frozenset(
    {
        "asyncio",
        "concurrent",
        "ctypes",
        "fcntl",
        "http",
        "io",
        "mmap",
        "multiprocessing",
        "os",
        "select",
        "selectors",
        "shutil",
        "signal",
        "socket",
        "sqlite3",
        "ssl",
        "subprocess",
        "sys",
        "tempfile",
        "threading",
        "time",
        "urllib.request",
    }
)


@dataclass
class Graph:
    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, set[str]] = field(default_factory=dict)
    """Module → the modules of ours it imports."""
    external: dict[str, set[str]] = field(default_factory=dict)
    """Module → the dotted names of other packages (stdlib, third party) it imports."""


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def build_graph(root: Path, packages: Iterable[str]) -> Graph:
    graph = Graph()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            graph.modules[module_name(root, path)] = path
    ours = {name.split(".")[0] for name in graph.modules}
    for name, path in graph.modules.items():
        internal, external = set[str](), set[str]()
        for target in imported_names(name, path, graph.modules):
            (internal if target.split(".")[0] in ours else external).add(target)
        graph.edges[name] = {t for target in internal for t in _with_packages(name, target, graph.modules)}
        graph.external[name] = external
    return graph


def imported_names(name: str, path: Path, modules: Mapping[str, Path]) -> Iterable[str]:
    """Every module ``path`` imports, anywhere in it (``ast.walk`` enters functions and ``if`` blocks)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if submodule in modules else base


def _with_packages(importer: str, target: str, modules: Mapping[str, Path]) -> Iterable[str]:
    """``target`` and the packages whose ``__init__`` importing it runs, except the importer's own."""
    parts = target.split(".")
    own = {".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 2)}
    for i in range(1, len(parts) + 1):
        candidate = ".".join(parts[:i])
        if candidate in modules and candidate not in own:
            yield candidate


def find_cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one (Tarjan), as ``[a, b, ..., a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                cycles.append(_cycle_in(node, component, edges))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def _cycle_in(start: str, component: set[str], edges: Mapping[str, Iterable[str]]) -> list[str]:
    """A path from ``start`` back to itself inside one strongly connected component (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(edges.get(node, ())):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if nxt in component and nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def layer_of(module: str) -> int:
    best, found = -1, -1
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            below = module.startswith(prefix + ".") and prefix not in PACKAGES  # the root package is only itself
            if (module == prefix or below) and len(prefix) > best:
                best, found = len(prefix), rank
    return found


@pytest.fixture(scope="module")
def graph() -> Graph:
    return build_graph(ROOT, PACKAGES)


def test_the_graph_sees_lazy_and_type_checking_imports(graph: Graph) -> None:
    # If these went unseen, a cycle through them would too: both are real imports of this code.
    lazy = [m for m, path in graph.modules.items() if _nested_import_targets(path)]
    assert lazy, "no function-level imports found: the walk does not enter functions"
    for module in lazy:
        assert _nested_import_targets(graph.modules[module]) <= graph.edges[module] | graph.external[module]


def _nested_import_targets(path: Path) -> set[str]:
    """Our modules imported inside a function or an ``if`` block of ``path`` (absolute imports only)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.If):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and not inner.level and (inner.module or "").startswith(PACKAGES):
                    found.add(str(inner.module))
    return found


def test_no_import_cycles(graph: Graph) -> None:
    cycles = find_cycles(graph.edges)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_every_module_has_a_layer(graph: Graph) -> None:
    assert [m for m in graph.modules if m.startswith("mirror.") and layer_of(m) < 0] == []


def test_imports_go_down_the_layers(graph: Graph) -> None:
    upward = [
        f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
        for module, targets in sorted(graph.edges.items())
        if module.split(".")[0] == "mirror"
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "\n".join(upward)


def test_core_imports_nothing_outside_it_but_errors_and_packaging(graph: Graph) -> None:
    bad = []
    for module in sorted(m for m in graph.modules if m == "mirror.core" or m.startswith("mirror.core.")):
        for target in sorted(graph.edges[module]):
            if not any(target == p or target.startswith(p + ".") for p in CORE_MAY_IMPORT):
                bad.append(f"{module} imports {target}")
        for target in sorted(graph.external[module]):
            top = target.split(".")[0]
            if top in CORE_THIRD_PARTY or top == "__future__":
                continue
            forbidden = any(target == f or target.startswith(f + ".") for f in CORE_FORBIDDEN_STDLIB)
            if top not in sys.stdlib_module_names or forbidden:
                bad.append(f"{module} imports {target}")
    assert not bad, "\n".join(bad)


def test_builtin_filters_use_only_the_public_plugin_api(graph: Graph) -> None:
    bad = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.edges.items())
        if module.split(".")[0] == "mirror_plugins"
        for target in sorted(targets)
        if target.split(".")[0] != "mirror_plugins" and target not in ("mirror", "mirror.filter_api")
    ]
    assert not bad, "\n".join(bad)


def test_the_checks_catch_a_lazy_cycle_and_a_core_import(tmp_path: Path) -> None:
    """The same functions on a small package that breaks every rule in the ways that hide best."""
    package = tmp_path / "pkg"
    (package / "core").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "core" / "__init__.py").write_text("")
    (package / "core" / "pure.py").write_text("import sqlite3\n\ndef f():\n    from pkg import engine\n")
    (package / "engine.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .state import State\n"
    )
    (package / "state.py").write_text("def g():\n    from pkg.engine import x\n")
    found = build_graph(tmp_path, ["pkg"])
    assert found.edges["pkg.core.pure"] == {"pkg.engine"}
    assert found.external["pkg.core.pure"] == {"sqlite3"}
    assert find_cycles(found.edges) == [["pkg.engine", "pkg.state", "pkg.engine"]]
