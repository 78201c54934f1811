"""What just happened, one line per event: runs starting and ending, circuits, triggers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo

from rich.text import Text
from textual.widgets import RichLog

from core import (
    AttemptFailed,
    DeadLettered,
    DeadLetterReplayed,
    Event,
    OrchestratorPaused,
    OrchestratorResumed,
    OrchestratorStarted,
    OrchestratorStopping,
    RunInterrupted,
    RunStarted,
    RunSucceeded,
    TriggerAccepted,
    WorkerDisabled,
    WorkerEnabled,
)

from .._cells import clock_time, one_line, seconds_text

#: Lines kept; older ones scroll away.
MAX_LINES = 500


def describe(event: Event) -> tuple[str, str, str, str] | None:
    """(mark, worker, text, style) for an event worth a line, else None."""
    worker = getattr(event, "worker", None) or ""
    if getattr(event, "source", None) == "continuous" and isinstance(
        event, (RunStarted, RunSucceeded)
    ):
        return None  # a continuous worker's every iteration would drown the rest
    if isinstance(event, RunStarted):
        attempt = f" attempt {event.attempt}" if event.attempt > 1 else ""
        return ("▶", worker, f"started{attempt} ({event.source})", "bright_black")
    if isinstance(event, RunSucceeded):
        return ("✓", worker, f"succeeded in {seconds_text(event.duration_s)}", "green")
    if isinstance(event, AttemptFailed):
        if not event.will_retry:
            return None  # the run's end (dead-lettered) says it
        retry = "" if event.retry_in_s is None else f", retry in {seconds_text(event.retry_in_s)}"
        return ("↻", worker, f"attempt {event.attempt} failed: {one_line(event.error, 80)}{retry}",
                "yellow")
    if isinstance(event, DeadLettered):
        return ("✗", worker, f"failed → DLQ #{event.dlq_id}: {one_line(event.error, 80)}",
                "bold red")
    if isinstance(event, RunInterrupted):
        return ("■", worker, f"interrupted ({event.reason})", "yellow")
    if isinstance(event, WorkerDisabled):
        return ("⊘", worker, event.reason, "bold red" if "circuit" in event.reason else "red")
    if isinstance(event, WorkerEnabled):
        return ("●", worker, event.reason, "green")
    if isinstance(event, TriggerAccepted) and event.source in ("manual", "replay"):
        payload = "" if event.payload is None else " with a payload"
        return ("→", worker, f"{event.source} trigger{payload}", "cyan")
    if isinstance(event, DeadLetterReplayed):
        return ("→", worker, f"DLQ #{event.dlq_id} replayed", "cyan")
    if isinstance(event, OrchestratorStarted):
        return ("●", "", f"started {event.workers} workers", "bold")
    if isinstance(event, OrchestratorPaused):
        return ("‖", "", "paused: no new runs start", "bold yellow")
    if isinstance(event, OrchestratorResumed):
        return ("▶", "", "resumed", "bold green")
    if isinstance(event, OrchestratorStopping):
        grace = seconds_text(event.grace_s)
        return ("■", "", f"stopping: {event.in_flight} in flight, grace {grace}", "bold yellow")
    return None


class ActivityFeed(RichLog):
    """The orchestrator's recent events under the workers table, newest at the bottom."""

    DEFAULT_CSS = """
    ActivityFeed {
        height: 1fr;
        min-height: 4;
        border-top: solid $primary 30%;
        border-title-color: $text-muted;
        scrollbar-gutter: stable;
        background: $background;
    }
    """

    can_focus = False

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=False, markup=False, highlight=False, id=id)
        self.tz = tz
        self.border_title = "activity"

    def add(self, events: Iterable[Event]) -> None:
        for event in events:
            described = describe(event)
            if described is None:
                continue
            mark, worker, text, style = described
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(clock_time(event.ts, self.tz) + " ", style="bright_black")
            line.append(f"{mark} ", style=style)
            line.append(f"{worker:<18} ", style="bold" if worker else "")
            line.append(text, style=style)
            self.write(line)
