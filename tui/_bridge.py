"""The core's trio guest run on Textual's asyncio loop, and the two ways across.

One thread runs both: asyncio (Textual) is the host loop, trio runs as a guest
(`trio.lowlevel.start_guest_run`). The bridge owns that guest run and everything that
crosses between the two worlds:

* events, core → Textual: a trio task drains a bounded subscription into an inbox that
  the app empties with `take_events()` on its refresh tick. Only a large inbox, or the
  end of the run, is announced with a `CoreBridge.EventsArrived` message (`post_message`,
  never `call_from_thread`: same thread): a burst of thousands of events costs the app
  a few list appends per event, not a message per trio tick;
* reads, Textual → core: coroutines such as `orch.dead_letters()` cannot be awaited from
  Textual, so `read()` queues them for a trio "reader" task and hands back an asyncio
  future it resolves;
* control, Textual → core: `control()` is `orch.request(...)`, a `send_nowait` (sync);
* the end: `done` is an asyncio future resolved by the guest run's `done_callback`.
  The host loop must not end before it resolves (DESIGN.md, "Trio and Textual together").
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import outcome
import trio
import trio.testing
from textual.message import Message
from textual.message_pump import MessagePump

from jobdeck import Event, Orchestrator, OrchestratorStopped, ReloadResult, Subscription

T = TypeVar("T")

#: Events the subscription buffers while the forwarder waits for the app; past this the
#: core counts them as dropped.
EVENT_BUFFER = 10_000
#: Events the inbox holds for the app; when full the forwarder waits for the app to
#: take them (and the subscription buffers).
INBOX_LIMIT = 20_000
#: Events in the inbox that make the forwarder ask the app to take them now, rather than
#: at its next refresh tick.
ANNOUNCE_AT = 2_000
#: Reads that may wait for the reader task at once.
READ_QUEUE = 256


class CoreNotRunning(RuntimeError):
    """A read or control action was asked of a core that is not (or no longer) running."""


class BridgeState(enum.Enum):
    CREATED = "created"
    STARTING = "starting"  # guest run started, `orch.run` not ready yet
    RUNNING = "running"
    FINISHED = "finished"  # the guest run's done_callback has fired


_Read = tuple["asyncio.Future[Any]", Callable[..., Awaitable[Any]], tuple[Any, ...]]


class CoreBridge:
    """Runs an orchestrator in trio guest mode and carries events, reads and control.

    Args:
        orch: the orchestrator to run; `orch.run` is started by `start()`.
        trio_clock: a trio `Clock` for the guest run (tests and screenshots pass a
            `MockClock` that only moves when told); None for the real clock.
    """

    class Ready(Message):
        """The core is running: store open, state restored, dispatcher live."""

    class EventsArrived(Message):
        """Core events are waiting: `CoreBridge.take_events()` hands them over."""

    class Finished(Message):
        """The guest run has ended; `result` is what `trio.run` would have returned or raised."""

        def __init__(self, result: outcome.Outcome[None]) -> None:
            super().__init__()
            self.result = result

    #: Bridges whose guest run has started and not finished: tests assert this is empty.
    live: ClassVar[set[CoreBridge]] = set()

    def __init__(self, orch: Orchestrator, *, trio_clock: trio.abc.Clock | None = None) -> None:
        self.orch = orch
        self.state = BridgeState.CREATED
        #: Workers still running when the core stopped (they ignored cancellation).
        self.stuck = 0
        self._clock = trio_clock
        self._target: MessagePump | None = None
        self._reads_send, self._reads = trio.open_memory_channel[_Read](READ_QUEUE)
        self._ready: asyncio.Future[None] | None = None
        self._done: asyncio.Future[outcome.Outcome[None]] | None = None
        # Events forwarded and not yet taken by the app, oldest first.
        self._inbox: list[Event] = []
        # An EventsArrived message is on its way and the inbox has not been taken since.
        self._announced = False
        # Set when the app takes the inbox (or the core stops): a forwarder waiting for
        # room goes on.
        self._taken = trio.Event()
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    def start(self, target: MessagePump) -> None:
        """Start the guest run on the running asyncio loop; messages go to `target`.

        Call from the host loop's thread (an app's `on_mount`). Returns at once; the app
        receives `CoreBridge.Ready` when the core is live.
        """
        loop = self._begin(target)
        trio.lowlevel.start_guest_run(
            self._main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=self._on_done,
            # asyncio owns the signal wakeup fd (loop.add_signal_handler uses it):
            # trio must not take it, or SIGTERM would never reach the app.
            host_uses_signal_set_wakeup_fd=True,
            clock=self._clock,
        )

    def _begin(self, target: MessagePump) -> asyncio.AbstractEventLoop:
        """Start once: messages go to `target`; the ready and done futures are made."""
        if self.state is not BridgeState.CREATED:
            raise RuntimeError(f"a {type(self).__name__} starts once")
        loop = asyncio.get_running_loop()
        self._target = target
        self._ready = loop.create_future()
        self._done = loop.create_future()
        self.state = BridgeState.STARTING
        CoreBridge.live.add(self)
        return loop

    @property
    def running(self) -> bool:
        """The guest run has started and not finished (the core may be stopping)."""
        return self.state in (BridgeState.STARTING, BridgeState.RUNNING)

    @property
    def finished(self) -> bool:
        return self.state is BridgeState.FINISHED

    async def wait_ready(self) -> None:
        """Return once the core is running.

        Raises:
            CoreNotRunning: the guest run ended before the core was ready.
        """
        if self._ready is None:
            raise CoreNotRunning("the core has not been started")
        try:
            await asyncio.shield(self._ready)
        except asyncio.CancelledError:
            if self._ready.cancelled():
                raise CoreNotRunning("the core ended before it was ready") from None
            raise

    async def wait_done(self) -> outcome.Outcome[None]:
        """Return the guest run's outcome once it has ended (never raises its error)."""
        if self._done is None:
            raise CoreNotRunning("the core has not been started")
        return await asyncio.shield(self._done)

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            with self.orch.subscribe(EVENT_BUFFER) as events:
                forwarded = trio.Event()
                nursery.start_soon(self._forward_events, events, forwarded)
                nursery.start_soon(self._serve_reads)
                await nursery.start(self.orch.run)
                self.state = BridgeState.RUNNING
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
                self._post(CoreBridge.Ready())
                await self.orch.wait_stopped()
                # The bus closes every subscription at stop: the last events get through,
                # whether or not the app is still there to take them.
                self._stopping = True
                self._taken.set()
                await forwarded.wait()
                nursery.cancel_scope.cancel()

    def _on_done(self, result: outcome.Outcome[None]) -> None:
        self.state = BridgeState.FINISHED
        CoreBridge.live.discard(self)
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        self._fail_queued_reads()
        if self._done is not None and not self._done.done():
            self._done.set_result(result)
        self._post(CoreBridge.Finished(result))

    def _post(self, message: Message) -> None:
        if self._target is not None:
            self._target.post_message(message)

    # ------------------------------------------------------------------ events

    async def _forward_events(self, events: Subscription, forwarded: trio.Event) -> None:
        """Move events into the inbox as they come; wait for the app only when it is full.

        The app takes the inbox on its refresh tick; a large inbox is announced so that
        it is taken sooner. The last events (the core has stopped) are announced at once.
        """
        receive = events.receive
        try:
            while True:
                if len(self._inbox) >= INBOX_LIMIT and not self._stopping:
                    self._taken = trio.Event()
                    self._announce()
                    await self._taken.wait()
                    continue
                try:
                    event = await receive.receive()
                except trio.EndOfChannel:
                    break
                ended = self._collect(event, receive)
                if len(self._inbox) >= ANNOUNCE_AT:
                    self._announce()
                if ended:
                    break
        finally:
            self._announce()
            forwarded.set()

    def _collect(self, first: Event, receive: trio.MemoryReceiveChannel[Event]) -> bool:
        """Move `first` and whatever else is queued into the inbox; True at the end."""
        inbox = self._inbox
        start = len(inbox)
        inbox.append(first)
        ended = False
        while len(inbox) < INBOX_LIMIT:
            try:
                inbox.append(receive.receive_nowait())
            except trio.WouldBlock:
                break
            except trio.EndOfChannel:
                ended = True
                break
        for index in range(len(inbox) - 1, start - 1, -1):
            if isinstance(inbox[index], OrchestratorStopped):
                self.stuck = inbox[index].stuck  # type: ignore[attr-defined]
                break
        return ended

    def _announce(self) -> None:
        if self._inbox and not self._announced:
            self._announced = True
            self._post(CoreBridge.EventsArrived())

    @property
    def events_waiting(self) -> bool:
        """Events have come since the last `take_events()`."""
        return bool(self._inbox)

    def take_events(self) -> list[Event]:
        """The events forwarded since the last call, oldest first (often none).

        Call it on `EventsArrived`, and before drawing anything that should be up to date.
        """
        events, self._inbox = self._inbox, []
        self._announced = False
        if not self._taken.is_set():
            self._taken.set()
        return events

    # ------------------------------------------------------------------ reads

    def read(self, fn: Callable[..., Awaitable[T]], *args: Any) -> asyncio.Future[T]:
        """Run `await fn(*args)` in the trio guest; the returned future gets its result.

        For the core's async reads (`orch.dead_letters`, `orch.history`, ...), which need
        trio. The future fails with `CoreNotRunning` if the core ends first, or with
        whatever `fn` raised.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if not self.running:
            future.set_exception(CoreNotRunning("the core is not running"))
            return future
        try:
            self._reads_send.send_nowait((future, fn, args))
        except trio.WouldBlock:
            future.set_exception(CoreNotRunning("too many reads are waiting"))
        return future

    async def _serve_reads(self) -> None:
        async for future, fn, args in self._reads:
            if future.done():  # the asker gave up (its task was cancelled)
                continue
            try:
                result = await fn(*args)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            except BaseException:
                # Cancelled: the core is ending. The asker must not wait for ever.
                if not future.done():
                    future.set_exception(CoreNotRunning("the core has stopped"))
                raise
            else:
                if not future.done():
                    future.set_result(result)

    def _fail_queued_reads(self) -> None:
        while True:
            try:
                future, _, _ = self._reads.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
            if not future.done():
                future.set_exception(CoreNotRunning("the core has stopped"))

    async def settle(self) -> None:
        """Return once every trio task is blocked (and no worker thread is busy).

        With a frozen `MockClock` this means: everything due at the current virtual time
        has happened. Tests and the screenshot script use it after moving the clock.
        """
        await self.read(_settle)

    def reload_config(self) -> asyncio.Future[ReloadResult]:
        """Read the config file again and apply it (`orch.reload_file`), in the guest.

        The future fails with `ConfigError` (nothing changed) or `CoreNotRunning`.
        """
        return self.read(_reload_file, self.orch)

    # ------------------------------------------------------------------ control

    def control(self, action: str, *args: Any) -> bool:
        """Ask the core for a control action (`orch.request`); False if it cannot take it.

        The action itself runs soon in a trio task; a failure comes back as a
        `ControlFailed` event.
        """
        if not self.running:
            return False
        try:
            self.orch.request(action, *args)
        except trio.WouldBlock:
            return False
        return True


async def _reload_file(orch: Orchestrator) -> ReloadResult:
    return orch.reload_file()


async def _settle() -> None:
    await trio.testing.wait_all_threads_completed()
    await trio.testing.wait_all_tasks_blocked()
