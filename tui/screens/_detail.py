"""A worker's detail screen: what `enter` opens on a worker, with its own keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen

from jobdeck import OrchestratorSnapshot, RunRecord, WorkerSnapshot

from .._model import DeckModel
from ..widgets import FlashLine, KeyBar, StatusBar, WorkerDetail
from ..widgets._worker_detail import RUNS_SHOWN
from ._controls import Controls, worker_key


class DetailScreen(Screen[None]):
    """Spec, live state, pending triggers, recent runs and last error of one worker.

    Args:
        worker: the worker's name.
        model: what the dashboard knows; the screen shows the worker's part of it.
        controls: what the keys ask for.
        title: shown in the status bar (the config's name).
        sort_label: the workers table's sort, as the status bar names it.
    """

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", key_display="esc",
                tooltip="Back to the dashboard"),
        Binding("t", "trigger", "Trigger", tooltip="Run this worker once now"),
        Binding("T", "trigger_payload", "Trigger+JSON", key_display="T",
                tooltip="Trigger this worker with a JSON payload"),
        Binding("e", "enable", "Enable", tooltip="Enable this worker"),
        Binding("e", "reset_circuit", "Reset circuit",
                tooltip="Reset the open circuit: failures to 0, runs start again"),
        Binding("d", "disable", "Disable", tooltip="Disable this worker"),
        Binding("l", "logs", "Logs", tooltip="Follow this worker's logs"),
        Binding("enter", "open_run", "Open run",
                tooltip="Open the selected recent run: attempts, traceback, log lines"),
        Binding("j", "select_run(1)", "Older run", show=False,
                tooltip="Select the next older recent run"),
        Binding("k", "select_run(-1)", "Newer run", show=False,
                tooltip="Select the next newer recent run"),
    ]

    def __init__(
        self,
        worker: str,
        model: DeckModel,
        controls: Controls,
        *,
        title: str = "",
        sort_label: str = "",
    ) -> None:
        super().__init__(id="detail")
        self.worker = worker
        self.model = model
        self.controls = controls
        self._title = title
        self._sort_label = sort_label
        #: Recent runs of this worker; None until loaded.
        self.runs: Sequence[RunRecord] | None = None
        self.runs_dirty = True
        #: The recent run `enter` opens (None: the latest), kept by id as runs come.
        self.selected_run_id: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar(self._title, id="detail-status")
        yield WorkerDetail(tz=self.model.tz, id="worker-detail")
        yield FlashLine(id="detail-flash")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(FlashLine).show(self.controls.current_flash)
        if self.model.snapshot is not None:
            self.show_snapshot(self.model.snapshot)

    @property
    def current(self) -> WorkerSnapshot | None:
        return self.model.worker(self.worker)

    def show_snapshot(self, snapshot: OrchestratorSnapshot) -> None:
        self.query_one("#detail-status", StatusBar).show(
            snapshot, sort_label=self._sort_label, filter_text="", shown=len(snapshot.workers)
        )
        worker = self.model.worker(self.worker)
        if worker is None:
            return
        pending: Sequence[Any] | None = self.model.pending_triggers(self.worker)
        self.query_one(WorkerDetail).show(
            worker, snapshot.taken_at, runs=self.runs, pending=pending,
            selected_run=self.selected_run_index,
        )
        self.refresh_bindings()

    @property
    def selected_run_index(self) -> int | None:
        """Where the selected run is among the recent runs shown; None if none are."""
        if not self.runs:
            return None
        ids = [run.id for run in self.runs[:RUNS_SHOWN]]
        return ids.index(self.selected_run_id) if self.selected_run_id in ids else 0

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("open_run", "select_run"):
            return True if self.runs else None
        if action in ("trigger", "trigger_payload", "enable", "reset_circuit", "disable"):
            worker = self.current
            if worker is None:
                return None if action != "reset_circuit" else False
            allowed = worker_key(action, worker)
            return None if allowed and not self.model.may_control else allowed
        return True

    def action_trigger(self) -> None:
        self.controls.trigger_worker(self.worker)

    def action_trigger_payload(self) -> None:
        self.controls.ask_payload(self.worker)

    def action_enable(self) -> None:
        self.controls.enable_worker(self.worker)

    def action_reset_circuit(self) -> None:
        self.controls.enable_worker(self.worker)  # enabling closes an open circuit

    def action_disable(self) -> None:
        self.controls.disable_worker(self.worker)

    def action_open_run(self) -> None:
        index = self.selected_run_index
        if self.runs and index is not None:
            self.controls.open_run(self.runs[index].id)

    def action_select_run(self, step: int) -> None:
        index = self.selected_run_index
        if not self.runs or index is None:
            return
        shown = self.runs[:RUNS_SHOWN]
        self.selected_run_id = shown[max(0, min(len(shown) - 1, index + step))].id
        if self.model.snapshot is not None:
            self.show_snapshot(self.model.snapshot)

    def action_logs(self) -> None:
        self.dismiss()
        self.controls.follow_logs(self.worker)
