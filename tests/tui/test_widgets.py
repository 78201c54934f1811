"""The dashboard's own line-drawn widgets: feed, logs, key bar, mouse on the workers table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Static

from jobdeck import (
    AttemptFailed,
    DeadLettered,
    Event,
    HealthChanged,
    LogLine,
    OrchestratorPaused,
    RunFailed,
    RunStarted,
    RunSucceeded,
    TriggerAccepted,
    WorkerDisabled,
)
from jobdeck.tui.screens import DetailScreen
from jobdeck.tui.widgets import KeyBar
from jobdeck.tui.widgets._activity_feed import describe, worth_a_line

from . import workers
from .conftest import basic_workers, drive, make_app, make_orchestrator, until, worker_state

TS = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
RUN = {"ts": TS, "worker": "w", "run_id": "r", "trigger_id": "t", "attempt": 1}


def sample_events() -> list[Event]:
    return [
        RunStarted(**RUN, source="schedule"),
        RunStarted(**RUN, source="continuous"),
        RunSucceeded(**RUN, source="schedule", duration_s=0.5),
        RunSucceeded(**RUN, source="continuous", duration_s=0.5),
        RunFailed(**RUN, source="schedule", duration_s=0.5, error="boom"),
        AttemptFailed(**RUN, source="manual", duration_s=0.1, error="boom", will_retry=True,
                      retry_in_s=1.0),
        AttemptFailed(**RUN, source="manual", duration_s=0.1, error="boom", will_retry=False),
        DeadLettered(**RUN, source="manual", dlq_id=3, error="boom"),
        TriggerAccepted(ts=TS, worker="w", trigger_id="t", source="manual"),
        TriggerAccepted(ts=TS, worker="w", trigger_id="t", source="schedule"),
        WorkerDisabled(ts=TS, worker="w", reason="circuit open after 3 failures"),
        OrchestratorPaused(ts=TS),
        HealthChanged(ts=TS, worker="w", health="failing", previous="ok"),
        LogLine(ts=TS, worker="w", run_id="r", level="INFO", message="hello"),
    ]


def test_the_feeds_quick_filter_agrees_with_describe() -> None:
    """`worth_a_line` (what a burst is filtered with) says yes exactly when `describe` does."""
    for event in sample_events():
        assert worth_a_line(event) == (describe(event) is not None), event


def test_the_activity_feed_keeps_the_newest_lines_of_a_burst() -> None:
    """A burst larger than the feed keeps its newest lines, in order; quiet events none."""
    app = make_app(make_orchestrator(basic_workers()))

    async def scenario(pilot: Pilot[Any]) -> None:
        feed = app.deck.activity
        burst: list[Event] = [
            RunSucceeded(**{**RUN, "worker": f"w{i:03d}"}, source="manual", duration_s=0.5)
            for i in range(300)
        ]
        feed.add([*burst, LogLine(ts=TS, worker="w", run_id="r", level="INFO", message="x")])
        lines = feed.lines
        assert len(lines) == 100
        assert "w200" in lines[0] and "w299" in lines[-1]

    drive(app, scenario)


def test_a_workers_repeated_failures_make_one_line_per_window_and_are_counted() -> None:
    """Failures of one worker within FAILURE_WINDOW_S fold into a count; others still show."""
    app = make_app(make_orchestrator(basic_workers()))

    def failure(worker: str, second: float, dlq_id: int) -> DeadLettered:
        run = {**RUN, "worker": worker, "ts": TS + timedelta(seconds=second)}
        return DeadLettered(**run, source="schedule", dlq_id=dlq_id, error="boom")

    async def scenario(pilot: Pilot[Any]) -> None:
        feed = app.deck.activity
        feed.add([failure("noisy", i * 0.5, i) for i in range(8)])  # 4 s: one line
        feed.add([failure("other", 1, 100)])
        feed.add([failure("noisy", 11, 9)])  # a new window: a line, with the count
        lines = [line for line in feed.lines if "DLQ" in line]
        assert len(lines) == 3
        assert "DLQ #0" in lines[0] and "other" in lines[1]
        assert "DLQ #9" in lines[2] and "(+7 more since the last line)" in lines[2]
        assert feed.failures_folded == 7
        assert "7 repeated failures not shown" in str(feed.border_title)

    drive(app, scenario)


def test_a_blocking_worker_past_its_timeout_shows_stuck_in_the_feed() -> None:
    """A `def` worker that ignores its timeout: `stuck` is an activity line, per worker
    and overall, as is its way back to ok."""
    orch = make_orchestrator(
        {"blocker": (workers.block, {"mode": "triggered", "timeout_seconds": 0.2,
                                     "max_retries": 0, "params": {"seconds": 1.2}})},
        stuck_after_seconds=0.2, health_interval_seconds=0.1,
    )
    app = make_app(orch)

    def feed_has(text: str) -> bool:
        return any(text in line for line in app.deck.activity.lines)

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.deck.worker_table.row_count == 1, "the row")
        await pilot.press("t")
        await until(pilot, lambda: feed_has(
            "blocker            health ok → stuck: did not return after being cancelled"
        ), "the worker's stuck line")
        # The overall health may have been degraded first (a loaded machine lags).
        await until(pilot, lambda: any(
            line.split("♥", 1)[-1].strip().startswith("overall health")
            and "→ stuck: blocker: stuck" in line for line in app.deck.activity.lines
        ), "the overall stuck line")
        await until(pilot, lambda: feed_has("blocker            health stuck →"), "its end",
                    within=5)

    drive(app, scenario)


def test_the_key_bar_says_resume_once_paused_and_a_click_presses_a_key() -> None:
    """`p` turns "Pause" into "Resume" in the key bar; clicking "Resume" resumes."""
    app = make_app(make_orchestrator(basic_workers()))

    def key_bar_text() -> str:
        return app.screen.query_one(KeyBar).render_line(0).text

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: "Pause" in key_bar_text(), "the keys")
        await pilot.press("p")
        await until(pilot, lambda: " p Resume" in key_bar_text(), "Resume in the key bar")
        column = key_bar_text().index(" p Resume") + 1
        await pilot.click(KeyBar, offset=(column, 0))
        await until(pilot, lambda: not app.orch.paused, "resumed by the click")

    drive(app, scenario)


def test_clicking_a_worker_selects_it_and_a_second_click_opens_it() -> None:
    """A click on a row moves the cursor there; a click on the cursor's row opens the detail."""
    app = make_app(make_orchestrator(basic_workers()))

    async def scenario(pilot: Pilot[Any]) -> None:
        table = app.deck.worker_table
        await until(pilot, lambda: table.row_count == 4, "rows")
        await pilot.click("#worker-table", offset=(3, 3))  # header, alpha, bravo, charlie
        assert table.selected_worker == "charlie"
        await pilot.click("#worker-table", offset=(3, 3))
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        assert app.screen.worker == "charlie"  # type: ignore[attr-defined]

    drive(app, scenario)


def test_the_log_view_holds_still_while_paused_and_follows_when_asked() -> None:
    """Not following, new lines do not move the view; following again jumps to the tail."""
    app = make_app(make_orchestrator(basic_workers()))

    async def scenario(pilot: Pilot[Any]) -> None:
        await pilot.press("2")
        log = app.deck.log_view
        lines = [LogLine(ts=TS, worker="alpha", run_id="r", level="INFO", message=f"line {i}")
                 for i in range(100)]
        log.add(lines[:60])
        app.refresh_now()
        await pilot.pause()
        assert log.scroll_offset.y == log.max_scroll_y > 0
        await pilot.press("l", "g")
        assert not log.follow and log.scroll_offset.y == 0
        log.add(lines[60:])
        app.refresh_now()
        await pilot.pause()
        assert log.scroll_offset.y == 0
        await pilot.press("l")
        await pilot.pause()
        assert log.follow and log.scroll_offset.y == log.max_scroll_y
        assert log.lines[-1].endswith("line 99")
        assert worker_state(app, "alpha").runs_ok == 0

    drive(app, scenario)


def test_the_status_bar_counts_log_lines_dropped_from_the_buffers() -> None:
    """Log lines that fell out of a worker's buffer show in the status bar as a count."""
    orch = make_orchestrator(basic_workers(), log_lines_per_worker=1)
    app = make_app(orch)

    def status() -> str:
        return str(app.deck.query_one("#status", Static).render())

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: app.deck.worker_table.row_count == 4, "rows")
        assert "dropped" not in status()
        app.deck.worker_table.select_key("alpha")
        for runs in (1, 2, 3):
            await pilot.press("t")
            await until(pilot, lambda r=runs: worker_state(app, "alpha").runs_ok == r, "a run")
        await until(pilot, lambda: "log 2 dropped" in status(), "the count in the status bar")

    drive(app, scenario)


def test_the_activity_feed_cuts_errors_to_its_width_only() -> None:
    """An error is kept whole and cut only when drawn, to the feed's width: not at 80."""
    app = make_app(make_orchestrator(basic_workers()))
    error = "ConnectionError: " + "x" * 60 + " the end"  # 85 characters: past 80
    wide = error + " " + "y" * 200

    async def scenario(pilot: Pilot[Any]) -> None:
        feed = app.deck.activity
        # Two workers: one worker's dead letters fold into one line per 10 s.
        feed.add([DeadLettered(**RUN, source="manual", dlq_id=3, error=error),
                  DeadLettered(**{**RUN, "worker": "other"}, source="manual", dlq_id=4,
                               error=wide)])
        feed.flush()
        await pilot.pause()
        assert feed.lines[-2].endswith(error) and feed.lines[-1].endswith(wide)
        drawn = [feed.render_line(y).text for y in range(feed.size.height)]
        assert any(line.rstrip().endswith(error) for line in drawn)
        assert any(line.rstrip().endswith("…") for line in drawn)
        assert all(len(line) <= feed.size.width for line in drawn)

    drive(app, scenario)
