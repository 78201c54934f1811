"""Rows and statements the PostgreSQL store and the cluster's coordinator share.

Kept apart from `_pg_store` so the coordinator and membership modules need not import
the store that builds them (no import circle).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from ._pg_schema import CHANNEL
from ._records import Circuit, WorkerState

WORKER_COLUMNS = (
    "name, enabled, circuit, opened_at, consecutive_failures, last_start, last_success,"
    " last_error"
)


def worker_state_of(row: Sequence[Any]) -> WorkerState:
    name, enabled, circuit, opened_at, failures, last_start, last_success, last_error = row
    return WorkerState(
        name=name, enabled=enabled, circuit=Circuit(circuit), opened_at=opened_at,
        consecutive_failures=failures, last_start=last_start, last_success=last_success,
        last_error=last_error,
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
