"""Live worker logs: every worker or one, following the tail or not, bounded; searched
(matches highlighted, `n`/`N` between them) and filtered by level."""

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

#: Levels `L` cycles through: the lowest level shown (None: every line).
LEVELS: tuple[str | None, ...] = (None, "INFO", "WARNING", "ERROR")
_LEVEL_RANK = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}

#: One line on screen: (when, worker, level, text, first); a message's further lines (a
#: traceback) are lines of their own, `first` False, with their message's level.
Line = tuple[datetime, str, str, str, bool]
#: Cells before a message: time, worker, level.
PREFIX_WIDTH = 9 + 17 + 8
MATCH_STYLE = "bold black on yellow"
CURRENT_MATCH_STYLE = "bold black on bright_green"


def _split(ts: datetime, worker: str, level: str, message: str) -> Iterable[Line]:
    first, *rest = message.split("\n")
    yield (ts, worker, level, first, True)
    for more in rest:
        yield (ts, worker, level, more, False)


def _at_least(level: str, lowest: str | None) -> bool:
    return lowest is None or _LEVEL_RANK.get(level, 0) >= _LEVEL_RANK[lowest]


class LogView(ScrollView, can_focus=True):
    """Worker log lines as they arrive; `scope` None shows every worker.

    Lines are kept as data and drawn only when on screen (Line API): `add()` just keeps
    them, `flush()` (once per refresh tick, while the tab shows) grows the scrollable
    height once for all of them and follows the tail. `set_level` shows only lines of a
    level and above; `set_search` highlights a text, and `next_match` moves to its next
    (or previous) line, holding the view still there.
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
        #: The lowest level shown (None: all), and the text searched for ("" none).
        self.level: str | None = None
        self.search = ""
        # Every line kept, and those the level filter shows (the same deque when none).
        self._all: deque[Line] = deque(maxlen=MAX_LINES)
        self._lines: deque[Line] = self._all
        # Lines ever dropped off the front of `_lines`: a line's number stays valid as
        # others go (line numbers below are `index + _dropped`).
        self._dropped = 0
        self._dropped_shown = 0
        self._changed = False
        self._strips: dict[tuple[int, int], Strip] = {}
        # Numbers of the lines that match the search, in order; the one moved to last.
        self._matches: list[int] = []
        self._current: int | None = None
        self._update_title()

    @property
    def lines(self) -> list[str]:
        """The lines shown (after the level filter), oldest first, as plain text."""
        return [self._text(line).plain for line in self._lines]

    @property
    def match_count(self) -> int:
        return len(self._matches)

    @property
    def current_match(self) -> int | None:
        """Index (among the lines shown) of the match moved to last, if any."""
        return None if self._current is None else self._current - self._dropped

    def load(self, scope: str | None, lines: Iterable[LogRecordView]) -> None:
        """Show `scope`'s recent lines (None: all workers), replacing what is shown."""
        self.scope = scope
        self._all.clear()
        for line in lines:
            self._all.extend(_split(line.ts, line.worker, line.level, line.message))
        self._refilter()

    def add(self, lines: Iterable[LogLine]) -> None:
        """Keep new lines from the core's events (those in scope); they show at `flush()`."""
        scope = self.scope
        level = self.level
        shown = self._lines
        filtered = shown is not self._all
        before = len(shown)
        added = 0
        for line in lines:
            if scope is not None and line.worker != scope:
                continue
            if "\n" in line.message:
                split = list(_split(line.ts, line.worker, line.level, line.message))
            else:
                split = [(line.ts, line.worker, line.level, line.message, True)]
            self._all.extend(split)
            if filtered:
                if not _at_least(line.level, level):
                    continue
                shown.extend(split)
            added += len(split)
            if self.search:
                first = self._dropped + before + added - len(split)
                self._matches.extend(
                    first + i for i, kept in enumerate(split) if self._is_match(kept)
                )
        if added:
            self._dropped += max(0, before + added - MAX_LINES)
            if self._matches and self._matches[0] < self._dropped:
                self._matches = [n for n in self._matches if n >= self._dropped]
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
        self._update_title()
        self.refresh()

    def set_follow(self, follow: bool) -> None:
        """Follow the tail (scroll as lines arrive), or hold still to read."""
        self.follow = follow
        if follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self._update_title()

    def set_level(self, level: str | None) -> None:
        """Show only lines of `level` and above (None: every line)."""
        self.level = level
        self._refilter()

    def set_search(self, text: str) -> None:
        """Highlight `text` (any case) in the lines shown; "" stops searching."""
        self.search = text
        self._find_matches()
        self._strips.clear()
        self._update_title()
        self.refresh()

    def next_match(self, forward: bool = True) -> bool:
        """Move to the next (or previous) line that matches, and hold still there.

        Starts from the last match moved to, else from the bottom of the view. False
        when nothing matches.
        """
        if not self._matches:
            return False
        if self._current is not None:
            here = self._current
        else:
            bottom = self.scroll_offset.y + self.scrollable_content_region.height - 1
            here = self._dropped + (bottom + 1 if not forward else bottom)
        if forward:
            later = [n for n in self._matches if n > here]
            target = later[0] if later else self._matches[0]
        else:
            earlier = [n for n in self._matches if n < here]
            target = earlier[-1] if earlier else self._matches[-1]
        self._current = target
        self.follow = False
        row = target - self._dropped
        height = self.scrollable_content_region.height
        top = self.scroll_offset.y
        if not top <= row < top + height:
            self.scroll_to(y=max(0, row - height // 2), animate=False, immediate=True)
        self._strips.clear()
        self._update_title()
        self.refresh()
        return True

    def _refilter(self) -> None:
        """Rebuild the lines shown after a change of scope or level."""
        if self.level is None:
            self._lines = self._all
        else:
            self._lines = deque((line for line in self._all if _at_least(line[2], self.level)),
                                maxlen=MAX_LINES)
        self._strips.clear()
        self._dropped = self._dropped_shown = 0
        self._find_matches()
        self._changed = True
        self.flush()
        self._update_title()
        self.refresh()

    def _find_matches(self) -> None:
        self._current = None
        if not self.search:
            self._matches = []
            return
        self._matches = [
            self._dropped + index
            for index, line in enumerate(self._lines)
            if self._is_match(line)
        ]

    def _is_match(self, line: Line) -> bool:
        # As highlighted: anywhere in the line as drawn (a worker's name too).
        return self.search.lower() in self._text(line).plain.lower()

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
            if self.search:
                current = self._current == index + self._dropped
                text.highlight_words([self.search], CURRENT_MATCH_STYLE if current
                                     else MATCH_STYLE, case_sensitive=False)
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
        parts = ["logs", scope, follow]
        if self.level is not None:
            parts.append(f"{self.level} and above (L)")
        if self.search:
            if not self._matches:
                parts.append(f"/{self.search}: no match")
            elif self._current is None:
                parts.append(f"/{self.search}: {len(self._matches)} (n next, N previous)")
            else:
                place = self._matches.index(self._current) + 1
                parts.append(f"/{self.search}: {place} of {len(self._matches)}")
        self.border_title = " · ".join(parts)

    def _text(self, line: Line) -> Text:
        ts, worker, level, message, first = line
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        if not first:
            text.append(" " * PREFIX_WIDTH + message)
            return text
        text.append(clock_time(ts, self.tz) + " ", style="bright_black")
        colour = WORKER_COLOURS[zlib.crc32(worker.encode()) % len(WORKER_COLOURS)]
        text.append(f"{worker:<16} ", style=colour)
        text.append(f"{level:<7} ", style=LEVEL_STYLES.get(level, ""))
        text.append(message)
        return text
