"""Snapshot tests: the dashboard's screens on a real core in virtual time.

The core runs on a frozen trio clock moved in steps (`VirtualTime`), timestamps follow
it and times show in UTC, so every run draws the same picture. Update the SVGs with
`pytest tests/tui --snapshot-update` after a deliberate change, and look at them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from jobdeck.tui._virtual_time import VirtualTime
from jobdeck.tui.app import DeckApp

from .conftest import SIZE, make_app, make_orchestrator, settle
from .workers import showcase

#: Virtual seconds the showcase runs before the picture: long enough for every state.
WARM_UP_S = 12


def showcase_app(virtual_time: VirtualTime) -> DeckApp:
    orch = make_orchestrator(showcase(), now=virtual_time.now, max_concurrent_workers=4)  # type: ignore[arg-type]
    return make_app(
        orch, clock=virtual_time.now, trio_clock=virtual_time.trio_clock,
        on_stop=virtual_time.release,
    )


def warmed_up(virtual_time: VirtualTime, *keys: str) -> Callable[[Pilot[Any]], Any]:
    """run_before: start the core, run it WARM_UP_S virtual seconds, press `keys`."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, DeckApp)
        await app.bridge.wait_ready()
        await virtual_time.advance(app, WARM_UP_S)
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        await pilot.pause()

    return run_before


#: Terminal sizes the main screen is drawn at: the table fits each, columns going in order.
SIZES = [(80, 24), (120, 40), (160, 45), (220, 60)]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_main_screen(snap_compare: Any, virtual_time: VirtualTime, size: tuple[int, int]) -> None:
    """The workers table, status bar, activity feed and key bar, from 80x24 to 220x60:
    nothing off-screen, `?` and `q` always in the key bar, why the widest column."""
    app = showcase_app(virtual_time)
    assert snap_compare(app, terminal_size=size, run_before=warmed_up(virtual_time))
    assert app.bridge.finished


# Tracebacks name files by absolute path and line: they differ between checkouts, so
# the pictures show workers and entries that timed out (no traceback).


def test_worker_detail(snap_compare: Any, virtual_time: VirtualTime) -> None:
    """The detail of a worker whose run timed out: state, spec, runs, last error."""
    app = showcase_app(virtual_time)

    async def run_before(pilot: Pilot[Any]) -> None:
        await warmed_up(virtual_time)(pilot)
        app.deck.worker_table.select_key("slow-report")
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    assert app.bridge.finished


def test_dead_letter_queue(snap_compare: Any, virtual_time: VirtualTime) -> None:
    """The DLQ tab: entries, and the selected one's fields, payload and error."""
    app = showcase_app(virtual_time)

    async def run_before(pilot: Pilot[Any]) -> None:
        await warmed_up(virtual_time, "3")(pilot)
        app.deck.dlq_table.select_key("2")  # slow-report's timeout
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    assert app.bridge.finished


def test_help(snap_compare: Any, virtual_time: VirtualTime) -> None:
    """`?`: every key."""
    app = showcase_app(virtual_time)
    assert snap_compare(
        app, terminal_size=SIZE, run_before=warmed_up(virtual_time, "question_mark")
    )
    assert app.bridge.finished
