"""The dashboard at the sizes people use: 80x24 to 220x60, nothing essential off-screen."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.widgets import Static

from jobdeck.tui.app import DeckApp
from jobdeck.tui.widgets import KeyBar

from . import workers
from .conftest import make_app, make_orchestrator, shut_down, until
from .test_keys import plain


def many_workers(long_name: str) -> DeckApp:
    """Twelve workers, one named `long_name`, one whose circuit opens at once."""
    specs: dict[str, Any] = {
        f"worker-{i:02d}": (workers.ok, {"interval_seconds": 3600, "run_at_start": False})
        for i in range(10)
    }
    specs[long_name] = (workers.ok, {"mode": "triggered"})
    specs["broken"] = (workers.fail, {"mode": "triggered", "max_retries": 0,
                                      "max_consecutive_failures": 1})
    return make_app(make_orchestrator(specs))


def at_size(size: tuple[int, int], check: Any, *keys: str,
            long_name: str = "nightly-warehouse-export") -> None:
    """Run `many_workers()` at `size`, open broken's circuit, press `keys`, check."""
    app = many_workers(long_name)

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            try:
                await asyncio.wait_for(app.bridge.wait_ready(), 5)
                table = app.deck.worker_table
                await until(pilot, lambda: table.row_count == 12, "rows")
                app.orch.request("trigger", "broken")
                await until(pilot, lambda: app.orch.snapshot().health == "disabled",
                            "the circuit open in the overall health")
                for key in keys:
                    await pilot.press(key)
                app.refresh_now()
                await pilot.pause()
                check(app)
            finally:
                await shut_down(app)

    asyncio.run(main())


def header(app: DeckApp) -> str:
    return plain(app.deck.query_one("#status", Static)).rstrip("\n")


def key_bar(app: DeckApp) -> str:
    return app.deck.query_one(KeyBar).render_line(0).text


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40), (140, 40), (220, 60)])
def test_the_table_and_header_never_run_off_the_screen(size: tuple[int, int]) -> None:
    """Table no wider than the screen; header and key bar keep DLQ, uptime, sort, filter,
    `?` and `q`; state and why always shown."""

    def check(app: DeckApp) -> None:
        width = size[0]
        table = app.deck.worker_table
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert {"name", "state", "why"} <= set(table.columns)
        text = header(app)
        assert len(text) <= width, text
        for part in ("DLQ 1", "up ", "name ▲", "/wor" if width < 100 else "filter wor",
                     "10/12", "1 circuit open"):
            assert part in text, (part, text)
        keys = key_bar(app)
        assert "? Help" in keys and "q Quit" in keys, keys

    at_size(size, check, "s", "slash", *"wor", "enter")


def test_at_120_columns_the_circuit_column_shows() -> None:
    """120x40: circuit and last/next run are on screen, the filter in the header."""

    def check(app: DeckApp) -> None:
        columns = app.deck.worker_table.columns
        assert {"circuit", "last", "next", "failures"} <= set(columns)
        assert "filter" in header(app)

    at_size((120, 40), check, "slash", *"bro", "enter", long_name="report-scheduler")


def test_at_140_columns_trend_prio_and_mode_go_first_and_why_gets_the_room() -> None:
    """140x40: trend, prio and mode make way; the why column is the widest."""

    def check(app: DeckApp) -> None:
        table = app.deck.worker_table
        widths = {key: width for key, _, width in table._columns}
        assert not {"trend", "priority", "mode"} & set(widths)
        assert widths["why"] >= 32 and widths["why"] == max(widths.values())
        why = table.get_cell("broken", "why").plain
        assert why == "e resets · after 1 failure", why

    at_size((140, 40), check)


def test_sort_arrows_never_cut_a_header() -> None:
    """Every sort's header label fits its column, arrow included."""

    def check(app: DeckApp) -> None:
        table = app.deck.worker_table
        for _ in range(7):
            for _, label, width in table._columns:
                assert len(label) <= width, label
            app.deck.action_sort()
            app.deck.action_reverse_sort()
            table.show(app.model.snapshot)  # type: ignore[arg-type]

    at_size((220, 60), check)
