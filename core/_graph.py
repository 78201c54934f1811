"""Checks over the graph of workers: names that exist, no cycles, no contradictions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._spec import WorkerSpec


def graph_problems(specs: Mapping[str, WorkerSpec]) -> list[str]:
    """Every problem in how workers refer to each other, one message each.

    Unknown names in `depends_on` or `blocks`, dependency cycles, and a worker that
    depends on a worker that blocks it (blocks are symmetric, so this is the same
    contradiction as blocking a dependency, which the spec itself rejects).
    """
    problems: list[str] = []
    for spec in specs.values():
        for key in ("depends_on", "blocks"):
            for other in getattr(spec, key):
                if other not in specs:
                    problems.append(
                        f"worker {spec.name!r}: key {key!r}: unknown worker {other!r}"
                    )
    for spec in specs.values():
        for dep in spec.depends_on:
            other = specs.get(dep)
            if other is not None and spec.name in other.blocks:
                problems.append(
                    f"worker {spec.name!r}: key 'depends_on': depends on {dep!r},"
                    f" which blocks it (blocks are symmetric)"
                )
    for cycle in dependency_cycles(specs):
        path = " -> ".join([*cycle, cycle[0]])
        problems.append(f"worker {cycle[0]!r}: key 'depends_on': dependency cycle {path}")
    return problems


def dependency_cycles(specs: Mapping[str, WorkerSpec]) -> list[list[str]]:
    """Each dependency cycle once, as the list of workers on it.

    An iterative depth-first search: a chain of thousands of workers must not hit
    Python's recursion limit.
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(specs, white)
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for root in specs:
        if colour[root] != white:
            continue
        colour[root] = grey
        path = [root]
        todo = [iter(specs[root].depends_on)]
        while todo:
            dep = next(todo[-1], None)
            if dep is None:
                todo.pop()
                colour[path.pop()] = black
            elif dep not in specs:
                continue
            elif colour[dep] == grey:
                cycle = path[path.index(dep):]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    cycles.append(cycle)
            elif colour[dep] == white:
                colour[dep] = grey
                path.append(dep)
                todo.append(iter(specs[dep].depends_on))
    return cycles


def dependency_order(specs: Mapping[str, WorkerSpec]) -> list[str]:
    """Worker names with every dependency before its dependents (stable otherwise)."""
    order: list[str] = []
    placed: set[str] = set()
    for root in specs:
        if root in placed:
            continue
        placed.add(root)
        stack = [(root, iter(specs[root].depends_on))]
        while stack:
            name, deps = stack[-1]
            dep = next(deps, None)
            if dep is None:
                stack.pop()
                order.append(name)
            elif dep in specs and dep not in placed:
                placed.add(dep)
                stack.append((dep, iter(specs[dep].depends_on)))
    return order


def symmetric_blocks(specs: Iterable[WorkerSpec]) -> dict[str, frozenset[str]]:
    """For each worker that has any, every worker it may not run beside: its `blocks`
    and theirs. Workers with none are left out (most workers: no empty sets to keep)."""
    out: dict[str, set[str]] = {}
    for spec in specs:
        for other in spec.blocks:
            out.setdefault(spec.name, set()).add(other)
            out.setdefault(other, set()).add(spec.name)
    return {name: frozenset(names) for name, names in out.items()}
