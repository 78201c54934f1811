"""The jobdeck dashboard: a Textual app that runs the core in trio guest mode.

`run_app` is what `jobdeck` (without `--no-ui`) calls. The app starts the core's guest
run from `on_mount` (see `_bridge.py`), has its model (`_model.py`) read frozen snapshots
on a timer and the screens show them; key actions go to the core through the controller
(`_controller.py`). The app never ends before the guest run has: quitting is the core's
graceful stop, shown as "stopping… N runs in flight, 24 s left".
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
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import outcome
import trio
from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from jobdeck import (
    ConfigError,
    Event,
    LogLine,
    Orchestrator,
    OrchestratorSnapshot,
    OrchestratorStopped,
    StoreError,
)
from jobdeck._exit import ExitCode, leaf_exception
from jobdeck._gc import settle_garbage_collector

from ._bridge import CoreBridge
from ._commands import DeckCommands
from ._controller import DeckController
from ._model import NOTABLE_EVENTS, DeckModel
from .screens import DeadLetterScreen, DeckScreen, DetailScreen, HelpScreen, RunScreen, Section

if TYPE_CHECKING:
    from jobdeck import JobdeckConfig
    from jobdeck._cli import RunOptions

#: Seconds between refresh ticks: at most this many redraws a second when busy...
REFRESH_INTERVAL = 0.25
#: ...and at least one redraw this often when quiet (countdowns, "12s ago").
IDLE_REFRESH = 1.0
#: A refresh that cost t seconds is followed by at least REFRESH_SHARE * t without one.
REFRESH_SHARE = 5.0


@attrs.frozen
class RefreshCost:
    """What one refresh of the dashboard cost: for benchmarks and the curious."""

    workers: int
    cells_written: int
    seconds: float


def _utc_now() -> datetime:
    return datetime.now(UTC)


def describe_crash(error: BaseException) -> tuple[int, RenderableType]:
    """The exit code and the message for a core that ended with `error`."""
    leaf = leaf_exception(error)
    if isinstance(leaf, ConfigError):
        return ExitCode.USAGE, Text("\n".join(leaf.problems), style="red")
    if isinstance(leaf, StoreError):
        return ExitCode.USAGE, Text(f"jobdeck: {leaf}", style="red")
    tb = "".join(traceback.format_exception(error)).rstrip()
    return ExitCode.UNEXPECTED, Group(
        Text(f"jobdeck: the core crashed: {type(leaf).__name__}: {leaf}", style="bold red"),
        Text(tb, style="red"),
    )


class DeckApp(App[Any]):
    """The dashboard of one orchestrator.

    The app owns the lifecycle: the screens, the core's guest run, the refresh tick,
    and stopping. What the dashboard knows is its `model` (`_model.py`); what the keys
    do is its `controller` (`_controller.py`).

    Args:
        orch: the orchestrator; the app runs it (do not start it yourself).
        title: shown in the status bar (the config's name).
        grace: shutdown grace in seconds; None uses the config's.
        clock: wall clock for the times the app works out itself (DLQ, history);
            tables of workers use the snapshot's own `taken_at`.
        tz: time zone for clock times shown; None is the machine's.
        trio_clock: a trio clock for the guest run (a frozen `MockClock` in tests).
        refresh_interval: seconds between refresh ticks.
        monotonic: the clock refreshes and history reloads are spaced with.
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
        Binding("ctrl+r", "reload_config", "Reload", show=False,
                tooltip="Read the config file again: added workers start, removed ones "
                        "finish their run and go, changed ones take effect at their next run"),
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
        bridge: CoreBridge | None = None,
    ) -> None:
        super().__init__()
        self.orch = orch
        #: the core's guest run; `jobdeck attach` passes a bridge to a remote one instead.
        self.bridge = bridge if bridge is not None else CoreBridge(orch, trio_clock=trio_clock)
        self.deck_title = title
        self.model = DeckModel(orch, self.bridge, clock=clock, tz=tz, monotonic=monotonic)
        self.controller = DeckController(self, self.model, title=title, refresh=self.refresh_now)
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
        self._last_refresh = -float("inf")
        self._exit_request: tuple[Any, int, RenderableType | None] | None = None

    @property
    def snapshot(self) -> OrchestratorSnapshot | None:
        """The latest snapshot shown (the model's)."""
        return self.model.snapshot

    # ------------------------------------------------------------------ start

    def get_default_screen(self) -> Screen[Any]:
        self._deck = DeckScreen(self.model, self.controller, self.deck_title)
        self.controller.deck = self._deck
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
        self.deck.show_logs(None)
        self.call_after_refresh(self._settle_garbage_collector)

    def _settle_garbage_collector(self) -> None:
        """Once up, as headless `jobdeck` does (widgets included): a full collection no
        longer pauses the thread the core shares with the screen for 50-100 ms."""
        if not self._gc_frozen:
            self._gc_frozen = True
            settle_garbage_collector()

    def on_unmount(self) -> None:
        if self._gc_frozen:
            # Back in reach: what the dashboard leaves behind can be collected.
            self._gc_frozen = False
            gc.unfreeze()

    # ------------------------------------------------------------------ refresh

    def _tick(self) -> None:
        if self.bridge.finished or self._deck is None:
            return
        since = self._monotonic() - self._last_refresh
        # A big table that takes long to refresh is refreshed less often: the dashboard
        # spends at most about a fifth of the thread it shares with the core.
        if self.refresh_costs and since < REFRESH_SHARE * self.refresh_costs[-1].seconds:
            return
        # While stopping, every tick: the stop banner counts the core's grace down.
        if (
            self.model.dirty
            or self.model.stopping
            or self.bridge.events_waiting
            or since >= IDLE_REFRESH
        ):
            self.refresh_now()

    def refresh_now(self) -> None:
        """Read a snapshot and bring every visible view up to date, in one frame."""
        deck = self._deck
        if deck is None or not deck.is_mounted:
            return
        started = time.perf_counter()
        self._absorb(self.bridge.take_events())
        snapshot = self.model.read_snapshot()
        with self.batch_update():
            written = deck.show_snapshot(snapshot)
            if isinstance(self.screen, DetailScreen):
                self._refresh_detail(self.screen, snapshot)
            elif isinstance(self.screen, DeadLetterScreen):
                self.screen.show_snapshot(snapshot)
            deck.show_active_tab()
        self._last_refresh = self._monotonic()
        self.refresh_costs.append(
            RefreshCost(len(snapshot.workers), written, time.perf_counter() - started)
        )
        self._reload_views()

    def _reload_views(self) -> None:
        if not self.bridge.running or self._deck is None:
            return
        tab = self.deck.active_tab
        if tab == "dlq" and self.model.start_dead_letters_read():
            self.run_worker(self._load_dead_letters(), group="dlq")
        if tab == "history" and self.model.start_history_read():
            self.run_worker(self._load_history(), group="history")
        if tab == "nodes" and self.deck.cluster_mode and self.model.start_nodes_read():
            self.run_worker(self._load_nodes(), group="nodes")

    async def _load_nodes(self) -> None:
        if await self.model.read_nodes():
            with self.batch_update():
                self.deck.show_nodes()

    async def _load_dead_letters(self) -> None:
        if await self.model.read_dead_letters():
            with self.batch_update():
                self.deck.show_dead_letters()

    async def _load_history(self) -> None:
        if await self.model.read_history():
            with self.batch_update():
                self.deck.show_history()

    def _refresh_detail(self, screen: DetailScreen, snapshot: OrchestratorSnapshot) -> None:
        if screen.runs_dirty and self.bridge.running:
            screen.runs_dirty = False
            self.run_worker(self._load_worker_runs(screen), group="detail")
        screen.show_snapshot(snapshot)

    async def _load_worker_runs(self, screen: DetailScreen) -> None:
        runs = await self.model.read_worker_runs(screen.worker)
        if runs is None:
            return
        screen.runs = runs
        if screen.is_attached and self.model.snapshot is not None:
            screen.show_snapshot(self.model.snapshot)

    # ------------------------------------------------------------------ events

    def on_core_bridge_events_arrived(self, message: CoreBridge.EventsArrived) -> None:
        self._absorb(self.bridge.take_events())

    def _absorb(self, events: list[Event]) -> None:
        """Note what `events` change; the views show it at the next refresh."""
        if not events:
            return
        batch = self.model.note(events)
        if isinstance(self.screen, DetailScreen) and batch.ran(self.screen.worker):
            self.screen.runs_dirty = True
        if self._deck is not None:
            self._deck.add_events(events, batch.of((LogLine,)))  # type: ignore[arg-type]
        notable = batch.of(NOTABLE_EVENTS)
        if notable:
            self.controller.notice(notable)
            for event in notable:
                if isinstance(event, OrchestratorStopped) and event.stuck:
                    self._leave_stuck(event.stuck)

    # ------------------------------------------------------------------ palette

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The palette's own commands, in the dashboard's words."""
        yield SystemCommand("Theme", "Change the colours", self.action_change_theme)
        yield SystemCommand(
            "Quit",
            "Stop gracefully: no new runs, runs in flight get the grace (q again interrupts "
            "them), then quit",
            self.action_quit,
        )
        yield SystemCommand("Keys", "Every key of the dashboard (?)", self.action_help)
        folder = screenshot_folder()
        yield SystemCommand(
            "Screenshot",
            f"Save an SVG picture of the screen in {folder}",
            # Once the palette has closed, so the picture shows the dashboard.
            lambda: self.set_timer(0.1, self.save_screen_picture),
        )

    def save_screen_picture(self) -> Path | None:
        """Save an SVG of the screen in `screenshot_folder()`; the flash line says where."""
        folder = screenshot_folder()
        name = f"jobdeck_{datetime.now():%Y-%m-%dT%H_%M_%S}.svg"
        try:
            path = Path(self.save_screenshot(name, str(folder)))
        except OSError as exc:
            self.controller.flash(f"Screenshot not saved in {folder}: {exc.strerror or exc}",
                                  "error")
            return None
        self.controller.flash(f"Screenshot saved: {path}")
        return path

    # ------------------------------------------------------------------ reload

    def action_reload_config(self) -> None:
        self.controller.reload_config()

    # ------------------------------------------------------------------ help

    def action_help(self) -> None:
        sections = self.help_sections()
        self.push_screen(HelpScreen(sections[:3], sections[3:]))

    def help_sections(self) -> list[Section]:
        """The key reference, from the BINDINGS themselves."""
        deck = {b.action: b for b in DeckScreen.BINDINGS if isinstance(b, Binding)}
        detail = [b for b in DetailScreen.BINDINGS if isinstance(b, Binding)]
        run = [b for b in RunScreen.BINDINGS if isinstance(b, Binding)]
        entry = [b for b in DeadLetterScreen.BINDINGS
                 if isinstance(b, Binding) and b.action == "app.pop_screen"]

        def pick(*actions: str) -> list[Binding]:
            return [deck[a] for a in actions if a in deck]

        enter = Binding("enter", "select", "Detail",
                        tooltip="Workers: open the worker's detail · Dead letters: full entry"
                        " · History: open the run")
        palette = Binding("ctrl+p", "command_palette", "Commands",
                          tooltip='Command palette: "Trigger <worker>", "Enable <worker>", …')
        app_keys = [b for b in self.BINDINGS if isinstance(b, Binding)]
        cluster = self._deck is not None and self._deck.cluster_mode
        nodes = [("Nodes", pick("drain", "undrain"))] if cluster else []
        return [
            ("Workers", [*pick("trigger", "trigger_payload", "enable", "reset_circuit", "disable",
                               "logs", "sort", "reverse_sort"), enter]),
            ("Dead letters", [*pick("replay", "delete", "purge"), *entry]),
            ("Logs", pick("search", "clear_search", "next_match", "previous_match", "log_level",
                          "follow", "log_scope")),
            ("Everywhere", [*pick("filter", "clear_filter", "pause", "resume",
                                  "show_tab('workers')", "show_tab('logs')", "show_tab('dlq')",
                                  "show_tab('history')",
                                  *(["show_tab('nodes')"] if cluster else []),
                                  "next_tab", "previous_tab",
                                  "cursor_down", "cursor_up", "cursor_top", "cursor_bottom"),
                            palette, *app_keys]),
            ("Worker detail", detail),
            ("Run", run),
            *nodes,
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
        """Stop the core (the stop banner shows how it goes); the second time, skip the
        rest of the grace."""
        if not self.model.stopping:
            self.model.stopping = True
            if self._on_stop is not None:
                self._on_stop()
            self.orch.stop(self._grace)
            while len(self.screen_stack) > 1:
                self.pop_screen()
        else:
            self.model.forced = True
            self.orch.stop()
        self.refresh_now()

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
        result_value, code, message_text = self._exit_request or (None, ExitCode.OK, None)
        super().exit(result_value, code, message_text)

    def _leave_stuck(self, stuck: int) -> None:
        """The core stopped but `stuck` workers ignore cancellation: leave without them."""
        self.left_stuck = True
        super().exit(
            None, ExitCode.OK,
            Text(f"jobdeck: {stuck} worker{'s' * (stuck != 1)} did not return after being "
                 "cancelled; their runs are recorded interrupted and re-queued.",
                 style="yellow"),
        )


def screenshot_folder() -> Path:
    """Where the palette's Screenshot saves: `$XDG_PICTURES_DIR` if it names a folder,
    else the working directory."""
    pictures = os.environ.get("XDG_PICTURES_DIR", "")
    if pictures and Path(pictures).expanduser().is_dir():
        return Path(pictures).expanduser()
    return Path.cwd()


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
    return ExitCode.UNEXPECTED if code is None else code
