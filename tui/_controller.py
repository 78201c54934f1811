"""What the keys and the command palette ask of the core, and the toasts that answer.

Control actions go to the core through the bridge (`orch.request`: a sync send, safe on
the one thread both share); some ask first in a dialog. The controller also makes the
moves between screens that keys ask for (a worker's detail, its logs), and raises the
toasts for what the core did that needs a person: a circuit opened, a run
dead-lettered, an action that failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from textual.app import App

from jobdeck import (
    Circuit,
    ConfigError,
    ControlFailed,
    DeadLetter,
    DeadLetterDeleted,
    DeadLettered,
    Event,
    NotRunning,
    ReloadResult,
    WorkerDisabled,
    WorkerEnabled,
)

from ._bridge import CoreNotRunning
from ._cells import one_line
from ._model import DeckModel
from .screens import ConfirmScreen, DeckScreen, DetailScreen, PayloadScreen


class DeckController:
    """The dashboard's control actions, the dialogs before some, and the toasts.

    Implements `screens.Controls`, which is all the screens know of it.

    Args:
        app: the app whose screens and toasts it drives.
        model: what the dashboard knows; what is sent marks it stale.
        title: the dashboard's title, for the screens it opens.
        refresh: brings every visible view up to date at once, and starts the reads
            they need (the app's refresh).
    """

    def __init__(
        self,
        app: App[Any],
        model: DeckModel,
        *,
        title: str = "",
        refresh: Callable[[], None],
    ) -> None:
        self.app = app
        self.model = model
        self.title = title
        self._refresh = refresh
        #: The main screen, once the app has made it.
        self.deck: DeckScreen | None = None

    @property
    def selected_worker_name(self) -> str | None:
        """The worker keys act on: a detail screen's, else the one selected on the deck."""
        screen = self.app.screen
        if isinstance(screen, DetailScreen):
            return screen.worker
        if self.deck is None or not self.deck.is_mounted:
            return None
        return self.deck.worker_table.selected_worker

    def _control(self, action: str, *args: Any) -> bool:
        if self.model.bridge.control(action, *args):
            self.model.dirty = True
            return True
        self.app.notify("jobdeck is not taking requests right now", severity="error")
        return False

    # ------------------------------------------------------------------ workers

    def trigger_worker(self, name: str, *payload: Any) -> None:
        """Ask for one run of `name` (with a payload, if one is given)."""
        if self._control("trigger", name, *payload):
            with_payload = " with a payload" if payload else ""
            self.app.notify(f"Triggered {name}{with_payload}", timeout=3)

    def ask_payload(self, name: str) -> None:
        """Open the payload dialog; on enter, trigger `name` with the JSON typed."""

        def send(result: tuple[Any] | None) -> None:
            if result is not None:
                self.trigger_worker(name, result[0])

        self.app.push_screen(PayloadScreen(name), send)

    def enable_worker(self, name: str) -> None:
        """Enable `name`; closes an open circuit and resets its failure count."""
        worker = self.model.worker(name)
        circuit_open = worker is not None and worker.circuit == Circuit.OPEN
        if self._control("enable", name):
            note = ": circuit closed" if circuit_open else ""
            self.app.notify(f"Enabled {name}{note}", timeout=3)

    def disable_worker(self, name: str) -> None:
        """Disable `name`: no runs start (its triggers are kept) until it is enabled."""
        if self._control("disable", name):
            self.app.notify(f"Disabled {name}: no runs start until enabled (e)", timeout=3)

    def pause_all(self) -> None:
        """No new runs start; runs in flight go on."""
        if self.model.may_control:
            self.model.orch.pause()
            self.app.notify(
                "Paused: no new runs start; runs in flight go on (p resumes)", timeout=3
            )
            self._refresh()

    def resume_all(self) -> None:
        """Start runs again."""
        if self.model.may_control:
            self.model.orch.resume()
            self.app.notify("Resumed", timeout=3)
            self._refresh()

    def reload_config(self) -> None:
        """Read the config file again and apply it; a toast says what changed, or why
        the config was refused (nothing changed then)."""
        if not self.model.may_control:
            self.app.notify("jobdeck is not taking requests right now", severity="error")
            return
        self.app.run_worker(self._reload_config(), group="reload", exclusive=True)

    async def _reload_config(self) -> None:
        try:
            result = await self.model.bridge.reload_config()
        except ConfigError as exc:
            problems = list(exc.problems)
            shown = "\n".join(one_line(problem, 400) for problem in problems[:5])
            more = f"\n… and {len(problems) - 5} more" if len(problems) > 5 else ""
            self.app.notify(f"{shown}{more}", title="config refused: nothing changed",
                            severity="error", timeout=10)
            return
        except (CoreNotRunning, NotRunning):
            self.app.notify("jobdeck is not taking requests right now", severity="error")
            return
        self.model.dirty = True
        self.app.notify(reload_summary(result), title="config reloaded", timeout=5)
        self._refresh()

    # ------------------------------------------------------------------ dead letters

    def replay(self, entry: DeadLetter) -> None:
        """Replay a dead letter: a new `replay` trigger with the same payload."""
        if self._control("replay", entry.id):
            self.model.dead_letters_changed()
            self.app.notify(
                f"Replaying DLQ #{entry.id}: a new {entry.worker} run is queued", timeout=3
            )

    def ask_delete(self, entry: DeadLetter) -> None:
        """Ask, then delete a dead letter."""

        def answer(yes: bool | None) -> None:
            if yes and self._control("delete_dead_letter", entry.id):
                self.model.dead_letters_changed()
                self.app.notify(f"Deleted DLQ #{entry.id} ({entry.worker})", timeout=3)

        self.app.push_screen(
            ConfirmScreen(
                f"Delete dead letter #{entry.id} of {entry.worker}?\n"
                f"{one_line(entry.error, 56)}\nIt cannot be replayed afterwards.",
                title="delete a dead letter",
            ),
            answer,
        )

    def ask_purge(self) -> None:
        """Ask, then delete every dead letter."""
        snapshot = self.model.snapshot
        count = snapshot.dlq_size if snapshot is not None else 0

        def answer(yes: bool | None) -> None:
            if yes and self._control("purge_dead_letters"):
                self.model.dead_letters_changed()

        self.app.push_screen(
            ConfirmScreen(
                f"Delete all {count} dead letters? None of them can be replayed afterwards.",
                title="purge the dead-letter queue",
            ),
            answer,
        )

    # ------------------------------------------------------------------ screens

    def open_detail(self, name: str) -> None:
        """Show worker `name`'s detail screen (instead of another worker's)."""
        app = self.app
        if isinstance(app.screen, DetailScreen):
            app.pop_screen()
        sort_label = self.deck.sort_label if self.deck is not None else ""
        app.push_screen(
            DetailScreen(name, self.model, self, title=self.title, sort_label=sort_label)
        )

    def follow_logs(self, name: str | None) -> None:
        """Show the Logs tab on `name`'s lines (None: every worker), following."""
        app = self.app
        while len(app.screen_stack) > 1:
            app.pop_screen()
        if self.deck is not None:
            self.deck.follow_logs(name)

    def tab_shown(self, tab: str) -> None:
        """The deck's active tab changed: refresh now, which loads what the tab shows."""
        self._refresh()

    # ------------------------------------------------------------------ toasts

    def notice(self, events: Sequence[Event]) -> None:
        """Toasts for the events that need a person."""
        dead: list[DeadLettered] = []
        for event in events:
            if isinstance(event, DeadLettered):
                dead.append(event)
            elif isinstance(event, DeadLetterDeleted) and event.dlq_id is None:
                self.app.notify(f"Purged {event.count} dead letter{'s' * (event.count != 1)}")
            self._toast(event)
        self._toast_dead_letters(dead)

    def _toast(self, event: Event) -> None:
        notify = self.app.notify
        if isinstance(event, WorkerDisabled) and event.reason.startswith("circuit"):
            notify(
                f"{event.worker}: {event.reason}. Select it and press e to enable it.",
                title="worker disabled", severity="warning", timeout=8,
            )
        elif isinstance(event, WorkerEnabled) and event.reason.startswith("circuit closed"):
            notify(f"{event.worker}: {event.reason}", title="circuit closed")
        elif isinstance(event, ControlFailed):
            notify(f"{event.action}: {event.error}", title="not done", severity="error",
                   timeout=8)

    def _toast_dead_letters(self, dead: list[DeadLettered]) -> None:
        if len(dead) == 1:
            event = dead[0]
            self.app.notify(
                f"{event.worker}: {one_line(event.error, 100)} (DLQ #{event.dlq_id})",
                title="run dead-lettered", severity="error", timeout=5,
            )
        elif dead:
            names = ", ".join(sorted({event.worker for event in dead}))
            self.app.notify(f"{len(dead)} runs: {names}", title="runs dead-lettered",
                            severity="error", timeout=5)


def reload_summary(result: ReloadResult) -> str:
    """What a reload changed, in one short text for a toast."""
    parts = [
        f"{label} {', '.join(names)}"
        for label, names in (
            ("added", result.added), ("removed", result.removed),
            ("changed", result.changed), ("settings", result.orchestrator),
        )
        if names
    ]
    if result.restart_needed:
        parts.append(f"restart needed for {', '.join(result.restart_needed)}")
    return "; ".join(parts) if parts else "nothing changed"
