"""The dialog `T` opens: type a JSON payload; invalid JSON is an error here, nothing sent.

It opens filled in with the worker's own payload shape (its last payload, or the
example in its spec), never another worker's.
"""

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
    """Asks for a JSON payload; dismisses with `(payload,)`, or None when cancelled.

    Args:
        worker: the worker to trigger.
        payload: what the input starts with (selected: typing replaces it).
        origin: where `payload` comes from, said under the input ("" for nothing).
    """

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

    def __init__(self, worker: str, payload: Any = None, *, origin: str = "") -> None:
        super().__init__(id="payload")
        self.worker = worker
        self.prefill = "{}" if payload is None else json.dumps(
            payload, ensure_ascii=False, default=str
        )
        self.origin = origin

    def compose(self) -> ComposeResult:
        box = Vertical()
        box.border_title = f"trigger {self.worker} with a payload"
        hint = "enter sends · esc cancels"
        if self.origin:
            hint = f"filled in from {self.origin} · {hint}"
        with box:
            yield Label("JSON payload (an object, a list, a string, a number, true/false/null):")
            yield Input(self.prefill, placeholder="{}", id="payload-input")
            yield Static("", id="payload-error")
            yield Static(hint, id="payload-hint")

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
