"""The SQLite store: one file, one owner, written through one group-committing writer.

Every write is an *operation* (a function of the writer connection) put in a queue.
There is no background task: the first caller that finds no commit in progress becomes
the committer, takes everything queued and runs it in one transaction in a thread
(each operation under its own SAVEPOINT, so one failing operation does not fail the
others), commits once, and wakes the callers. Callers that arrive meanwhile wait and
are served by the next batch. So many triggers arriving together cost one commit, and
each call returns only after the commit that holds it: acknowledged means durable.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import platformdirs
import trio

from ._errors import StoreError, StoreInUse, UnknownDeadLetter
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
from ._store import DeadLetterDraft

T = TypeVar("T")

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
)

#: How long to wait for SQLite's own file locks (nobody else should hold them).
BUSY_TIMEOUT_SECONDS = 30.0


def default_store_path(config_path: Path) -> Path:
    """Where the store of a config lives unless told otherwise.

    `$XDG_STATE_HOME/jobdeck/<config name>.db` (`~/.local/state/jobdeck/...` when the
    variable is unset); the folder is not created here.
    """
    return Path(platformdirs.user_state_dir("jobdeck")) / f"{config_path.stem}.db"


def lock_path_of(path: Path) -> Path:
    """The sidecar file whose lock says which process owns the store at `path`."""
    return path.with_name(path.name + ".lock")


class _Operation:
    """One queued write: its work, then its result or error once its batch is done."""

    __slots__ = ("error", "finished", "result", "work")

    def __init__(self, work: Callable[[sqlite3.Connection], Any]) -> None:
        self.work = work
        self.finished = False
        self.result: Any = None
        self.error: BaseException | None = None

    def succeed(self, result: Any) -> None:
        self.result, self.finished = result, True

    def fail(self, error: BaseException) -> None:
        self.error, self.finished = error, True


class SQLiteStore:
    """A Store in one SQLite file (WAL), owned by one process at a time.

    Args:
        path: the database file; created (with the schema) if missing. Its folder must
            exist. A sidecar `PATH.lock` holds the owner's pid.
        history_per_worker: finished or running runs kept per worker.

    Attributes:
        commits: transactions committed so far (one per batch of writes).
        writes: write operations committed so far.
    """

    def __init__(self, path: str | os.PathLike[str], *, history_per_worker: int = 200) -> None:
        self.path = Path(path)
        self.history_per_worker = history_per_worker
        self.commits = 0
        self.writes = 0
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._queue: list[_Operation] = []
        self._committing = False
        self._progress = trio.Event()
        self._read_lock = trio.Lock()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # ------------------------------------------------------------------ open / close

    async def open(self) -> StoredState:
        """Take ownership of the store, create or migrate it, and return what it holds.

        Raises:
            StoreInUse: another process owns the store.
            StoreError: the store cannot be created, opened, read or written, is corrupt,
                is not a jobdeck store, or was written by a newer jobdeck.
        """
        if self._writer is None:
            return await trio.to_thread.run_sync(self._open_sync)
        return await self._read(_load_state)

    async def close(self) -> None:
        """Wait for queued writes to commit, then close the files and give up ownership."""
        with trio.CancelScope(shield=True):
            while self._committing or self._queue:
                if self._committing:
                    await self._progress.wait()
                else:
                    await self._commit_queued(None)
            async with self._read_lock:
                if self._writer is not None or self._lock_fd is not None:
                    await trio.to_thread.run_sync(self._close_sync)

    def _open_sync(self) -> StoredState:
        self._check_location()
        self._lock_fd = self._take_lock()
        try:
            self._writer = self._connect()
            self._prepare_writer(self._writer)
            self._reader = self._connect()
            self._reader.execute("PRAGMA query_only = ON")
            return self._translate_sync(_load_state, self._reader, "cannot be read")
        except BaseException:
            self._close_sync()
            raise

    def _close_sync(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self._reader = self._writer = None
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _check_location(self) -> None:
        folder = self.path.parent
        if self.path.is_dir():
            raise StoreError(f"store {self.path} is a directory, not a file")
        if not folder.exists():
            raise StoreError(f"store {self.path}: folder {folder} does not exist")
        if not folder.is_dir():
            raise StoreError(f"store {self.path}: {folder} is not a folder")
        if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
            raise StoreError(f"store {self.path} is not writable (read-only file)")

    def _take_lock(self) -> int:
        lock_path = lock_path_of(self.path)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if lock_path.exists():
                raise StoreError(
                    f"store {self.path}: cannot open its lock file {lock_path}: {exc.strerror}"
                ) from None
            raise StoreError(
                f"store {self.path}: folder {self.path.parent} is not writable "
                f"(cannot create {lock_path.name}: {exc.strerror})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise StoreInUse(f"store {self.path} is in use by pid {owner}") from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(
                f"store {self.path}: cannot lock {lock_path}: {exc.strerror}"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise StoreError(
                f"store {self.path}: cannot write {lock_path}: {exc.strerror}"
            ) from None
        return fd

    def _connect(self) -> sqlite3.Connection:
        try:
            # isolation_level=None: transactions are ours (BEGIN IMMEDIATE / COMMIT).
            # check_same_thread=False: trio's worker threads take turns on a connection,
            # never two at once (the committer flag and the read lock see to it).
            return sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise self._store_error("cannot be opened", exc) from None

    def _prepare_writer(self, conn: sqlite3.Connection) -> None:
        try:
            # Look before changing anything: a foreign or newer file is left as it was.
            version = self._schema_version(conn)
            (check,) = conn.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise StoreError(
                    f"store {self.path} is corrupt ({check}); move it aside to start afresh"
                )
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"store {self.path}: cannot use WAL mode (got {mode!r})")
            # FULL: a commit is on disk before the writer returns, even after power loss.
            conn.execute("PRAGMA synchronous = FULL")
            if version < len(MIGRATIONS):
                self._migrate(conn, version)
        except sqlite3.Error as exc:
            raise self._store_error("cannot be opened", exc) from None

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > len(MIGRATIONS):
            raise StoreError(
                f"store {self.path} has schema version {version}, newer than this "
                f"jobdeck knows ({len(MIGRATIONS)}): upgrade jobdeck"
            )
        if version == 0:
            (tables,) = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()
            if tables:
                raise StoreError(
                    f"store {self.path} is a SQLite database but not a jobdeck store"
                )
        return int(version)

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        """Run the migration steps after `version` and record the new version, atomically."""
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

    def _store_error(self, what: str, exc: sqlite3.Error) -> StoreError:
        name = getattr(exc, "sqlite_errorname", "")
        if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
            return StoreError(
                f"store {self.path} is corrupt or not a jobdeck store ({exc}); "
                "move it aside to start afresh"
            )
        if name == "SQLITE_READONLY":
            return StoreError(f"store {self.path} is read-only ({exc})")
        if name == "SQLITE_FULL":
            return StoreError(f"store {self.path}: disk full ({exc})")
        return StoreError(f"store {self.path} {what}: {exc}")

    def _translate_sync(
        self, work: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection, what: str
    ) -> T:
        try:
            return work(conn)
        except sqlite3.Error as exc:
            raise self._store_error(what, exc) from None

    # ------------------------------------------------------------------ the writer

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in the next committed batch; return once that batch is on disk."""
        self._require_open()
        op = _Operation(work)
        self._queue.append(op)
        try:
            while not op.finished:
                if self._committing:
                    await self._progress.wait()
                else:
                    await self._commit_queued(op)
        except BaseException:
            # Cancelled before its batch was taken: it is not written at all.
            with contextlib.suppress(ValueError):
                self._queue.remove(op)
            raise
        if op.error is not None:
            raise op.error
        result: T = op.result
        return result

    async def _commit_queued(self, mine: _Operation | None) -> None:
        """Commit queued batches until `mine` is done (all of them if None), then step down.

        Stepping down as soon as our own operation is done hands the committer's job to
        a waiting caller, so no caller serves others for ever.
        """
        self._committing = True
        try:
            # Let callers ready in this same scheduling round join the first batch.
            await trio.lowlevel.checkpoint()
            while self._queue and (mine is None or not mine.finished):
                batch, self._queue = self._queue, []
                try:
                    await trio.to_thread.run_sync(self._commit_batch, batch)
                finally:
                    # Cancelled before the thread ran: the batch goes back, in order.
                    self._queue[:0] = [op for op in batch if not op.finished]
                    self._signal_progress()
        finally:
            self._committing = False
            self._signal_progress()

    def _signal_progress(self) -> None:
        progress, self._progress = self._progress, trio.Event()
        progress.set()

    def _commit_batch(self, batch: list[_Operation]) -> None:
        """In a thread: run every operation of `batch` in one transaction, commit once."""
        conn = self._writer
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for op in batch:
                op.fail(self._store_error("cannot be written", exc))
            return
        done: list[tuple[_Operation, Any]] = []
        for index, op in enumerate(batch):
            try:
                conn.execute("SAVEPOINT op")
                result = op.work(conn)
                conn.execute("RELEASE op")
            except Exception as exc:
                failure: Exception = exc
                if isinstance(exc, sqlite3.Error):
                    failure = self._store_error("cannot be written", exc)
                if not self._roll_back_to_savepoint(conn):
                    # SQLite dropped the whole transaction (disk full, I/O error):
                    # nothing of this batch is stored, so every operation fails.
                    for other in [o for o, _ in done] + batch[index + 1 :]:
                        other.fail(StoreError(str(failure)))
                    op.fail(failure)
                    return
                op.fail(failure)
            else:
                done.append((op, result))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            for op, _ in done:
                op.fail(self._store_error("cannot be written", exc))
            return
        self.commits += 1
        self.writes += len(done)
        for op, result in done:
            op.succeed(result)

    @staticmethod
    def _roll_back_to_savepoint(conn: sqlite3.Connection) -> bool:
        if not conn.in_transaction:
            return False
        try:
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            return False
        return True

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        self._require_open()
        async with self._read_lock:
            reader = self._reader
            if reader is None:
                raise StoreError(f"store {self.path} is closed")
            return await trio.to_thread.run_sync(
                self._translate_sync, work, reader, "cannot be read"
            )

    def _require_open(self) -> None:
        if self._writer is None:
            raise StoreError(f"store {self.path} is not open")

    # ------------------------------------------------------------------ the protocol

    async def add_trigger(self, trigger: Trigger) -> None:
        row = _trigger_row(trigger)
        await self._write(lambda conn: _put_trigger(conn, row))

    async def start_run(self, run: RunRecord) -> None:
        row = _run_row(run)
        keep = self.history_per_worker
        await self._write(lambda conn: _put_run(conn, row, keep))

    async def finish_run(
        self,
        run: RunRecord,
        *,
        worker: WorkerState,
        requeue: bool = False,
        dead_letter: DeadLetterDraft | None = None,
        triggers: Sequence[Trigger] = (),
    ) -> int | None:
        run_row = _run_row(run)
        worker_row = _worker_row(worker)
        trigger_rows = [_trigger_row(t) for t in triggers]
        own_trigger = _trigger_row(run.trigger)
        dlq_row = _dead_letter_row(dead_letter.with_id(0, run)) if dead_letter else None
        keep = self.history_per_worker

        def work(conn: sqlite3.Connection) -> int | None:
            _put_run(conn, run_row, keep)
            for row in trigger_rows:
                _put_trigger(conn, row)
            if requeue:
                conn.execute(
                    "INSERT OR IGNORE INTO pending (id, worker, source, payload, accepted_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    own_trigger,
                )
            else:
                conn.execute("DELETE FROM pending WHERE id = ?", (run.trigger.id,))
            _put_worker(conn, worker_row)
            if dlq_row is None:
                return None
            cursor = conn.execute(
                "INSERT INTO dlq (worker, trigger_id, source, payload, error, traceback,"
                " attempts, started_at, failed_at, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                dlq_row,
            )
            return cursor.lastrowid

        return await self._write(work)

    async def save_worker(self, state: WorkerState) -> None:
        row = _worker_row(state)
        await self._write(lambda conn: _put_worker(conn, row))

    async def runs(self, worker: str | None = None, limit: int = 50) -> list[RunRecord]:
        # Newest start first; equal starts in the order stored, as the memory store does.
        if worker is None:
            query, args = "SELECT * FROM runs ORDER BY started_ts DESC, seq LIMIT ?", (limit,)
        else:
            query = "SELECT * FROM runs WHERE worker = ? ORDER BY started_ts DESC, seq LIMIT ?"
            args = (worker, limit)  # type: ignore[assignment]
        return await self._read(lambda conn: [_run_of(r) for r in _rows(conn, query, args)])

    async def dlq_list(self, limit: int | None = None) -> list[DeadLetter]:
        count = -1 if limit is None else limit
        return await self._read(
            lambda conn: [
                _dead_letter_of(r)
                for r in _rows(conn, "SELECT * FROM dlq ORDER BY id DESC LIMIT ?", (count,))
            ]
        )

    async def dlq_get(self, entry_id: int) -> DeadLetter:
        rows = await self._read(
            lambda conn: _rows(conn, "SELECT * FROM dlq WHERE id = ?", (entry_id,))
        )
        if not rows:
            raise UnknownDeadLetter(entry_id)
        return _dead_letter_of(rows[0])

    async def dlq_replay(self, entry_id: int, trigger: Trigger) -> None:
        row = _trigger_row(trigger)

        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM dlq WHERE id = ?", (entry_id,)).rowcount == 0:
                raise UnknownDeadLetter(entry_id)
            _put_trigger(conn, row)

        await self._write(work)

    async def dlq_delete(self, entry_id: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM dlq WHERE id = ?", (entry_id,)).rowcount == 0:
                raise UnknownDeadLetter(entry_id)

        await self._write(work)

    async def dlq_purge(self) -> int:
        return await self._write(lambda conn: conn.execute("DELETE FROM dlq").rowcount)


def _read_owner(fd: int) -> str:
    """The pid in a held lock file; the owner writes it just after locking, so retry briefly."""
    for _ in range(50):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.01)
    return "(unknown)"


# ---------------------------------------------------------------------- rows and records
#
# Payloads are JSON text; datetimes ISO 8601 text with their UTC offset.


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _datetime(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _required_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _rows(conn: sqlite3.Connection, query: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    return cursor.execute(query, args).fetchall()


def _trigger_row(trigger: Trigger) -> tuple[Any, ...]:
    return (
        trigger.id,
        trigger.worker,
        trigger.source.value,
        json.dumps(trigger.payload),
        trigger.accepted_at.isoformat(),
    )


def _put_trigger(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    conn.execute(
        "INSERT INTO pending (id, worker, source, payload, accepted_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET worker = excluded.worker, source = excluded.source,"
        " payload = excluded.payload, accepted_at = excluded.accepted_at",
        row,
    )


def _trigger_of(row: sqlite3.Row) -> Trigger:
    return Trigger(
        id=row["id"],
        worker=row["worker"],
        source=Source(row["source"]),
        payload=json.loads(row["payload"]),
        accepted_at=_required_datetime(row["accepted_at"]),
    )


def _run_row(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "worker": run.worker,
        "trigger_id": run.trigger.id,
        "trigger_source": run.trigger.source.value,
        "trigger_payload": json.dumps(run.trigger.payload),
        "trigger_accepted_at": run.trigger.accepted_at.isoformat(),
        "status": run.status.value,
        "started_at": run.started_at.isoformat(),
        "started_ts": run.started_at.timestamp(),
        "ended_at": _iso(run.ended_at),
        "attempts": run.attempts,
        "duration_s": run.duration_s,
        "error": run.error,
    }


_RUN_COLUMNS = (
    "id", "worker", "trigger_id", "trigger_source", "trigger_payload", "trigger_accepted_at",
    "status", "started_at", "started_ts", "ended_at", "attempts", "duration_s", "error",
)
_PUT_RUN = (
    f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)})"
    f" VALUES ({', '.join(':' + c for c in _RUN_COLUMNS)})"
    " ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _RUN_COLUMNS if c != "id")
)


def _put_run(conn: sqlite3.Connection, row: dict[str, Any], keep: int) -> None:
    conn.execute(_PUT_RUN, row)
    # Keep the newest `keep` runs of this worker (by the order they were first stored).
    conn.execute(
        "DELETE FROM runs WHERE worker = :worker AND seq <= (SELECT seq FROM runs"
        " WHERE worker = :worker ORDER BY seq DESC LIMIT 1 OFFSET :keep)",
        {"worker": row["worker"], "keep": keep},
    )


def _run_of(row: sqlite3.Row) -> RunRecord:
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


def _worker_row(state: WorkerState) -> tuple[Any, ...]:
    return (
        state.name,
        int(state.enabled),
        state.circuit.value,
        _iso(state.opened_at),
        state.consecutive_failures,
        _iso(state.last_start),
        _iso(state.last_success),
        state.last_error,
    )


def _put_worker(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    conn.execute("INSERT OR REPLACE INTO workers VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)


def _worker_of(row: sqlite3.Row) -> WorkerState:
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


def _dead_letter_row(entry: DeadLetter) -> tuple[Any, ...]:
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


def _dead_letter_of(row: sqlite3.Row) -> DeadLetter:
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


def _load_state(conn: sqlite3.Connection) -> StoredState:
    """Everything `open` returns, read in one transaction (one consistent snapshot)."""
    conn.execute("BEGIN")
    try:
        workers = {
            w.name: w for w in map(_worker_of, _rows(conn, "SELECT * FROM workers"))
        }
        pending = tuple(map(_trigger_of, _rows(conn, "SELECT * FROM pending ORDER BY seq")))
        unfinished = tuple(
            map(_run_of, _rows(conn, "SELECT * FROM runs WHERE status = 'running' ORDER BY seq"))
        )
        (dlq_size,) = conn.execute("SELECT count(*) FROM dlq").fetchone()
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")  # a read: nothing to keep
    return StoredState(
        workers=workers, pending=pending, unfinished_runs=unfinished, dlq_size=dlq_size
    )
