"""What just happened, one line per event: runs starting and ending, circuits, triggers."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import tzinfo

from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from jobdeck import (
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
    Source,
    TriggerAccepted,
    WorkerDisabled,
    WorkerEnabled,
)

from .._cells import clock_time, one_line, seconds_text

#: Lines kept: more than any terminal is tall. The feed shows the newest that fit.
MAX_LINES = 100

#: Events that always make a line.
_ALWAYS = frozenset({
    DeadLettered, RunInterrupted, WorkerDisabled, WorkerEnabled, DeadLetterReplayed,
    OrchestratorStarted, OrchestratorPaused, OrchestratorResumed, OrchestratorStopping,
})
#: Trigger sources whose triggers make a line: a person asked for the run.
_SAID_SOURCES = (Source.MANUAL, Source.REPLAY)


def worth_a_line(event: Event) -> bool:
    """Whether `describe(event)` makes a line: the same rules, without the words.

    A burst brings thousands of events; only the few lines that fit are ever described.
    """
    kind = type(event)
    if kind in _ALWAYS:
        return True
    if kind is RunStarted or kind is RunSucceeded:
        return event.source != Source.CONTINUOUS  # type: ignore[attr-defined]
    if kind is AttemptFailed:
        return event.will_retry  # type: ignore[attr-defined]
    if kind is TriggerAccepted:
        return event.source in _SAID_SOURCES  # type: ignore[attr-defined]
    return False


def describe(event: Event) -> tuple[str, str, str, str] | None:
    """(mark, worker, text, style) for an event worth a line, else None."""
    worker = getattr(event, "worker", None) or ""
    if getattr(event, "source", None) == Source.CONTINUOUS and isinstance(
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
        # The error last and whole (its first line): the line is cut to the feed's width
        # when drawn, so a wide terminal shows more of it.
        retry = "" if event.retry_in_s is None else f", retry in {seconds_text(event.retry_in_s)}"
        return ("↻", worker, f"attempt {event.attempt} failed{retry}: {_first_line(event.error)}",
                "yellow")
    if isinstance(event, DeadLettered):
        return ("✗", worker, f"failed → DLQ #{event.dlq_id}: {_first_line(event.error)}",
                "bold red")
    if isinstance(event, RunInterrupted):
        return ("■", worker, f"interrupted ({event.reason})", "yellow")
    if isinstance(event, WorkerDisabled):
        return ("⊘", worker, event.reason, "bold red" if "circuit" in event.reason else "red")
    if isinstance(event, WorkerEnabled):
        return ("●", worker, event.reason, "green")
    if isinstance(event, TriggerAccepted) and event.source in _SAID_SOURCES:
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


def _first_line(error: str) -> str:
    return one_line(error, len(error) + 1)


class ActivityFeed(Widget):
    """The orchestrator's recent events under the workers table, newest at the bottom.

    A fixed-size tail, not a growing log: `add()` only keeps the newest events worth a
    line (a burst of thousands is sifted by type, nothing described), and `flush()`, once
    per refresh tick, repaints the rows that fit, describing just those. Neither changes
    the widget's size, so a busy core never costs a layout.
    """

    DEFAULT_CSS = """
    ActivityFeed {
        height: 1fr;
        min-height: 4;
        border-top: solid $primary 30%;
        border-title-color: $text-muted;
        background: $background;
    }
    """

    can_focus = False

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tz = tz
        self.border_title = "activity"
        # The events worth a line, oldest first; described only when drawn.
        self._events: deque[Event] = deque(maxlen=MAX_LINES)
        self._changed = False

    @property
    def lines(self) -> list[str]:
        """The lines kept, oldest first, as plain text."""
        return [text.plain for text in map(self._text, self._events) if text is not None]

    def add(self, events: Sequence[Event]) -> None:
        """Keep the events (oldest first) worth a line; they show at the next `flush()`."""
        found: list[Event] = []
        for event in reversed(events):
            if worth_a_line(event):
                found.append(event)
                if len(found) == MAX_LINES:
                    break
        if found:
            found.reverse()
            self._events.extend(found)
            self._changed = True

    def flush(self) -> None:
        """Repaint if lines came since the last call."""
        if self._changed:
            self._changed = False
            self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.size
        style = self.rich_style
        index = max(0, len(self._events) - height) + y
        text = self._text(self._events[index]) if index < len(self._events) else None
        if text is None:
            return Strip.blank(width, style)
        text.truncate(width, overflow="ellipsis")
        strip = Strip(text.render(self.app.console), text.cell_len)
        return strip.adjust_cell_length(width, style).apply_style(style)

    def _text(self, event: Event) -> Text | None:
        described = describe(event)
        if described is None:
            return None
        mark, worker, message, style = described
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        line.append(clock_time(event.ts, self.tz) + " ", style="bright_black")
        line.append(f"{mark} ", style=style)
        line.append(f"{worker:<18} ", style="bold" if worker else "")
        line.append(message, style=style)
        return line
