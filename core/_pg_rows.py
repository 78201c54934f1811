"""PostgreSQL rows and records: the columns read back, the mapping both ways, and the
small statements the store and the coordinator share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Json

from ._pg_schema import CHANNEL
from ._records import (
    Circuit,
    DeadLetter,
    RunRecord,
    RunStatus,
    Source,
    Trigger,
    WorkerState,
)

#: Columns of jd_runs read back into a RunRecord, in `_run_of`'s order.
RUN_COLUMNS = (
    "id, worker, trigger_id, source, payload, accepted_at, status, started_at, ended_at,"
    " attempts, duration_s, error"
)
DLQ_COLUMNS = (
    "id, worker, trigger_id, source, payload, error, traceback, attempts, started_at,"
    " failed_at, run_id"
)
WORKER_COLUMNS = (
    "name, enabled, circuit, opened_at, consecutive_failures, last_start, last_success,"
    " last_error"
)


def json_param(value: Any) -> Json | None:
    """A payload as a query parameter: JSON text, or SQL NULL for None."""
    return None if value is None else Json(value)


def run_of(row: Sequence[Any]) -> RunRecord:
    (run_id, worker, trigger_id, source, payload, accepted_at, status, started_at,
     ended_at, attempts, duration_s, error) = row
    trigger = Trigger(
        id=trigger_id, worker=worker, source=Source(source), payload=payload,
        accepted_at=accepted_at,
    )
    return RunRecord(
        id=run_id, worker=worker, trigger=trigger, status=RunStatus(status),
        started_at=started_at, ended_at=ended_at, attempts=attempts, duration_s=duration_s,
        error=error,
    )


def worker_state_of(row: Sequence[Any]) -> WorkerState:
    name, enabled, circuit, opened_at, failures, last_start, last_success, last_error = row
    return WorkerState(
        name=name, enabled=enabled, circuit=Circuit(circuit), opened_at=opened_at,
        consecutive_failures=failures, last_start=last_start, last_success=last_success,
        last_error=last_error,
    )


def dead_letter_of(row: Sequence[Any]) -> DeadLetter:
    (entry_id, worker, trigger_id, source, payload, error, tb, attempts, started_at,
     failed_at, run_id) = row
    return DeadLetter(
        id=entry_id, worker=worker, trigger_id=trigger_id, source=Source(source),
        payload=payload, error=error, traceback=tb, attempts=attempts,
        started_at=started_at, failed_at=failed_at, run_id=run_id,
    )


def insert_trigger(conn: psycopg.Connection, trigger: Trigger) -> None:
    """Store `trigger` as pending, ready now (database time)."""
    conn.execute(
        "INSERT INTO jd_triggers (id, worker, source, payload, accepted_at, ready_at)"
        " VALUES (%s, %s, %s, %s, %s, jd_now())",
        (trigger.id, trigger.worker, trigger.source.value, json_param(trigger.payload),
         trigger.accepted_at),
    )


def notify(conn: psycopg.Connection) -> None:
    """Wake the cluster's nodes when this transaction commits (one per transaction)."""
    conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))


def read_workers(conn: psycopg.Connection) -> dict[str, WorkerState]:
    rows = conn.execute(f"SELECT {WORKER_COLUMNS} FROM jd_workers ORDER BY name").fetchall()
    return {row[0]: worker_state_of(row) for row in rows}


def dlq_size(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM jd_dlq").fetchone()
    return int(row[0]) if row else 0
