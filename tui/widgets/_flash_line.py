"""The flash line above the key bar: the latest acknowledgement, for a few seconds."""

from __future__ import annotations

import time
from typing import Literal

import attrs
from rich.text import Text
from textual.timer import Timer
from textual.widgets import Static

#: Seconds a flash stays before the line goes blank.
FLASH_SECONDS = 5.0

Severity = Literal["info", "warning", "error"]

_MARKS: dict[Severity, tuple[str, str]] = {
    "info": ("✓", "green"),
    "warning": ("!", "bold yellow"),
    "error": ("✗", "bold red"),
}


@attrs.frozen
class Flash:
    """One acknowledgement: what it says, how loud, and until when (`time.monotonic`)."""

    text: str
    severity: Severity
    until: float

    @classmethod
    def now(cls, text: str, severity: Severity = "info", *,
            seconds: float = FLASH_SECONDS) -> Flash:
        return cls(text, severity, time.monotonic() + seconds)

    @property
    def left(self) -> float:
        """Seconds until it goes."""
        return self.until - time.monotonic()


class FlashLine(Static):
    """"✓ Triggered fetch-data", "! queued: paused (p resumes)": one line, never a toast.

    As k9s does: an answer to what a person just did shows here for a few seconds,
    below what they are looking at and never over it (nor over a dialog). What the
    core does on its own (failures, circuits, health) goes to the activity feed.
    """

    DEFAULT_CSS = """
    FlashLine {
        height: 1;
        padding: 0 1;
        background: $background;
        color: $foreground;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.flash: Flash | None = None
        self._timer: Timer | None = None

    def show(self, flash: Flash | None) -> None:
        """Show `flash` until its time is up (None, or one already over: blank)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if flash is None or flash.left <= 0:
            self.flash = None
            self.update("", layout=False)
            return
        self.flash = flash
        mark, style = _MARKS[flash.severity]
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{mark} ", style=style)
        text.append(flash.text, style="" if flash.severity == "info" else style)
        self.update(text, layout=False)
        self._timer = self.set_timer(flash.left, self._expire, name="flash")

    @property
    def text(self) -> str:
        """What the line says now, as plain text ("" when blank)."""
        return "" if self.flash is None else self.flash.text

    def _expire(self) -> None:
        self._timer = None
        self.show(None)
