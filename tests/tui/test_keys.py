"""Every key of the dashboard does what the footer says, against a real core."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from typing import Any

import pytest
import trio
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Input, Static

from jobdeck import LogLine
from jobdeck.tui._virtual_time import VirtualTime
from jobdeck.tui.app import DeckApp
from jobdeck.tui.screens import (
    ConfirmScreen,
    DeadLetterScreen,
    DeckScreen,
    DetailScreen,
    HelpScreen,
    PayloadScreen,
    RunScreen,
)
from jobdeck.tui.widgets import Flash, FlashLine, KeyBar

from . import workers
from .conftest import basic_workers, drive, make_app, make_orchestrator, settle, until, worker_state

TS = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def rows(app: DeckApp) -> list[str]:
    return app.deck.worker_table.keys


def select(app: DeckApp, name: str) -> None:
    app.deck.worker_table.select_key(name)


def plain(static: Static) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=200, file=io.StringIO(), color_system=None)
    with console.capture() as captured:
        console.print(static.content)
    return captured.get()


def flash(app: DeckApp) -> str:
    """What the flash line of the screen shown says now."""
    return app.screen.query_one(FlashLine).text


def basic_app(**kwargs: Any) -> DeckApp:
    return make_app(make_orchestrator(basic_workers(), **kwargs))


def test_rows_show_every_worker_at_start() -> None:
    """The workers table has one row per worker, in config order, once the core is up."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app) == ["alpha", "bravo", "charlie", "delta"], "rows")

    drive(app, scenario)


def test_t_triggers_the_selected_worker() -> None:
    """`t` runs the selected worker once and says so."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        select(app, "alpha")
        await pilot.press("t")
        await until(pilot, lambda: worker_state(app, "alpha").runs_ok == 1, "alpha's run")
        assert flash(app) == "Triggered alpha"
        assert worker_state(app, "bravo").runs_failed == 0

    drive(app, scenario)


def test_shift_t_sends_the_typed_json_payload() -> None:
    """`T` opens a dialog; the JSON typed there is the run's payload."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        select(app, "alpha")
        await pilot.press("T")
        assert isinstance(app.screen, PayloadScreen)
        await pilot.press(*'{"n": 3}', "enter")
        assert isinstance(app.screen, DeckScreen)
        await until(pilot, lambda: worker_state(app, "alpha").runs_ok == 1, "alpha's run")
        runs = await app.bridge.read(app.orch.history, "alpha", 5)
        assert runs[0].trigger.payload == {"n": 3}

    drive(app, scenario)


def test_invalid_json_is_an_error_in_the_dialog_and_sends_nothing() -> None:
    """Invalid JSON keeps the dialog open with an error; no trigger is sent."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        select(app, "alpha")
        await pilot.press("T", *"{oops", "enter")
        assert isinstance(app.screen, PayloadScreen)
        error = plain(app.screen.query_one("#payload-error", Static))
        assert "invalid JSON" in error
        await pilot.press("escape")
        assert isinstance(app.screen, DeckScreen)
        await settle(pilot)
        assert worker_state(app, "alpha").runs_ok == 0
        assert app.orch.snapshot().pending == 0

    drive(app, scenario)


def key_bar(app: DeckApp) -> str:
    return app.screen.query_one(KeyBar).render_line(0).text


def test_an_open_circuit_says_circuit_open_and_e_resets_it() -> None:
    """An open circuit is `circuit open` (not "disabled") in the row, the header and the
    detail, which agree on the next run; the key bar offers `e Reset circuit`, no `d`."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        select(app, "bravo")
        assert app.deck.check_action("enable", ()) is None  # greyed: nothing to enable
        await pilot.press("t")
        await until(pilot, lambda: worker_state(app, "bravo").circuit == "open", "open circuit")
        await settle(pilot)
        table = app.deck.worker_table
        assert table.get_cell("bravo", "state").plain == "circuit open"
        assert table.get_cell("bravo", "why").plain.startswith("e resets · after 1 failure")
        assert table.get_cell("bravo", "next").plain == "—"
        await until(pilot, lambda: "1 circuit open" in plain(app.deck.query_one("#status", Static)),
                    "the header to say what is wrong")
        assert "disabled" not in plain(app.deck.query_one("#status", Static))
        assert " e Reset circuit " in key_bar(app)
        assert " d Disable " not in key_bar(app) and " e Enable " not in key_bar(app)
        await pilot.press("enter")
        await settle(pilot)
        detail = " ".join(plain(s) for s in app.screen.query(Static))
        assert "circuit open" in detail and "enabled yes" not in detail
        assert "no: its circuit is open (e resets it)" in detail
        assert "none until the circuit is reset (e)" in detail
        assert " e Reset circuit " in key_bar(app)
        await pilot.press("escape")
        assert app.deck.check_action("reset_circuit", ()) is True
        await pilot.press("e")
        await until(pilot, lambda: worker_state(app, "bravo").circuit == "closed", "closed")
        bravo = worker_state(app, "bravo")
        assert bravo.enabled and bravo.consecutive_failures == 0
        assert flash(app) == "Reset the circuit of bravo: runs start again"

    drive(app, scenario)


def test_d_disables_the_selected_worker() -> None:
    """`d` disables the selected worker; its state says disabled."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        select(app, "delta")
        await pilot.press("d")
        await until(pilot, lambda: not worker_state(app, "delta").enabled, "disabled")
        await settle(pilot)
        state_cell = app.deck.worker_table.get_cell("delta", "state")
        assert state_cell.plain == "disabled"
        assert app.deck.check_action("disable", ()) is None
        assert app.deck.check_action("enable", ()) is True

    drive(app, scenario)


def test_p_pauses_then_resumes_everything() -> None:
    """`p` pauses all (no new runs start), `p` again resumes."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await pilot.press("p")
        assert app.orch.paused
        assert app.deck.check_action("resume", ()) is True
        assert app.deck.check_action("pause", ()) is False
        select(app, "alpha")
        await pilot.press("t")
        await settle(pilot)
        assert worker_state(app, "alpha").runs_ok == 0
        assert worker_state(app, "alpha").reason == "paused"
        await pilot.press("p")
        assert not app.orch.paused
        await until(pilot, lambda: worker_state(app, "alpha").runs_ok == 1, "held run")

    drive(app, scenario)


async def dead_letter_of(pilot: Pilot[Any], app: DeckApp, name: str) -> None:
    select(app, name)
    await pilot.press("t")
    await until(pilot, lambda: app.orch.snapshot().dlq_size >= 1, "a dead letter")
    await pilot.press("3")
    await settle(pilot)
    await until(pilot, lambda: app.deck.dlq_table.row_count >= 1, "DLQ rows")


def test_r_replays_the_selected_dead_letter() -> None:
    """`r` on the DLQ tab replays the entry: a new run with source `replay`."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await dead_letter_of(pilot, app, "charlie")
        assert app.deck.check_action("replay", ()) is True
        await pilot.press("r")
        await until(pilot, lambda: worker_state(app, "charlie").runs_ok == 1, "replayed run")
        runs = await app.bridge.read(app.orch.history, "charlie", 5)
        assert runs[0].trigger.source.value == "replay"
        await settle(pilot)
        assert app.deck.dlq_table.row_count == 0
        assert app.deck.check_action("replay", ()) is None

    drive(app, scenario)


def test_x_deletes_the_dead_letter_after_yes_only() -> None:
    """`x` asks first: `n` keeps the entry, `y` deletes it."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await dead_letter_of(pilot, app, "charlie")
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert app.orch.snapshot().dlq_size == 1
        await pilot.press("x")
        await pilot.press("y")
        await until(pilot, lambda: app.orch.snapshot().dlq_size == 0, "deleted")
        await settle(pilot)
        assert app.deck.dlq_table.row_count == 0

    drive(app, scenario)


def test_shift_x_purges_the_queue_after_yes() -> None:
    """`X` asks, then deletes every dead letter."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await dead_letter_of(pilot, app, "charlie")
        await pilot.press("1")
        select(app, "bravo")
        await pilot.press("t")
        await until(pilot, lambda: app.orch.snapshot().dlq_size == 2, "two dead letters")
        await pilot.press("3", "X")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: app.orch.snapshot().dlq_size == 0, "purged")
        await until(pilot, lambda: flash(app) == "Purged 2 dead letters", "feedback")

    drive(app, scenario)


def test_slash_filters_rows_by_name_and_esc_clears() -> None:
    """`/` then a name fragment narrows the rows; `esc` brings them all back."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: len(rows(app)) == 4, "rows")
        await pilot.press("slash", *"ha")
        assert rows(app) == ["alpha", "charlie"]
        await pilot.press("enter")
        assert app.deck.worker_table.has_focus
        assert rows(app) == ["alpha", "charlie"]
        await pilot.press("escape")
        assert rows(app) == ["alpha", "bravo", "charlie", "delta"]

    drive(app, scenario)


def test_filter_by_state_keeps_workers_in_that_state() -> None:
    """A state word (`disabled`) keeps only the workers in that state."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: len(rows(app)) == 4, "rows")
        select(app, "charlie")
        await pilot.press("d")
        await until(pilot, lambda: not worker_state(app, "charlie").enabled, "disabled")
        await pilot.press("slash", *"disabled", "enter")
        await settle(pilot)
        assert rows(app) == ["charlie"]

    drive(app, scenario)


def test_s_cycles_the_sort_and_reorders_rows() -> None:
    """`s` moves to the next sort column, reorders the rows and names it in the header."""
    orch = make_orchestrator({
        "zulu": (workers.ok, {"mode": "triggered"}),
        "mike": (workers.fail, {"mode": "triggered", "max_retries": 0,
                                "max_consecutive_failures": 1}),
        "alpha": (workers.ok, {"mode": "triggered"}),
    })
    app = make_app(orch)

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app) == ["zulu", "mike", "alpha"], "config order")
        await pilot.press("s")
        assert rows(app) == ["alpha", "mike", "zulu"]
        status = plain(app.deck.query_one("#status", Static))
        assert "sort name" in status
        select(app, "mike")
        await pilot.press("t")
        await until(pilot, lambda: worker_state(app, "mike").runs_failed == 1, "mike failed")
        await pilot.press("s")  # state: the ones needing a person first
        await settle(pilot)
        assert rows(app)[0] == "mike"
        assert app.deck.worker_table.selected_worker == "mike"  # the cursor follows its row

    drive(app, scenario)


def test_j_k_g_shift_g_move_the_cursor() -> None:
    """`j`/`k` move down/up a row, `g`/`G` jump to the first/last row."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: len(rows(app)) == 4, "rows")
        table = app.deck.worker_table
        await pilot.press("j", "j")
        assert table.selected_worker == "charlie"
        await pilot.press("k")
        assert table.selected_worker == "bravo"
        await pilot.press("G")
        assert table.selected_worker == "delta"
        await pilot.press("g")
        assert table.selected_worker == "alpha"

    drive(app, scenario)


def test_enter_opens_the_detail_and_esc_goes_back() -> None:
    """`enter` shows the selected worker's spec, runs and last error; `esc` returns."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        select(app, "bravo")
        await pilot.press("t")
        await until(pilot, lambda: worker_state(app, "bravo").runs_failed == 1, "bravo failed")
        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen) and app.screen.worker == "bravo"
        await settle(pilot)
        text = " ".join(plain(s) for s in app.screen.query(Static))
        assert "tests.tui.workers:fail" in text
        assert "RuntimeError: boom" in text
        assert "failed" in text
        await pilot.press("e")  # keys work on the detail's worker
        await until(pilot, lambda: worker_state(app, "bravo").circuit == "closed", "enabled")
        await pilot.press("escape")
        assert isinstance(app.screen, DeckScreen)

    drive(app, scenario)


def test_detail_lists_pending_triggers_with_their_payload() -> None:
    """A trigger waiting (everything paused) shows in the detail with its source and payload."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await pilot.press("p")
        select(app, "alpha")
        await pilot.press("T", *'{"n": 7}', "enter")
        await until(pilot, lambda: worker_state(app, "alpha").pending == 1, "a pending trigger")
        await pilot.press("enter")
        await settle(pilot)
        pending = plain(app.screen.query_one("#detail-pending", Static))
        assert "1 waiting" in pending
        assert "manual" in pending and '{"n": 7}' in pending

    drive(app, scenario)


def test_l_follows_the_selected_workers_logs() -> None:
    """`l` opens the Logs tab on the selected worker, following; `l` there toggles follow."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        select(app, "alpha")
        await pilot.press("t")
        await until(pilot, lambda: worker_state(app, "alpha").runs_ok == 1, "alpha ran")
        await pilot.press("l")
        log = app.deck.log_view
        assert app.deck.active_tab == "logs"
        assert log.scope == "alpha" and log.follow
        assert any("alpha done" in line for line in log.lines)
        await pilot.press("l")
        assert not log.follow
        await pilot.press("a")
        assert log.scope is None

    drive(app, scenario)


def test_number_keys_and_tab_switch_tabs() -> None:
    """`1` to `4` pick a tab; `tab` cycles through them."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        for key, tab in (("2", "logs"), ("3", "dlq"), ("4", "history"), ("1", "workers")):
            await pilot.press(key)
            assert app.deck.active_tab == tab
        await pilot.press("tab")
        assert app.deck.active_tab == "logs"
        await pilot.press("tab", "tab", "tab")
        assert app.deck.active_tab == "workers"

    drive(app, scenario)


def test_history_tab_lists_recent_runs() -> None:
    """The History tab shows runs across workers with their outcome."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        select(app, "alpha")
        await pilot.press("t", "j", "t")
        await until(pilot, lambda: worker_state(app, "bravo").runs_failed == 1, "runs")
        await pilot.press("4")
        await until(pilot, lambda: app.deck.history_table.row_count == 2, "history rows")
        statuses = sorted(
            app.deck.history_table.get_row(row.key)[3].plain
            for row in app.deck.history_table.ordered_rows
        )
        assert statuses == ["failed", "succeeded"]

    drive(app, scenario)


def test_actions_for_another_tab_are_hidden_and_unusable_ones_greyed() -> None:
    """check_action: worker keys hide on the DLQ tab; DLQ keys grey out when it is empty."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        deck = app.deck
        assert deck.check_action("trigger", ()) is True
        assert deck.check_action("replay", ()) is False
        await pilot.press("3")
        await settle(pilot)
        assert deck.check_action("trigger", ()) is False
        assert deck.check_action("replay", ()) is None
        assert deck.check_action("purge", ()) is None
        footer_keys = {b.binding.key: b.enabled for b in app.screen.active_bindings.values()}
        assert footer_keys["r"] is False and "t" not in footer_keys

    drive(app, scenario)


#: The keys of the Nodes tab, which exists in cluster mode only.
NODE_KEYS = ("drain", "undrain", "show_tab('nodes')")


def test_question_mark_lists_every_key() -> None:
    """`?` shows a help screen with every binding's description."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = plain(app.screen.query_one(Static))
        for binding in DeckScreen.BINDINGS:
            if binding.action in NODE_KEYS:  # type: ignore[union-attr]
                # a single node: no Nodes view, so none of its keys
                assert binding.tooltip not in text, binding  # type: ignore[union-attr]
                continue
            assert binding.tooltip in text, binding  # type: ignore[union-attr]
        assert "Command palette" in text
        await pilot.press("escape")
        assert isinstance(app.screen, DeckScreen)

    drive(app, scenario)


def test_command_palette_triggers_a_worker() -> None:
    """ctrl+p, "Trigger alpha", enter: alpha runs."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await pilot.press("ctrl+p")
        await pilot.press(*"Trigger alpha")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: worker_state(app, "alpha").runs_ok == 1, "alpha ran")

    drive(app, scenario)


def test_a_circuit_opening_and_a_dead_letter_go_to_the_feed_not_to_toasts() -> None:
    """Failures and circuits are activity lines; nothing pops over the screen, even `?`."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        select(app, "bravo")
        await pilot.press("t")
        await pilot.press("question_mark")
        await until(pilot, lambda: any("circuit open after 1 failures" in line
                                       for line in app.deck.activity.lines), "circuit line")
        await settle(pilot)
        lines = app.deck.activity.lines
        assert any("failed → DLQ #1: RuntimeError: boom" in line for line in lines)
        assert isinstance(app.screen, HelpScreen)
        assert not app._notifications  # no toast at all, over the help or anywhere

    drive(app, scenario)


def test_an_acknowledgement_shows_in_the_flash_line_for_a_few_seconds() -> None:
    """`s` says "Sorted by name" in the one flash line above the key bar; it then goes."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await pilot.press("s")
        line = app.deck.query_one(FlashLine)
        assert line.text == "Sorted by name ▲"
        assert line.region.y == app.screen.size.height - 2  # just above the key bar
        assert not app._notifications
        await pilot.press("s")
        assert line.text == "Sorted by state ▲"  # the latest only, never a pile
        line.show(Flash("gone", "info", 0.0))  # as when its time is up
        assert line.text == ""

    drive(app, scenario)


def test_q_stops_gracefully_and_the_guest_run_ends() -> None:
    """`q` shows the stop banner, lets the run in flight finish, then exits 0."""
    orch = make_orchestrator(
        {"slow": (workers.sleep_long, {"mode": "triggered", "params": {"seconds": 2}})},
        shutdown_grace_seconds=10,
    )
    app = make_app(orch)

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await pilot.press("t")
        await until(pilot, lambda: worker_state(app, "slow").state == "running", "running")
        await pilot.press("q")
        assert "stopping… 1 run in flight" in plain(app.deck.stop_banner)
        assert app.deck.check_action("trigger", ()) is None
        # The core counts the grace from the moment its drain begins, just after.
        await until(
            pilot,
            lambda: "stopping… 1 run in flight, 10 s left" in plain(app.deck.stop_banner),
            "the grace counted down by the core",
        )
        await app.bridge.wait_done()

    drive(app, scenario)
    assert app.return_code == 0
    assert orch.snapshot().worker("slow").runs_ok == 1


def test_the_stop_banner_counts_down_the_cores_grace(virtual_time: VirtualTime) -> None:
    """The banner shows the core's `grace_left_s`: it follows the core's clock, not the app's."""
    orch = make_orchestrator(
        {"slow": (workers.sleep_long, {"mode": "triggered"})},
        now=virtual_time.now, shutdown_grace_seconds=10,
    )
    app = make_app(orch, clock=virtual_time.now, trio_clock=virtual_time.trio_clock)

    def banner() -> str:
        return plain(app.deck.stop_banner)

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await pilot.press("t")
        await settle(pilot)
        await pilot.press("q")
        await settle(pilot)
        assert "stopping… 1 run in flight, 10 s left" in banner()
        await virtual_time.advance(app, 3.5)
        assert "stopping… 1 run in flight, 7 s left" in banner()
        virtual_time.release()  # the rest of the grace, and the end, on their own

    drive(app, scenario)
    assert app.return_code == 0


def test_second_q_interrupts_runs_in_flight() -> None:
    """A second `q` skips the grace: the run is recorded interrupted, the app exits 0."""
    orch = make_orchestrator(
        {"slow": (workers.sleep_long, {"mode": "triggered"})}, shutdown_grace_seconds=30
    )
    app = make_app(orch)

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await pilot.press("t")
        await until(pilot, lambda: worker_state(app, "slow").state == "running", "running")
        await pilot.press("q", "q")
        assert "forcing stop" in plain(app.deck.stop_banner)
        await app.bridge.wait_done()

    drive(app, scenario, timeout=10)
    assert app.return_code == 0
    history = trio.run(orch.store.runs)
    assert [run.status.value for run in history] == ["interrupted"]


def test_ctrl_c_stops_like_q() -> None:
    """ctrl+c is a key in Textual: it stops gracefully like `q`."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await pilot.press("ctrl+c")
        await app.bridge.wait_done()

    drive(app, scenario)
    assert app.return_code == 0


def test_a_core_crash_shows_the_error_and_exits_non_zero(capfd: pytest.CaptureFixture[str]) -> None:
    """A core that fails at start ends the app with code 1 and the error to print."""

    class BrokenStore:
        async def open(self) -> None:
            raise OSError("disk on fire")

    orch = make_orchestrator(basic_workers(), store=BrokenStore())
    app = make_app(orch)

    async def main() -> None:
        async with app.run_test() as pilot:
            await app.bridge.wait_done()
            await pilot.pause()

    asyncio.run(main())
    assert app.bridge.finished
    assert app.return_code == 1
    printed = capfd.readouterr().err
    assert "the core crashed: OSError: disk on fire" in printed
    assert "Traceback" in printed


def test_a_config_problem_at_start_exits_2_with_the_message(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A dependency on an unknown worker (found at start) exits 2 with its message."""
    orch = make_orchestrator({"a": (workers.ok, {"depends_on": ["ghost"]})})
    app = make_app(orch)

    async def main() -> None:
        async with app.run_test() as pilot:
            await app.bridge.wait_done()
            await pilot.pause()

    asyncio.run(main())
    assert app.return_code == 2
    assert "unknown worker 'ghost'" in capfd.readouterr().err


def test_input_keys_go_to_the_filter_not_to_actions() -> None:
    """Typing `t` in the filter types it; it does not trigger the worker."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await pilot.press("slash", "t")
        assert app.screen.query_one("#filter", Input).value == "t"
        await settle(pilot)
        assert worker_state(app, "alpha").runs_ok == 0

    drive(app, scenario)


def test_triggering_a_worker_that_cannot_run_says_why_it_waits() -> None:
    """`t` on a paused, disabled or open-circuit worker: the flash says what holds the
    trigger, and the row's why counts the triggers queued."""
    app = basic_app()

    def why(name: str) -> str:
        return app.deck.worker_table.get_cell(name, "why").plain

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        select(app, "bravo")
        await pilot.press("t")  # its circuit opens after one failure
        await until(pilot, lambda: worker_state(app, "bravo").circuit == "open", "open circuit")
        await settle(pilot)
        await pilot.press("t")
        assert flash(app) == "bravo — queued: circuit open (e to reset)"
        select(app, "delta")
        await pilot.press("d")
        await until(pilot, lambda: not worker_state(app, "delta").enabled, "disabled")
        await settle(pilot)
        await pilot.press("t")
        assert flash(app) == "delta — queued: disabled (e to enable)"
        select(app, "alpha")
        await pilot.press("p", "t")
        assert flash(app) == "alpha — queued: paused (p resumes)"
        await settle(pilot)
        assert why("alpha") == "paused · 1 trigger queued"
        assert why("bravo").endswith("· 1 trigger queued")
        assert why("delta") == "by an operator — e enables · 1 trigger queued"

    drive(app, scenario)


def test_sorting_by_next_run_puts_workers_that_cannot_run_last_and_S_reverses() -> None:
    """Next run: soonest first, a disabled worker (—) last either way; `S` flips it."""
    orch = make_orchestrator({
        "later": (workers.ok, {"interval_seconds": 3600, "run_at_start": False}),
        "off": (workers.ok, {"interval_seconds": 60, "run_at_start": False, "enabled": False}),
        "sooner": (workers.ok, {"interval_seconds": 600, "run_at_start": False}),
        "manual": (workers.ok, {"mode": "triggered"}),
    })
    app = make_app(orch)

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: len(rows(app)) == 4, "rows")
        await pilot.press("s", "s", "s", "s")  # name, state, last run, next run
        assert app.deck.worker_table.sort_by == "next"
        assert rows(app) == ["sooner", "later", "off", "manual"]
        assert "next run ▲" in app.deck.worker_table.columns.values()
        await pilot.press("S")
        assert rows(app) == ["later", "sooner", "off", "manual"]
        assert "next run ▼" in app.deck.worker_table.columns.values()
        assert "sort next run ▼" in plain(app.deck.query_one("#status", Static))
        await pilot.press("s")  # another sort: the reversal stays until S again
        assert app.deck.worker_table.sort_by == "took"

    drive(app, scenario)


def test_counters_since_start_are_labelled_and_agree_with_stored_history() -> None:
    """Per-process counts say "since start" in the column and the detail; the detail tells
    the stored runs apart (they survive restarts)."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        assert app.deck.worker_table.columns["runs"] == "since start"
        select(app, "charlie")
        await pilot.press("t")
        await until(pilot, lambda: worker_state(app, "charlie").runs_failed == 1, "a failure")
        await settle(pilot)
        assert app.deck.worker_table.get_cell("charlie", "runs").plain == "0 ok 1 ✗"
        await pilot.press("enter")
        await settle(pilot)
        await until(pilot, lambda: "stored run" in plain(
            app.screen.query_one("#detail-runs", Static)), "the stored runs")
        state = plain(app.screen.query_one("#detail-state", Static))
        assert "since start" in state and "0 ok · 1 failed" in state
        runs = plain(app.screen.query_one("#detail-runs", Static))
        assert "last 1 stored run: 0 ok · 1 failed" in runs

    drive(app, scenario)


def test_a_full_screen_dead_letter_has_a_key_bar_and_its_keys_work() -> None:
    """`enter` on a dead letter: its own screen, whose key bar offers esc, r and x; `r`
    replays it and goes back to the list."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await dead_letter_of(pilot, app, "charlie")
        await pilot.press("enter")
        assert isinstance(app.screen, DeadLetterScreen)
        keys = app.screen.query_one(KeyBar).shown_keys
        for key in ("escape", "r", "x", "question_mark", "q"):
            assert key in keys, keys
        assert " esc Back " in key_bar(app) and " r Replay " in key_bar(app)
        await pilot.press("escape")
        assert isinstance(app.screen, DeckScreen)
        await pilot.press("enter", "r")
        assert isinstance(app.screen, DeckScreen)
        await until(pilot, lambda: worker_state(app, "charlie").runs_ok == 1, "replayed run")

    drive(app, scenario)


def test_slash_filters_the_history_and_the_dead_letters_too() -> None:
    """`/` works on every tab: History and Dead letters keep the rows with the text."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await dead_letter_of(pilot, app, "charlie")
        await pilot.press("1")
        select(app, "alpha")
        await pilot.press("t")
        await until(pilot, lambda: worker_state(app, "alpha").runs_ok == 1, "alpha ran")
        await pilot.press("4")
        history = app.deck.history_table
        await until(pilot, lambda: history.row_count == 2, "two runs")
        await pilot.press("slash", *"fail")
        assert history.row_count == 1
        assert history.get_row_at(0)[1].plain == "charlie"
        await pilot.press("enter")
        assert history.has_focus and history.row_count == 1
        assert "filter fail 1/2" in plain(app.deck.query_one("#status", Static))
        await pilot.press("escape")
        assert history.row_count == 2
        await pilot.press("3", "slash", *"alpha")
        assert app.deck.dlq_table.row_count == 0
        await pilot.press("escape")
        assert app.deck.dlq_table.row_count == 1

    drive(app, scenario)


def test_logs_search_highlights_matches_n_moves_and_L_filters_levels() -> None:
    """On Logs, `/` searches (matches counted, `n`/`N` move between them) and `L` shows
    only lines of a level and above."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await pilot.press("2")
        log = app.deck.log_view
        log.add([LogLine(ts=TS, worker="alpha", run_id="r", level="INFO", message=f"row {i}")
                 for i in range(30)])
        log.add([LogLine(ts=TS, worker="alpha", run_id="r", level="ERROR",
                         message="disk full\nTraceback line")])
        app.refresh_now()
        await pilot.press("slash", *"row 1", "enter")
        assert log.match_count == 11  # row 1, row 10 … row 19
        assert log.current_match == 19  # the newest first
        assert "1" in str(log.border_title) and "of 11" in str(log.border_title)
        await pilot.press("N")
        assert log.current_match == 18
        await pilot.press("n")
        assert log.current_match == 19
        assert not log.follow  # held still on the match
        await pilot.press("L")
        assert log.lines[0].endswith("row 0")  # INFO and above: still all
        await pilot.press("L")  # WARNING and above
        assert len(log.lines) == 2  # the message and its further line
        assert log.lines[0].endswith("ERROR   disk full")
        assert log.lines[1].strip() == "Traceback line"
        assert "WARNING and above" in str(log.border_title)
        await pilot.press("escape")
        assert log.search == "" and log.match_count == 0

    drive(app, scenario)


def test_shift_t_offers_the_workers_own_payload_not_another_workers() -> None:
    """`T` opens filled in: the worker's last payload, else its spec's `example_payload`
    (from the config file), else `{}`."""
    app = basic_app()

    def dialog_value() -> str:
        return app.screen.query_one("#payload-input", Input).value

    async def open_dialog(pilot: Pilot[Any], name: str) -> None:
        select(app, name)
        await pilot.press("T")
        await until(pilot, lambda: isinstance(app.screen, PayloadScreen), "the dialog")

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        await open_dialog(pilot, "alpha")
        assert dialog_value() == "{}"
        await pilot.press(*'{"n": 3}', "enter")  # typing replaces what was offered
        await until(pilot, lambda: worker_state(app, "alpha").runs_ok == 1, "alpha's run")
        await open_dialog(pilot, "alpha")
        assert dialog_value() == '{"n": 3}'
        assert "filled in from its last payload" in plain(
            app.screen.query_one("#payload-hint", Static))
        await pilot.press("escape")
        await open_dialog(pilot, "bravo")
        assert dialog_value() == "{}"  # not alpha's shape
        await pilot.press("escape")

    drive(app, scenario)


def test_shift_t_offers_the_example_payload_of_the_config(tmp_path: Any) -> None:
    """`example_payload` in a worker's TOML table is what `T` offers before any run."""
    from jobdeck import MemoryStore, Orchestrator, load_config

    config_file = tmp_path / "jobs.toml"
    config_file.write_text(
        "[workers.report]\n"
        'fn = "tests.tui.workers:ok"\n'
        'mode = "triggered"\n'
        'example_payload = { to = "ops@example.com", rows = [1, 2] }\n'
    )
    config = load_config(config_file)
    app = make_app(Orchestrator.from_config(config, store=MemoryStore()))

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app) == ["report"], "the row")
        await pilot.press("T")
        await until(pilot, lambda: isinstance(app.screen, PayloadScreen), "the dialog")
        value = app.screen.query_one("#payload-input", Input).value
        assert value == '{"to": "ops@example.com", "rows": [1, 2]}'
        await pilot.press("enter")
        await until(pilot, lambda: worker_state(app, "report").runs_ok == 1, "the run")
        runs = await app.bridge.read(app.orch.history, "report", 5)
        assert runs[0].trigger.payload == {"to": "ops@example.com", "rows": [1, 2]}

    drive(app, scenario)


def test_the_palette_says_what_quit_does_saves_screenshots_here_and_counts_right(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quit says it stops gracefully; Screenshot saves in the working directory (or
    $XDG_PICTURES_DIR) and says where; one dead letter is not "all 1 dead letters"."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XDG_PICTURES_DIR", raising=False)
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert "gracefully" in commands["Quit"].help
        assert "as soon as possible" not in commands["Quit"].help
        path = app.save_screen_picture()
        assert path is not None and path.parent == tmp_path and path.exists()
        assert flash(app) == f"Screenshot saved: {path}"
        pictures = tmp_path / "pictures"
        pictures.mkdir()
        monkeypatch.setenv("XDG_PICTURES_DIR", str(pictures))
        path = app.save_screen_picture()
        assert path is not None and path.parent == pictures
        await dead_letter_of(pilot, app, "charlie")
        await pilot.press("X")
        question = plain(app.screen.query_one(Static))
        assert "Delete the one dead letter?" in question and "all 1" not in question
        await pilot.press("n")
        from jobdeck.tui._commands import DeckCommands

        provider = DeckCommands(app.screen)
        helps = [help_text for _, _, help_text in provider._global_commands()]
        assert "Delete 1 dead letter (asks first)" in helps

    drive(app, scenario)


def test_enter_on_a_history_row_opens_the_run_and_t_runs_it_again() -> None:
    """`enter` on History shows the run's attempts, traceback and log lines; `t` triggers
    its worker again with the same payload; `esc` goes back."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        assert app.bridge.control("trigger", "alpha", {"n": 7})
        await until(pilot, lambda: worker_state(app, "alpha").runs_ok == 1, "alpha ran")
        await pilot.press("4")
        await until(pilot, lambda: app.deck.history_table.row_count == 1, "history row")
        app.deck.history_table.focus()
        await pilot.press("enter")
        assert isinstance(app.screen, RunScreen)
        screen = app.screen
        await until(pilot, lambda: screen.detail is not None, "run read")
        text = plain(screen.query_one("#run-body", Static))
        assert "alpha done (payload {'n': 7})" in text  # its own log line
        assert '"n": 7' in text and "#1" in text and "succeeded" in text
        await pilot.press("t")
        await until(pilot, lambda: worker_state(app, "alpha").runs_ok == 2, "ran again")
        runs = await app.bridge.read(app.orch.history, "alpha", 1)
        assert runs[0].trigger.payload == {"n": 7}
        await pilot.press("escape")
        assert isinstance(app.screen, DeckScreen)

    drive(app, scenario)


def test_the_run_view_shows_the_workers_frames_and_f_the_whole_traceback() -> None:
    """A failed run opened from the worker detail (`enter`) shows its error and traceback."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        select(app, "bravo")
        await pilot.press("t")
        await until(pilot, lambda: worker_state(app, "bravo").runs_failed == 1, "bravo failed")
        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen)
        detail = app.screen
        await until(pilot, lambda: bool(detail.runs), "runs read")
        await pilot.press("enter")
        assert isinstance(app.screen, RunScreen)
        screen = app.screen
        await until(pilot, lambda: screen.detail is not None, "run read")
        text = plain(screen.query_one("#run-body", Static))
        assert "RuntimeError: boom" in text and "tests/tui/workers.py" in text
        assert "_runs.py" not in text
        await pilot.press("f")
        assert "_runs.py" in plain(screen.query_one("#run-body", Static))
        await pilot.press("escape")
        assert app.screen is detail

    drive(app, scenario)


def test_j_in_the_worker_detail_selects_an_older_run_and_enter_opens_it() -> None:
    """In a worker's detail, `enter` opens the selected recent run; `j` selects older."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        for n in (1, 2):
            assert app.bridge.control("trigger", "alpha", {"n": n})
            await until(pilot, lambda n=n: worker_state(app, "alpha").runs_ok == n, f"run {n}")
        select(app, "alpha")
        await pilot.press("enter")
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        await until(pilot, lambda: len(detail.runs or ()) == 2, "runs read")
        await pilot.press("j", "j")  # past the oldest: stays on it
        assert detail.selected_run_index == 1
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await until(pilot, lambda: screen.detail is not None, "run read")
        assert screen.detail is not None and screen.detail.record.trigger.payload == {"n": 1}

    drive(app, scenario)


def test_ctrl_r_reloads_the_config_file(tmp_path: Any) -> None:
    """ctrl+r reads the config file again: an added worker appears, and a broken file is
    refused with its problems, the workers staying as they were."""
    path = tmp_path / "jobs.toml"
    sample = '[workers.{name}]\nfn = "tests.tui.workers:ok"\nmode = "triggered"\n'
    path.write_text(sample.format(name="alpha"))
    orch = make_orchestrator({"alpha": (workers.ok, {"mode": "triggered"})})
    orch.config_path = path
    app = make_app(orch)

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app) == ["alpha"], "rows")
        path.write_text(sample.format(name="alpha") + sample.format(name="bravo"))
        await pilot.press("ctrl+r")
        await until(pilot, lambda: rows(app) == ["alpha", "bravo"], "the added worker")
        await until(pilot, lambda: "added bravo" in flash(app), "the flash line")
        path.write_text(sample.format(name="alpha") + 'depends_on = ["ghost"]\n')
        await pilot.press("ctrl+r")
        await until(pilot, lambda: "unknown worker 'ghost'" in flash(app), "refusal")
        assert orch.worker_names == ["alpha", "bravo"]

    drive(app, scenario)


def test_five_says_single_node_in_local_mode_and_tab_skips_the_nodes_tab() -> None:
    """Alone on its own store there is no Nodes tab: `5` says why in the flash line, and
    `tab` cycles through the four tabs there are."""
    app = basic_app()

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app), "rows")
        deck = app.deck
        await pilot.press("5")
        assert deck.active_tab == "workers"
        flash = app.controller.current_flash
        assert flash is not None and flash.text.startswith("Single node")
        seen = []
        for _ in range(5):
            await pilot.press("tab")
            seen.append(deck.active_tab)
        assert seen == ["logs", "dlq", "history", "workers", "logs"]
        assert "node" not in deck.worker_table.columns
        assert not deck.query_one("#cluster-bar").display

    drive(app, scenario)
