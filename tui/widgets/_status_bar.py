"""The status bar: orchestrator state, health, slots, pending, DLQ, log lines dropped, uptime,
sort, filter."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widgets import Static

from jobdeck import OrchestratorSnapshot

from .._cells import status_line


class StatusBar(Static):
    """One line at the top of the dashboard, redrawn only when its text changes.

    It words itself for its width: on a narrow terminal labels shorten before anything
    is cut (`_cells.status_line`).
    """

    DEFAULT_CSS = """
    StatusBar {
        height: 1;
        background: $panel;
        color: $foreground;
    }
    """

    def __init__(self, title: str = "", *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.title = title
        self._shown: Text | None = None
        self._last: tuple[OrchestratorSnapshot, str, str, int, int | None] | None = None

    def show(
        self,
        snapshot: OrchestratorSnapshot,
        *,
        sort_label: str,
        filter_text: str = "",
        shown: int = 0,
        total: int | None = None,
    ) -> None:
        """Show `snapshot`; a filter shows as `shown` of `total` rows (None: workers)."""
        self._last = (snapshot, sort_label, filter_text, shown, total)
        text = status_line(
            snapshot, title=self.title, sort_label=sort_label, filter_text=filter_text,
            shown=shown, total=total, width=self.size.width,
        )
        if text != self._shown:
            self._shown = text
            # One line across the screen whatever it says: a repaint, never a layout.
            self.update(text, layout=False)

    def on_resize(self, event: events.Resize) -> None:
        if self._last is not None:
            snapshot, sort_label, filter_text, shown, total = self._last
            self.show(snapshot, sort_label=sort_label, filter_text=filter_text, shown=shown,
                      total=total)
