"""Live worker logs: every worker or one, following the tail or not, bounded."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import tzinfo

from rich.text import Text
from textual.widgets import RichLog

from core import LogLine, LogRecordView

from .._cells import clock_time

#: Lines kept on screen; older ones scroll away (the core keeps its own ring buffer).
MAX_LINES = 2000

LEVEL_STYLES = {
    "DEBUG": "bright_black",
    "INFO": "green",
    "WARNING": "bold yellow",
    "ERROR": "bold red",
    "CRITICAL": "bold white on red",
}
WORKER_COLOURS = ("cyan", "magenta", "blue", "green", "yellow", "bright_cyan", "bright_magenta",
                  "bright_blue")


class LogView(RichLog):
    """Worker log lines as they arrive; `scope` None shows every worker."""

    DEFAULT_CSS = """
    LogView {
        height: 1fr;
        border: round $primary 40%;
        border-title-color: $text-muted;
        scrollbar-gutter: stable;
    }
    LogView:focus {
        border: round $primary;
    }
    """

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=False, markup=False, highlight=False, id=id)
        self.tz = tz
        self.scope: str | None = None
        self.follow = True
        self._update_title()

    def load(self, scope: str | None, lines: Iterable[LogRecordView]) -> None:
        """Show `scope`'s recent lines (None: all workers), replacing what is shown."""
        self.scope = scope
        self.clear()
        for line in lines:
            self.write(self._format(line.ts, line.worker, line.level, line.message))
        self._update_title()
        if self.follow:
            self.scroll_end(animate=False)

    def add(self, lines: Iterable[LogLine]) -> None:
        """Append new lines from the core's events (those in scope)."""
        for line in lines:
            if self.scope is None or line.worker == self.scope:
                self.write(self._format(line.ts, line.worker, line.level, line.message))

    def set_follow(self, follow: bool) -> None:
        """Follow the tail (scroll as lines arrive), or hold still to read."""
        self.follow = follow
        self.auto_scroll = follow
        if follow:
            self.scroll_end(animate=False)
        self._update_title()

    def _update_title(self) -> None:
        scope = "all workers" if self.scope is None else self.scope
        follow = "following" if self.follow else "paused (l to follow)"
        self.border_title = f"logs · {scope} · {follow}"

    def _format(self, ts: object, worker: str, level: str, message: str) -> Text:
        text = Text(no_wrap=True)
        text.append(clock_time(ts, self.tz) + " ", style="bright_black")  # type: ignore[arg-type]
        colour = WORKER_COLOURS[zlib.crc32(worker.encode()) % len(WORKER_COLOURS)]
        text.append(f"{worker:<16} ", style=colour)
        text.append(f"{level:<7} ", style=LEVEL_STYLES.get(level, ""))
        text.append(message)
        return text
