"""Frozen snapshots of orchestrator and worker state, for the TUI, logs, API and metrics."""

from __future__ import annotations

from datetime import datetime

import attrs

from ._spec import WorkerSpec


@attrs.frozen(kw_only=True)
class WorkerSnapshot:
    """One worker as it is at one moment."""

    name: str
    spec: WorkerSpec
    fn: str
    #: running | stuck | retrying | disabled | waiting | idle
    state: str
    #: why it is not running, in words ("next in 42s", "blocked by backup"...).
    reason: str
    health: str
    health_reasons: tuple[str, ...]
    enabled: bool
    circuit: str
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

    #: created | running | paused | stopping | stopped
    state: str
    health: str
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
    taken_at: datetime
    workers: tuple[WorkerSnapshot, ...]

    def worker(self, name: str) -> WorkerSnapshot:
        for w in self.workers:
            if w.name == name:
                return w
        raise KeyError(name)
