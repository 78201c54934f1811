"""Control: what operators and code can ask of a running orchestrator.

Triggers, enable and disable, pause and resume, and the DLQ's replay, delete and purge,
as awaitable operations; and the same as typed commands on a bounded queue, for callers
that are not trio tasks (the dashboard, in trio's guest mode, runs on the same thread but
cannot await): `submit()` is a `send_nowait`, a task of the engine carries each command
out, and a failure is published as a `control_failed` event.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import trio

from . import _events as ev
from ._circuit import CircuitEvent, circuit_transition
from ._dispatcher import Dispatcher
from ._eligibility import Lifecycle
from ._engine import Engine
from ._errors import JobdeckError, NotRunning, UnknownWorker
from ._persist import change_worker
from ._records import Source, Trigger
from ._runtime import WorkerRuntime
from ._store import Coordinator, WorkerChange
from ._text import safe_json

#: Commands waiting to be carried out; `submit` raises `trio.WouldBlock` beyond this.
QUEUE_SIZE = 1000


@attrs.frozen
class TriggerWorker:
    worker: str
    payload: Any = None


@attrs.frozen
class EnableWorker:
    worker: str


@attrs.frozen
class DisableWorker:
    worker: str


@attrs.frozen
class Pause:
    pass


@attrs.frozen
class Resume:
    pass


@attrs.frozen
class ReplayDeadLetter:
    entry_id: int


@attrs.frozen
class DeleteDeadLetter:
    entry_id: int


@attrs.frozen
class PurgeDeadLetters:
    pass


@attrs.frozen
class Stop:
    grace: float | None = None


Command = (
    TriggerWorker | EnableWorker | DisableWorker | Pause | Resume | ReplayDeadLetter
    | DeleteDeadLetter | PurgeDeadLetters | Stop
)

#: The action names `Orchestrator.request` accepts, and the command each one makes.
COMMANDS: dict[str, type[Command]] = {
    "trigger": TriggerWorker,
    "enable": EnableWorker,
    "disable": DisableWorker,
    "pause": Pause,
    "resume": Resume,
    "replay": ReplayDeadLetter,
    "delete_dead_letter": DeleteDeadLetter,
    "purge_dead_letters": PurgeDeadLetters,
    "stop": Stop,
}
_ACTION_OF = {command: action for action, command in COMMANDS.items()}


class Control:
    """The control operations, awaitable or queued as commands."""

    def __init__(self, engine: Engine, coordinator: Coordinator, dispatcher: Dispatcher) -> None:
        self._engine = engine
        self._coordinator = coordinator
        self._dispatcher = dispatcher
        self._send, self._receive = trio.open_memory_channel[Command](QUEUE_SIZE)

    # ------------------------------------------------------------------ commands

    def submit(self, command: Command) -> None:
        """Queue a command to be carried out soon by a task of the engine.

        Raises:
            trio.WouldBlock: too many commands are already waiting.
        """
        self._send.send_nowait(command)

    async def serve(self) -> None:
        """Carry out queued commands one by one, for as long as the engine runs."""
        async for command in self._receive:
            try:
                await self.carry_out(command)
            except (JobdeckError, ValueError, LookupError) as exc:
                self._engine.publish(
                    ev.ControlFailed(
                        ts=self._engine.now(), action=_ACTION_OF[type(command)], error=str(exc)
                    )
                )

    async def carry_out(self, command: Command) -> None:
        match command:
            case TriggerWorker(worker, payload):
                await self.trigger(worker, payload)
            case EnableWorker(worker):
                await self.enable(worker)
            case DisableWorker(worker):
                await self.disable(worker)
            case Pause():
                self.pause()
            case Resume():
                self.resume()
            case ReplayDeadLetter(entry_id):
                await self.replay(entry_id)
            case DeleteDeadLetter(entry_id):
                await self.delete_dead_letter(entry_id)
            case PurgeDeadLetters():
                await self.purge_dead_letters()
            case Stop(grace):
                request_stop(self._engine, grace)

    # ------------------------------------------------------------------ operations

    def worker(self, name: str) -> WorkerRuntime:
        try:
            return self._engine.workers[name]
        except KeyError:
            raise UnknownWorker(name) from None

    def require_started(self) -> None:
        lifecycle = self._engine.lifecycle
        if lifecycle is Lifecycle.CREATED or lifecycle is Lifecycle.STOPPED:
            raise NotRunning(f"the orchestrator is {lifecycle.value}")

    async def trigger(self, name: str, payload: Any = None) -> str:
        return await self.accept(self.worker(name), Source.MANUAL, payload)

    async def accept(self, w: WorkerRuntime, source: Source, payload: Any) -> str:
        """Store a new trigger for `w`, then queue it; returns its id."""
        self.require_started()
        try:
            if payload is not None:
                json.dumps(payload)
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValueError(f"payload for {w.name!r} is not JSON: {exc}") from None
        if payload is not None:
            payload = safe_json(payload)
        engine = self._engine
        trigger = Trigger(worker=w.name, source=source, payload=payload, accepted_at=engine.now())
        await trio.lowlevel.checkpoint()
        await engine.store.add_trigger(trigger)
        self._dispatcher.queue(w, trigger)
        return trigger.id

    async def enable(self, name: str) -> None:
        w = self.worker(name)
        self.require_started()
        engine = self._engine
        w.enabled = True
        w.breaker = circuit_transition(
            w.breaker, CircuitEvent.ENABLED, now=trio.current_time(),
            max_consecutive_failures=w.spec.max_consecutive_failures,
        )
        engine.health_watch.add(name)
        await change_worker(engine, self._coordinator, w, WorkerChange.ENABLE)
        engine.publish(ev.WorkerEnabled(ts=engine.now(), worker=name, reason="enabled by operator"))
        self._dispatcher.offer(w)

    async def disable(self, name: str) -> None:
        w = self.worker(name)
        self.require_started()
        engine = self._engine
        w.enabled = False
        engine.health_watch.add(name)
        await change_worker(engine, self._coordinator, w, WorkerChange.DISABLE)
        engine.publish(
            ev.WorkerDisabled(ts=engine.now(), worker=name, reason="disabled by operator")
        )
        engine.notify()

    def pause(self) -> None:
        if apply_pause(self._engine, self._dispatcher.ready, True):
            self._share_pause()

    def resume(self) -> None:
        if apply_pause(self._engine, self._dispatcher.ready, False):
            self._share_pause()

    def _share_pause(self) -> None:
        # In a cluster the pause is the cluster's: the coordinator writes it for all.
        share = getattr(self._coordinator, "share_pause", None)
        if share is not None:
            share()

    async def replay(self, entry_id: int) -> str:
        self.require_started()
        engine = self._engine
        entry = await engine.store.dlq_get(entry_id)
        w = self.worker(entry.worker)
        trigger = Trigger(
            worker=w.name, source=Source.REPLAY, payload=entry.payload, accepted_at=engine.now()
        )
        await engine.store.dlq_replay(entry_id, trigger)
        engine.dlq_size -= 1
        engine.publish(
            ev.DeadLetterReplayed(
                ts=trigger.accepted_at, worker=w.name, dlq_id=entry_id, trigger_id=trigger.id
            )
        )
        self._dispatcher.queue(w, trigger)
        return trigger.id

    async def delete_dead_letter(self, entry_id: int) -> None:
        engine = self._engine
        await engine.store.dlq_delete(entry_id)
        engine.dlq_size -= 1
        engine.publish(ev.DeadLetterDeleted(ts=engine.now(), dlq_id=entry_id))

    async def purge_dead_letters(self) -> int:
        engine = self._engine
        count = await engine.store.dlq_purge()
        engine.dlq_size = 0
        engine.publish(ev.DeadLetterDeleted(ts=engine.now(), count=count))
        return count


def request_stop(engine: Engine, grace: float | None = None) -> None:
    """Ask for a graceful stop; a second request skips what is left of the grace."""
    lifecycle = engine.lifecycle
    if lifecycle is Lifecycle.STOPPED:
        return
    if lifecycle is Lifecycle.STOPPING:
        engine.skip_grace = True
        engine.notify()
        return
    if grace is not None:
        engine.grace = grace
    if lifecycle is Lifecycle.CREATED:
        engine.stop_requested = True
        return
    engine.lifecycle = Lifecycle.STOPPING
    engine.notify()


def apply_pause(engine: Engine, ready: set[str], paused: bool) -> bool:
    """Pause or resume this engine (asked here, or read from the cluster); whether that
    changed anything."""
    if engine.paused == paused:
        return False
    engine.paused = paused
    engine.health_watch.update(engine.workers)
    if paused:
        engine.publish(ev.OrchestratorPaused(ts=engine.now()))
    else:
        engine.resumed_t = engine.trio_now()
        engine.publish(ev.OrchestratorResumed(ts=engine.now()))
        ready.update(engine.workers)
    engine.notify()
    return True
