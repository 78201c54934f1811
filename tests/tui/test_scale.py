"""A thousand workers: refreshes touch only the cells that changed, and stay cheap."""

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
        app.refresh_now()
        app.refresh_now()
        quiet = app.refresh_costs[-1]
        assert quiet.cells_written == 0
        assert quiet.seconds < 0.5, quiet  # about 10 ms on a laptop; generous for CI
        table.select_key("w0500")
        await pilot.press("t")
        await until(pilot, lambda: worker_state(app, "w0500").runs_ok == 1, "the run")
        app.refresh_now()
        app.refresh_now()
        assert app.refresh_costs[-1].cells_written == 0
        changed = [cost.cells_written for cost in app.refresh_costs if cost.cells_written]
        assert 0 < max(changed[1:]) <= len(table.columns)  # the first one built the table

    drive(app, scenario, timeout=30)
