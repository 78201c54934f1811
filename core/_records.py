"""The durable records: triggers, runs, dead letters and per-worker runtime state."""

from __future__ import annotations

import enum
import itertools
import secrets
from datetime import datetime
from typing import Any

import attrs


class Source(enum.StrEnum):
    """Where a trigger came from."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    DEPENDENCY = "dependency"
    REPLAY = "replay"
    CONTINUOUS = "continuous"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class Circuit(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_ID_PREFIX = secrets.token_hex(4)
_id_counter = itertools.count(1)


def new_id() -> str:
    """A short unique id for triggers and runs: a counter, then a random per-process part.

    Cheaper than 64 random bits per id, and ids made by one process sort by creation.
    The counter comes first so that an id's first 8 characters, which the text log and
    the dashboard show, tell apart the runs of one process.
    """
    return f"{next(_id_counter):08x}{_ID_PREFIX}"


@attrs.frozen(kw_only=True)
class Trigger:
    """A request to run a worker once. Stored before it is acknowledged."""

    id: str = attrs.field(factory=new_id)
    worker: str
    source: Source
    payload: Any = None
    accepted_at: datetime


@attrs.frozen(kw_only=True)
class RunRecord:
    """One run: its trigger, status, attempts and outcome."""

    id: str = attrs.field(factory=new_id)
    worker: str
    trigger: Trigger
    status: RunStatus = RunStatus.RUNNING
    started_at: datetime
    ended_at: datetime | None = None
    attempts: int = 1
    duration_s: float | None = None
    error: str | None = None

    def finished(
        self,
        status: RunStatus,
        *,
        ended_at: datetime,
        attempts: int,
        duration_s: float | None,
        error: str | None = None,
    ) -> RunRecord:
        """This run with its outcome (cheaper than `attrs.evolve` on the hot path)."""
        return RunRecord(
            id=self.id, worker=self.worker, trigger=self.trigger, status=status,
            started_at=self.started_at, ended_at=ended_at, attempts=attempts,
            duration_s=duration_s, error=error,
        )


@attrs.frozen(kw_only=True)
class Attempt:
    """One attempt of a run: when, how long, and how it failed (if it did)."""

    number: int
    started_at: datetime
    ended_at: datetime | None = None
    duration_s: float | None = None
    error: str | None = None
    #: the whole traceback, jobdeck's frames included (displays may hide those).
    traceback: str | None = None


@attrs.frozen(kw_only=True)
class RunLogLine:
    """A line a run wrote with `ctx.log`."""

    ts: datetime
    level: str
    message: str


@attrs.frozen(kw_only=True)
class RunDetailDraft:
    """What a run's end stores besides its record: its attempts and its own log lines.

    Attributes:
        attempts: every attempt, in order; empty for a run whose one attempt succeeded
            (its record says all of it).
        logs: its last log lines, at most the per-run bound.
        logs_dropped: lines it wrote beyond the bound, not kept.
    """

    attempts: tuple[Attempt, ...] = ()
    logs: tuple[RunLogLine, ...] = ()
    logs_dropped: int = 0


@attrs.frozen(kw_only=True)
class RunDetail:
    """A run opened: its record, every attempt, and its own log lines."""

    record: RunRecord
    attempts: tuple[Attempt, ...]
    logs: tuple[RunLogLine, ...] = ()
    logs_dropped: int = 0

    @classmethod
    def of(cls, record: RunRecord, draft: RunDetailDraft | None) -> RunDetail:
        """The detail of `record` from what was stored with it (None: nothing was).

        A run stored without attempts (its one attempt succeeded, or it still runs) has
        the attempt its record describes.
        """
        draft = draft or RunDetailDraft()
        attempts = draft.attempts or (
            Attempt(
                number=record.attempts, started_at=record.started_at, ended_at=record.ended_at,
                duration_s=record.duration_s, error=record.error,
            ),
        )
        return cls(
            record=record, attempts=attempts, logs=draft.logs, logs_dropped=draft.logs_dropped
        )


@attrs.frozen(kw_only=True)
class DeadLetter:
    """A run whose every attempt failed, kept for inspection and replay."""

    id: int
    worker: str
    trigger_id: str
    source: Source
    payload: Any
    error: str
    traceback: str
    attempts: int
    started_at: datetime
    failed_at: datetime
    run_id: str


@attrs.frozen(kw_only=True)
class WorkerState:
    """A worker's runtime state that outlives the process."""

    name: str
    enabled: bool = True
    circuit: Circuit = Circuit.CLOSED
    opened_at: datetime | None = None
    consecutive_failures: int = 0
    last_start: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None


@attrs.frozen(kw_only=True)
class StoredState:
    """What a store holds when it is opened.

    Attributes:
        quarantined: one message per damaged row the store skipped (a payload that is
            not JSON, an unknown status, a garbled date...), naming its table and id.
            Such rows are left in the store untouched; everything else is here.
    """

    workers: dict[str, WorkerState] = attrs.field(factory=dict)
    pending: tuple[Trigger, ...] = ()
    unfinished_runs: tuple[RunRecord, ...] = ()
    dlq_size: int = 0
    quarantined: tuple[str, ...] = ()
