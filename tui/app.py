"""The jobdeck dashboard: a Textual app that runs the core in trio guest mode.

`run_app` is what `jobdeck` (without `--no-ui`) calls. The app starts the core's guest
run from `on_mount` (see `_bridge.py`), reads frozen snapshots on a timer, sends key
actions through the core's control API, and never ends before the guest run has: quitting
is the core's graceful stop, shown as "stopping… N runs in flight, 24 s left".
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

import attrs
import outcome
import trio
from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from jobdeck import (
    Circuit,
    ConfigError,
    ControlFailed,
    DeadLetter,
    DeadLetterDeleted,
    DeadLettered,
    DeadLetterReplayed,
    Event,
    LogLine,
    Orchestrator,
    OrchestratorSnapshot,
    OrchestratorStopped,
    RunFailed,
    RunInterrupted,
    RunRecord,
    RunStarted,
    RunSucceeded,
    StoreError,
    Trigger,
    WorkerDisabled,
    WorkerEnabled,
    WorkerSnapshot,
)

from ._bridge import CoreBridge, CoreNotRunning
from ._cells import one_line
from ._commands import DeckCommands
from .screens import ConfirmScreen, DeckScreen, DetailScreen, HelpScreen, PayloadScreen, Section

if TYPE_CHECKING:
    from jobdeck import JobdeckConfig
    from jobdeck._cli import RunOptions

#: Seconds between refresh ticks: at most this many redraws a second when busy...
REFRESH_INTERVAL = 0.25
#: ...and at least one redraw this often when quiet (countdowns, "12s ago").
IDLE_REFRESH = 1.0
#: A refresh that cost t seconds is followed by at least REFRESH_SHARE * t without one.
REFRESH_SHARE = 5.0
#: Dead letters and history runs read per reload.
DLQ_LIMIT = 500
HISTORY_LIMIT = 200
#: Seconds between two history reloads while runs keep ending.
HISTORY_MIN_INTERVAL = 1.0

#: Events that end (or start) a run: the history and a detail screen's runs are stale.
_RUN_EVENTS = (RunStarted, RunSucceeded, RunFailed, RunInterrupted)
#: Events that change the dead-letter queue.
_DLQ_EVENTS = (DeadLettered, DeadLetterReplayed, DeadLetterDeleted)
#: Events that may raise a toast (or end the app).
_NOTABLE_EVENTS = (WorkerDisabled, WorkerEnabled, ControlFailed, DeadLettered,
                   DeadLetterDeleted, OrchestratorStopped)

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE = 0, 1, 2


@attrs.frozen
class RefreshCost:
    """What one refresh of the dashboard cost: for benchmarks and the curious."""

    workers: int
    cells_written: int
    seconds: float


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _leaf(error: BaseException) -> BaseException:
    """The one real error inside nested single-exception groups."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def describe_crash(error: BaseException) -> tuple[int, RenderableType]:
    """The exit code and the message for a core that ended with `error`."""
    leaf = _leaf(error)
    if isinstance(leaf, ConfigError):
        return EXIT_USAGE, Text("\n".join(leaf.problems), style="red")
    if isinstance(leaf, StoreError):
        return EXIT_USAGE, Text(f"jobdeck: {leaf}", style="red")
    tb = "".join(traceback.format_exception(error)).rstrip()
    return EXIT_UNEXPECTED, Group(
        Text(f"jobdeck: the core crashed: {type(leaf).__name__}: {leaf}", style="bold red"),
        Text(tb, style="red"),
    )


class DeckApp(App[Any]):
    """The dashboard of one orchestrator.

    Args:
        orch: the orchestrator; the app runs it (do not start it yourself).
        title: shown in the status bar (the config's name).
        grace: shutdown grace in seconds; None uses the config's.
        clock: wall clock for the times the app works out itself (DLQ, history);
            tables of workers use the snapshot's own `taken_at`.
        tz: time zone for clock times shown; None is the machine's.
        trio_clock: a trio clock for the guest run (a frozen `MockClock` in tests).
        refresh_interval: seconds between refresh ticks.
        monotonic: the clock the stop banner counts the grace down with.
        on_stop: called when a stop begins (virtual time lets its clock run then).
    """

    CSS_PATH = "app.tcss"
    TITLE = "jobdeck"
    COMMANDS = App.COMMANDS | {DeckCommands}

    BINDINGS = [
        Binding("q", "quit", "Quit",
                tooltip="Stop gracefully, then quit; press again to interrupt runs in flight"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True,
                tooltip="Same as q"),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="Show every key"),
    ]

    def __init__(
        self,
        orch: Orchestrator,
        *,
        title: str = "",
        grace: float | None = None,
        clock: Callable[[], datetime] = _utc_now,
        tz: tzinfo | None = None,
        trio_clock: trio.abc.Clock | None = None,
        refresh_interval: float = REFRESH_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.orch = orch
        self.bridge = CoreBridge(orch, trio_clock=trio_clock)
        self.clock = clock
        self.tz = tz
        self.deck_title = title
        self.snapshot: OrchestratorSnapshot | None = None
        self._workers_by_name: dict[str, WorkerSnapshot] = {}
        self.dead_letters: list[DeadLetter] = []
        self.runs: list[RunRecord] = []
        #: The cost of the last refreshes, newest last.
        self.refresh_costs: deque[RefreshCost] = deque(maxlen=200)
        #: True when the core stopped but workers that ignore cancellation still run.
        self.left_stuck = False
        #: True after SIGHUP: nothing is drawn any more, and the process leaves at the end.
        self.terminal_lost = False
        self._no_repaint: Any = None
        self._gc_frozen = False
        self._grace = grace
        self._monotonic = monotonic
        self._on_stop = on_stop
        self._refresh_interval = refresh_interval
        self._deck: DeckScreen | None = None
        self._dirty = True
        self._last_refresh = -float("inf")
        self._dlq_dirty = True
        self._dlq_loading = False
        self._history_dirty = True
        self._history_loading = False
        self._last_history_load = -float("inf")
        self._stop_started: float | None = None
        self._forced = False
        self._exit_request: tuple[Any, int, RenderableType | None] | None = None
        # Events that came before the deck screen was mounted (the core starts first).
        self._held_events: list[Event] = []

    # ------------------------------------------------------------------ start

    def get_default_screen(self) -> Screen[Any]:
        self._deck = DeckScreen(self.deck_title)
        return self._deck

    @property
    def deck(self) -> DeckScreen:
        assert self._deck is not None
        return self._deck

    def on_mount(self) -> None:
        self.bridge.start(self)
        self.set_interval(self._refresh_interval, self._tick, name="refresh")

    def on_core_bridge_ready(self, message: CoreBridge.Ready) -> None:
        self.refresh_now()
        self.load_logs(None)
        self.call_after_refresh(self._settle_garbage_collector)

    def _settle_garbage_collector(self) -> None:
        """Once up, as headless `jobdeck` does: what is alive now (modules, widgets, the
        workers' state) leaves the cyclic collector's reach. A full collection then walks
        only what runs create, instead of pausing the thread the core shares with the
        screen for 50-100 ms in the middle of a burst of runs."""
        if not self._gc_frozen:
            self._gc_frozen = True
            gc.collect()
            gc.freeze()

    def on_unmount(self) -> None:
        if self._gc_frozen:
            # Back in reach: what the dashboard leaves behind can be collected.
            self._gc_frozen = False
            gc.unfreeze()

    def deck_mounted(self) -> None:
        """The deck screen is up: show what happened before it was."""
        held, self._held_events = self._held_events, []
        self.deck.activity.add(held)
        self.load_logs(None)
        self.refresh_now()

    # ------------------------------------------------------------------ refresh

    def _tick(self) -> None:
        if self.bridge.finished or self._deck is None:
            return
        if self._stop_started is not None:
            self._show_stop_banner()
        since = self._monotonic() - self._last_refresh
        # A big table that takes long to refresh is refreshed less often: the dashboard
        # spends at most about a fifth of the thread it shares with the core.
        if self.refresh_costs and since < REFRESH_SHARE * self.refresh_costs[-1].seconds:
            return
        if self._dirty or self.bridge.events_waiting or since >= IDLE_REFRESH:
            self.refresh_now()

    def refresh_now(self) -> None:
        """Read a snapshot and bring every visible view up to date, in one frame."""
        if self._deck is None or not self._deck.is_mounted:
            return
        started = time.perf_counter()
        self._absorb(self.bridge.take_events())
        snapshot = self.orch.snapshot()
        self.snapshot = snapshot
        self._workers_by_name = {worker.name: worker for worker in snapshot.workers}
        deck = self.deck
        with self.batch_update():
            written = deck.show_snapshot(snapshot)
            if isinstance(self.screen, DetailScreen):
                self._refresh_detail(self.screen, snapshot)
            tab = deck.active_tab
            if tab == "workers":
                deck.activity.flush()
            elif tab == "logs":
                deck.log_view.flush()
            elif tab == "dlq":
                deck.show_dead_letters(self.dead_letters, self.clock())
            elif tab == "history":
                deck.show_history(self.runs, self.clock())
        self._dirty = False
        self._last_refresh = self._monotonic()
        self.refresh_costs.append(
            RefreshCost(len(snapshot.workers), written, time.perf_counter() - started)
        )
        self._reload_views()

    def redraw(self) -> None:
        """Show the current snapshot again after a change of view (sort, filter).

        Reads nothing from the core: the snapshot is at most one tick old.
        """
        if self.snapshot is None or self._deck is None or not self._deck.is_mounted:
            self.refresh_now()
            return
        with self.batch_update():
            self.deck.show_snapshot(self.snapshot)

    def worker_snapshot(self, name: str) -> WorkerSnapshot | None:
        """Worker `name` as of the last snapshot (None if unknown)."""
        return self._workers_by_name.get(name)

    def tab_shown(self, tab: str) -> None:
        """The deck's active tab changed: load what it shows."""
        self.refresh_now()

    def _reload_views(self) -> None:
        if not self.bridge.running or self._deck is None:
            return
        tab = self.deck.active_tab
        if tab == "dlq" and self._dlq_dirty and not self._dlq_loading:
            self._dlq_dirty = False
            self._dlq_loading = True
            self.run_worker(self._load_dead_letters(), group="dlq")
        if (
            tab == "history"
            and self._history_dirty
            and not self._history_loading
            and self._monotonic() - self._last_history_load >= HISTORY_MIN_INTERVAL
        ):
            self._history_dirty = False
            self._history_loading = True
            self._last_history_load = self._monotonic()
            self.run_worker(self._load_history(), group="history")

    async def _load_dead_letters(self) -> None:
        try:
            self.dead_letters = await self.bridge.read(self.orch.dead_letters, DLQ_LIMIT)
        except CoreNotRunning:
            return
        finally:
            self._dlq_loading = False
        with self.batch_update():
            self.deck.show_dead_letters(self.dead_letters, self.clock())

    async def _load_history(self) -> None:
        try:
            self.runs = await self.bridge.read(self.orch.history, None, HISTORY_LIMIT)
        except CoreNotRunning:
            return
        finally:
            self._history_loading = False
        with self.batch_update():
            self.deck.show_history(self.runs, self.clock())

    def _refresh_detail(self, screen: DetailScreen, snapshot: OrchestratorSnapshot) -> None:
        if screen.runs_dirty and self.bridge.running:
            screen.runs_dirty = False
            self.run_worker(self._load_worker_runs(screen), group="detail")
        screen.show_snapshot(snapshot)

    async def _load_worker_runs(self, screen: DetailScreen) -> None:
        try:
            screen.runs = await self.bridge.read(self.orch.history, screen.worker, 20)
        except (CoreNotRunning, LookupError):
            return
        if screen.is_attached and self.snapshot is not None:
            screen.show_snapshot(self.snapshot)

    # ------------------------------------------------------------------ events

    def on_core_bridge_events_arrived(self, message: CoreBridge.EventsArrived) -> None:
        self._absorb(self.bridge.take_events())

    def _absorb(self, events: list[Event]) -> None:
        """Note what `events` change; the views show it at the next refresh.

        A burst brings thousands of events at once: work per event is one `type()`
        call, and only the kinds present are looked at further.
        """
        if not events:
            return
        kinds = set(map(type, events))

        def present(wanted: tuple[type, ...]) -> bool:
            return any(issubclass(kind, wanted) for kind in kinds)

        if present(_RUN_EVENTS):
            self._history_dirty = True
            if isinstance(self.screen, DetailScreen):
                name = self.screen.worker
                if any(isinstance(e, _RUN_EVENTS) and e.worker == name for e in events):
                    self.screen.runs_dirty = True
        if present(_DLQ_EVENTS):
            self._dlq_dirty = True
        logs = [e for e in events if isinstance(e, LogLine)] if present((LogLine,)) else []
        if self._deck is not None and self._deck.is_mounted:
            self.deck.activity.add(events)
            if logs:
                self.deck.log_view.add(logs)
        else:
            self._held_events.extend(events)
        self._dirty = True
        if present(_NOTABLE_EVENTS):
            self._notice([e for e in events if isinstance(e, _NOTABLE_EVENTS)])

    def _notice(self, events: list[Event]) -> None:
        """Toasts for the events that need a person; leave if workers are stuck at stop."""
        dead: list[DeadLettered] = []
        for event in events:
            if isinstance(event, DeadLettered):
                dead.append(event)
            elif isinstance(event, DeadLetterDeleted) and event.dlq_id is None:
                self.notify(f"Purged {event.count} dead letter{'s' * (event.count != 1)}")
            self._toast(event)
        self._toast_dead_letters(dead)
        for event in events:
            if isinstance(event, OrchestratorStopped) and event.stuck:
                self._leave_stuck(event.stuck)

    def pending_triggers(self, worker: str) -> Sequence[Trigger]:
        """Triggers waiting for `worker`'s next runs, oldest first."""
        try:
            return self.orch.pending_triggers(worker)
        except LookupError:
            return []

    def _toast(self, event: Event) -> None:
        if isinstance(event, WorkerDisabled) and event.reason.startswith("circuit"):
            self.notify(
                f"{event.worker}: {event.reason}. Select it and press e to enable it.",
                title="worker disabled", severity="warning", timeout=8,
            )
        elif isinstance(event, WorkerEnabled) and event.reason.startswith("circuit closed"):
            self.notify(f"{event.worker}: {event.reason}", title="circuit closed")
        elif isinstance(event, ControlFailed):
            self.notify(f"{event.action}: {event.error}", title="not done", severity="error",
                        timeout=8)

    def _toast_dead_letters(self, dead: list[DeadLettered]) -> None:
        if len(dead) == 1:
            event = dead[0]
            self.notify(f"{event.worker}: {one_line(event.error, 100)} (DLQ #{event.dlq_id})",
                        title="run dead-lettered", severity="error", timeout=5)
        elif dead:
            names = ", ".join(sorted({event.worker for event in dead}))
            self.notify(f"{len(dead)} runs: {names}", title="runs dead-lettered",
                        severity="error", timeout=5)

    # ------------------------------------------------------------------ actions

    @property
    def stopping(self) -> bool:
        return self._stop_started is not None

    @property
    def selected_worker_name(self) -> str | None:
        if isinstance(self.screen, DetailScreen):
            return self.screen.worker
        if self._deck is None or not self._deck.is_mounted:
            return None
        return self.deck.worker_table.selected_worker

    def _control(self, action: str, *args: Any) -> bool:
        if self.bridge.control(action, *args):
            self._dirty = True
            return True
        self.notify("jobdeck is not taking requests right now", severity="error")
        return False

    def trigger_worker(self, name: str, *payload: Any) -> None:
        """Ask for one run of `name` (with a payload, if one is given)."""
        if self._control("trigger", name, *payload):
            with_payload = " with a payload" if payload else ""
            self.notify(f"Triggered {name}{with_payload}", timeout=3)

    def ask_payload(self, name: str) -> None:
        """Open the payload dialog; on enter, trigger `name` with the JSON typed."""

        def send(result: tuple[Any] | None) -> None:
            if result is not None:
                self.trigger_worker(name, result[0])

        self.push_screen(PayloadScreen(name), send)

    def enable_worker(self, name: str) -> None:
        """Enable `name`; closes an open circuit and resets its failure count."""
        circuit_open = self._worker_circuit(name) == Circuit.OPEN
        if self._control("enable", name):
            note = ": circuit closed" if circuit_open else ""
            self.notify(f"Enabled {name}{note}", timeout=3)

    def disable_worker(self, name: str) -> None:
        """Disable `name`: no runs start (its triggers are kept) until it is enabled."""
        if self._control("disable", name):
            self.notify(f"Disabled {name}: no runs start until enabled (e)", timeout=3)

    def _worker_circuit(self, name: str) -> str | None:
        worker = self.worker_snapshot(name)
        return None if worker is None else worker.circuit

    def pause_all(self) -> None:
        if self.bridge.running and not self.stopping:
            self.orch.pause()
            self.notify("Paused: no new runs start; runs in flight go on (p resumes)", timeout=3)
            self.refresh_now()

    def resume_all(self) -> None:
        if self.bridge.running and not self.stopping:
            self.orch.resume()
            self.notify("Resumed", timeout=3)
            self.refresh_now()

    def replay(self, entry: DeadLetter) -> None:
        """Replay a dead letter: a new `replay` trigger with the same payload."""
        if self._control("replay", entry.id):
            self._dlq_dirty = True
            self.notify(f"Replaying DLQ #{entry.id}: a new {entry.worker} run is queued",
                        timeout=3)

    def ask_delete(self, entry: DeadLetter) -> None:
        def answer(yes: bool | None) -> None:
            if yes and self._control("delete_dead_letter", entry.id):
                self._dlq_dirty = True
                self.notify(f"Deleted DLQ #{entry.id} ({entry.worker})", timeout=3)

        self.push_screen(
            ConfirmScreen(
                f"Delete dead letter #{entry.id} of {entry.worker}?\n"
                f"{one_line(entry.error, 56)}\nIt cannot be replayed afterwards.",
                title="delete a dead letter",
            ),
            answer,
        )

    def ask_purge(self) -> None:
        count = self.snapshot.dlq_size if self.snapshot is not None else 0

        def answer(yes: bool | None) -> None:
            if yes and self._control("purge_dead_letters"):
                self._dlq_dirty = True

        self.push_screen(
            ConfirmScreen(
                f"Delete all {count} dead letters? None of them can be replayed afterwards.",
                title="purge the dead-letter queue",
            ),
            answer,
        )

    def open_detail(self, name: str) -> None:
        if isinstance(self.screen, DetailScreen):
            self.pop_screen()
        self.push_screen(DetailScreen(name, self.deck_title))

    def follow_logs(self, name: str | None) -> None:
        """Show the Logs tab on `name`'s lines (None: every worker), following."""
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.deck.tabs.active = "logs"
        self.load_logs(name)
        self.deck.log_view.set_follow(True)
        self.deck.update_bindings()

    def load_logs(self, scope: str | None) -> None:
        if self._deck is None or not self._deck.is_mounted:
            return
        log_view = self.deck.log_view
        log_view.load(scope, self.orch.logs(scope, log_view.max_lines or 1000))

    def action_help(self) -> None:
        sections = self.help_sections()
        self.push_screen(HelpScreen(sections[:3], sections[3:]))

    def help_sections(self) -> list[Section]:
        """The key reference, from the BINDINGS themselves."""
        deck = {b.action: b for b in DeckScreen.BINDINGS if isinstance(b, Binding)}
        detail = [b for b in DetailScreen.BINDINGS if isinstance(b, Binding)]

        def pick(*actions: str) -> list[Binding]:
            return [deck[a] for a in actions if a in deck]

        enter = Binding("enter", "select", "Detail",
                        tooltip="Workers: open the worker's detail · Dead letters: full entry")
        palette = Binding("ctrl+p", "command_palette", "Commands",
                          tooltip='Command palette: "Trigger <worker>", "Enable <worker>", …')
        app_keys = [b for b in self.BINDINGS if isinstance(b, Binding)]
        return [
            ("Workers", [*pick("trigger", "trigger_payload", "enable", "disable", "logs",
                               "filter", "clear_filter", "sort"), enter]),
            ("Dead letters", pick("replay", "delete", "purge", "restore")),
            ("Logs", pick("follow", "log_scope")),
            ("Everywhere", [*pick("pause", "resume", "show_tab('workers')", "show_tab('logs')",
                                  "show_tab('dlq')", "show_tab('history')", "next_tab",
                                  "previous_tab", "cursor_down", "cursor_up", "cursor_top",
                                  "cursor_bottom"),
                            palette, *app_keys]),
            ("Worker detail", detail),
        ]

    # ------------------------------------------------------------------ stopping

    def exit(
        self,
        result: Any = None,
        return_code: int = 0,
        message: RenderableType | None = None,
    ) -> None:
        """Quit once the core has stopped: the first call stops it gracefully, a second
        skips what is left of the grace. Until the guest run ends the app keeps running
        (and shows how the stop goes)."""
        if self.bridge.running and not self.left_stuck:
            if self._exit_request is None:
                self._exit_request = (result, return_code, message)
            self._begin_stop()
            return
        super().exit(result, return_code, message)

    def request_quit(self) -> None:
        """What SIGTERM and SIGINT do: the same as pressing q."""
        self.call_later(self.exit)

    def hang_up(self) -> None:
        """SIGHUP: the terminal is gone. Stop the core as `q` does, without drawing.

        Textual's output thread dies on the closed terminal and a full output queue
        would then block this thread, and with it the core: so repaints stay off from
        here on, and once the core has stopped the process leaves at once (there is no
        terminal left to restore).
        """
        if self.terminal_lost:
            return
        self.terminal_lost = True
        self._no_repaint = self.batch_update()
        self._no_repaint.__enter__()
        self.exit()

    def _begin_stop(self) -> None:
        if self._stop_started is None:
            self._stop_started = self._monotonic()
            if self._on_stop is not None:
                self._on_stop()
            self.orch.stop(self._grace)
            while len(self.screen_stack) > 1:
                self.pop_screen()
        else:
            self._forced = True
            self.orch.stop()
        self._show_stop_banner()
        self.refresh_now()

    def _show_stop_banner(self) -> None:
        if self._stop_started is None or self._deck is None or not self._deck.is_mounted:
            return
        grace = self._grace if self._grace is not None else self.orch.config.shutdown_grace_seconds
        left = grace - (self._monotonic() - self._stop_started)
        in_flight = self.snapshot.running if self.snapshot is not None else 0
        self.deck.stop_banner.show(in_flight=in_flight, seconds_left=left, forced=self._forced)

    def on_core_bridge_finished(self, message: CoreBridge.Finished) -> None:
        self._absorb(self.bridge.take_events())
        result = message.result
        if self.terminal_lost:
            code = describe_crash(result.error)[0] if isinstance(result, outcome.Error) else 0
            _leave_now(code)
        if isinstance(result, outcome.Error):
            code, crash = describe_crash(result.error)
            super().exit(None, code, crash)
            return
        result_value, code, message_text = self._exit_request or (None, EXIT_OK, None)
        super().exit(result_value, code, message_text)

    def _leave_stuck(self, stuck: int) -> None:
        """The core stopped but `stuck` workers ignore cancellation: leave without them."""
        self.left_stuck = True
        super().exit(
            None, EXIT_OK,
            Text(f"jobdeck: {stuck} worker{'s' * (stuck != 1)} did not return after being "
                 "cancelled; their runs are recorded interrupted and re-queued.",
                 style="yellow"),
        )


def _leave_now(code: int) -> None:
    """End the process without tearing the UI down (the terminal is gone)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def run_app(orch: Orchestrator, config: JobdeckConfig, options: RunOptions) -> int:
    """Run the dashboard on `orch` until it has stopped; returns the exit code."""
    title = "demo" if options.is_demo else options.config_path.name
    app = DeckApp(orch, title=title, grace=options.grace)
    code = asyncio.run(_serve(app))
    if app.bridge.running:
        # Workers that ignore cancellation keep the guest run alive for ever; everything
        # is recorded and the terminal is restored, so leave without them.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


async def _serve(app: DeckApp) -> int:
    loop = asyncio.get_running_loop()
    handled = [signal.SIGTERM, signal.SIGINT]
    for signum in handled:
        loop.add_signal_handler(signum, app.request_quit)
    if hasattr(signal, "SIGHUP"):
        handled.append(signal.SIGHUP)
        loop.add_signal_handler(signal.SIGHUP, app.hang_up)
    try:
        await app.run_async()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
    if app.bridge.running and not app.left_stuck:
        # The UI ended on its own (an error in a widget): the core must still end first.
        app.orch.stop()
        app.orch.stop()
        stuck_after = app.orch.config.stuck_after_seconds
        try:
            await asyncio.wait_for(app.bridge.wait_done(), timeout=stuck_after + 5)
        except TimeoutError:
            pass
    code = app.return_code
    return EXIT_UNEXPECTED if code is None else code
