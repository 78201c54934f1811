"""A worker's detail screen: what `enter` opens on a worker, with its own keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen

from jobdeck import OrchestratorSnapshot, RunRecord, WorkerSnapshot

from ..widgets import KeyBar, StatusBar, WorkerDetail

if TYPE_CHECKING:
    from ..app import DeckApp


class DetailScreen(Screen[None]):
    """Spec, live state, pending triggers, recent runs and last error of one worker."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", key_display="esc",
                tooltip="Back to the dashboard"),
        Binding("t", "trigger", "Trigger", tooltip="Run this worker once now"),
        Binding("T", "trigger_payload", "Trigger+JSON", key_display="T",
                tooltip="Trigger this worker with a JSON payload"),
        Binding("e", "enable", "Enable", tooltip="Enable this worker (closes an open circuit)"),
        Binding("d", "disable", "Disable", tooltip="Disable this worker"),
        Binding("l", "logs", "Logs", tooltip="Follow this worker's logs"),
    ]

    def __init__(self, worker: str, title: str = "") -> None:
        super().__init__(id="detail")
        self.worker = worker
        self._title = title
        #: Recent runs of this worker; None until loaded.
        self.runs: Sequence[RunRecord] | None = None
        self.runs_dirty = True

    @property
    def deck_app(self) -> DeckApp:
        return cast("DeckApp", self.app)

    def compose(self) -> ComposeResult:
        yield StatusBar(self._title, id="detail-status")
        yield WorkerDetail(tz=self.deck_app.tz, id="worker-detail")
        yield KeyBar()

    def on_mount(self) -> None:
        if self.deck_app.snapshot is not None:
            self.show_snapshot(self.deck_app.snapshot)

    @property
    def current(self) -> WorkerSnapshot | None:
        return self.deck_app.worker_snapshot(self.worker)

    def show_snapshot(self, snapshot: OrchestratorSnapshot) -> None:
        app = self.deck_app
        deck = app.deck
        self.query_one("#detail-status", StatusBar).show(
            snapshot, sort_label=deck.sort_label, filter_text="", shown=len(snapshot.workers)
        )
        worker = app.worker_snapshot(self.worker)
        if worker is None:
            return
        pending: Sequence[Any] | None = app.pending_triggers(self.worker)
        self.query_one(WorkerDetail).show(
            worker, snapshot.taken_at, runs=self.runs, pending=pending
        )
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("trigger", "trigger_payload", "enable", "disable"):
            app = self.deck_app
            worker = self.current
            if worker is None or app.stopping or not app.bridge.running:
                return None
            if action == "enable":
                return True if not worker.may_run else None
            if action == "disable":
                return True if worker.enabled else None
        return True

    def action_trigger(self) -> None:
        self.deck_app.trigger_worker(self.worker)

    def action_trigger_payload(self) -> None:
        self.deck_app.ask_payload(self.worker)

    def action_enable(self) -> None:
        self.deck_app.enable_worker(self.worker)

    def action_disable(self) -> None:
        self.deck_app.disable_worker(self.worker)

    def action_logs(self) -> None:
        self.dismiss()
        self.deck_app.follow_logs(self.worker)
