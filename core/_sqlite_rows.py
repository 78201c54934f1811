"""Rows of the SQLite store and the records they hold, both ways.

Payloads are JSON text; datetimes ISO 8601 text with their UTC offset. Records become
rows here for the DLQ (the batch view's actions are made in `_sqlite_batch`), and rows
become records for everything read: what `open` returns, run history, dead letters.

A row that does not make a record (its payload is not JSON, its status unknown, a date
garbled, text that is not UTF-8: written by hand, by another program, or damaged on
disk) is *quarantined*: skipped and reported by table and id, and left in the file as
it is. One damaged row never hides the good ones.
"""

from __future__ import annotations

import contextlib
import enum
import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from ._detail_json import detail_of_json
from ._records import (
    Circuit,
    DeadLetter,
    RunDetailDraft,
    RunRecord,
    RunStatus,
    Source,
    StoredState,
    Trigger,
    WorkerState,
)

R = TypeVar("R")
E = TypeVar("E", bound=enum.Enum)

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


# ---------------------------------------------------------------------- reading rows


class _Damaged(Exception):
    """A value of a row that does not make a record."""

    def __init__(self, column: str, problem: str) -> None:
        super().__init__(f"{column} {problem}")


def records(
    conn: sqlite3.Connection,
    table: str,
    key: str,
    record_of: Callable[[sqlite3.Row], R],
    query: str,
    args: Sequence[Any] = (),
) -> tuple[list[R], list[str]]:
    """The records of the rows of `table` that `query` selects, in order, and one message
    per damaged row skipped, naming it by its `key` column."""
    selected, tolerant = _rows(conn, query, args)
    found: list[R] = []
    damaged: list[str] = []
    for row in selected:
        try:
            if tolerant:
                _check_text(row)
            found.append(record_of(row))
        except _Damaged as exc:
            damaged.append(f"{table} row {key} {_shown(row[key])}: {exc}")
    return found, damaged


def _rows(
    conn: sqlite3.Connection, query: str, args: Sequence[Any]
) -> tuple[list[sqlite3.Row], bool]:
    """What `query` selects, and whether text that is not UTF-8 was read as surrogates."""
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    try:
        return cursor.execute(query, args).fetchall(), False
    except sqlite3.OperationalError as exc:
        if not str(exc).startswith("Could not decode to UTF-8"):
            raise
    # A row holds bytes that are not UTF-8 where text belongs: read again, keeping those
    # as lone surrogates (which no good row holds: the writer cannot store them), so the
    # row is found out alone.
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    text_factory = conn.text_factory
    conn.text_factory = _surrogate_text
    try:
        return cursor.execute(query, args).fetchall(), True
    finally:
        conn.text_factory = text_factory


def _surrogate_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _check_text(row: sqlite3.Row) -> None:
    for column in row.keys():
        value = row[column]
        if type(value) is str:
            try:
                value.encode()
            except UnicodeEncodeError:
                raise _Damaged(column, "holds bytes that are not UTF-8 text") from None


def _shown(value: Any) -> str:
    """`value` for a message: its repr (ASCII-safe for lone surrogates), cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "NULL"
    return {bytes: "a blob", int: "an integer", float: "a real number"}.get(
        type(value), "text"
    )


def _text(row: sqlite3.Row, column: str) -> str:
    value = row[column]
    if type(value) is not str:
        raise _Damaged(column, f"is {_kind(value)}, not text")
    return value


def _optional_text(row: sqlite3.Row, column: str) -> str | None:
    return None if row[column] is None else _text(row, column)


def _integer(row: sqlite3.Row, column: str) -> int:
    value = row[column]
    if type(value) is not int:
        raise _Damaged(column, f"{_shown(value)} is not an integer")
    return value


def _seconds(row: sqlite3.Row, column: str) -> float | None:
    value = row[column]
    if value is not None and type(value) is not float and type(value) is not int:
        raise _Damaged(column, f"{_shown(value)} is not a number")
    return value


def _choice(kind: type[E], row: sqlite3.Row, column: str) -> E:
    value = row[column]
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(str(member.value) for member in kind)
        raise _Damaged(column, f"{_shown(value)} is not one of {known}") from None


def _json(row: sqlite3.Row, column: str) -> Any:
    value = row[column]
    try:
        return json.loads(value)
    except (ValueError, TypeError) as exc:
        raise _Damaged(column, f"is not JSON ({exc})") from None


def _datetime(row: sqlite3.Row, column: str) -> datetime:
    value = row[column]
    try:
        moment = datetime.fromisoformat(value)
    except (ValueError, TypeError):
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _Damaged(column, f"{_shown(value)} is not an ISO 8601 time with a UTC offset")
    return moment


def _optional_datetime(row: sqlite3.Row, column: str) -> datetime | None:
    return None if row[column] is None else _datetime(row, column)


# ---------------------------------------------------------------------- rows and records


def trigger_of(row: sqlite3.Row) -> Trigger:
    """A `pending` row as a trigger."""
    return Trigger(
        id=_text(row, "id"),
        worker=_text(row, "worker"),
        source=_choice(Source, row, "source"),
        payload=_json(row, "payload"),
        accepted_at=_datetime(row, "accepted_at"),
    )


def run_of(row: sqlite3.Row) -> RunRecord:
    """A `runs` row as a run."""
    worker = _text(row, "worker")
    trigger = Trigger(
        id=_text(row, "trigger_id"),
        worker=worker,
        source=_choice(Source, row, "trigger_source"),
        payload=_json(row, "trigger_payload"),
        accepted_at=_datetime(row, "trigger_accepted_at"),
    )
    return RunRecord(
        id=_text(row, "id"),
        worker=worker,
        trigger=trigger,
        status=_choice(RunStatus, row, "status"),
        started_at=_datetime(row, "started_at"),
        ended_at=_optional_datetime(row, "ended_at"),
        attempts=_integer(row, "attempts"),
        duration_s=_seconds(row, "duration_s"),
        error=_optional_text(row, "error"),
    )


def detail_of(row: sqlite3.Row) -> RunDetailDraft:
    """A `run_details` row as what it adds to its run."""
    attempts, logs = _json(row, "attempts"), _json(row, "logs")
    try:
        return detail_of_json(attempts, logs, _integer(row, "logs_dropped"))
    except ValueError as exc:
        raise _Damaged("run_details", str(exc)) from None


def worker_of(row: sqlite3.Row) -> WorkerState:
    """A `workers` row as a worker's state."""
    return WorkerState(
        name=_text(row, "name"),
        enabled=bool(_integer(row, "enabled")),
        circuit=_choice(Circuit, row, "circuit"),
        opened_at=_optional_datetime(row, "opened_at"),
        consecutive_failures=_integer(row, "consecutive_failures"),
        last_start=_optional_datetime(row, "last_start"),
        last_success=_optional_datetime(row, "last_success"),
        last_error=_optional_text(row, "last_error"),
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
        id=_integer(row, "id"),
        worker=_text(row, "worker"),
        trigger_id=_text(row, "trigger_id"),
        source=_choice(Source, row, "source"),
        payload=_json(row, "payload"),
        error=_text(row, "error"),
        traceback=_text(row, "traceback"),
        attempts=_integer(row, "attempts"),
        started_at=_datetime(row, "started_at"),
        failed_at=_datetime(row, "failed_at"),
        run_id=_text(row, "run_id"),
    )


def load_state(conn: sqlite3.Connection) -> StoredState:
    """Everything `open` returns, read in one transaction (one consistent snapshot)."""
    conn.execute("BEGIN")
    try:
        workers, damaged_workers = records(
            conn, "workers", "name", worker_of, "SELECT * FROM workers"
        )
        pending, damaged_pending = records(
            conn, "pending", "id", trigger_of, "SELECT * FROM pending ORDER BY seq"
        )
        unfinished, damaged_runs = records(
            conn, "runs", "id", run_of,
            "SELECT * FROM runs WHERE status = 'running' ORDER BY seq",
        )
        (dlq_size,) = conn.execute("SELECT count(*) FROM dlq").fetchone()
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")  # a read: nothing to keep
    return StoredState(
        workers={w.name: w for w in workers},
        pending=tuple(pending),
        unfinished_runs=tuple(unfinished),
        dlq_size=dlq_size,
        quarantined=(*damaged_workers, *damaged_pending, *damaged_runs),
    )
