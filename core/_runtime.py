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
from ._lifecycle import Effects, RunEvent, RunState, run_transition
from ._records import Attempt, Circuit, RunDetailDraft, RunLogLine, RunRecord, Trigger
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
    #: where the run is in its lifecycle: move it with `advance`, which keeps the two
    #: copies below in step.
    state: RunState
    #: the current (or, waiting to retry, the last) attempt's number, 1-based: the
    #: state's, copied (read on every step of a run); given at creation, then kept in
    #: step by `advance`.
    attempt: int
    #: in retry wait: when the next attempt is due (trio time), else 0.
    retry_at: float = 0.0
    attempt_started_t: float = 0.0
    #: when the current attempt must end (timeout), or inf.
    attempt_deadline_t: float = float("inf")
    cancel_scope: trio.CancelScope | None = None
    cancel_requested_t: float | None = None
    #: why it was cancelled, as its `interrupted` record and event say.
    cancel_reason: str = "shutdown"
    #: given up on by shutdown (stuck): its end is already recorded.
    abandoned: bool = False
    #: it counts in `engine.slots_used` (its attempt runs): given back exactly once.
    holds_slot: bool = False
    #: wall-clock start of the current attempt, from the second on (the first starts
    #: with the run: `record.started_at`).
    attempt_started_at: datetime | None = None
    #: its attempts that ended, in order; left empty for a run whose only attempt
    #: succeeded (the record says it all: nothing more to store on the hot path).
    #: (An empty tuple until the first is kept: most runs keep none, and a list each
    #: would be made and dropped on every run.)
    attempts: list[Attempt] | tuple[()] = ()
    #: its own log lines, the last `log_limit` of them (made at the first line).
    logs: deque[RunLogLine] | None = None
    logs_dropped: int = 0

    def log(self, line: RunLogLine, log_limit: int) -> None:
        """Keep a line this run wrote, dropping (and counting) its oldest past the limit."""
        logs = self.logs
        if logs is None:
            logs = self.logs = deque(maxlen=log_limit)
        elif len(logs) == logs.maxlen:
            self.logs_dropped += 1
        logs.append(line)

    def detail(self) -> RunDetailDraft | None:
        """What to store with the run's end besides its record; None if nothing."""
        if not self.attempts and self.logs is None:
            return None
        return RunDetailDraft(
            attempts=tuple(self.attempts), logs=tuple(self.logs or ()),
            logs_dropped=self.logs_dropped,
        )

    @property
    def trigger(self) -> Trigger:
        return self.record.trigger

    def advance(
        self, event: RunEvent, *, now: float, retry_delay: float | None = None
    ) -> Effects:
        """Move the run's lifecycle by `event`; returns the effects to apply."""
        self.state, effects = run_transition(
            self.state, event, now=now, retry_delay=retry_delay
        )
        self.attempt = self.state.attempt
        self.retry_at = self.state.retry_at or 0.0
        return effects


@attrs.define(kw_only=True, eq=False)
class QueuedTrigger:
    trigger: Trigger
    #: trio time it was queued: orders it against schedule due times.
    queued_t: float


@attrs.frozen(kw_only=True)
class Replacement:
    """What a reload changed a worker into, kept until its run in flight has ended."""

    spec: WorkerSpec
    fn: Callable[..., Any]
    fn_ref: str
    is_async: bool


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
    #: the lifecycle state every new run of this worker starts in (made on first use by
    #: `first_attempt_state`: the same for all its runs), by whether an interrupted run
    #: is re-queued.
    first_states: dict[bool, RunState] = attrs.field(factory=dict, repr=False)
    health_reasons: tuple[str, ...] = ()
    #: removed by a reload while a run was in flight: no new run starts, and the worker
    #: goes once that run has ended.
    retiring: bool = False
    #: changed by a reload while a run was in flight: applied once that run has ended
    #: (the run keeps the spec it started with).
    replacement: Replacement | None = None

    def __attrs_post_init__(self) -> None:
        self.name = self.spec.name

    def first_attempt_state(self, requeue_on_interrupt: bool) -> RunState:
        """The state of a new run that has just started its first attempt.

        `run_transition(queued, STARTED)` gives the same state for every run of a worker,
        so it is made once per worker (and kind), not once per run.
        """
        state = self.first_states.get(requeue_on_interrupt)
        if state is None:
            spec = self.spec
            queued = RunState(
                spec.max_retries + 1, requeue_on_interrupt, spec.mode is Mode.CONTINUOUS
            )
            state, _ = run_transition(queued, RunEvent.STARTED, now=0.0)
            self.first_states[requeue_on_interrupt] = state
        return state

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
        if self.phase is not Phase.IDLE or self.retiring:
            return None
        due: float | None = None
        if self.pending:
            due = self.pending[0].queued_t
        if self.spec.mode is Mode.SCHEDULED and self.next_due is not None and self.next_due <= now:
            due = self.next_due if due is None else min(due, self.next_due)
        if self.spec.mode is Mode.CONTINUOUS and self.idle_since <= now:
            due = self.idle_since if due is None else min(due, self.idle_since)
        return due
