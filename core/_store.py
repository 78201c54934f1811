"""The two protocols under the engine: `Store` keeps, `Coordinator` decides.

The store, not the orchestrator's memory, is the source of truth for pending triggers
and the DLQ: a trigger is acknowledged only once `add_trigger` has returned. The
coordinator decides what may start (`claim`), and records each run's start and end under
its lease token; a write whose token is no longer the lease's changes nothing and raises
`LeaseLost`. `LocalCoordinator` decides in memory for one process that owns its store
(SQLite, `:memory:`); a cluster's coordinator decides in its database.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Sequence
from typing import Protocol

import attrs

from ._records import (
    DeadLetter,
    RunDetail,
    RunDetailDraft,
    RunRecord,
    StoredState,
    Trigger,
    WorkerState,
)
from ._runtime import ActiveRun, WorkerRuntime


@attrs.frozen(kw_only=True)
class DeadLetterDraft:
    """A dead letter before the store has given it an id."""

    error: str
    traceback: str

    def with_id(self, entry_id: int, run: RunRecord) -> DeadLetter:
        assert run.ended_at is not None
        return DeadLetter(
            id=entry_id,
            worker=run.worker,
            trigger_id=run.trigger.id,
            source=run.trigger.source,
            payload=run.trigger.payload,
            error=self.error,
            traceback=self.traceback,
            attempts=run.attempts,
            started_at=run.started_at,
            failed_at=run.ended_at,
            run_id=run.id,
        )


class Store(Protocol):
    """Durable state of one orchestrator. Every method is atomic."""

    async def open(self) -> StoredState:
        """Open (creating if needed) and return what is stored."""

    async def close(self) -> None:
        """Flush everything and release the store. Safe to call twice."""

    async def add_trigger(self, trigger: Trigger) -> None:
        """Store a pending trigger; once this returns the trigger is durable."""

    async def start_run(self, run: RunRecord) -> None:
        """Record a run as running (found `running` after a crash means interrupted)."""

    async def finish_run(
        self,
        run: RunRecord,
        *,
        worker: WorkerState,
        requeue: bool = False,
        dead_letter: DeadLetterDraft | None = None,
        triggers: Sequence[Trigger] = (),
        detail: RunDetailDraft | None = None,
    ) -> int | None:
        """Record a run's end, all in one transaction.

        Args:
            run: the run with its final status.
            worker: the worker's state after the run.
            requeue: keep (or put back) the run's trigger as pending instead of removing it.
            dead_letter: if given, a DLQ entry is added.
            triggers: new pending triggers the run's end causes (dependents to run).
            detail: the run's attempts and log lines, kept as long as the run is (None:
                nothing beyond its record, whose one attempt says it all).

        Returns:
            The new DLQ entry's id, if one was added.
        """

    async def save_worker(self, state: WorkerState) -> None:
        """Store a worker's runtime state (enable/disable, circuit)."""

    async def runs(self, worker: str | None = None, limit: int = 50) -> list[RunRecord]:
        """Recent finished or running runs, newest first."""

    async def run_detail(self, run_id: str) -> RunDetail:
        """One run of the history with its attempts and log lines.

        Raises:
            UnknownRun: no run with that id is kept.
        """

    async def dlq_list(self, limit: int | None = None) -> list[DeadLetter]:
        """DLQ entries, newest first."""

    async def dlq_get(self, entry_id: int) -> DeadLetter:
        """One DLQ entry. Raises UnknownDeadLetter."""

    async def dlq_replay(self, entry_id: int, trigger: Trigger) -> None:
        """Atomically remove a DLQ entry and store `trigger` as pending.

        Raises:
            UnknownDeadLetter: no entry with that id.
        """

    async def dlq_delete(self, entry_id: int) -> None:
        """Remove a DLQ entry. Raises UnknownDeadLetter."""

    async def dlq_purge(self) -> int:
        """Remove every DLQ entry; returns how many there were."""




class WorkerChange(enum.Enum):
    """A command that changes one worker's shared runtime state.

    Commands, not whole rows: a coordinator applies each as a change of the fields it
    names (in a database, an `UPDATE ... SET` of those columns), so an operator's enable
    on one node is never undone by a run's end recorded on another.
    """

    #: enable it, and close its circuit with the failure count reset.
    ENABLE = "enable"
    DISABLE = "disable"
    #: its circuit's cooldown is over: half-open, for one trial run.
    HALF_OPEN = "half_open"


class Coordinator(Protocol):
    """Decides what may start, and records every run's start and end under its lease.

    The engine asks it before it starts anything: `claim` admits runs (each gets a lease
    with a fencing token), `started` and `finish` record them. A run's writes carry its
    token; once the lease is gone (reaped, fenced) they raise `LeaseLost` and change
    nothing.
    """

    async def claim(
        self, ready: Sequence[WorkerRuntime], now: float, limit: int
    ) -> list[ActiveRun]:
        """Admit runs that may start now, best first, up to `limit`.

        Args:
            ready: workers that want to run, in dispatch order (priority, due, config
                order); a hint for a coordinator that knows its pending work itself.
            now: trio time.
            limit: slots free for this process.

        Returns:
            The admitted runs, each holding a slot and a lease: new runs (attempt 1) and
            retries whose wait is over.
        """

    def claim_now(
        self, ready: Sequence[WorkerRuntime], now: float, limit: int
    ) -> list[ActiveRun] | None:
        """`claim`, answered at once if this coordinator can decide without waiting;
        None when it cannot (the dispatcher then awaits `claim`)."""

    def admit_now(self, w: WorkerRuntime, now: float) -> ActiveRun | None:
        """Admit `w` at once if this coordinator can decide without waiting, else None.

        The dispatcher's fast path, when nothing else is waiting: a local coordinator
        decides in memory; a database's coordinator returns None (the dispatcher then
        claims in its own task).
        """

    def started(self, run: ActiveRun) -> Awaitable[None]:
        """Record a run's first attempt as running (after a crash: interrupted).

        Returns an awaitable (a coroutine, or a store write's own) that does it.
        """

    def finish(
        self,
        run: ActiveRun,
        record: RunRecord,
        *,
        requeue: bool = False,
        dead_letter: DeadLetterDraft | None = None,
        triggers: Sequence[Trigger] = (),
    ) -> Awaitable[int | None]:
        """Record a run's end and release its lease, in one transaction (awaited).

        The worker's shared state follows from the outcome (its circuit and failure
        count, last start, success and error), applied as a change, not a whole row;
        the run's attempts and log lines (`run.detail()`) are stored with it.

        Returns:
            The new DLQ entry's id, if one was added.

        Raises:
            LeaseLost: the run's token no longer holds the lease; nothing was written.
        """

    async def change_worker(self, name: str, change: WorkerChange) -> None:
        """Apply an operator's or the circuit's change to a worker's shared state."""
