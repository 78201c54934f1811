"""The SQLite store: one file, one owner, written through one group-committing writer.

Every write is an *operation* put in a queue. One writer thread, started by `open` and
stopped by `close`, takes everything queued, runs it in one transaction, commits once
and hands the batch back to the trio thread, which wakes each of its callers once; then
it takes what was queued meanwhile. So the trio side gathers the next batch while the
writer commits the previous one, many writes arriving together cost one commit, and
each call returns only after the commit that holds it: acknowledged means durable.

A batch is first written the cheap way: the common operations (triggers, run starts and
ends, worker states) are rows of a TEMP view whose triggers do the writes, so a batch of
them is a single INSERT, its own transaction, and the writer thread needs the GIL once
per batch rather than per statement (the trio thread runs meanwhile); a batch with other
operations runs them one after another in one transaction. If anything fails, it is
rolled back and the batch runs again with a SAVEPOINT per operation, so one failing
operation fails only its own caller.

A caller cancelled while its operation is still queued takes it out: it is not written.
One cancelled after the writer took its operation returns at once; that write may
still be committed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import chain
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

_current_task = trio.lowlevel.current_task
_wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled

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

#: A batch taken by an idle writer is committed in two halves if each has this many.
SPLIT_AT = 16


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
    """One queued write: its effect, then its result or error once its batch is done.

    The effect is `actions` (rows for the batch view, its triggers apply them in order),
    then `work` (a function of the writer connection) if any. A batch of operations
    without `work` is written by a single statement. `task` is the caller to wake (None
    once woken or gone); `dropped` says that its caller was cancelled before the writer
    took the operation.
    """

    __slots__ = ("actions", "dropped", "error", "generation", "result", "task", "work")

    def __init__(
        self,
        actions: tuple[Any, ...] = (),
        work: Callable[[sqlite3.Connection], Any] | None = None,
    ) -> None:
        self.actions = actions
        self.work = work
        self.task: trio.lowlevel.Task | None = None
        self.generation = 0
        self.dropped = False
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self, conn: sqlite3.Connection, max_rows: int) -> Any:
        """Write this operation alone (within the writer's transaction)."""
        if self.actions:
            _run_actions(conn, self.actions, max_rows)
        return None if self.work is None else self.work(conn)


class SQLiteStore:
    """A Store in one SQLite file (WAL), owned by one process at a time.

    Args:
        path: the database file; created (with the schema) if missing. Its folder must
            exist. A sidecar `PATH.lock` holds the owner's pid.
        history_per_worker: finished or running runs kept per worker.

    Attributes:
        commits: transactions committed so far (one per batch of writes).
        writes: write operations committed so far.

    Its writes go through a thread started by `open` that wakes their callers through
    the trio run that called `open`: a store is used within that run, and closed in it.
    """

    def __init__(self, path: str | os.PathLike[str], *, history_per_worker: int = 200) -> None:
        self.path = Path(path)
        self.history_per_worker = history_per_worker
        self.commits = 0
        self.writes = 0
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._read_lock = trio.Lock()
        # The writer thread and what it shares with the trio thread (under `_lock`):
        # the queue, whether the writer waits for work, and how many batches it took.
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._queue: list[_Operation] = []
        self._queued_actions: list[Any] = []  # the actions of the queue, if all it has
        self._queue_is_actions = True  # no `work`, no dropped operation in the queue
        self._idle = False
        self._generation = 0
        self._max_rows = 1  # actions per statement (the writer's limit on parameters)
        self._history_limit = history_per_worker
        self._stopping = False
        self._stopped = True

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
            state = await trio.to_thread.run_sync(self._open_sync)
            self._start_writer()
            return state
        return await self._read(_load_state)

    async def close(self) -> None:
        """Wait for queued writes to commit, then close the files and give up ownership."""
        with trio.CancelScope(shield=True):
            thread = self._thread
            if thread is not None:
                with self._lock:
                    self._stopping = True
                    self._wakeup.notify()
                await trio.to_thread.run_sync(thread.join)
                self._thread = None
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
            # check_same_thread=False: threads take turns on a connection, never two at
            # once (the writer thread runs between `open` and `close`; the read lock).
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
            for statement in _BATCH_SCHEMA:
                conn.execute(statement)
            conn.execute("INSERT INTO history_limit VALUES (?)", (self.history_per_worker,))
            self._history_limit = self.history_per_worker
            limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
            self._max_rows = max(1, limit // _ACTION_WIDTH)
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

    def _start_writer(self) -> None:
        token = trio.lowlevel.current_trio_token()
        with self._lock:
            self._stopping = self._stopped = False
        self._thread = threading.Thread(
            target=self._writer_loop, args=(token,), name=f"jobdeck writer {self.path.name}",
            daemon=True,
        )
        self._thread.start()

    async def _write(self, op: _Operation) -> Any:
        """Queue `op` for the writer; return its result once its batch is on disk."""
        if self._writer is None:
            raise StoreError(f"store {self.path} is not open")
        op.task = _current_task()
        with self._lock:
            if self._stopped:
                raise StoreError(f"store {self.path} is not open")
            op.generation = self._generation
            self._queue.append(op)
            if op.work is None:
                self._queued_actions += op.actions
            else:
                self._queue_is_actions = False
            if self._idle:
                self._idle = False
                self._wakeup.notify()

        def abort(_: Any) -> trio.lowlevel.Abort:
            op.task = None
            with self._lock:
                if op.generation == self._generation:
                    # Not taken yet: the writer skips it, so it is not written at all.
                    op.dropped = True
                    self._queue_is_actions = False
            return trio.lowlevel.Abort.SUCCEEDED

        await _wait_task_rescheduled(abort)
        if op.error is not None:
            raise op.error
        return op.result

    def _writer_loop(self, token: trio.lowlevel.TrioToken) -> None:
        """The writer thread: commit what is queued, batch after batch, until `close`.

        The callers of a committed batch are woken once the next batch is ready to go:
        the trio thread, woken, waits for the GIL the writer holds until then.
        """
        committed: list[_Operation] | None = None

        def wake() -> None:
            nonlocal committed
            if committed is not None:
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(self._wake_callers, committed)
                committed = None

        while True:
            with self._lock:
                if not self._queue:
                    wake()  # nothing to get ready meanwhile
                waited = False
                while not self._queue and not self._stopping:
                    self._idle = waited = True
                    self._wakeup.wait()
                self._idle = False
                if not self._queue:
                    self._stopped = True
                    return
                batch, self._queue = self._queue, []
                actions: list[Any] | None = self._queued_actions
                if not self._queue_is_actions:
                    actions = None
                    batch = [op for op in batch if not op.dropped]
                self._queued_actions, self._queue_is_actions = [], True
                self._generation += 1
            if waited and len(batch) >= 2 * SPLIT_AT:
                # Everything queued came at once while the writer waited: commit it in
                # two halves, so the trio thread handles the first while the second is
                # committed (then, batch after batch, the two halves keep taking turns).
                half = len(batch) // 2
                self._commit_safely(batch[:half], None, wake)
                wake()
                committed = batch[:half]
                batch, actions = batch[half:], None
            if batch:
                self._commit_safely(batch, actions, wake)
                wake()
                committed = batch

    def _commit_safely(
        self, batch: list[_Operation], actions: list[Any] | None, ready: Callable[[], None]
    ) -> None:
        """`_commit_batch`, failing the batch on an unexpected error (not hanging it)."""
        try:
            self._commit_batch(batch, actions, ready)
        except BaseException as exc:  # a bug
            for op in batch:
                if op.error is None:
                    op.error = StoreError(f"store {self.path} cannot be written: {exc!r}")

    @staticmethod
    def _wake_callers(batch: list[_Operation]) -> None:
        """In the trio thread: wake every caller of `batch` that still waits."""
        reschedule = trio.lowlevel.reschedule
        for op in batch:
            task = op.task
            if task is not None:
                op.task = None
                reschedule(task)

    def _commit_batch(
        self,
        batch: list[_Operation],
        actions: list[Any] | None = None,
        ready: Callable[[], None] = lambda: None,
    ) -> None:
        """In the writer thread: write `batch` in one transaction and commit it.

        `actions`: all the actions of `batch`, if it has only those. `ready` is called
        once the batch is about to be written.
        """
        conn = self._writer
        assert conn is not None
        if self._history_limit != self.history_per_worker:
            try:
                conn.execute("UPDATE history_limit SET n = ?", (self.history_per_worker,))
                conn.execute("DELETE FROM trimmed")
            except sqlite3.Error as exc:
                for op in batch:
                    op.error = self._store_error("cannot be written", exc)
                return
            self._history_limit = self.history_per_worker
        if not self._write_together(conn, batch, actions, ready):
            self._write_isolated(conn, batch)

    def _write_together(
        self,
        conn: sqlite3.Connection,
        batch: list[_Operation],
        actions: list[Any] | None,
        ready: Callable[[], None],
    ) -> bool:
        """Write `batch` the cheap way, without savepoints; False if an operation failed.

        A batch of actions only is one statement and its own transaction, committed
        (durably) when it returns. Any other batch runs in one explicit transaction,
        consecutive actions together. False: nothing was written.
        """
        max_rows = self._max_rows
        if actions is None and all(op.work is None for op in batch):
            actions = list(chain.from_iterable([op.actions for op in batch]))
        if actions is not None and len(actions) <= max_rows * _ACTION_WIDTH:
            statement = _actions_statement(actions, max_rows)
            ready()
            try:
                conn.execute(*statement)
            except Exception:
                self._roll_back(conn)
                return False
            self.commits += 1
            self.writes += len(batch)  # their results: None
            return True
        ready()
        if not self._begin(conn, batch):
            return True  # every operation failed with the reason
        results: list[Any] = []
        actions_run: list[Any] = []
        try:
            for op in batch:
                if op.work is None:
                    actions_run += op.actions
                    results.append(None)
                    continue
                if actions_run:
                    _run_actions(conn, actions_run, max_rows)
                    actions_run = []
                results.append(op.run(conn, max_rows))
            if actions_run:
                _run_actions(conn, actions_run, max_rows)
        except Exception:
            self._roll_back(conn)
            return False
        self._commit(conn, list(zip(batch, results, strict=True)))
        return True

    def _write_isolated(self, conn: sqlite3.Connection, batch: list[_Operation]) -> None:
        """Write `batch` with a SAVEPOINT per operation, so a failing one fails alone."""
        if not self._begin(conn, batch):
            return
        done: list[tuple[_Operation, Any]] = []
        for index, op in enumerate(batch):
            try:
                conn.execute("SAVEPOINT op")
                result = op.run(conn, self._max_rows)
                conn.execute("RELEASE op")
            except Exception as exc:
                failure: Exception = exc
                if isinstance(exc, sqlite3.Error):
                    failure = self._store_error("cannot be written", exc)
                if not self._roll_back_to_savepoint(conn):
                    # SQLite dropped the whole transaction (disk full, I/O error):
                    # nothing of this batch is stored, so every operation fails.
                    for other in [o for o, _ in done] + batch[index + 1 :]:
                        other.error = StoreError(str(failure))
                    op.error = failure
                    return
                op.error = failure
            else:
                done.append((op, result))
        self._commit(conn, done)

    @staticmethod
    def _roll_back(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _begin(self, conn: sqlite3.Connection, batch: list[_Operation]) -> bool:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for op in batch:
                op.error = self._store_error("cannot be written", exc)
            return False
        return True

    def _commit(self, conn: sqlite3.Connection, done: list[tuple[_Operation, Any]]) -> None:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            for op, _ in done:
                op.error = self._store_error("cannot be written", exc)
            return
        self._succeed(done)

    def _succeed(self, done: list[tuple[_Operation, Any]]) -> None:
        self.commits += 1
        self.writes += len(done)
        for op, result in done:
            op.result = result

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
        await self._write(_Operation(_trigger_action(_PUT_TRIGGER, trigger)))

    async def start_run(self, run: RunRecord) -> None:
        await self._write(_Operation(_run_action(run)))

    async def finish_run(
        self,
        run: RunRecord,
        *,
        worker: WorkerState,
        requeue: bool = False,
        dead_letter: DeadLetterDraft | None = None,
        triggers: Sequence[Trigger] = (),
    ) -> int | None:
        actions = _finish_actions(run, worker, requeue)
        if triggers:  # the triggers the run's end causes, first
            actions = tuple(
                chain.from_iterable([_trigger_action(_PUT_TRIGGER, t) for t in triggers])
            ) + actions
        if dead_letter is None:
            await self._write(_Operation(actions))
            return None
        dlq_row = _dead_letter_row(dead_letter.with_id(0, run))

        def add_dead_letter(conn: sqlite3.Connection) -> int | None:
            cursor = conn.execute(
                "INSERT INTO dlq (worker, trigger_id, source, payload, error, traceback,"
                " attempts, started_at, failed_at, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                dlq_row,
            )
            return cursor.lastrowid

        entry_id: int | None = await self._write(_Operation(actions, add_dead_letter))
        return entry_id

    async def save_worker(self, state: WorkerState) -> None:
        await self._write(_Operation(_worker_action(state)))

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
        def remove_entry(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM dlq WHERE id = ?", (entry_id,)).rowcount == 0:
                raise UnknownDeadLetter(entry_id)

        # The trigger is stored, then the entry removed; if it is unknown, neither.
        await self._write(_Operation(_trigger_action(_PUT_TRIGGER, trigger), remove_entry))

    async def dlq_delete(self, entry_id: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM dlq WHERE id = ?", (entry_id,)).rowcount == 0:
                raise UnknownDeadLetter(entry_id)

        await self._write(_Operation(work=work))

    async def dlq_purge(self) -> int:
        def purge(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM dlq").rowcount

        count: int = await self._write(_Operation(work=purge))
        return count


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


def _datetime(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _required_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _rows(conn: sqlite3.Connection, query: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
    cursor = conn.cursor()
    cursor.row_factory = sqlite3.Row
    return cursor.execute(query, args).fetchall()


# ---------------------------------------------------------------------- the batch view
#
# The writer connection has a TEMP view, `batch`, whose INSTEAD OF triggers turn each
# row inserted into it into writes: an *action*. Column `k` says which action, v1..v21
# are its values, and bit n of `z` says that vn is NULL (the value bound is then 0: the
# sqlite3 module binds None several times slower than an int; unused values are 0 too).
# A batch of operations is one INSERT of all their actions, applied in order, each
# exactly as if written alone, by SQLite without Python: the writer thread needs the
# GIL once per batch, not once per statement. Padding rows (k = 0) do nothing; they
# round a statement's size up to a power of two, so a few prepared statements serve.

_VALUES = 21
_ACTION_WIDTH = 2 + _VALUES  # k, z, v1..v21

#: v1..v5: a pending trigger's id, worker, source, payload, accepted_at.
_PUT_TRIGGER = 1
#: v1: a trigger id.
_DELETE_TRIGGER = 2
#: v1..v5 as _PUT_TRIGGER, stored only if no trigger has that id (a requeue).
_KEEP_TRIGGER = 3
#: v1..v13: the `_RUN_COLUMNS`; then the worker's history is trimmed.
_PUT_RUN = 4
#: v1..v8: a `workers` row.
_PUT_WORKER = 5
#: A run's end: _PUT_RUN's v1..v13; v14 flags (1: requeue its trigger, else remove it;
#: 2: store v15..v21 as the state of the run's worker, the rest of a `workers` row).
_FINISH_RUN = 6
_REQUEUE, _WITH_WORKER = 1, 2

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
_BATCH_SCHEMA = (
    "PRAGMA temp_store = MEMORY",
    "CREATE TEMP TABLE history_limit (n INTEGER NOT NULL)",
    "CREATE TEMP TABLE trimmed (worker TEXT PRIMARY KEY) WITHOUT ROWID",
    "CREATE TEMP VIEW batch AS SELECT 0 AS k, 0 AS z, "
    + ", ".join(f"0 AS v{n}" for n in range(1, _VALUES + 1))
    + " WHERE 0",
    _instead(
        "put_trigger", _PUT_TRIGGER,
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
        "finish_run", _FINISH_RUN,
        _END_RUN_SQL
        + f" DELETE FROM pending WHERE id = NEW.v3 AND NOT NEW.v14 & {_REQUEUE};"
        f" INSERT OR IGNORE INTO {_PENDING_COLUMNS}"
        f" SELECT NEW.v3, NEW.v2, NEW.v4, NEW.v5, NEW.v6 WHERE NEW.v14 & {_REQUEUE};"
        f" INSERT INTO workers SELECT NEW.v2, {_news(range(15, 22), (17, 19, 20, 21))}"
        f" WHERE NEW.v14 & {_WITH_WORKER}{_WORKER_UPSERT};",
    ),
)

_PADDING = (0,) * _ACTION_WIDTH
_inserts: dict[int, str] = {}


def _insert_actions(rows: int) -> str:
    """The statement inserting `rows` actions into the batch view."""
    text = _inserts.get(rows)
    if text is None:
        row = "(" + ", ".join("?" * _ACTION_WIDTH) + ")"
        text = _inserts[rows] = "INSERT INTO batch VALUES " + ", ".join([row] * rows)
    return text


def _padded(rows: int, max_rows: int) -> int:
    """The statement size for `rows` actions: the next of 1, 2, 3, 4, 6, 8, 12, 16, 24..."""
    size = 1 << (rows - 1).bit_length()
    if size >= 4 and rows <= size * 3 // 4:
        size = size * 3 // 4
    return min(size, max_rows)


def _actions_statement(actions: list[Any], max_rows: int) -> tuple[str, list[Any]]:
    """The statement applying `actions` (at most `max_rows`), padding `actions` in place."""
    rows = len(actions) // _ACTION_WIDTH
    size = _padded(rows, max_rows)
    actions += _PADDING * (size - rows)
    return _insert_actions(size), actions


def _run_actions(conn: sqlite3.Connection, actions: Sequence[Any], max_rows: int) -> None:
    """Apply `actions` (flat, `_ACTION_WIDTH` values each), `max_rows` per statement."""
    width = _ACTION_WIDTH
    rows = len(actions) // width
    for first in range(0, rows, max_rows):
        part = list(actions[first * width : min(rows, first + max_rows) * width])
        conn.execute(*_actions_statement(part, max_rows))


_iso_cache: dict[int, tuple[datetime, str]] = {}


def _iso_text(value: datetime) -> str:
    """`value.isoformat()`, remembered: a run's times are stored several times."""
    cached = _iso_cache.get(id(value))
    if cached is not None and cached[0] is value:
        return cached[1]
    if len(_iso_cache) >= 1024:
        _iso_cache.clear()
    text = value.isoformat()
    _iso_cache[id(value)] = (value, text)  # holding `value` keeps its id unique
    return text


# Actions are made on the trio thread for every write: plain tuples, enum values read
# as `_value_` (the `value` property is several times slower).


def _trigger_action(kind: int, trigger: Trigger) -> tuple[Any, ...]:
    payload = trigger.payload
    return (
        kind, 0, trigger.id, trigger.worker, trigger.source._value_,
        "null" if payload is None else json.dumps(payload), _iso_text(trigger.accepted_at),
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    )  # fmt: skip


def _run_action(run: RunRecord) -> tuple[Any, ...]:
    """_PUT_RUN: the values of `_RUN_COLUMNS`."""
    trigger, payload = run.trigger, run.trigger.payload
    started, ended, duration, error = run.started_at, run.ended_at, run.duration_s, run.error
    nulls = (ended is None) << 10 | (duration is None) << 12 | (error is None) << 13
    return (
        _PUT_RUN, nulls,
        run.id, run.worker, trigger.id, trigger.source._value_,
        "null" if payload is None else json.dumps(payload), _iso_text(trigger.accepted_at),
        run.status._value_, _iso_text(started), started.timestamp(),
        0 if ended is None else _iso_text(ended), run.attempts,
        0 if duration is None else duration, 0 if error is None else error,
        0, 0, 0, 0, 0, 0, 0, 0,
    )  # fmt: skip


def _worker_action(state: WorkerState) -> tuple[Any, ...]:
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
        0 if opened is None else _iso_text(opened), state.consecutive_failures,
        0 if last_start is None else _iso_text(last_start),
        0 if last_success is None else _iso_text(last_success),
        0 if error is None else error,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    )  # fmt: skip


def _finish_actions(run: RunRecord, worker: WorkerState, requeue: bool) -> tuple[Any, ...]:
    """A run's end: its new state, its trigger removed (or kept), its worker's state."""
    trigger = run.trigger
    if worker.name != run.worker or trigger.worker != run.worker:
        # A worker state or trigger of another worker (never, from the orchestrator).
        own = _trigger_action(_KEEP_TRIGGER if requeue else _DELETE_TRIGGER, trigger)
        return _run_action(run) + own + _worker_action(worker)
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
        "null" if payload is None else json.dumps(payload), _iso_text(trigger.accepted_at),
        run.status._value_, _iso_text(started), started.timestamp(),
        0 if ended is None else _iso_text(ended), run.attempts,
        0 if duration is None else duration, 0 if error is None else error,
        _WITH_WORKER | (_REQUEUE if requeue else 0),
        int(worker.enabled), worker.circuit._value_,
        0 if opened is None else _iso_text(opened), worker.consecutive_failures,
        0 if last_start is None else _iso_text(last_start),
        0 if last_success is None else _iso_text(last_success),
        0 if last_error is None else last_error,
    )  # fmt: skip


def _trigger_of(row: sqlite3.Row) -> Trigger:
    return Trigger(
        id=row["id"],
        worker=row["worker"],
        source=Source(row["source"]),
        payload=json.loads(row["payload"]),
        accepted_at=_required_datetime(row["accepted_at"]),
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
