"""Batch encoding: the SQLite store's writes as rows of one INSERT.

The writer connection has a TEMP view, `batch`, whose INSTEAD OF triggers turn each
row inserted into it into writes: an *action*. Column `k` says which action, v1..v21
are its values, and bit n of `z` says that vn is NULL (the value bound is then 0: the
sqlite3 module binds None several times slower than an int; unused values are 0 too).
A batch of operations is one INSERT of all their actions, applied in order, each
exactly as if written alone, by SQLite without Python: the writer thread needs the
GIL once per batch, not once per statement. Padding rows (k = 0) do nothing; they
round a statement's size up to a power of two, so a few prepared statements serve.

Actions are made on the trio thread for every write (`trigger_action`, `run_action`,
`worker_action`, `finish_actions`) and applied by the writer thread (`actions_statement`,
`run_actions`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from itertools import chain
from typing import Any

from ._detail_json import attempts_text, logs_text
from ._records import RunDetailDraft, RunRecord, Trigger, WorkerState
from ._sqlite_rows import iso_text

_VALUES = 21
ACTION_WIDTH = 2 + _VALUES  # k, z, v1..v21

#: v1..v5: a pending trigger's id, worker, source, payload, accepted_at.
PUT_TRIGGER = 1
#: v1: a trigger id.
_DELETE_TRIGGER = 2
#: v1..v5 as PUT_TRIGGER, stored only if no trigger has that id (a requeue).
_KEEP_TRIGGER = 3
#: v1..v13: the `_RUN_COLUMNS`; then the worker's history is trimmed.
_PUT_RUN = 4
#: v1..v8: a `workers` row.
_PUT_WORKER = 5
#: A run's end: _PUT_RUN's v1..v13; v14 flags (1: requeue its trigger, else remove it;
#: 2: store v15..v21 as the state of the run's worker, the rest of a `workers` row).
_FINISH_RUN = 6
_REQUEUE, _WITH_WORKER = 1, 2
#: A run's detail: v1 run id, v2 worker, v3 attempts, v4 log lines (JSON), v5 lines
#: dropped; then the worker's details beyond the history limit go.
_PUT_DETAIL = 7

_RUN_COLUMNS = (
    "id", "worker", "trigger_id", "trigger_source", "trigger_payload", "trigger_accepted_at",
    "status", "started_at", "started_ts", "ended_at", "attempts", "duration_s", "error",
)
_PENDING_COLUMNS = "pending (id, worker, source, payload, accepted_at)"


def _new(number: int, nullable: bool = False) -> str:
    """Value `number` of the action, in a trigger; NULL if so flagged in z."""
    if nullable:
        return f"CASE WHEN NEW.z & {1 << number} THEN NULL ELSE NEW.v{number} END"
    return f"NEW.v{number}"


def _news(numbers: Sequence[int], nullable: Sequence[int] = ()) -> str:
    return ", ".join(_new(n, n in nullable) for n in numbers)


_NULLABLE_RUN_VALUES = (10, 12, 13)
#: What a run's end changes; the other columns say which run it is.
_RUN_END_COLUMNS = ("status", "ended_at", "attempts", "duration_s", "error")


def _run_value(column: str) -> str:
    number = _RUN_COLUMNS.index(column) + 1
    return _new(number, number in _NULLABLE_RUN_VALUES)


def _upsert_run(source: str) -> str:
    return (
        f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) {source} ON CONFLICT (id) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in _RUN_COLUMNS if c != "id")
        + ";"
    )


_RUN_VALUES = _news(range(1, 14), _NULLABLE_RUN_VALUES)
# Keeping the newest `history_limit` runs of a worker (by first store): those at or
# before the one that many places below its newest go. `trimmed`: the workers trimmed
# since the limit was set. (A bound that is NULL is an empty range, read at no cost.)
_OLDEST_KEPT = (
    "(SELECT seq FROM runs WHERE worker = NEW.v2"
    " ORDER BY seq DESC LIMIT 1 OFFSET (SELECT n FROM history_limit))"
)
_TRIMMED = " INSERT OR IGNORE INTO trimmed VALUES (NEW.v2);"

#: _PUT_RUN, a run's start (normally a new run): the run, then its worker's history trimmed.
_START_RUN_SQL = (
    _upsert_run(f"VALUES ({_RUN_VALUES})")
    + f" DELETE FROM runs WHERE worker = NEW.v2 AND seq <= {_OLDEST_KEPT};"
    + _TRIMMED
)

#: _FINISH_RUN's run, a run's end (normally of a run stored): the same.
_END_RUN_SQL = (
    # Stored before as the same run (worker, trigger, start): set what its end changes,
    # touching no index but the one on status.
    "UPDATE runs SET "
    + ", ".join(f"{c} = {_run_value(c)}" for c in _RUN_END_COLUMNS)
    + " WHERE "
    + " AND ".join(f"{c} = {_run_value(c)}" for c in _RUN_COLUMNS if c not in _RUN_END_COLUMNS)
    # Otherwise the whole run (not stored, or, never in practice, stored as another).
    + "; "
    + _upsert_run(f"SELECT {_RUN_VALUES} WHERE changes() = 0")
    # A run set in place leaves its worker's history as long as it was: if trimmed
    # since the limit was set, there is nothing to trim.
    + " DELETE FROM runs WHERE worker = NEW.v2 AND seq <= CASE WHEN changes() > 0"
    f" OR NOT EXISTS (SELECT 1 FROM trimmed WHERE worker = NEW.v2) THEN {_OLDEST_KEPT} END;"
    + _TRIMMED
)

_WORKER_UPSERT = " ON CONFLICT (name) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}"
    for c in (
        "enabled", "circuit", "opened_at", "consecutive_failures", "last_start",
        "last_success", "last_error",
    )
)


def _instead(name: str, kind: int, body: str) -> str:
    # Unqualified names in a TEMP trigger find the store's tables (main).
    return (
        f"CREATE TEMP TRIGGER batch_{name} INSTEAD OF INSERT ON batch"
        f" WHEN NEW.k = {kind} BEGIN {body} END"
    )


#: Made on the writer connection when it opens (after any migration).
_BATCH_VIEW = (
    "PRAGMA temp_store = MEMORY",
    "CREATE TEMP TABLE history_limit (n INTEGER NOT NULL)",
    "CREATE TEMP TABLE trimmed (worker TEXT PRIMARY KEY) WITHOUT ROWID",
    "CREATE TEMP VIEW batch AS SELECT 0 AS k, 0 AS z, "
    + ", ".join(f"0 AS v{n}" for n in range(1, _VALUES + 1))
    + " WHERE 0",
    _instead(
        "put_trigger", PUT_TRIGGER,
        f"INSERT INTO {_PENDING_COLUMNS} VALUES ({_news(range(1, 6))})"
        " ON CONFLICT (id) DO UPDATE SET worker = excluded.worker, source = excluded.source,"
        " payload = excluded.payload, accepted_at = excluded.accepted_at;",
    ),
    _instead("delete_trigger", _DELETE_TRIGGER, "DELETE FROM pending WHERE id = NEW.v1;"),
    _instead(
        "keep_trigger", _KEEP_TRIGGER,
        f"INSERT OR IGNORE INTO {_PENDING_COLUMNS} VALUES ({_news(range(1, 6))});",
    ),
    _instead("put_run", _PUT_RUN, _START_RUN_SQL),
    _instead(
        "put_worker", _PUT_WORKER,
        f"INSERT INTO workers VALUES ({_news(range(1, 9), (4, 6, 7, 8))}){_WORKER_UPSERT};",
    ),
    _instead(
        "put_detail", _PUT_DETAIL,
        "INSERT OR REPLACE INTO run_details (run_id, worker, attempts, logs, logs_dropped)"
        f" VALUES ({_news(range(1, 6))});"
        " DELETE FROM run_details WHERE worker = NEW.v2 AND seq <= (SELECT seq FROM"
        " run_details WHERE worker = NEW.v2 ORDER BY seq DESC LIMIT 1"
        " OFFSET (SELECT n FROM history_limit));",
    ),
    _instead(
        "finish_run", _FINISH_RUN,
        _END_RUN_SQL
        + f" DELETE FROM pending WHERE id = NEW.v3 AND NOT NEW.v14 & {_REQUEUE};"
        f" INSERT OR IGNORE INTO {_PENDING_COLUMNS}"
        f" SELECT NEW.v3, NEW.v2, NEW.v4, NEW.v5, NEW.v6 WHERE NEW.v14 & {_REQUEUE};"
        f" INSERT INTO workers SELECT NEW.v2, {_news(range(15, 22), (17, 19, 20, 21))}"
        f" WHERE NEW.v14 & {_WITH_WORKER}{_WORKER_UPSERT};",
    ),
)



def create_batch_view(conn: sqlite3.Connection, history_limit: int) -> int:
    """Make the batch view on the writer connection (after any migration).

    Returns:
        The most actions one statement may insert (SQLite's limit on parameters).
    """
    for statement in _BATCH_VIEW:
        conn.execute(statement)
    conn.execute("INSERT INTO history_limit VALUES (?)", (history_limit,))
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, limit // ACTION_WIDTH)


def set_history_limit(conn: sqlite3.Connection, history_limit: int) -> None:
    """Keep `history_limit` runs per worker from the next action on."""
    conn.execute("UPDATE history_limit SET n = ?", (history_limit,))
    conn.execute("DELETE FROM trimmed")


_PADDING = (0,) * ACTION_WIDTH
_inserts: dict[int, str] = {}


def _insert_actions(rows: int) -> str:
    """The statement inserting `rows` actions into the batch view."""
    text = _inserts.get(rows)
    if text is None:
        row = "(" + ", ".join("?" * ACTION_WIDTH) + ")"
        text = _inserts[rows] = "INSERT INTO batch VALUES " + ", ".join([row] * rows)
    return text


def _padded(rows: int, max_rows: int) -> int:
    """The statement size for `rows` actions: the next of 1, 2, 3, 4, 6, 8, 12, 16, 24..."""
    size = 1 << (rows - 1).bit_length()
    if size >= 4 and rows <= size * 3 // 4:
        size = size * 3 // 4
    return min(size, max_rows)


def actions_statement(actions: list[Any], max_rows: int) -> tuple[str, list[Any]]:
    """The statement applying `actions` (at most `max_rows`), padding `actions` in place."""
    rows = len(actions) // ACTION_WIDTH
    size = _padded(rows, max_rows)
    actions += _PADDING * (size - rows)
    return _insert_actions(size), actions


def run_actions(conn: sqlite3.Connection, actions: Sequence[Any], max_rows: int) -> None:
    """Apply `actions` (flat, `ACTION_WIDTH` values each), `max_rows` per statement."""
    width = ACTION_WIDTH
    rows = len(actions) // width
    for first in range(0, rows, max_rows):
        part = list(actions[first * width : min(rows, first + max_rows) * width])
        conn.execute(*actions_statement(part, max_rows))


# Actions are made on the trio thread for every write: plain tuples, enum values read
# as `_value_` (the `value` property is several times slower).


def trigger_action(kind: int, trigger: Trigger) -> tuple[Any, ...]:
    payload = trigger.payload
    return (
        kind, 0, trigger.id, trigger.worker, trigger.source._value_,
        "null" if payload is None else json.dumps(payload), iso_text(trigger.accepted_at),
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    )  # fmt: skip


def run_action(run: RunRecord) -> tuple[Any, ...]:
    """_PUT_RUN: the values of `_RUN_COLUMNS`."""
    trigger, payload = run.trigger, run.trigger.payload
    started, ended, duration, error = run.started_at, run.ended_at, run.duration_s, run.error
    nulls = (ended is None) << 10 | (duration is None) << 12 | (error is None) << 13
    return (
        _PUT_RUN, nulls,
        run.id, run.worker, trigger.id, trigger.source._value_,
        "null" if payload is None else json.dumps(payload), iso_text(trigger.accepted_at),
        run.status._value_, iso_text(started), started.timestamp(),
        0 if ended is None else iso_text(ended), run.attempts,
        0 if duration is None else duration, 0 if error is None else error,
        0, 0, 0, 0, 0, 0, 0, 0,
    )  # fmt: skip


def worker_action(state: WorkerState) -> tuple[Any, ...]:
    """_PUT_WORKER: a `workers` row."""
    opened, last_start, last_success = state.opened_at, state.last_start, state.last_success
    error = state.last_error
    nulls = (
        (opened is None) << 4 | (last_start is None) << 6 | (last_success is None) << 7
        | (error is None) << 8
    )
    return (
        _PUT_WORKER, nulls,
        state.name, int(state.enabled), state.circuit._value_,
        0 if opened is None else iso_text(opened), state.consecutive_failures,
        0 if last_start is None else iso_text(last_start),
        0 if last_success is None else iso_text(last_success),
        0 if error is None else error,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    )  # fmt: skip


def finish_actions(
    run: RunRecord,
    worker: WorkerState,
    requeue: bool,
    triggers: Sequence[Trigger] = (),
    detail: RunDetailDraft | None = None,
) -> tuple[Any, ...]:
    """A run's end: the `triggers` it causes, then the run's own actions (and its detail,
    in the same statement: one transaction)."""
    actions = _run_end_actions(run, worker, requeue)
    if detail is not None:
        actions += (
            _PUT_DETAIL, 0, run.id, run.worker, attempts_text(detail.attempts),
            logs_text(detail.logs), detail.logs_dropped,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        )  # fmt: skip
    if triggers:
        return tuple(
            chain.from_iterable([trigger_action(PUT_TRIGGER, t) for t in triggers])
        ) + actions
    return actions


def _run_end_actions(run: RunRecord, worker: WorkerState, requeue: bool) -> tuple[Any, ...]:
    """A run's end: its new state, its trigger removed (or kept), its worker's state."""
    trigger = run.trigger
    if worker.name != run.worker or trigger.worker != run.worker:
        # A worker state or trigger of another worker (never, from the orchestrator).
        own = trigger_action(_KEEP_TRIGGER if requeue else _DELETE_TRIGGER, trigger)
        return run_action(run) + own + worker_action(worker)
    payload = trigger.payload
    started, ended, duration, error = run.started_at, run.ended_at, run.duration_s, run.error
    opened, last_start, last_success = worker.opened_at, worker.last_start, worker.last_success
    last_error = worker.last_error
    nulls = (
        (ended is None) << 10 | (duration is None) << 12 | (error is None) << 13
        | (opened is None) << 17 | (last_start is None) << 19 | (last_success is None) << 20
        | (last_error is None) << 21
    )
    return (
        _FINISH_RUN, nulls,
        run.id, run.worker, trigger.id, trigger.source._value_,
        "null" if payload is None else json.dumps(payload), iso_text(trigger.accepted_at),
        run.status._value_, iso_text(started), started.timestamp(),
        0 if ended is None else iso_text(ended), run.attempts,
        0 if duration is None else duration, 0 if error is None else error,
        _WITH_WORKER | (_REQUEUE if requeue else 0),
        int(worker.enabled), worker.circuit._value_,
        0 if opened is None else iso_text(opened), worker.consecutive_failures,
        0 if last_start is None else iso_text(last_start),
        0 if last_success is None else iso_text(last_success),
        0 if last_error is None else last_error,
    )  # fmt: skip
