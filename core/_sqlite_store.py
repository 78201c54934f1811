"""The SQLite store: one file, one owner, written through one group-committing writer.

`SQLiteStore` is the Store protocol on a SQLite file in WAL mode. It owns the file
through a lock on a sidecar file, opens it (creating or migrating the schema:
`_sqlite_schema`), reads through its own connection (`_sqlite_rows`, which quarantines
damaged rows), and writes through the writer thread (`_sqlite_writer`), every write
encoded as actions of the batch view (`_sqlite_batch`). Failures are StoreErrors of the
kind `_sqlite_errors` tells.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import platformdirs
import trio

from ._errors import StoreError, StoreInUse, StoreUnavailable, UnknownDeadLetter, UnknownRun
from ._records import (
    DeadLetter,
    RunDetail,
    RunDetailDraft,
    RunRecord,
    StoredState,
    Trigger,
    WorkerState,
)
from ._sqlite_batch import (
    PUT_TRIGGER,
    create_batch_view,
    finish_actions,
    run_action,
    trigger_action,
    worker_action,
)
from ._sqlite_errors import UNENCODABLE, store_error, unencodable
from ._sqlite_rows import (
    dead_letter_of,
    dead_letter_row,
    detail_of,
    load_state,
    records,
    run_of,
)
from ._sqlite_schema import migrate_forward, schema_version
from ._sqlite_writer import Operation, Writer
from ._store import DeadLetterDraft

T = TypeVar("T")

#: How long to wait for SQLite's own file locks (nobody else should hold them).
BUSY_TIMEOUT_SECONDS = 30.0


def default_store_path(config_path: Path) -> Path:
    """Where the store of a config lives unless told otherwise.

    `$XDG_STATE_HOME/jobdeck/<config name>-<hash>.db` (`~/.local/state/jobdeck/...` when
    the variable is unset), the hash of the config's absolute path: two configs of the
    same name in different folders keep separate state. The folder is not created here.
    """
    absolute = str(config_path.expanduser().resolve())
    digest = hashlib.sha256(absolute.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return _state_folder() / f"{config_path.stem}-{digest}.db"


def _state_folder() -> Path:
    return Path(platformdirs.user_state_dir("jobdeck"))


#: Files that belong to a store file, by suffix of its name (the lock is made anew).
_STORE_SIDECARS = ("-wal", "-shm", ".token")


def adopt_legacy_store(config_path: Path, say: Callable[[str], None]) -> Path:
    """The config's default store, taking over the one an older jobdeck kept for it.

    Older versions kept `<config name>.db`, whatever folder the config was in. When only
    that file exists, it (with its WAL and token files) is renamed to the new default
    path, so an upgrade loses nothing, and `say` is told once.

    Raises:
        StoreInUse: the old store is owned by a running jobdeck.
        StoreError: it cannot be renamed.
    """
    path = default_store_path(config_path)
    legacy = _state_folder() / f"{config_path.stem}.db"
    if path.exists() or not legacy.is_file():
        return path
    lock_fd = _lock_legacy(legacy)
    try:
        for suffix in _STORE_SIDECARS:
            sidecar = legacy.with_name(legacy.name + suffix)
            if sidecar.exists():
                sidecar.rename(path.with_name(path.name + suffix))
        legacy.rename(path)
    except OSError as exc:
        raise StoreError(f"store {legacy}: cannot move it to {path}: {exc.strerror}") from None
    finally:
        if lock_fd is not None:
            os.close(lock_fd)
    say(f"jobdeck: moved the store of {config_path.name} from {legacy} to {path}")
    return path


def _lock_legacy(legacy: Path) -> int | None:
    """The old store's lock, held while it is moved; StoreInUse if a jobdeck owns it."""
    try:
        fd = os.open(lock_path_of(legacy), os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None  # no lock file: nobody owns it
    try:
        _lock_or_refuse(fd, legacy)
    except StoreInUse:
        raise
    except OSError:
        os.close(fd)
        return None  # no locks on this file system: nobody can own it either
    return fd


def _lock_or_refuse(fd: int, path: Path) -> None:
    """Lock `fd`, the lock file of the store at `path`, for this process alone.

    Raises:
        StoreInUse: another process holds the lock (`fd` is closed).
        OSError: the lock cannot be taken (`fd` is left open).
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = _read_owner(fd)
        os.close(fd)
        raise StoreInUse(f"store {path} is in use by pid {owner}") from None


def lock_path_of(path: Path) -> Path:
    """The sidecar file whose lock says which process owns the store at `path`."""
    return path.with_name(path.name + ".lock")


class SQLiteStore:
    """A Store in one SQLite file (WAL), owned by one process at a time.

    Args:
        path: the database file; created (with the schema) if missing. Its folder must
            exist. A sidecar `PATH.lock` holds the owner's pid.
        history_per_worker: finished or running runs kept per worker.

    Attributes:
        commits: transactions committed so far (one per batch of writes).
        writes: write operations committed so far.
        quarantined: the damaged rows the latest read (`open`, `runs`, `dlq_list`)
            skipped, one message each naming table and id; they stay in the file.

    A write that fails raises StoreUnavailable (the store cannot take it now: disk
    full, locked, I/O error, the file deleted or replaced) or StoreRejected (it can
    never be stored: text that cannot be encoded, a constraint); the other writes of
    its batch are not affected.

    Its writes go through a thread started by `open` that wakes their callers through
    the trio run that called `open`: a store is used within that run, and closed in it.
    """

    def __init__(self, path: str | os.PathLike[str], *, history_per_worker: int = 200) -> None:
        self.path = Path(path)
        self._writer = Writer(self.path, history_per_worker)
        self._reader: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._read_lock = trio.Lock()
        self.quarantined: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    @property
    def history_per_worker(self) -> int:
        return self._writer.history_per_worker

    @history_per_worker.setter
    def history_per_worker(self, value: int) -> None:
        self._writer.history_per_worker = value

    @property
    def commits(self) -> int:
        return self._writer.commits

    @property
    def writes(self) -> int:
        return self._writer.writes

    # ------------------------------------------------------------------ open / close

    async def open(self) -> StoredState:
        """Take ownership of the store, create or migrate it, and return what it holds.

        Raises:
            StoreInUse: another process owns the store.
            StoreError: the store cannot be created, opened, read or written, is corrupt,
                is not a jobdeck store, or was written by a newer jobdeck.
        """
        if self._writer.conn is None:
            state = await trio.to_thread.run_sync(self._open_sync)
            self._writer.start()
        else:
            state = await self._read(load_state)
        self.quarantined = state.quarantined
        return state

    async def close(self) -> None:
        """Wait for queued writes to commit, then close the files and give up ownership."""
        with trio.CancelScope(shield=True):
            await self._writer.stop()
            async with self._read_lock:
                if self._writer.conn is not None or self._lock_fd is not None:
                    await trio.to_thread.run_sync(self._close_sync)

    def _open_sync(self) -> StoredState:
        self._check_location()
        self._lock_fd = self._take_lock()
        try:
            writer = self._writer.conn = self._connect()  # closed by _close_sync if need be
            history = self._writer.history_per_worker
            max_rows = self._prepare_writer(writer, history)
            self._writer.attach(writer, max_rows, history, self._file_id())
            self._reader = self._connect()
            self._reader.execute("PRAGMA query_only = ON")
            return self._translate_sync(load_state, self._reader, "cannot be read")
        except BaseException:
            self._close_sync()
            raise

    def _close_sync(self) -> None:
        for conn in (self._reader, self._writer.conn):
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
        self._reader = self._writer.conn = None
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
            _lock_or_refuse(fd, self.path)
        except StoreInUse:
            raise
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
            raise store_error(self.path, "cannot be opened", exc) from None

    def _prepare_writer(self, conn: sqlite3.Connection, history_limit: int) -> int:
        """Bring the file up to date and make the batch view; its `max_rows`."""
        try:
            # Look before changing anything: a foreign or newer file is left as it was.
            version = schema_version(conn, self.path)
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
            migrate_forward(conn, version)
            return create_batch_view(conn, history_limit)
        except sqlite3.Error as exc:
            raise store_error(self.path, "cannot be opened", exc) from None

    def _file_id(self) -> tuple[int, int]:
        """The (device, inode) of the store file, which the writer checks before each batch."""
        try:
            found = os.stat(self.path)
        except OSError as exc:
            raise StoreUnavailable(f"store {self.path} cannot be opened: {exc.strerror}") from None
        return found.st_dev, found.st_ino

    def _translate_sync(
        self, work: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection, what: str
    ) -> T:
        try:
            return work(conn)
        except sqlite3.Error as exc:
            raise store_error(self.path, what, exc) from None

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
        if self._writer.conn is None:
            raise StoreError(f"store {self.path} is not open")

    # ------------------------------------------------------------------ the protocol

    # A write whose values cannot be encoded (JSON here, UTF-8 in the writer thread)
    # raises StoreRejected; the writer tells the other failures apart (_sqlite_errors).

    async def add_trigger(self, trigger: Trigger) -> None:
        try:
            actions = trigger_action(PUT_TRIGGER, trigger)
        except UNENCODABLE as exc:
            raise unencodable(self.path, exc) from None
        await self._writer.write(Operation(actions))

    async def start_run(self, run: RunRecord) -> None:
        try:
            actions = run_action(run)
        except UNENCODABLE as exc:
            raise unencodable(self.path, exc) from None
        await self._writer.write(Operation(actions))

    async def finish_run(
        self,
        run: RunRecord,
        *,
        worker: WorkerState,
        requeue: bool = False,
        dead_letter: DeadLetterDraft | None = None,
        triggers: Sequence[Trigger] = (),
        detail: RunDetailDraft | None = None,
    ) -> int | None:
        try:
            actions = finish_actions(run, worker, requeue, triggers, detail)
            dlq_row = None if dead_letter is None else dead_letter_row(dead_letter.with_id(0, run))
        except UNENCODABLE as exc:
            raise unencodable(self.path, exc) from None
        if dlq_row is None:
            await self._writer.write(Operation(actions))
            return None

        def add_dead_letter(conn: sqlite3.Connection) -> int | None:
            cursor = conn.execute(
                "INSERT INTO dlq (worker, trigger_id, source, payload, error, traceback,"
                " attempts, started_at, failed_at, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                dlq_row,
            )
            return cursor.lastrowid

        entry_id: int | None = await self._writer.write(Operation(actions, add_dead_letter))
        return entry_id

    async def save_worker(self, state: WorkerState) -> None:
        try:
            actions = worker_action(state)
        except UNENCODABLE as exc:
            raise unencodable(self.path, exc) from None
        await self._writer.write(Operation(actions))

    async def runs(self, worker: str | None = None, limit: int = 50) -> list[RunRecord]:
        # Newest start first; equal starts in the order stored, as the memory store does.
        if worker is None:
            query, args = "SELECT * FROM runs ORDER BY started_ts DESC, seq LIMIT ?", (limit,)
        else:
            query = "SELECT * FROM runs WHERE worker = ? ORDER BY started_ts DESC, seq LIMIT ?"
            args = (worker, limit)  # type: ignore[assignment]
        found, damaged = await self._read(
            lambda conn: records(conn, "runs", "id", run_of, query, args)
        )
        self.quarantined = tuple(damaged)
        return found

    async def run_detail(self, run_id: str) -> RunDetail:
        """One run with its attempts and log lines.

        Raises:
            UnknownRun: no run has that id.
            StoreError: the run's row is damaged (it stays in the store).
        """

        def read(conn: sqlite3.Connection) -> tuple[list[RunRecord], list[Any], list[str]]:
            found, damaged = records(
                conn, "runs", "id", run_of, "SELECT * FROM runs WHERE id = ?", (run_id,)
            )
            details, bad = records(
                conn, "run_details", "run_id", detail_of,
                "SELECT * FROM run_details WHERE run_id = ?", (run_id,),
            )
            return found, details, damaged + bad

        found, details, damaged = await self._read(read)
        if damaged:
            raise StoreError(f"store {self.path}: damaged {damaged[0]}")
        if not found:
            raise UnknownRun(run_id)
        return RunDetail.of(found[0], details[0] if details else None)

    async def dlq_list(self, limit: int | None = None) -> list[DeadLetter]:
        count = -1 if limit is None else limit
        query = "SELECT * FROM dlq ORDER BY id DESC LIMIT ?"
        found, damaged = await self._read(
            lambda conn: records(conn, "dlq", "id", dead_letter_of, query, (count,))
        )
        self.quarantined = tuple(damaged)
        return found

    async def dlq_get(self, entry_id: int) -> DeadLetter:
        """One DLQ entry.

        Raises:
            UnknownDeadLetter: no entry has that id.
            StoreError: the entry's row is damaged (it stays in the store).
        """
        query = "SELECT * FROM dlq WHERE id = ?"
        found, damaged = await self._read(
            lambda conn: records(conn, "dlq", "id", dead_letter_of, query, (entry_id,))
        )
        if damaged:
            raise StoreError(f"store {self.path}: damaged {damaged[0]}")
        if not found:
            raise UnknownDeadLetter(entry_id)
        return found[0]

    async def dlq_replay(self, entry_id: int, trigger: Trigger) -> None:
        def remove_entry(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM dlq WHERE id = ?", (entry_id,)).rowcount == 0:
                raise UnknownDeadLetter(entry_id)

        try:
            actions = trigger_action(PUT_TRIGGER, trigger)
        except UNENCODABLE as exc:
            raise unencodable(self.path, exc) from None
        # The trigger is stored, then the entry removed; if it is unknown, neither.
        await self._writer.write(Operation(actions, remove_entry))

    async def dlq_delete(self, entry_id: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM dlq WHERE id = ?", (entry_id,)).rowcount == 0:
                raise UnknownDeadLetter(entry_id)

        await self._writer.write(Operation(work=work))

    async def dlq_purge(self) -> int:
        def purge(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM dlq").rowcount

        count: int = await self._writer.write(Operation(work=purge))
        return count


def _read_owner(fd: int) -> str:
    """The pid in a held lock file; the owner writes it just after locking, so retry briefly."""
    for _ in range(50):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.01)
    return "(unknown)"
