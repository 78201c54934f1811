"""No import circles: each module of a package can be read knowing only what it imports.

The graph is built from the sources with `ast`, so it sees every import a reader sees:
relative and absolute ones, imports inside functions, and imports under `TYPE_CHECKING`
(they do not run, but a reader still has to know the other module first).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Import graph: module -> the modules of the same package it imports.
Graph = Mapping[str, set[str]]


def _modules(folder: Path, package: str) -> dict[str, Path]:
    """Every module under `folder` (the package `package`), by dotted name."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.py")):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([package, *parts])] = path
    return found


def _imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules in `known` that the module `name` (at `path`) imports.

    Importing `a.b.c` runs `a/b/__init__.py` first, so the packages on the way count too,
    except the module's own packages (they are always loaded before it).
    """
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets.add(module)
            # `from pkg import mod` imports the module `pkg.mod` when there is one.
            targets.update(f"{module}.{alias.name}" for alias in node.names)
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    edges: set[str] = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            step = ".".join(parts[:i])
            if step in known and step not in own and step != name:
                edges.add(step)
    return edges


def import_graph(folder: Path, package: str) -> dict[str, set[str]]:
    """The import graph of the package `package`, whose sources are in `folder`."""
    modules = _modules(folder, package)
    known = set(modules)
    return {name: _imported(name, path, known) for name, path in modules.items()}


def tangles(graph: Graph) -> list[list[str]]:
    """The import circles of `graph`, as the sorted lists of modules caught in each.

    A tangle is a strongly connected component (Tarjan): every module in it imports
    every other, directly or round the circle.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_circles_are_found_through_packages_functions_and_type_checking(
    tmp_path: Path,
) -> None:
    """The check itself: a circle through a package's __init__, a function-level import
    and a TYPE_CHECKING import is found; the module's own package is not a circle."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from ._b import B\n")
    (pkg / "sub" / "_b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .._a import A\n"
    )
    (pkg / "_a.py").write_text("def f():\n    from .sub._c import C\n")
    (pkg / "sub" / "_c.py").write_text("from . import _b\n")
    (pkg / "_d.py").write_text("import pkg._a\nfrom pkg.sub import _c\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg._a"] == {"pkg.sub", "pkg.sub._c"}
    assert graph["pkg.sub._c"] == {"pkg.sub._b"}
    assert graph["pkg._d"] == {"pkg._a", "pkg.sub", "pkg.sub._c"}
    assert tangles(graph) == [["pkg._a", "pkg.sub", "pkg.sub._b", "pkg.sub._c"]]
    (pkg / "sub" / "_b.py").write_text("")
    assert tangles(import_graph(pkg, "pkg")) == []


def test_the_dashboard_has_no_import_circles() -> None:
    """tui/: screens, widgets and the palette never import the app, nor each other round."""
    assert tangles(import_graph(ROOT / "tui", "jobdeck.tui")) == []


def test_the_engine_has_no_import_circles() -> None:
    """core/: no module imports one that imports it back, not even for type hints."""
    assert tangles(import_graph(ROOT / "core", "jobdeck")) == []
