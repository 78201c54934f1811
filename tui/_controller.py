"""What the keys and the command palette ask of the core, and the flash line that answers.

Control actions go to the core through the bridge (`orch.request`: a sync send, safe on
the one thread both share); some ask first in a dialog. The controller also makes the
moves between screens that keys ask for (a worker's detail, its logs), and answers each
action in the flash line above the key bar ("Triggered fetch-data", "queued: paused").
What the core does on its own (a circuit opened, a run dead-lettered) is not an answer:
the activity feed shows it, never a toast over the screen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from textual.app import App

from jobdeck import (
    ConfigError,
    ControlFailed,
    DeadLetter,
    DeadLetterDeleted,
    Event,
    NotRunning,
    OrchestratorState,
    ReloadResult,
    RunRecord,
    WorkerStatus,
)

from ._bridge import CoreNotRunning
from ._cells import one_line, plural
from ._model import DeckModel
from .screens import (
    ConfirmScreen,
    DeadLetterScreen,
    DeckScreen,
    DetailScreen,
    PayloadScreen,
    RunScreen,
)
from .widgets import Flash, FlashLine, Severity


class DeckController:
    """The dashboard's control actions, the dialogs before some, and the flash line.

    Implements `screens.Controls`, which is all the screens know of it.

    Args:
        app: the app whose screens it drives.
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
        #: The latest answer in the flash line (it may have gone already).
        self.current_flash: Flash | None = None

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
        self.flash("jobdeck is not taking requests right now", "error")
        return False

    # ------------------------------------------------------------------ flash line

    def flash(self, text: str, severity: Severity = "info") -> None:
        """Answer what a person just did, in the flash line of every screen that has one."""
        self.current_flash = Flash.now(text, severity)
        for screen in self.app.screen_stack:
            for line in screen.query(FlashLine):
                line.show(self.current_flash)

    # ------------------------------------------------------------------ workers

    def reload_config(self) -> None:
        """Read the config file again and apply it; the flash line says what changed, or
        why the config was refused (nothing changed then)."""
        if not self.model.may_control:
            self.flash("jobdeck is not taking requests right now", "error")
            return
        self.app.run_worker(self._reload_config(), group="reload", exclusive=True)

    async def _reload_config(self) -> None:
        try:
            result = await self.model.bridge.reload_config()
        except ConfigError as exc:
            problems = list(exc.problems)
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            self.flash(f"config refused, nothing changed: {one_line(problems[0], 300)}{more}",
                       "error")
            return
        except (CoreNotRunning, NotRunning):
            self.flash("jobdeck is not taking requests right now", "error")
            return
        self.model.dirty = True
        self.flash(f"config reloaded: {reload_summary(result)}")
        self._refresh()

    def trigger_worker(self, name: str, *payload: Any) -> None:
        """Ask for one run of `name` (with a payload, if one is given); say whether it
        can start, or what holds it."""
        if self._control("trigger", name, *payload):
            self.flash(*self.trigger_answer(name, with_payload=bool(payload)))

    def trigger_answer(self, name: str, *, with_payload: bool = False) -> tuple[str, Severity]:
        """What the flash line says to a trigger of `name`: "Triggered", or why it waits."""
        what = f"{name} with a payload" if with_payload else name
        worker = self.model.worker(name)
        snapshot = self.model.snapshot
        if worker is not None and worker.state == WorkerStatus.CIRCUIT_OPEN:
            return f"{what} — queued: circuit open (e to reset)", "warning"
        if worker is not None and worker.state == WorkerStatus.DISABLED:
            return f"{what} — queued: disabled (e to enable)", "warning"
        if snapshot is not None and snapshot.state == OrchestratorState.PAUSED:
            return f"{what} — queued: paused (p resumes)", "warning"
        if worker is not None and worker.state in (
            WorkerStatus.RUNNING, WorkerStatus.RETRYING, WorkerStatus.STUCK
        ):
            return f"{what} — queued: runs after the run in flight", "info"
        return f"Triggered {what}", "info"

    def ask_payload(self, name: str) -> None:
        """Open the payload dialog, filled in with the worker's last payload (or the
        example in its spec, or `{}`); on enter, trigger `name` with the JSON typed."""
        if name in self.model.last_payloads:
            # Seen in this session's events: at once, no read.
            self._open_payload_dialog(name, self.model.last_payloads[name], "its last payload")
        else:
            self.app.run_worker(self._ask_payload(name), group="payload", exclusive=True)

    async def _ask_payload(self, name: str) -> None:
        self._open_payload_dialog(name, *await self.model.payload_for(name))

    def _open_payload_dialog(self, name: str, payload: Any, origin: str) -> None:
        def send(result: tuple[Any] | None) -> None:
            if result is not None:
                self.trigger_worker(name, result[0])

        self.app.push_screen(PayloadScreen(name, payload, origin=origin), send)

    def enable_worker(self, name: str) -> None:
        """Enable `name`; closes an open circuit and resets its failure count."""
        worker = self.model.worker(name)
        circuit_open = worker is not None and worker.state == WorkerStatus.CIRCUIT_OPEN
        if self._control("enable", name):
            if circuit_open:
                self.flash(f"Reset the circuit of {name}: runs start again")
            else:
                self.flash(f"Enabled {name}")

    def disable_worker(self, name: str) -> None:
        """Disable `name`: no runs start (its triggers are kept) until it is enabled."""
        if self._control("disable", name):
            self.flash(f"Disabled {name}: no runs start until enabled (e)")

    def pause_all(self) -> None:
        """No new runs start; runs in flight go on."""
        if self.model.may_control:
            self.model.orch.pause()
            self.flash("Paused: no new runs start; runs in flight go on (p resumes)")
            self._refresh()

    def resume_all(self) -> None:
        """Start runs again."""
        if self.model.may_control:
            self.model.orch.resume()
            self.flash("Resumed")
            self._refresh()

    # ------------------------------------------------------------------ dead letters

    def replay(self, entry: DeadLetter) -> None:
        """Replay a dead letter: a new `replay` trigger with the same payload."""
        if self._control("replay", entry.id):
            self.model.dead_letters_changed()
            self.flash(f"Replaying DLQ #{entry.id}: a new {entry.worker} run is queued")

    def ask_delete(self, entry: DeadLetter, then: Callable[[], object] | None = None) -> None:
        """Ask, then delete a dead letter (and call `then` once it is asked for)."""

        def answer(yes: bool | None) -> None:
            if yes and self._control("delete_dead_letter", entry.id):
                self.model.dead_letters_changed()
                self.flash(f"Deleted DLQ #{entry.id} ({entry.worker})")
                if then is not None:
                    then()

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
                f"{purge_question(count)} It cannot be undone: none can be replayed afterwards.",
                title="purge the dead-letter queue",
            ),
            answer,
        )

    # ------------------------------------------------------------------ nodes

    def ask_drain(self, name: str) -> None:
        """Ask, then drain cluster node `name`: it claims no new run, finishes those it
        holds, and stays up, idle, until undrained or stopped."""
        if not self.model.may_control:
            self.flash("jobdeck is not taking requests right now", "error")
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.app.run_worker(self._set_node_state(name, "draining"), group="node")

        self.app.push_screen(
            ConfirmScreen(
                f"Drain node {one_line(name, 60)}?\nIt takes no new run and finishes the runs"
                " it holds, then stays up, idle, until undrained (u) or stopped.",
                title="drain a node",
            ),
            answer,
        )

    def undrain(self, name: str) -> None:
        """Let cluster node `name` claim runs again."""
        if not self.model.may_control:
            self.flash("jobdeck is not taking requests right now", "error")
            return
        self.app.run_worker(self._set_node_state(name, "active"), group="node")

    async def _set_node_state(self, name: str, state: str) -> None:
        problem = await self.model.set_node_state(name, state)
        shown = one_line(name, 60)
        if problem is not None:
            verb = "drain" if state == "draining" else "undrain"
            self.flash(f"not done: {verb} {shown}: {one_line(problem, 200)}", "error")
        elif state == "draining":
            self.flash(f"Draining {shown}: it takes no new run and finishes its own"
                       " (u undrains)")
        else:
            self.flash(f"Undrained {shown}: it takes runs again")
        self._refresh()

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

    def open_run(self, run_id: str) -> None:
        """Show run `run_id` on its own screen, over the one it was opened from."""
        self.app.push_screen(RunScreen(run_id, self.model, self))

    def rerun(self, run: RunRecord) -> None:
        """Trigger `run`'s worker again, with its payload if it had one."""
        payload = run.trigger.payload
        if payload is None:
            self.trigger_worker(run.worker)
        else:
            self.trigger_worker(run.worker, payload)
    def open_dead_letter(self, entry: DeadLetter) -> None:
        """Show a dead letter in full, on its own screen (with its keys)."""
        sort_label = self.deck.sort_label if self.deck is not None else ""
        self.app.push_screen(
            DeadLetterScreen(entry, self.model, self, title=self.title, sort_label=sort_label)
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

    # ------------------------------------------------------------------ answers

    def notice(self, events: Sequence[Event]) -> None:
        """The core's answers to what a person asked: a purge done, an action refused.

        Failures, dead letters and circuits are the activity feed's, not the flash line's.
        """
        for event in events:
            if isinstance(event, DeadLetterDeleted) and event.dlq_id is None:
                self.flash(f"Purged {plural(event.count, 'dead letter')}")
            elif isinstance(event, ControlFailed):
                self.flash(f"not done: {event.action}: {one_line(event.error, 100)}", "error")


def purge_question(count: int) -> str:
    """"Delete the dead letter?" / "Delete all 3 dead letters?"."""
    if count == 1:
        return "Delete the one dead letter?"
    return f"Delete all {count} dead letters?"


def reload_summary(result: ReloadResult) -> str:
    """What a reload changed, in one short text."""
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
