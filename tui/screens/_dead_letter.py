"""One dead letter on the whole screen: what `enter` opens on the Dead letters tab."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen

from jobdeck import DeadLetter, OrchestratorSnapshot

from .._model import DeckModel
from ..widgets import DeadLetterDetail, FlashLine, KeyBar, StatusBar
from ._controls import Controls


class DeadLetterScreen(Screen[None]):
    """Fields, payload, error and the whole traceback of one dead letter, with its keys:
    `esc` back to the list, `r` replay, `x` delete.

    Args:
        entry: the dead letter.
        model: what the dashboard knows (for the status bar and the clock).
        controls: what the keys ask for.
        title: shown in the status bar (the config's name).
        sort_label: the workers table's sort, as the status bar names it.
    """

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", key_display="esc",
                tooltip="Back from the full entry to the list of dead letters"),
        Binding("r", "replay", "Replay",
                tooltip="Replay this dead letter: a new run with the same payload"),
        Binding("x", "delete", "Delete", tooltip="Delete this dead letter (asks first)"),
    ]

    def __init__(
        self,
        entry: DeadLetter,
        model: DeckModel,
        controls: Controls,
        *,
        title: str = "",
        sort_label: str = "",
    ) -> None:
        super().__init__(id="dead-letter")
        self.entry = entry
        self.model = model
        self.controls = controls
        self._title = title
        self._sort_label = sort_label

    def compose(self) -> ComposeResult:
        yield StatusBar(self._title, id="dead-letter-status")
        yield DeadLetterDetail(tz=self.model.tz, id="dead-letter-detail")
        yield FlashLine(id="dead-letter-flash")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(FlashLine).show(self.controls.current_flash)
        self.query_one(DeadLetterDetail).focus()
        if self.model.snapshot is not None:
            self.show_snapshot(self.model.snapshot)

    def show_snapshot(self, snapshot: OrchestratorSnapshot) -> None:
        """The status bar as of `snapshot`, and the entry's "failed … ago"."""
        self.query_one(StatusBar).show(snapshot, sort_label=self._sort_label)
        self.query_one(DeadLetterDetail).show(self.entry, self.model.clock())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("replay", "delete"):
            return True if self.model.may_control else None
        return True

    def action_replay(self) -> None:
        self.controls.replay(self.entry)
        self.dismiss()

    def action_delete(self) -> None:
        self.controls.ask_delete(self.entry, then=self.dismiss)
