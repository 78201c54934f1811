"""Frozen snapshots of orchestrator and worker state, for the TUI, logs, API and metrics."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from ._health import Health
from ._records import Circuit
from ._spec import WorkerSpec


class WorkerStatus(enum.StrEnum):
    """The one word that says what a worker is doing now."""

    RUNNING = "running"
    #: cancelled (timeout or shutdown) and has not returned: its slot stays taken.
    STUCK = "stuck"
    #: between attempts, holding no slot.
    RETRYING = "retrying"
    #: disabled by an operator, or its circuit is open.
    DISABLED = "disabled"
    #: wants to run and cannot yet (the reason says why).
    WAITING = "waiting"
    IDLE = "idle"


class OrchestratorState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"


@attrs.frozen(kw_only=True)
class WorkerSnapshot:
    """One worker as it is at one moment."""

    name: str
    spec: WorkerSpec
    fn: str
    state: WorkerStatus
    #: why it is not running, in words ("next in 42s", "blocked by backup"...).
    reason: str
    health: Health
    health_reasons: tuple[str, ...]
    enabled: bool
    circuit: Circuit
    #: enabled by the operator and the circuit lets runs through (the one rule, here).
    may_run: bool
    consecutive_failures: int
    attempt: int | None
    max_attempts: int
    runs_ok: int
    runs_failed: int
    pending: int
    last_start: datetime | None
    last_success: datetime | None
    last_error: str | None
    last_traceback: str | None
    last_duration_s: float | None
    durations: tuple[float, ...]
    next_due: datetime | None
    running_since: datetime | None
    run_id: str | None

    @property
    def mode(self) -> str:
        return self.spec.mode.value

    @property
    def priority(self) -> str:
        return self.spec.priority.label


@attrs.frozen(kw_only=True)
class OrchestratorSnapshot:
    """The orchestrator and every worker, at one moment."""

    state: OrchestratorState
    health: Health
    health_reasons: tuple[str, ...]
    running: int
    max_concurrent_workers: int
    pending: int
    dlq_size: int
    started_at: datetime | None
    uptime_s: float
    loop_lag_s: float
    events_published: int
    events_dropped: int
    store_errors: int
    #: worker log lines that fell out of the per-worker ring buffers.
    log_lines_dropped: int
    #: while stopping: seconds of shutdown grace left (0 once it is over), else None.
    grace_left_s: float | None
    taken_at: datetime
    workers: tuple[WorkerSnapshot, ...]

    def worker(self, name: str) -> WorkerSnapshot:
        for w in self.workers:
            if w.name == name:
                return w
        raise KeyError(name)
