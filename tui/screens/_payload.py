"""The dialog `T` opens: type a JSON payload; invalid JSON is an error here, nothing sent."""

from __future__ import annotations

import json
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


class PayloadScreen(ModalScreen[tuple[Any] | None]):
    """Asks for a JSON payload; dismisses with `(payload,)`, or None when cancelled."""

    DEFAULT_CSS = """
    PayloadScreen {
        align: center middle;
    }
    PayloadScreen > Vertical {
        width: 80;
        max-width: 100%;
        height: auto;
        border: round $primary;
        border-title-color: $text;
        background: $surface;
        padding: 1 2;
    }
    PayloadScreen #payload-error {
        color: $text-error;
        height: auto;
    }
    PayloadScreen #payload-hint {
        color: $text-muted;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", key_display="esc")]

    def __init__(self, worker: str) -> None:
        super().__init__(id="payload")
        self.worker = worker

    def compose(self) -> ComposeResult:
        box = Vertical()
        box.border_title = f"trigger {self.worker} with a payload"
        with box:
            yield Label("JSON payload (an object, a list, a string, a number, true/false/null):")
            yield Input(placeholder='{"recipient": "ops@example.com"}', id="payload-input")
            yield Static("", id="payload-error")
            yield Static("enter sends · esc cancels", id="payload-hint")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        error = self.query_one("#payload-error", Static)
        if not text:
            error.update("type a JSON value, or esc to cancel")
            return
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            error.update(f"invalid JSON: {exc.msg} (column {exc.colno}); nothing was sent")
            return
        self.dismiss((payload,))

    def action_cancel(self) -> None:
        self.dismiss(None)
