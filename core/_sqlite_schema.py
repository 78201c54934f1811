"""The SQLite store's schema: its migrations, and bringing a store file up to date.

The schema's version is the file's `PRAGMA user_version`: 0 for a new, empty file,
N once the first N steps of `MIGRATIONS` have run. Opening a store of an older version
runs the missing steps in one transaction; a newer or foreign file is refused untouched.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from ._errors import StoreError

#: Schema migrations: step N (1-based) brings a store from version N-1 to N. Append new
#: steps, never edit old ones: a store file of any older version is migrated forward.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the initial schema.
    (
        """CREATE TABLE workers (
            name TEXT PRIMARY KEY,
            enabled INTEGER NOT NULL,
            circuit TEXT NOT NULL,
            opened_at TEXT,
            consecutive_failures INTEGER NOT NULL,
            last_start TEXT,
            last_success TEXT,
            last_error TEXT
        )""",
        # seq keeps the order of acceptance; an upsert keeps a trigger's place.
        """CREATE TABLE pending (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            worker TEXT NOT NULL,
            source TEXT NOT NULL,
            payload TEXT NOT NULL,
            accepted_at TEXT NOT NULL
        )""",
        """CREATE TABLE runs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            worker TEXT NOT NULL,
            trigger_id TEXT NOT NULL,
            trigger_source TEXT NOT NULL,
            trigger_payload TEXT NOT NULL,
            trigger_accepted_at TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at TEXT NOT NULL,
            started_ts REAL NOT NULL,
            ended_at TEXT,
            attempts INTEGER NOT NULL,
            duration_s REAL,
            error TEXT
        )""",
        "CREATE INDEX runs_by_worker ON runs (worker, seq)",
        "CREATE INDEX runs_by_start ON runs (started_ts)",
        "CREATE INDEX runs_running ON runs (status) WHERE status = 'running'",
        # AUTOINCREMENT: an id is never reused, so an old id never names another entry.
        """CREATE TABLE dlq (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            worker TEXT NOT NULL,
            trigger_id TEXT NOT NULL,
            source TEXT NOT NULL,
            payload TEXT NOT NULL,
            error TEXT NOT NULL,
            traceback TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            failed_at TEXT NOT NULL,
            run_id TEXT NOT NULL
        )""",
    ),
    # 2: what a run's end stores besides its record: its attempts and its own log lines
    # (JSON), kept for the newest `history_per_worker` runs of each worker that have any.
    (
        """CREATE TABLE run_details (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL UNIQUE,
            worker TEXT NOT NULL,
            attempts TEXT NOT NULL,
            logs TEXT NOT NULL,
            logs_dropped INTEGER NOT NULL
        )""",
        "CREATE INDEX run_details_by_worker ON run_details (worker, seq)",
    ),
)


def schema_version(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of the store file `path` that `conn` has open, changing nothing.

    Raises:
        StoreError: the file was written by a newer jobdeck, or is a SQLite database
            that is not a jobdeck store.
    """
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise StoreError(
            f"store {path} has schema version {version}, newer than this "
            f"jobdeck knows ({len(MIGRATIONS)}): upgrade jobdeck"
        )
    if version == 0:
        (tables,) = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
        ).fetchone()
        if tables:
            raise StoreError(f"store {path} is a SQLite database but not a jobdeck store")
    return int(version)


def migrate_forward(conn: sqlite3.Connection, version: int) -> None:
    """Run the migration steps after `version` and record the new version, atomically.

    A store already at the latest version is left as it is (no transaction at all).
    """
    if version >= len(MIGRATIONS):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for step in MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        # PRAGMA takes no parameters; the value is our own integer.
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
