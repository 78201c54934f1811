"""The durable records: triggers, runs, dead letters and per-worker runtime state."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime
from typing import Any

import attrs


class Source(enum.Enum):
    """Where a trigger came from."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    DEPENDENCY = "dependency"
    REPLAY = "replay"
    CONTINUOUS = "continuous"


class RunStatus(enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class Circuit(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def new_id() -> str:
    """A short random id for triggers and runs (64 bits)."""
    return secrets.token_hex(8)


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
    """What a store holds when it is opened."""

    workers: dict[str, WorkerState] = attrs.field(factory=dict)
    pending: tuple[Trigger, ...] = ()
    unfinished_runs: tuple[RunRecord, ...] = ()
    dlq_size: int = 0
