"""Core tests run in trio mode, in virtual time where they ask for `autojump_clock`."""

from __future__ import annotations

import inspect
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from jobdeck import Orchestrator, OrchestratorConfig

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


@asynccontextmanager
async def running(orch: Orchestrator) -> AsyncIterator[None]:
    """Run `orch` for the body of the block, then stop it without grace."""
    async with trio.open_nursery() as nursery:
        await nursery.start(orch.run)
        try:
            yield
        finally:
            orch.stop(grace=0)


class MaxRandom(random.Random):
    """Full jitter at its ceiling: every backoff waits exactly min(cap, base * 2**(n-1))."""

    def random(self) -> float:
        return 1.0


def make_orchestrator(**config: object) -> Orchestrator:
    """An orchestrator on the in-memory store with a wall clock that follows trio's."""
    store = config.pop("store", None)
    return Orchestrator(
        OrchestratorConfig(**config),  # type: ignore[arg-type]
        store=store,  # type: ignore[arg-type]
        now=virtual_wall_clock,
        rng=random.Random(1),
    )
