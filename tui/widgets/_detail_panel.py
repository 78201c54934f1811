"""A bordered, scrollable panel that shows one selected item in full (a dead letter, a node)."""

from __future__ import annotations

from datetime import tzinfo

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static


class DetailPanel(VerticalScroll):
    """One `Static` body under a titled border; subclasses fill it in their `show()`."""

    DEFAULT_CSS = """
    DetailPanel {
        height: 1fr;
        border: round $primary 40%;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    DetailPanel:focus-within {
        border: round $primary;
    }
    """

    def __init__(
        self, *, title: str, body_id: str, tz: tzinfo | None = None, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.tz = tz
        self._body = Static("", id=body_id)
        self.border_title = title

    def compose(self) -> ComposeResult:
        yield self._body
