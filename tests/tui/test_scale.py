"""A thousand workers: refreshes work out and draw only the rows on screen that changed."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from . import workers
from .conftest import drive, make_app, make_orchestrator, until, worker_state

WORKERS = 1000


def test_a_refresh_with_a_thousand_workers_writes_only_changed_cells() -> None:
    """Nothing changed: no cell written. One worker ran: only its row's cells."""
    orch = make_orchestrator(
        {f"w{i:04d}": (workers.ok, {"mode": "triggered"}) for i in range(WORKERS)}
    )
    app = make_app(orch)

    async def scenario(pilot: Pilot[Any]) -> None:
        table = app.deck.worker_table
        await until(pilot, lambda: table.row_count == WORKERS, "a thousand rows", within=10)
        table.select_key("w0500")
        await pilot.pause()
        app.refresh_now()
        app.refresh_now()
        quiet = app.refresh_costs[-1]
        assert quiet.cells_written == 0
        assert quiet.seconds < 0.5, quiet  # a few ms on a laptop; generous for CI
        before = len(app.refresh_costs)
        await pilot.press("t")
        await until(pilot, lambda: worker_state(app, "w0500").runs_ok == 1, "the run")
        app.refresh_now()
        app.refresh_now()
        assert app.refresh_costs[-1].cells_written == 0
        changed = [cost.cells_written for cost in list(app.refresh_costs)[before:]]
        assert 0 < max(changed) <= len(table.columns)

    drive(app, scenario, timeout=30)


def test_sorting_a_thousand_workers_keeps_the_cursor_on_its_worker() -> None:
    """`s` re-sorts every row; the cursor stays on its worker, scrolled into view."""
    orch = make_orchestrator(
        {f"w{i:04d}": (workers.ok, {"mode": "triggered"}) for i in reversed(range(WORKERS))}
    )
    app = make_app(orch)

    async def scenario(pilot: Pilot[Any]) -> None:
        table = app.deck.worker_table
        await until(pilot, lambda: table.row_count == WORKERS, "a thousand rows", within=10)
        table.select_key("w0100")
        assert table.cursor_row == 899
        await pilot.press("s")  # by name
        assert table.keys[:2] == ["w0000", "w0001"]
        assert table.selected_worker == "w0100" and table.cursor_row == 100
        top = table.scroll_offset.y
        assert top <= 100 < top + table.size.height - 1

    drive(app, scenario, timeout=30)
