"""What the HTTP API and `jobdeck dlq --json` show of the engine, as JSON-ready values.

One view of each thing, whoever shows it: a dead-letter entry, a worker, and the
orchestrator with every worker (`GET /status`). Times are ISO 8601 text; durations are
seconds, rounded to the microsecond, and None where there is no finite value.
Each interface wraps the views in its own envelope (`{"total", "entries"}` over HTTP,
a bare list from the CLI).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ._errors import UnknownDeadLetter
from ._records import DeadLetter
from ._snapshot import OrchestratorSnapshot, WorkerSnapshot

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


def status_json(snap: OrchestratorSnapshot, http: str | None) -> dict[str, Any]:
    """The orchestrator and every worker; `http` is the address the API is served on."""
    return {
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
        "workers": [worker_json(w) for w in snap.workers],
    }


def worker_json(w: WorkerSnapshot) -> dict[str, Any]:
    """One worker: what it is, what it is doing, and its counters."""
    return {
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


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _seconds(value: float | None) -> float | None:
    if value is None or math.isinf(value) or math.isnan(value):
        return None
    return round(value, 6)
