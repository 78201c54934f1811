"""One dead letter in full: where it came from, its payload, its error and traceback."""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from jobdeck import DeadLetter

from .._cells import full_time, natural_ago, payload_text, short_traceback
from ._detail_panel import DetailPanel


class DeadLetterDetail(DetailPanel):
    """The highlighted DLQ entry: fields, payload (JSON), error and traceback."""

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(title="dead letter", body_id="dead-letter-body", tz=tz, id=id)
        self._shown: tuple[int, str] | None = None

    def show(self, entry: DeadLetter | None, now: datetime) -> None:
        """Show `entry`, or a hint when the queue is empty."""
        if entry is None:
            key = (-1, "")
            if self._shown != key:
                self._shown = key
                self.border_title = "dead letter"
                self._body.update(
                    Text("The dead-letter queue is empty: every failed run lands here.",
                         style="bright_black")
                )
            return
        ago_text = natural_ago(entry.failed_at, now)
        if self._shown == (entry.id, ago_text):
            return
        self._shown = (entry.id, ago_text)
        self.border_title = f"dead letter #{entry.id} · {entry.worker}"
        self._body.update(self._entry_renderable(entry, ago_text))

    def _entry_renderable(self, entry: DeadLetter, ago_text: str) -> RenderableType:
        fields = Table.grid(padding=(0, 2))
        fields.add_column(style="bright_black", no_wrap=True)
        fields.add_column()
        fields.add_row("worker", Text(entry.worker, style="bold"))
        fields.add_row("failed", f"{full_time(entry.failed_at, self.tz)} ({ago_text})")
        fields.add_row("started", full_time(entry.started_at, self.tz))
        fields.add_row("source", entry.source.value)
        fields.add_row("attempts", str(entry.attempts))
        fields.add_row("error", Text(entry.error, style="bold red"))
        payload: RenderableType = (
            Text("none", style="bright_black")
            if entry.payload is None
            else Syntax(payload_text(entry.payload), "json", theme="ansi_dark",
                        background_color="default")
        )
        parts: list[RenderableType] = [fields, Text("\npayload", style="bold"), payload]
        if entry.traceback.strip():
            traceback = short_traceback(entry.traceback).rstrip()
            parts += [Text("\ntraceback", style="bold"), Text(traceback, style="red")]
        else:
            parts += [Text("\nno traceback (the attempt timed out)", style="bright_black")]
        return Group(*parts)
