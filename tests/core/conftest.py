"""Core tests run in trio mode, in virtual time where they ask for `autojump_clock`."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from core import Orchestrator, OrchestratorConfig

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "function", None)
        if HERE in Path(str(item.fspath)).parents and inspect.iscoroutinefunction(fn):
            item.add_marker(pytest.mark.trio)


EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def virtual_wall_clock() -> datetime:
    """Wall time that follows trio's (virtual) clock: deterministic timestamps."""
    try:
        return EPOCH + timedelta(seconds=trio.current_time())
    except RuntimeError:
        return EPOCH


def make_orchestrator(**config: object) -> Orchestrator:
    """An orchestrator on the in-memory store with a wall clock that follows trio's."""
    import random

    store = config.pop("store", None)
    return Orchestrator(
        OrchestratorConfig(**config),  # type: ignore[arg-type]
        store=store,  # type: ignore[arg-type]
        now=virtual_wall_clock,
        rng=random.Random(1),
    )
