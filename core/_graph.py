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
    """Each dependency cycle once, as the list of workers on it."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(specs, white)
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def visit(name: str, stack: list[str]) -> None:
        colour[name] = grey
        stack.append(name)
        for dep in specs[name].depends_on:
            if dep not in specs:
                continue
            if colour[dep] == grey:
                cycle = stack[stack.index(dep):]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    cycles.append(cycle)
            elif colour[dep] == white:
                visit(dep, stack)
        stack.pop()
        colour[name] = black

    for name in specs:
        if colour[name] == white:
            visit(name, [])
    return cycles


def dependency_order(specs: Mapping[str, WorkerSpec]) -> list[str]:
    """Worker names with every dependency before its dependents (stable otherwise)."""
    order: list[str] = []
    placed: set[str] = set()

    def place(name: str) -> None:
        if name in placed:
            return
        placed.add(name)
        for dep in specs[name].depends_on:
            if dep in specs:
                place(dep)
        order.append(name)

    for name in specs:
        place(name)
    return order


def symmetric_blocks(specs: Iterable[WorkerSpec]) -> dict[str, frozenset[str]]:
    """For each worker, every worker it may not run beside: its `blocks` and theirs."""
    out: dict[str, set[str]] = {}
    for spec in specs:
        out.setdefault(spec.name, set())
        for other in spec.blocks:
            out[spec.name].add(other)
            out.setdefault(other, set()).add(spec.name)
    return {name: frozenset(names) for name, names in out.items()}
