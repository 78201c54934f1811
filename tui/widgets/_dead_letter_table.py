"""The dead-letter queue as a table: one row per entry, newest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar

from textual.binding import Binding, BindingType

from jobdeck import DeadLetter

from .._cells import Cell, ago, one_line
from ._keyed_table import KeyedTable

COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("id", "#", 5),
    ("worker", "worker", 18),
    ("failed", "failed", 9),
    ("source", "source", 10),
    ("attempts", "tries", 5),
    ("error", "error", None),
)


def dead_letter_row(entry: DeadLetter, now: datetime) -> tuple[Cell, ...]:
    return (
        (str(entry.id), "bright_black"),
        (entry.worker, "bold"),
        (ago(entry.failed_at, now), ""),
        (entry.source.value, "bright_black"),
        (str(entry.attempts), ""),
        (one_line(entry.error), "red"),
    )


class DeadLetterTable(KeyedTable):
    """DLQ entries; the highlighted one is what `r` replays and `x` deletes."""

    DEFAULT_CSS = """
    DeadLetterTable {
        height: 1fr;
        min-height: 5;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Full entry",
                tooltip="Open the selected dead letter on the whole screen"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.entries: dict[int, DeadLetter] = {}

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, width=width, key=key)

    @property
    def selected_entry(self) -> DeadLetter | None:
        key = self.selected_key
        return self.entries.get(int(key)) if key is not None else None

    def show(self, entries: Sequence[DeadLetter], now: datetime) -> int:
        """Show `entries` (newest first); returns how many cells were written."""
        self.entries = {entry.id: entry for entry in entries}
        return self.sync([(str(entry.id), dead_letter_row(entry, now)) for entry in entries])
