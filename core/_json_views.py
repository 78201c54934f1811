"""What the HTTP API and the offline commands' `--json` show of the engine, as JSON values.

One view of each thing, whoever shows it: a dead-letter entry, a run (in a list, and
opened with its attempts and log lines), a worker, and the orchestrator with every
worker (`GET /status`). Times are ISO 8601 text; durations are
seconds, rounded to the microsecond, and None where there is no finite value.
Each interface wraps the views in its own envelope (`{"total", "entries"}` over HTTP,
a bare list from the CLI).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import attrs

from ._errors import UnknownDeadLetter
from ._events import LogRecordView
from ._records import DeadLetter, RunDetail, RunRecord, Trigger
from ._snapshot import OrchestratorSnapshot, WorkerSnapshot
from ._spec import WorkerSpec

#: Dead-letter ids are SQLite row ids, from 1 to 2**63 - 1: no entry has any other.
MAX_DEAD_LETTER_ID = 2**63 - 1


def check_dead_letter_id(entry_id: int) -> int:
    """`entry_id`, if an entry could have it.

    Raises:
        UnknownDeadLetter: the id is outside 1 to 2**63 - 1, so no entry has it (and a
            store would not take it as a number).
    """
    if not 1 <= entry_id <= MAX_DEAD_LETTER_ID:
        raise UnknownDeadLetter(entry_id)
    return entry_id


def dead_letter_json(entry: DeadLetter, *, traceback: bool) -> dict[str, Any]:
    """A dead-letter entry; its traceback only if `traceback` (lists leave it out)."""
    data = {
        "id": entry.id,
        "worker": entry.worker,
        "trigger_id": entry.trigger_id,
        "run_id": entry.run_id,
        "source": entry.source.value,
        "payload": entry.payload,
        "error": entry.error,
        "attempts": entry.attempts,
        "started_at": entry.started_at.isoformat(),
        "failed_at": entry.failed_at.isoformat(),
    }
    if traceback:
        data["traceback"] = entry.traceback
    return data


def status_json(
    snap: OrchestratorSnapshot, http: str | None, *, detail: bool = False
) -> dict[str, Any]:
    """The orchestrator and every worker; `http` is the address the API is served on.

    With `detail`, everything a remote dashboard shows too: each worker's spec, recent
    durations and last traceback, and the shutdown grace left.
    """
    data = {
        "state": snap.state,
        "health": snap.health,
        "health_reasons": list(snap.health_reasons),
        "running": snap.running,
        "max_concurrent_workers": snap.max_concurrent_workers,
        "pending": snap.pending,
        "dlq_size": snap.dlq_size,
        "started_at": _time(snap.started_at),
        "uptime_s": _seconds(snap.uptime_s),
        "loop_lag_s": _seconds(snap.loop_lag_s),
        "events_published": snap.events_published,
        "events_dropped": snap.events_dropped,
        "log_lines_dropped": snap.log_lines_dropped,
        "store_errors": snap.store_errors,
        "taken_at": _time(snap.taken_at),
        "http": http,
        "cluster": None if snap.cluster is None else attrs.asdict(snap.cluster),
        "workers": [worker_json(w, detail=detail) for w in snap.workers],
    }
    if detail:
        data["grace_left_s"] = _seconds(snap.grace_left_s)
    return data


def worker_json(w: WorkerSnapshot, *, detail: bool = False) -> dict[str, Any]:
    """One worker: what it is, what it is doing, and its counters (and with `detail`,
    its spec, recent durations and last traceback)."""
    data = {
        "name": w.name,
        "fn": w.fn,
        "mode": w.mode,
        "priority": w.priority,
        "state": w.state,
        "reason": w.reason,
        "health": w.health,
        "health_reasons": list(w.health_reasons),
        "enabled": w.enabled,
        "circuit": w.circuit,
        "consecutive_failures": w.consecutive_failures,
        "attempt": w.attempt,
        "max_attempts": w.max_attempts,
        "runs_ok": w.runs_ok,
        "runs_failed": w.runs_failed,
        "pending": w.pending,
        "run_id": w.run_id,
        "node": w.node,
        "lease_token": w.lease_token,
        "lease_expires_s": _seconds(w.lease_expires_s),
        "running_since": _time(w.running_since),
        "next_due": _time(w.next_due),
        "last_start": _time(w.last_start),
        "last_success": _time(w.last_success),
        "last_duration_s": _seconds(w.last_duration_s),
        "last_error": w.last_error,
    }
    if detail:
        data["may_run"] = w.may_run
        data["spec"] = spec_json(w.spec)
        data["durations"] = [_seconds(d) for d in w.durations]
        data["last_traceback"] = w.last_traceback
    return data


def spec_json(spec: WorkerSpec) -> dict[str, Any]:
    """A worker's spec with the config's key names and values."""
    data = attrs.asdict(spec, recurse=False)
    data["mode"] = spec.mode.value
    data["priority"] = spec.priority.label
    data["depends_on"] = list(spec.depends_on)
    data["blocks"] = list(spec.blocks)
    data["params"] = dict(spec.params)
    return data


def trigger_json(trigger: Trigger) -> dict[str, Any]:
    return {
        "id": trigger.id,
        "worker": trigger.worker,
        "source": trigger.source.value,
        "payload": trigger.payload,
        "accepted_at": trigger.accepted_at.isoformat(),
    }


def log_line_json(line: LogRecordView) -> dict[str, Any]:
    return {
        "ts": line.ts.isoformat(),
        "worker": line.worker,
        "run_id": line.run_id,
        "level": line.level,
        "message": line.message,
    }


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _seconds(value: float | None) -> float | None:
    if value is None or math.isinf(value) or math.isnan(value):
        return None
    return round(value, 6)


def run_json(record: RunRecord) -> dict[str, Any]:
    """One run of the history: what it ran for and how it ended (`attempts`: how many),
    with its trigger whole (the CLI's `runs list`, `GET /runs`, the attached dashboard)."""
    return {
        "id": record.id,
        "worker": record.worker,
        "status": record.status.value,
        "source": record.trigger.source.value,
        "trigger_id": record.trigger.id,
        "started_at": record.started_at.isoformat(),
        "ended_at": _time(record.ended_at),
        "duration_s": _seconds(record.duration_s),
        "attempts": record.attempts,
        "error": record.error,
        "trigger": trigger_json(record.trigger),
    }


def run_detail_json(detail: RunDetail) -> dict[str, Any]:
    """A run opened: the run (as in a list, with its payload), every attempt with its
    whole traceback, and its own log lines."""
    record = detail.record
    return {
        "run": {**run_json(record), "payload": record.trigger.payload},
        "attempts": [
            {
                "number": a.number,
                "started_at": a.started_at.isoformat(),
                "ended_at": _time(a.ended_at),
                "duration_s": _seconds(a.duration_s),
                "error": a.error,
                "traceback": a.traceback,
            }
            for a in detail.attempts
        ],
        "logs": [
            {"ts": line.ts.isoformat(), "level": line.level, "message": line.message}
            for line in detail.logs
        ],
        "logs_dropped": detail.logs_dropped,
    }
