"""Dashboard tests: asyncio `App.run_test()` against a real core in trio guest mode.

Not trio mode: each test drives the app with `asyncio.run` (through `drive`), and
every test stops the core and awaits the end of its guest run; the autouse fixture
below fails the test otherwise (a guest run left behind poisons every later test).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC
from typing import Any

import pytest
import trio
from textual.pilot import Pilot

from jobdeck import MemoryStore, Orchestrator, OrchestratorConfig
from jobdeck.tui._bridge import CoreBridge
from jobdeck.tui._virtual_time import VirtualTime, deterministic_scheduling
from jobdeck.tui.app import DeckApp

from . import workers

SIZE = (140, 40)

Scenario = Callable[[Pilot[Any]], Awaitable[None]]


@pytest.fixture(autouse=True)
def guest_run_ended() -> Iterator[None]:
    """Assert that the test stopped the core and its guest run has ended."""
    yield
    left = set(CoreBridge.live)
    assert not left, f"guest runs still running after the test: {left}"
    with pytest.raises(RuntimeError):
        trio.lowlevel.current_trio_token()


def make_orchestrator(
    specs: dict[str, tuple[Callable[..., Any], dict[str, Any]]],
    *,
    now: Callable[[], Any] | None = None,
    store: Any = None,
    **config: Any,
) -> Orchestrator:
    """An orchestrator on the in-memory store with `specs` registered (name: (fn, spec))."""
    kwargs: dict[str, Any] = {"rng": random.Random(1)}
    if now is not None:
        kwargs["now"] = now
    orch = Orchestrator(OrchestratorConfig(**config), store=store or MemoryStore(), **kwargs)
    for name, (fn, spec) in specs.items():
        orch.register(name, fn, **spec)
    return orch


def basic_workers() -> dict[str, tuple[Callable[..., Any], dict[str, Any]]]:
    """Three triggered workers and one scheduled one: quiet until a key is pressed."""
    return {
        "alpha": (workers.ok, {"mode": "triggered"}),
        "bravo": (workers.fail, {"mode": "triggered", "max_retries": 0,
                                 "max_consecutive_failures": 1}),
        "charlie": (workers.fail_unless_replayed, {"mode": "triggered", "max_retries": 0,
                                                   "max_consecutive_failures": 5}),
        "delta": (workers.ok, {"interval_seconds": 3600, "run_at_start": False}),
    }


def make_app(orch: Orchestrator, **kwargs: Any) -> DeckApp:
    kwargs.setdefault("refresh_interval", 0.05)
    kwargs.setdefault("tz", UTC)
    app = DeckApp(orch, title="test", **kwargs)
    app.animation_level = "none"  # pilot.press waits for animations (the tab underline)
    return app


async def shut_down(app: DeckApp) -> None:
    """Stop the core the way `q` does and wait for the guest run to end."""
    if app.bridge.running:
        app.exit()
        try:
            await asyncio.wait_for(app.bridge.wait_done(), 10)
        except TimeoutError:
            app.orch.stop()
            await asyncio.wait_for(app.bridge.wait_done(), 10)


def drive(app: DeckApp, scenario: Scenario, *, timeout: float = 20) -> None:
    """Run `app` under `run_test`, play `scenario`, then stop the core and await its end."""

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            try:
                await asyncio.wait_for(app.bridge.wait_ready(), 5)
                await asyncio.wait_for(scenario(pilot), timeout)
            finally:
                await shut_down(app)

    asyncio.run(main())
    assert app.bridge.finished


async def until(
    pilot: Pilot[Any], predicate: Callable[[], object], what: str, within: float = 5.0
) -> None:
    """Wait (bounded: `within` seconds) until `predicate()` is true, letting app and core run."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await pilot.pause(0.02)


async def settle(pilot: Pilot[Any]) -> None:
    """Let the core finish what is due, then the app catch up (reads, refresh, render)."""
    app = pilot.app
    assert isinstance(app, DeckApp)
    await app.bridge.settle()
    app.refresh_now()
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def worker_state(app: DeckApp, name: str) -> Any:
    """The worker's snapshot as of now."""
    return app.orch.snapshot().worker(name)


@pytest.fixture
def virtual_time() -> Iterator[VirtualTime]:
    """Frozen virtual time, and trio scheduling in a repeatable order."""
    with deterministic_scheduling():
        yield VirtualTime()
