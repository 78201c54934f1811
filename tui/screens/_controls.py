"""What the screens' keys ask for, seen from the screens: a Protocol.

`DeckController` (`_controller.py`) is the one implementation. The screens know it only
by this shape: the controller opens screens (dialogs, a worker's detail), so a screen
importing it would import itself back.
"""

from __future__ import annotations

from typing import Protocol

from jobdeck import DeadLetter, RunRecord


class Controls(Protocol):
    """Control actions and the moves between screens that keys trigger."""

    def trigger_worker(self, name: str) -> None:
        """Ask for one run of `name` now."""

    def ask_payload(self, name: str) -> None:
        """Ask for a JSON payload, then trigger `name` with it."""

    def enable_worker(self, name: str) -> None:
        """Enable `name` (closes an open circuit)."""

    def disable_worker(self, name: str) -> None:
        """Disable `name`: no runs start, its triggers are kept."""

    def pause_all(self) -> None:
        """No new runs start until resumed."""

    def resume_all(self) -> None:
        """Start runs again."""

    def replay(self, entry: DeadLetter) -> None:
        """Replay a dead letter: a new run with the same payload."""

    def ask_delete(self, entry: DeadLetter) -> None:
        """Ask, then delete a dead letter."""

    def ask_purge(self) -> None:
        """Ask, then delete every dead letter."""

    def open_detail(self, name: str) -> None:
        """Show worker `name`'s detail screen."""

    def open_run(self, run_id: str) -> None:
        """Show one run: its attempts, traceback and log lines."""

    def rerun(self, run: RunRecord) -> None:
        """Trigger `run`'s worker again with the same payload."""

    def follow_logs(self, name: str | None) -> None:
        """Show the Logs tab on `name`'s lines (None: every worker's), following."""

    def tab_shown(self, tab: str) -> None:
        """The deck's active tab changed: bring what it shows up to date, now."""
