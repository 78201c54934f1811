"""One run opened: what `enter` on a History row (or in a worker's detail) shows.

Its trigger, source and payload, every attempt with its duration and error, the
traceback (the worker's frames; `f` shows it whole), and the run's own log lines.
`t` runs the worker again with the same payload.
"""

from __future__ import annotations

from datetime import tzinfo

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from jobdeck import RunDetail, RunStatus

from .._cells import RUN_STATUS_STYLES, full_time, payload_text, seconds_text, short_traceback
from .._model import DeckModel
from ..widgets import KeyBar
from ._controls import Controls

_LEVEL_STYLES = {"DEBUG": "bright_black", "WARNING": "yellow", "ERROR": "red", "CRITICAL": "red"}


class RunScreen(Screen[None]):
    """A run with its attempts, traceback and log lines, read from the core when opened.

    Args:
        run_id: the run's id.
        model: what the dashboard knows (the clock's time zone, the way to the core).
        controls: what the keys ask for.
    """

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", key_display="esc",
                tooltip="Back to where the run was opened"),
        Binding("t", "rerun", "Re-run", tooltip="Run this worker again with the same payload"),
        Binding("f", "full_traceback", "Full traceback",
                tooltip="Show the traceback whole, jobdeck's and trio's frames too (or not)"),
    ]

    DEFAULT_CSS = """
    RunScreen #run-view {
        height: 1fr;
        border: round $primary;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    """

    def __init__(self, run_id: str, model: DeckModel, controls: Controls) -> None:
        super().__init__(id="run")
        self.run_id = run_id
        self.model = model
        self.controls = controls
        #: The run as read; None until read (or if it could not be).
        self.detail: RunDetail | None = None
        self.whole_traceback = False
        self._body = Static(Text("reading the run…", style="bright_black"), id="run-body")

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="run-view") as view:
            view.border_title = f"run {self.run_id}"
            yield self._body
        yield KeyBar()

    def on_mount(self) -> None:
        self.run_worker(self._load(), group="run")

    async def _load(self) -> None:
        found = await self.model.read_run(self.run_id)
        if found is None:
            self._body.update(
                Text(f"Run {self.run_id} is no longer kept (or jobdeck has stopped).",
                     style="bright_black")
            )
            return
        self.show(found)

    def show(self, detail: RunDetail) -> None:
        """Show `detail` (a run read from the core)."""
        self.detail = detail
        record = detail.record
        self.query_one("#run-view").border_title = f"run {record.id} · {record.worker}"
        self._body.update(run_renderable(detail, self.model.tz, whole=self.whole_traceback))
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "rerun":
            return True if self.detail is not None and self.model.may_control else None
        if action == "full_traceback":
            has_traceback = self.detail is not None and any(
                a.traceback for a in self.detail.attempts
            )
            return True if has_traceback else None
        return True

    def action_rerun(self) -> None:
        if self.detail is not None:
            self.controls.rerun(self.detail.record)

    def action_full_traceback(self) -> None:
        self.whole_traceback = not self.whole_traceback
        if self.detail is not None:
            self.show(self.detail)


def run_renderable(detail: RunDetail, tz: tzinfo | None, *, whole: bool) -> RenderableType:
    """The run: its fields, payload, attempts, last traceback and log lines."""
    record = detail.record
    trigger = record.trigger
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bright_black", no_wrap=True)
    fields.add_column()
    fields.add_row("worker", Text(record.worker, style="bold"))
    fields.add_row("status", Text(record.status.value,
                                  style=RUN_STATUS_STYLES.get(record.status, "")))
    fields.add_row("source", trigger.source.value)
    fields.add_row("trigger", f"{trigger.id}, accepted {full_time(trigger.accepted_at, tz)}")
    fields.add_row("started", full_time(record.started_at, tz))
    if record.ended_at is not None:
        took = "" if record.duration_s is None else f" (took {seconds_text(record.duration_s)})"
        fields.add_row("ended", f"{full_time(record.ended_at, tz)}{took}")
    if record.error:
        style = "bold red" if record.status is RunStatus.FAILED else "yellow"
        fields.add_row("error", Text(record.error, style=style))
    payload: RenderableType = (
        Text("none", style="bright_black")
        if trigger.payload is None
        else Syntax(payload_text(trigger.payload), "json", theme="ansi_dark",
                    background_color="default")
    )
    attempts = Table.grid(padding=(0, 2))
    for _ in range(4):
        attempts.add_column(no_wrap=True)
    for attempt in detail.attempts:
        if attempt.ended_at is None:
            outcome = Text("running", style="cyan")
        elif attempt.error:
            outcome = Text(attempt.error, style="red")
        else:
            outcome = Text("ok", style="green")
        took = "" if attempt.duration_s is None else seconds_text(attempt.duration_s)
        attempts.add_row(f"#{attempt.number}", full_time(attempt.started_at, tz), took, outcome)
    parts: list[RenderableType] = [
        fields, Text("\npayload", style="bold"), payload,
        Text("\nattempts", style="bold"), attempts,
    ]
    last_traceback = next((a.traceback for a in reversed(detail.attempts) if a.traceback), None)
    if last_traceback:
        which = "" if whole else " (the worker's frames; f: whole)"
        parts += [
            Text(f"\ntraceback{which}", style="bold"),
            Text(short_traceback(last_traceback, whole=whole).rstrip(), style="red"),
        ]
    dropped = f" ({detail.logs_dropped} earlier lines dropped)" if detail.logs_dropped else ""
    parts.append(Text(f"\nlog{dropped}", style="bold"))
    if not detail.logs:
        parts.append(Text("no lines", style="bright_black"))
    for line in detail.logs:
        text = Text(no_wrap=False)
        text.append(f"{line.ts.astimezone(tz):%H:%M:%S} ", style="bright_black")
        text.append(f"{line.level:<8}", style=_LEVEL_STYLES.get(line.level, ""))
        text.append(line.message)
        parts.append(text)
    return Group(*parts)
