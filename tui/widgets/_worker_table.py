"""The workers table: one row per worker, filtered, sorted, updated cell by cell."""

from __future__ import annotations

from textual import events
from textual.binding import Binding

from core import OrchestratorSnapshot

from .._cells import (
    SORT_COLUMNS,
    SORT_DESCENDING,
    WORKER_COLUMN_WIDTHS,
    WORKER_COLUMNS,
    matches,
    sort_key,
    worker_row,
)
from ._keyed_table import KeyedTable

NAME_WIDTH = (10, 28)
WHY_MIN_WIDTH = 20


class WorkerTable(KeyedTable):
    """Every worker (or those the filter keeps) with its state and why it is not running.

    `show(snapshot)` brings the table in line with a snapshot, touching changed cells
    only. The `why` column takes the width the others leave.
    """

    DEFAULT_CSS = """
    WorkerTable {
        height: 1fr;
    }
    """

    BINDINGS = [
        Binding(
            "enter",
            "select_cursor",
            "Detail",
            tooltip="Open the selected worker: spec, recent runs, last error, pending triggers",
        ),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.filter_text = ""
        self.sort_by = "config"
        #: Workers shown after the filter.
        self.shown_count = 0
        self._snapshot: OrchestratorSnapshot | None = None
        self._built_for: tuple[int, str] | None = None

    @property
    def selected_worker(self) -> str | None:
        return self.selected_key

    def show(self, snapshot: OrchestratorSnapshot) -> int:
        """Show `snapshot`; returns how many cells were written."""
        self._snapshot = snapshot
        layout = (self.size.width, self.sort_by)
        rebuilt_from: str | None = None
        if self._built_for != layout:
            rebuilt_from = self.selected_key
            self._build_columns(snapshot)
            self._built_for = layout
        kept = [
            (worker, index)
            for index, worker in enumerate(snapshot.workers)
            if matches(worker, self.filter_text)
        ]
        kept.sort(key=lambda pair: sort_key(self.sort_by, *pair))
        self.shown_count = len(kept)
        now = snapshot.taken_at
        written = self.sync([(worker.name, worker_row(worker, now)) for worker, _ in kept])
        if rebuilt_from is not None:
            self.select_key(rebuilt_from)
        return written

    def set_filter(self, text: str) -> None:
        """Keep only workers whose name contains `text`, or whose state is `text`."""
        self.filter_text = text
        if self._snapshot is not None:
            self.show(self._snapshot)

    def set_sort(self, sort_by: str) -> None:
        """Order rows by `sort_by` (a key of `_cells.SORTS`); the column shows an arrow."""
        self.sort_by = sort_by
        if self._snapshot is not None:
            self.show(self._snapshot)

    def _build_columns(self, snapshot: OrchestratorSnapshot) -> None:
        self.reset_rows()
        longest = max((len(w.name) for w in snapshot.workers), default=0)
        name_width = min(max(longest, NAME_WIDTH[0]), NAME_WIDTH[1])
        fixed = name_width + sum(WORKER_COLUMN_WIDTHS.values())
        padding = 2 * self.cell_padding * len(WORKER_COLUMNS)
        scrollbar = 2
        why_width = max(WHY_MIN_WIDTH, self.size.width - fixed - padding - scrollbar)
        arrow_on = SORT_COLUMNS.get(self.sort_by)
        for key, label in WORKER_COLUMNS:
            if key == arrow_on:
                label += " ▼" if self.sort_by in SORT_DESCENDING else " ▲"
            if key == "name":
                width = name_width
            elif key == "why":
                width = why_width
            else:
                width = WORKER_COLUMN_WIDTHS[key]
            self.add_column(label, width=width, key=key)

    def on_resize(self, event: events.Resize) -> None:
        if self._snapshot is not None and self._built_for is not None:
            if self._built_for[0] != event.size.width:
                self.show(self._snapshot)
