"""What the screens' keys ask for, seen from the screens: a Protocol.

`DeckController` (`_controller.py`) is the one implementation. The screens know it only
by this shape: the controller opens screens (dialogs, a worker's detail), so a screen
importing it would import itself back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from jobdeck import DeadLetter, RunRecord, WorkerSnapshot, WorkerStatus

from ..widgets import Flash, Severity


class Controls(Protocol):
    """Control actions and the moves between screens that keys trigger."""

    #: The latest answer in the flash line (a screen shows it when it opens).
    current_flash: Flash | None

    def flash(self, text: str, severity: Severity = "info") -> None:
        """Answer what a person just did, in the flash line above the key bar."""

    def trigger_worker(self, name: str) -> None:
        """Ask for one run of `name` now."""

    def ask_payload(self, name: str) -> None:
        """Ask for a JSON payload, then trigger `name` with it."""

    def enable_worker(self, name: str) -> None:
        """Enable `name`, or reset its open circuit."""

    def disable_worker(self, name: str) -> None:
        """Disable `name`: no runs start, its triggers are kept."""

    def pause_all(self) -> None:
        """No new runs start until resumed."""

    def resume_all(self) -> None:
        """Start runs again."""

    def replay(self, entry: DeadLetter) -> None:
        """Replay a dead letter: a new run with the same payload."""

    def ask_delete(self, entry: DeadLetter, then: Callable[[], object] | None = None) -> None:
        """Ask, then delete a dead letter (and call `then` once it is asked for)."""

    def ask_purge(self) -> None:
        """Ask, then delete every dead letter."""

    def open_detail(self, name: str) -> None:
        """Show worker `name`'s detail screen."""

    def open_run(self, run_id: str) -> None:
        """Show one run: its attempts, traceback and log lines."""

    def rerun(self, run: RunRecord) -> None:
        """Trigger `run`'s worker again with the same payload."""
    def open_dead_letter(self, entry: DeadLetter) -> None:
        """Show a dead letter in full, on its own screen."""

    def follow_logs(self, name: str | None) -> None:
        """Show the Logs tab on `name`'s lines (None: every worker's), following."""

    def ask_drain(self, name: str) -> None:
        """Ask, then drain cluster node `name`: it takes no new run, finishes its own."""

    def undrain(self, name: str) -> None:
        """Let cluster node `name` take runs again."""

    def tab_shown(self, tab: str) -> None:
        """The deck's active tab changed: bring what it shows up to date, now."""


def worker_key(action: str, worker: WorkerSnapshot) -> bool | None:
    """Whether a worker key applies to `worker`: True shown, None greyed, False hidden.

    `e` is "Reset circuit" on an open circuit and "Enable" on a disabled worker; `d` is
    hidden on an open circuit (resetting it is what a person wants there).
    """
    circuit_open = worker.state == WorkerStatus.CIRCUIT_OPEN
    if action == "reset_circuit":
        return circuit_open
    if action == "enable":
        if circuit_open:
            return False
        return True if not worker.enabled else None
    if action == "disable":
        if circuit_open:
            return False
        return True if worker.enabled else None
    return True
