"""Live worker logs: every worker or one, following the tail or not, bounded."""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterable
from datetime import datetime, tzinfo

from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from jobdeck import LogLine, LogRecordView

from .._cells import clock_time

#: Lines kept on screen; older ones scroll away (the core keeps its own ring buffer).
MAX_LINES = 2000
#: Rendered lines kept for repaints and scrolling back and forth.
STRIP_CACHE = 512

LEVEL_STYLES = {
    "DEBUG": "bright_black",
    "INFO": "green",
    "WARNING": "bold yellow",
    "ERROR": "bold red",
    "CRITICAL": "bold white on red",
}
WORKER_COLOURS = ("cyan", "magenta", "blue", "green", "yellow", "bright_cyan", "bright_magenta",
                  "bright_blue")

#: One line on screen: (when, worker, level, text); a message's further lines (a
#: traceback) are lines of their own with an empty level.
Line = tuple[datetime, str, str, str]
#: Cells before a message: time, worker, level.
PREFIX_WIDTH = 9 + 17 + 8


def _split(ts: datetime, worker: str, level: str, message: str) -> Iterable[Line]:
    first, *rest = message.split("\n")
    yield (ts, worker, level, first)
    for more in rest:
        yield (ts, worker, "", more)


class LogView(ScrollView, can_focus=True):
    """Worker log lines as they arrive; `scope` None shows every worker.

    Lines are kept as data and drawn only when on screen (Line API): `add()` just keeps
    them, `flush()` (once per refresh tick, while the tab shows) grows the scrollable
    height once for all of them and follows the tail.
    """

    DEFAULT_CSS = """
    LogView {
        height: 1fr;
        background: $surface;
        color: $foreground;
        overflow-y: scroll;
        border: round $primary 40%;
        border-title-color: $text-muted;
        scrollbar-gutter: stable;
    }
    LogView:focus {
        background-tint: $foreground 5%;
        border: round $primary;
    }
    """

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tz = tz
        self.scope: str | None = None
        self.follow = True
        self.max_lines = MAX_LINES
        self._lines: deque[Line] = deque(maxlen=MAX_LINES)
        # Lines ever dropped off the front: a line's number stays valid as others go.
        self._dropped = 0
        self._dropped_shown = 0
        self._changed = False
        self._strips: dict[tuple[int, int], Strip] = {}
        self._update_title()

    @property
    def lines(self) -> list[str]:
        """The lines kept, oldest first, as plain text."""
        return [self._text(line).plain for line in self._lines]

    def load(self, scope: str | None, lines: Iterable[LogRecordView]) -> None:
        """Show `scope`'s recent lines (None: all workers), replacing what is shown."""
        self.scope = scope
        self._lines.clear()
        self._strips.clear()
        self._dropped = self._dropped_shown = 0
        for line in lines:
            self._lines.extend(_split(line.ts, line.worker, line.level, line.message))
        self._update_title()
        self._changed = True
        self.flush()
        self.refresh()

    def add(self, lines: Iterable[LogLine]) -> None:
        """Keep new lines from the core's events (those in scope); they show at `flush()`."""
        scope = self.scope
        kept = self._lines
        before = len(kept)
        added = 0
        for line in lines:
            if scope is None or line.worker == scope:
                if "\n" in line.message:
                    split = list(_split(line.ts, line.worker, line.level, line.message))
                    kept.extend(split)
                    added += len(split)
                else:
                    kept.append((line.ts, line.worker, line.level, line.message))
                    added += 1
        if added:
            self._dropped += max(0, before + added - MAX_LINES)
            self._changed = True

    def flush(self) -> None:
        """Show the lines added since the last call: grow, and follow the tail if on."""
        if not self._changed:
            return
        self._changed = False
        self.virtual_size = Size(0, len(self._lines))
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            # Hold still on the lines being read, though older ones dropped off the top.
            shift = self._dropped - self._dropped_shown
            if shift:
                self.scroll_to(y=max(0, self.scroll_offset.y - shift), animate=False)
        self._dropped_shown = self._dropped
        if len(self._strips) > STRIP_CACHE:
            self._strips.clear()
        self.refresh()

    def set_follow(self, follow: bool) -> None:
        """Follow the tail (scroll as lines arrive), or hold still to read."""
        self.follow = follow
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self._update_title()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        style = self.rich_style
        index = self.scroll_offset.y + y
        if index >= len(self._lines):
            return Strip.blank(width, style)
        key = (index + self._dropped, width)
        strip = self._strips.get(key)
        if strip is None:
            text = self._text(self._lines[index])
            text.truncate(width, overflow="ellipsis")
            strip = Strip(text.render(self.app.console), text.cell_len)
            strip = strip.adjust_cell_length(width)
            self._strips[key] = strip
        return strip.apply_style(style)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def _update_title(self) -> None:
        scope = "all workers" if self.scope is None else self.scope
        follow = "following" if self.follow else "paused (l to follow)"
        self.border_title = f"logs · {scope} · {follow}"

    def _text(self, line: Line) -> Text:
        ts, worker, level, message = line
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        if not level:
            text.append(" " * PREFIX_WIDTH + message)
            return text
        text.append(clock_time(ts, self.tz) + " ", style="bright_black")
        colour = WORKER_COLOURS[zlib.crc32(worker.encode()) % len(WORKER_COLOURS)]
        text.append(f"{worker:<16} ", style=colour)
        text.append(f"{level:<7} ", style=LEVEL_STYLES.get(level, ""))
        text.append(message)
        return text
