"""Rows of the SQLite store and the records they hold, both ways.

Payloads are JSON text; datetimes ISO 8601 text with their UTC offset. Records become
rows here for the DLQ (the batch view's actions are made in `_sqlite_batch`), and rows
become records for everything read: what `open` returns, run history, dead letters.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ._records import (
    Circuit,
    DeadLetter,
    RunRecord,
    RunStatus,
    Source,
    StoredState,
    Trigger,
    WorkerState,
)

_iso_cache: dict[int, tuple[datetime, str]] = {}


def iso_text(value: datetime) -> str:
    """`value.isoformat()`, remembered: a run's times are stored several times."""
    cached = _iso_cache.get(id(value))
    if cached is not None and cached[0] is value:
        return cached[1]
    if len(_iso_cache) >= 1024:
        _iso_cache.clear()
    text = value.isoformat()
    _iso_cache[id(value)] = (value, text)  # holding `value` keeps its id unique
    return text


def _datetime(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _required_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text)


def rows(conn: sqlite3.Connection, query: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
    """What `query` selects, as rows whose values are found by column name."""
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    return cursor.execute(query, args).fetchall()


def trigger_of(row: sqlite3.Row) -> Trigger:
    """A `pending` row as a trigger."""
    return Trigger(
        id=row["id"],
        worker=row["worker"],
        source=Source(row["source"]),
        payload=json.loads(row["payload"]),
        accepted_at=_required_datetime(row["accepted_at"]),
    )


def run_of(row: sqlite3.Row) -> RunRecord:
    """A `runs` row as a run."""
    trigger = Trigger(
        id=row["trigger_id"],
        worker=row["worker"],
        source=Source(row["trigger_source"]),
        payload=json.loads(row["trigger_payload"]),
        accepted_at=_required_datetime(row["trigger_accepted_at"]),
    )
    return RunRecord(
        id=row["id"],
        worker=row["worker"],
        trigger=trigger,
        status=RunStatus(row["status"]),
        started_at=_required_datetime(row["started_at"]),
        ended_at=_datetime(row["ended_at"]),
        attempts=row["attempts"],
        duration_s=row["duration_s"],
        error=row["error"],
    )


def worker_of(row: sqlite3.Row) -> WorkerState:
    """A `workers` row as a worker's state."""
    return WorkerState(
        name=row["name"],
        enabled=bool(row["enabled"]),
        circuit=Circuit(row["circuit"]),
        opened_at=_datetime(row["opened_at"]),
        consecutive_failures=row["consecutive_failures"],
        last_start=_datetime(row["last_start"]),
        last_success=_datetime(row["last_success"]),
        last_error=row["last_error"],
    )


def dead_letter_row(entry: DeadLetter) -> tuple[Any, ...]:
    """A dead letter as the values of a `dlq` row, its id left out."""
    return (
        entry.worker,
        entry.trigger_id,
        entry.source.value,
        json.dumps(entry.payload),
        entry.error,
        entry.traceback,
        entry.attempts,
        entry.started_at.isoformat(),
        entry.failed_at.isoformat(),
        entry.run_id,
    )


def dead_letter_of(row: sqlite3.Row) -> DeadLetter:
    """A `dlq` row as a dead letter."""
    return DeadLetter(
        id=row["id"],
        worker=row["worker"],
        trigger_id=row["trigger_id"],
        source=Source(row["source"]),
        payload=json.loads(row["payload"]),
        error=row["error"],
        traceback=row["traceback"],
        attempts=row["attempts"],
        started_at=_required_datetime(row["started_at"]),
        failed_at=_required_datetime(row["failed_at"]),
        run_id=row["run_id"],
    )


def load_state(conn: sqlite3.Connection) -> StoredState:
    """Everything `open` returns, read in one transaction (one consistent snapshot)."""
    conn.execute("BEGIN")
    try:
        workers = {
            w.name: w for w in map(worker_of, rows(conn, "SELECT * FROM workers"))
        }
        pending = tuple(map(trigger_of, rows(conn, "SELECT * FROM pending ORDER BY seq")))
        unfinished = tuple(
            map(run_of, rows(conn, "SELECT * FROM runs WHERE status = 'running' ORDER BY seq"))
        )
        (dlq_size,) = conn.execute("SELECT count(*) FROM dlq").fetchone()
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")  # a read: nothing to keep
    return StoredState(
        workers=workers, pending=pending, unfinished_runs=unfinished, dlq_size=dlq_size
    )
