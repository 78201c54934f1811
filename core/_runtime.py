"""The orchestrator's mutable, in-memory view of each worker.

Only the orchestrator mutates these; everything outside reads frozen snapshots.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs
import trio

from ._circuit import CircuitState
from ._lifecycle import RunState
from ._records import Circuit, RunRecord, Trigger
from ._spec import Mode, WorkerSpec

DURATIONS_KEPT = 20
OUTCOMES_KEPT = 10


class Phase(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"  # an attempt is executing and holds a slot
    RETRY_WAIT = "retry_wait"  # between attempts: no slot held


class Outcome(enum.Enum):
    SUCCEEDED = "succeeded"
    RETRIED = "retried"  # succeeded after at least one failed attempt
    FAILED = "failed"


@attrs.define(kw_only=True, eq=False)
class ActiveRun:
    """A run that holds a lease: admitted by the coordinator, not finished yet."""

    record: RunRecord
    #: the lease's fencing token: every write about this run carries it.
    token: int
    #: where the run is in its lifecycle (`_lifecycle.run_transition` moves it).
    state: RunState
    attempt_started_t: float = 0.0
    #: when the current attempt must end (timeout), or inf.
    attempt_deadline_t: float = float("inf")
    cancel_scope: trio.CancelScope | None = None
    cancel_requested_t: float | None = None
    #: why it was cancelled, as its `interrupted` record and event say.
    cancel_reason: str = "shutdown"
    last_error: str | None = None
    last_traceback: str | None = None
    #: given up on by shutdown (stuck): its end is already recorded.
    abandoned: bool = False

    @property
    def trigger(self) -> Trigger:
        return self.record.trigger

    @property
    def attempt(self) -> int:
        """The current (or, waiting to retry, the last) attempt's number, 1-based."""
        return self.state.attempt

    @property
    def retry_at(self) -> float:
        """In retry wait: when the next attempt is due (trio time)."""
        at = self.state.retry_at
        return at if at is not None else 0.0


@attrs.define(kw_only=True, eq=False)
class QueuedTrigger:
    trigger: Trigger
    #: trio time it was queued: orders it against schedule due times.
    queued_t: float


@attrs.define(kw_only=True, eq=False)
class WorkerRuntime:
    spec: WorkerSpec
    #: the spec's name, kept as a plain attribute: it is read on every dispatch.
    name: str = attrs.field(init=False)
    fn: Callable[..., Any]
    fn_ref: str
    index: int
    is_async: bool
    enabled: bool = True
    breaker: CircuitState = attrs.field(factory=CircuitState)
    phase: Phase = Phase.IDLE
    run: ActiveRun | None = None
    #: queued triggers, oldest first; an empty tuple until the first one arrives.
    pending: deque[QueuedTrigger] | tuple[()] = ()
    #: scheduled workers: the next grid/cron time, its jittered due time, and the period.
    next_grid: float | None = None
    next_due: float | None = None
    period: float = 0.0
    #: continuous workers: when the next iteration is due (after a failed one: backed off).
    idle_since: float = 0.0
    #: ordering of starts and successes across workers (the fresh-success rule).
    last_start_seq: int | None = None
    last_success_seq: int | None = None
    #: triggered workers with depends_on: sequence mark of the last auto-trigger.
    dependency_mark: int = -1
    last_start: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    last_traceback: str | None = None
    last_duration_s: float | None = None
    #: the last DURATIONS_KEPT attempt durations and OUTCOMES_KEPT run outcomes, oldest
    #: first. Lists, not deques: an empty deque costs ~600 bytes, ten thousand workers.
    durations: list[float] = attrs.field(factory=list)
    outcomes: list[Outcome] = attrs.field(factory=list)
    runs_ok: int = 0
    runs_failed: int = 0
    heartbeat_t: float | None = None
    stuck: bool = False
    #: the last health judged (a `Health` value).
    health: str = "ok"
    health_reasons: tuple[str, ...] = ()

    def __attrs_post_init__(self) -> None:
        self.name = self.spec.name

    def queue(self, queued: QueuedTrigger, *, first: bool = False) -> None:
        """Add a trigger at the back of the queue (or the front: put back after a crash)."""
        if not isinstance(self.pending, deque):
            self.pending = deque()
        if first:
            self.pending.appendleft(queued)
        else:
            self.pending.append(queued)

    def take(self) -> QueuedTrigger:
        """Remove and return the oldest queued trigger."""
        assert isinstance(self.pending, deque)
        return self.pending.popleft()

    def record(self, duration: float | None = None, outcome: Outcome | None = None) -> None:
        """Keep an attempt's duration and/or a run's outcome, dropping the oldest."""
        if duration is not None:
            self.durations.append(duration)
            if len(self.durations) > DURATIONS_KEPT:
                del self.durations[0]
        if outcome is not None:
            self.outcomes.append(outcome)
            if len(self.outcomes) > OUTCOMES_KEPT:
                del self.outcomes[0]

    @property
    def circuit(self) -> Circuit:
        return self.breaker.circuit

    @property
    def consecutive_failures(self) -> int:
        return self.breaker.consecutive_failures

    @property
    def may_run(self) -> bool:
        """Enabled by the operator and the circuit lets runs through."""
        return self.enabled and self.breaker.circuit is not Circuit.OPEN

    @property
    def in_flight(self) -> bool:
        return self.phase is not Phase.IDLE

    def demand_since(self, now: float) -> float | None:
        """When this worker started wanting a new run (its due time), or None."""
        if self.phase is not Phase.IDLE:
            return None
        due: float | None = None
        if self.pending:
            due = self.pending[0].queued_t
        if self.spec.mode is Mode.SCHEDULED and self.next_due is not None and self.next_due <= now:
            due = self.next_due if due is None else min(due, self.next_due)
        if self.spec.mode is Mode.CONTINUOUS and self.idle_since <= now:
            due = self.idle_since if due is None else min(due, self.idle_since)
        return due
