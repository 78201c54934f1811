"""Typed, frozen events and the bus that hands them to bounded subscribers.

A slow subscriber loses events (counted) and never slows the core: publishing is a
`send_nowait` on a bounded memory channel per subscriber.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar

import attrs
import trio


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@attrs.frozen(kw_only=True)
class Event:
    """Base of every event. `name` is the `event` field of the JSON log line."""

    name: ClassVar[str] = "event"
    ts: datetime

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict: `ts`, `event`, then every field that is set."""
        fields = attrs.asdict(self, recurse=False)
        out: dict[str, Any] = {"ts": _plain(fields.pop("ts")), "event": self.name}
        for key, value in fields.items():
            if value is not None:
                out[key] = _plain(value)
        return out


@attrs.frozen(kw_only=True)
class OrchestratorStarted(Event):
    name: ClassVar[str] = "orchestrator_started"
    workers: int
    max_concurrent_workers: int
    http: str | None = None


@attrs.frozen(kw_only=True)
class OrchestratorStopping(Event):
    name: ClassVar[str] = "orchestrator_stopping"
    in_flight: int
    grace_s: float


@attrs.frozen(kw_only=True)
class OrchestratorStopped(Event):
    name: ClassVar[str] = "orchestrator_stopped"
    interrupted: int
    stuck: int
    #: the last store failure, if any write could not be stored (said at exit).
    store_error: str | None = None


@attrs.frozen(kw_only=True)
class OrchestratorPaused(Event):
    name: ClassVar[str] = "orchestrator_paused"


@attrs.frozen(kw_only=True)
class OrchestratorResumed(Event):
    name: ClassVar[str] = "orchestrator_resumed"


@attrs.frozen(kw_only=True)
class StoreRowsSkipped(Event):
    """The store holds damaged rows: skipped (and left untouched in the store) at open."""

    name: ClassVar[str] = "store_rows_skipped"
    #: one message per row, naming its table and id and what is wrong with it.
    rows: tuple[str, ...]


@attrs.frozen(kw_only=True)
class ControlFailed(Event):
    """A control action requested without awaiting it (`Orchestrator.request`) failed."""

    name: ClassVar[str] = "control_failed"
    action: str
    error: str


@attrs.frozen(kw_only=True)
class ConfigReloaded(Event):
    """The config was read again and applied (SIGHUP, `POST /reload`, ctrl+r)."""

    name: ClassVar[str] = "config_reloaded"
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    #: `[orchestrator]` keys changed and applied now.
    orchestrator: tuple[str, ...]
    #: `[orchestrator]` keys changed that apply only at the next start.
    restart_needed: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class ConfigReloadFailed(Event):
    """A reload was refused, whole: the config has problems (the messages of `check`)."""

    name: ClassVar[str] = "config_reload_failed"
    problems: tuple[str, ...]


@attrs.frozen(kw_only=True)
class NodeJoined(Event):
    """This process registered as a node of a cluster (again, after being fenced)."""

    name: ClassVar[str] = "node_joined"
    node: str
    node_id: int
    capacity: int


@attrs.frozen(kw_only=True)
class NodeLost(Event):
    """This node reaped a peer (its lease expired, or it crashed): its runs interrupted."""

    name: ClassVar[str] = "node_lost"
    node: str
    node_id: int
    #: runs the lost node held, recorded `interrupted` and their triggers requeued.
    interrupted: int


@attrs.frozen(kw_only=True)
class SelfFenced(Event):
    """This node lost its place in the cluster (no heartbeat in time, or reaped) and
    cancelled its own attempts: their results will be refused."""

    name: ClassVar[str] = "self_fenced"
    node: str
    node_id: int
    reason: str
    #: attempts it cancelled (and retry waits it dropped).
    cancelled: int


@attrs.frozen(kw_only=True)
class DatabaseLost(Event):
    """This node's listening connection to the database dropped (the server restarted, its
    backend was terminated, the network cut it): it connects again at once, and looks for
    work every second meanwhile. Its store writes wait and retry; nothing is lost."""

    name: ClassVar[str] = "database_lost"
    node: str
    reason: str


@attrs.frozen(kw_only=True)
class DatabaseBack(Event):
    """This node is connected to the database again after a `database_lost`."""

    name: ClassVar[str] = "database_back"
    node: str
    #: seconds from the loss to the new connection.
    down_s: float


@attrs.frozen(kw_only=True)
class WorkerEvent(Event):
    worker: str


@attrs.frozen(kw_only=True)
class TriggerAccepted(WorkerEvent):
    name: ClassVar[str] = "trigger_accepted"
    trigger_id: str
    source: str
    payload: Any = None


@attrs.frozen(kw_only=True)
class LeaseLost(WorkerEvent):
    """A run's write was refused: its lease (fencing token) no longer holds it, so its
    outcome is not this node's to record."""

    name: ClassVar[str] = "lease_lost"
    run_id: str
    token: int


@attrs.frozen(kw_only=True)
class OccurrenceCoalesced(WorkerEvent):
    """A schedule occurrence was folded into one still pending (or skipped while nobody
    was up): it runs as part of that run, never on its own."""

    name: ClassVar[str] = "occurrence_coalesced"
    due_at: datetime
    #: occurrences folded at once.
    count: int = 1


@attrs.frozen(kw_only=True)
class RunEvent(WorkerEvent):
    run_id: str
    trigger_id: str
    source: str
    attempt: int


@attrs.frozen(kw_only=True)
class RunStarted(RunEvent):
    name: ClassVar[str] = "run_started"
    payload: Any = None


@attrs.frozen(kw_only=True)
class AttemptFailed(RunEvent):
    name: ClassVar[str] = "attempt_failed"
    duration_s: float
    error: str
    will_retry: bool
    retry_in_s: float | None = None


@attrs.frozen(kw_only=True)
class RunSucceeded(RunEvent):
    name: ClassVar[str] = "run_succeeded"
    duration_s: float


@attrs.frozen(kw_only=True)
class RunFailed(RunEvent):
    name: ClassVar[str] = "run_failed"
    duration_s: float
    error: str


@attrs.frozen(kw_only=True)
class RunInterrupted(RunEvent):
    name: ClassVar[str] = "run_interrupted"
    reason: str
    duration_s: float | None = None


@attrs.frozen(kw_only=True)
class DeadLettered(RunEvent):
    name: ClassVar[str] = "dead_lettered"
    dlq_id: int
    error: str
    payload: Any = None


@attrs.frozen(kw_only=True)
class DeadLetterReplayed(WorkerEvent):
    name: ClassVar[str] = "dead_letter_replayed"
    dlq_id: int
    trigger_id: str


@attrs.frozen(kw_only=True)
class DeadLetterDeleted(Event):
    name: ClassVar[str] = "dead_letter_deleted"
    dlq_id: int | None = None
    count: int = 1


@attrs.frozen(kw_only=True)
class WorkerDisabled(WorkerEvent):
    name: ClassVar[str] = "worker_disabled"
    reason: str


@attrs.frozen(kw_only=True)
class WorkerEnabled(WorkerEvent):
    name: ClassVar[str] = "worker_enabled"
    reason: str


@attrs.frozen(kw_only=True)
class HealthChanged(Event):
    """A worker's health (`worker` set) or the overall health (`worker` None) changed."""

    name: ClassVar[str] = "health_changed"
    worker: str | None
    health: str
    previous: str
    reasons: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class LogLine(WorkerEvent):
    name: ClassVar[str] = "log"
    run_id: str | None
    level: str
    message: str


@attrs.frozen
class LogRecordView:
    """One line of a worker's log ring buffer."""

    ts: datetime
    worker: str
    run_id: str | None
    level: str
    message: str


class Subscription:
    """A subscriber's bounded queue of events; iterate it with `async for`."""

    def __init__(self, bus: EventBus, max_buffer: int) -> None:
        self._bus = bus
        self._send, self.receive = trio.open_memory_channel[Event](max_buffer)
        self.dropped = 0

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def _offer(self, event: Event) -> None:
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1
            self._bus.dropped += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def close(self) -> None:
        self._send.close()


class EventBus:
    """Fans events out to any number of bounded subscribers."""

    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []
        #: Events lost, over all subscribers, because a subscriber's buffer was full.
        self.dropped = 0
        self.published = 0

    def publish(self, event: Event) -> None:
        self.published += 1
        for subscriber in self._subscribers:
            subscriber._offer(event)

    @contextmanager
    def subscribe(self, max_buffer: int = 1024) -> Iterator[Subscription]:
        """Receive every event published from now on, at most `max_buffer` queued."""
        subscription = Subscription(self, max_buffer)
        self._subscribers.append(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.remove(subscription)
            subscription.close()

    def close(self) -> None:
        """End every subscription's iteration (after the events already queued)."""
        for subscriber in self._subscribers:
            subscriber.close()
