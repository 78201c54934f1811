"""What just happened, one line per event: runs, failures, circuits, health, triggers.

Failures are the feed's, not toasts over the screen: each shows here, and a worker that
keeps failing is rate-limited to one line per `FAILURE_WINDOW_S` (the rest are counted,
in the line that follows and in the feed's title).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime, tzinfo

from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from jobdeck import (
    AttemptFailed,
    ControlFailed,
    DeadLetterDeleted,
    DeadLettered,
    DeadLetterReplayed,
    Event,
    Health,
    HealthChanged,
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

from .._cells import HEALTH_STYLES, clock_time, health_word, one_line, plural, seconds_text

#: Lines kept: more than any terminal is tall. The feed shows the newest that fit.
MAX_LINES = 100
#: A worker's failed attempts, and its dead letters, each make at most one line per this
#: many seconds (of the events' own time); the others are counted.
FAILURE_WINDOW_S = 10.0

#: Events that always make a line.
_ALWAYS = frozenset({
    DeadLettered, RunInterrupted, WorkerDisabled, WorkerEnabled, DeadLetterReplayed,
    OrchestratorStarted, OrchestratorPaused, OrchestratorResumed, OrchestratorStopping,
    ControlFailed, HealthChanged,
})
#: Events that are a worker failing: rate-limited per worker.
_FAILURES = (AttemptFailed, DeadLettered)
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
    if kind is DeadLetterDeleted:
        return event.dlq_id is None  # type: ignore[attr-defined]
    return False


def describe(event: Event, previous: str | None = None) -> tuple[str, str, str, str] | None:
    """(mark, worker, text, style) for an event worth a line, else None.

    `previous`: for a health change, the word the worker's health was last shown with
    ("circuit open" and "disabled" are one health value, told apart by its reasons).
    """
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
        if event.reason.startswith("circuit"):
            return ("⊘", worker, f"{event.reason} — e resets it", "bold red")
        return ("⊘", worker, event.reason, "red")
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
    if isinstance(event, HealthChanged):
        return _health_line(event, previous)
    if isinstance(event, ControlFailed):
        return ("✗", "", f"not done: {event.action}: {one_line(event.error, 80)}", "bold red")
    if isinstance(event, DeadLetterDeleted) and event.dlq_id is None:
        return ("✗", "", f"dead-letter queue purged: {plural(event.count, 'entry')}", "")
    return None


def _first_line(error: str) -> str:
    return one_line(error, len(error) + 1)
def _health_line(event: HealthChanged, previous: str | None) -> tuple[str, str, str, str]:
    """`health ok → stuck: did not return after being cancelled`; the overall health's
    change reads `overall health ok → circuit open: broken-export: circuit open`."""
    overall = event.worker is None
    now = health_word(event.health, event.reasons, overall=overall)
    before = previous or health_word(event.previous, overall=overall)
    reasons = [] if event.health == Health.OK else list(event.reasons)
    text = f"{'overall ' if overall else ''}health {before} → "
    said = "; ".join(reasons)
    if said.startswith(now):
        text += said  # "circuit open after 3 failures" says the word already
    else:
        text += f"{now}: {said}" if said else now
    style = "green" if event.health == Health.OK else HEALTH_STYLES.get(event.health, "yellow")
    return ("♥", event.worker or "", one_line(text, 160), style)


#: One line of the feed: the event, failures folded into it, and for a health change
#: the word the health was last shown with.
Entry = tuple[Event, int, str | None]


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
        self._entries: deque[Entry] = deque(maxlen=MAX_LINES)
        self._changed = False
        #: Failure lines not shown (the rate limit), since the start.
        self.failures_folded = 0
        # Per worker and kind (a failed attempt, a dead letter): when its last line was,
        # and the failures folded since.
        self._last_failure: dict[tuple[str, type], datetime] = {}
        self._folded: dict[tuple[str, type], int] = {}
        # Per worker (None: overall): the word its health was last shown with.
        self._health_words: dict[str | None, str] = {}

    @property
    def lines(self) -> list[str]:
        """The lines kept, oldest first, as plain text."""
        return [text.plain for text in map(self._text, self._entries) if text is not None]

    def add(self, events: Sequence[Event]) -> None:
        """Keep the events (oldest first) worth a line; they show at the next `flush()`.

        A worker's failures are rate-limited: one line per `FAILURE_WINDOW_S` of the
        events' time, the others counted (in its next line and in the feed's title).
        """
        found: list[Entry] = []
        folded_before = self.failures_folded
        for event in events[self._first_kept(events):]:
            if not worth_a_line(event):
                continue
            if isinstance(event, _FAILURES):
                folded = self._failure_folded(event)
                if folded is None:
                    continue
                found.append((event, folded, None))
            elif isinstance(event, HealthChanged):
                overall = event.worker is None
                word = health_word(event.health, event.reasons, overall=overall)
                found.append((event, 0, self._health_words.get(event.worker)))
                self._health_words[event.worker] = word
            else:
                found.append((event, 0, None))
        if found:
            self._entries.extend(found[-MAX_LINES:])
            self._changed = True
        if self.failures_folded != folded_before:
            self._changed = True
            self.border_title = (
                f"activity · {plural(self.failures_folded, 'repeated failure')} not shown "
                f"(one line per worker per {FAILURE_WINDOW_S:g}s)"
            )

    @staticmethod
    def _first_kept(events: Sequence[Event]) -> int:
        """Where the events that can still show begin: a burst of thousands keeps only
        its newest lines, so older events are not even looked at (twice the lines the
        feed holds are read, for the failures that fold away)."""
        wanted = 2 * MAX_LINES
        for index in range(len(events) - 1, -1, -1):
            if worth_a_line(events[index]):
                wanted -= 1
                if not wanted:
                    return index
        return 0

    def _failure_folded(self, event: AttemptFailed | DeadLettered) -> int | None:
        """None: the failure is folded (counted) into its worker's next line of the same
        kind; else it gets a line, which says how many were folded before it."""
        key = (event.worker, type(event))
        last = self._last_failure.get(key)
        if last is not None and (event.ts - last).total_seconds() < FAILURE_WINDOW_S:
            self._folded[key] = self._folded.get(key, 0) + 1
            self.failures_folded += 1
            return None
        self._last_failure[key] = event.ts
        return self._folded.pop(key, 0)

    def flush(self) -> None:
        """Repaint if lines came since the last call."""
        if self._changed:
            self._changed = False
            self.refresh()

    def render_line(self, y: int) -> Strip:
        width, height = self.size
        style = self.rich_style
        index = max(0, len(self._entries) - height) + y
        text = self._text(self._entries[index]) if index < len(self._entries) else None
        if text is None:
            return Strip.blank(width, style)
        text.truncate(width, overflow="ellipsis")
        strip = Strip(text.render(self.app.console), text.cell_len)
        return strip.adjust_cell_length(width, style).apply_style(style)

    def _text(self, entry: Entry) -> Text | None:
        event, folded, previous = entry
        described = describe(event, previous)
        if described is None:
            return None
        mark, worker, message, style = described
        if folded:
            message += f"  (+{folded} more since the last line)"
        line = Text(no_wrap=True, overflow="ellipsis", end="")
        line.append(clock_time(event.ts, self.tz) + " ", style="bright_black")
        line.append(f"{mark} ", style=style)
        line.append(f"{worker:<18} ", style="bold" if worker else "")
        line.append(message, style=style)
        return line
