"""The SQLite store's writer: one thread that commits queued writes in batches.

Every write is an *operation* put in a queue. One writer thread, started when the store
opens and stopped when it closes, takes everything queued, runs it in one transaction,
commits once and hands the batch back to the trio thread, which wakes each of its
callers once; then it takes what was queued meanwhile. So the trio side gathers the
next batch while the writer commits the previous one, many writes arriving together
cost one commit, and each call returns only after the commit that holds it:
acknowledged means durable.

A batch is first written the cheap way: the common operations (triggers, run starts and
ends, worker states) are actions of the batch view (`_sqlite_batch`), so a batch of
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
import os
import sqlite3
import threading
from collections.abc import Callable
from itertools import chain
from pathlib import Path
from typing import Any

import trio

from ._errors import StoreError, StoreRejected, StoreUnavailable
from ._sqlite_batch import ACTION_WIDTH, actions_statement, run_actions, set_history_limit
from ._sqlite_errors import store_error, write_failure

_current_task = trio.lowlevel.current_task
_wait_task_rescheduled = trio.lowlevel.wait_task_rescheduled

#: A batch taken by an idle writer is committed in two halves if each has this many.
SPLIT_AT = 16


class Operation:
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
            run_actions(conn, self.actions, max_rows)
        return None if self.work is None else self.work(conn)


class Writer:
    """The writer thread of one store file and the queue of operations it commits.

    Attributes:
        path: the store file (for messages).
        conn: the writer connection while the store is open (the store opens and closes
            it), with the batch view made.
        history_per_worker: runs kept per worker; a change applies from the next batch.
        max_rows: the most actions one statement may insert.
        commits: transactions committed so far (one per batch of writes).
        writes: write operations committed so far.

    `start` runs the thread and `stop` ends it, both from one trio run, whose thread is
    where `write` is called and where its callers are woken.
    """

    def __init__(self, path: Path, history_per_worker: int) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None
        self.history_per_worker = history_per_worker
        self.max_rows = 1  # actions per statement (the writer's limit on parameters)
        self.commits = 0
        self.writes = 0
        self._history_limit = history_per_worker  # the one the batch view applies
        self._file_id = (0, 0)  # device and inode of the file `conn` writes
        # The thread and what it shares with the trio thread (under `_lock`): the queue,
        # whether the writer waits for work, and how many batches it took.
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._queue: list[Operation] = []
        self._queued_actions: list[Any] = []  # the actions of the queue, if all it has
        self._queue_is_actions = True  # no `work`, no dropped operation in the queue
        self._idle = False
        self._generation = 0
        self._stopping = False
        self._stopped = True

    def attach(
        self,
        conn: sqlite3.Connection,
        max_rows: int,
        history_limit: int,
        file_id: tuple[int, int],
    ) -> None:
        """Write through `conn`, whose batch view keeps `history_limit` runs per worker,
        to the file whose (device, inode) is `file_id`."""
        self.conn = conn
        self.max_rows = max_rows
        self._history_limit = history_limit
        self._file_id = file_id

    def start(self) -> None:
        """Start the writer thread; it wakes callers through the current trio run."""
        token = trio.lowlevel.current_trio_token()
        with self._lock:
            self._stopping = self._stopped = False
        self._thread = threading.Thread(
            target=self._writer_loop, args=(token,), name=f"jobdeck writer {self.path.name}",
            daemon=True,
        )
        self._thread.start()

    async def stop(self) -> None:
        """Let the thread commit what is queued, then end it (and wait for it)."""
        thread = self._thread
        if thread is not None:
            with self._lock:
                self._stopping = True
                self._wakeup.notify()
            await trio.to_thread.run_sync(thread.join)
            self._thread = None

    async def write(self, op: Operation) -> Any:
        """Queue `op` for the writer; return its result once its batch is on disk."""
        if self.conn is None:
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
        """The writer thread: commit what is queued, batch after batch, until `stop`.

        The callers of a committed batch are woken once the next batch is ready to go:
        the trio thread, woken, waits for the GIL the writer holds until then.
        """
        committed: list[Operation] | None = None

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
        self, batch: list[Operation], actions: list[Any] | None, ready: Callable[[], None]
    ) -> None:
        """`_commit_batch`, failing the batch on an unexpected error (not hanging it)."""
        try:
            self._commit_batch(batch, actions, ready)
        except BaseException as exc:  # a bug
            for op in batch:
                if op.error is None:
                    op.error = StoreError(f"store {self.path} cannot be written: {exc!r}")

    @staticmethod
    def _wake_callers(batch: list[Operation]) -> None:
        """In the trio thread: wake every caller of `batch` that still waits."""
        reschedule = trio.lowlevel.reschedule
        for op in batch:
            task = op.task
            if task is not None:
                op.task = None
                reschedule(task)

    def _commit_batch(
        self,
        batch: list[Operation],
        actions: list[Any] | None = None,
        ready: Callable[[], None] = lambda: None,
    ) -> None:
        """In the writer thread: write `batch` in one transaction and commit it.

        `actions`: all the actions of `batch`, if it has only those. `ready` is called
        once the batch is about to be written.
        """
        conn = self.conn
        assert conn is not None
        lost = self._file_lost()
        if lost is not None:
            for op in batch:
                op.error = StoreUnavailable(lost)
            return
        if self._history_limit != self.history_per_worker:
            try:
                set_history_limit(conn, self.history_per_worker)
            except sqlite3.Error as exc:
                for op in batch:
                    op.error = store_error(self.path, "cannot be written", exc)
                return
            self._history_limit = self.history_per_worker
        if not self._write_together(conn, batch, actions, ready):
            self._write_isolated(conn, batch)

    def _file_lost(self) -> str | None:
        """Why the path no longer names the file `conn` writes, if it does not.

        SQLite writes on through its open descriptor into a file deleted or replaced
        under it: acknowledged writes that the next start would not find. One `stat`
        per batch tells.
        """
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            found = None
        except OSError as exc:
            return f"store {self.path} cannot be checked: {exc.strerror}"
        if found is None or (found.st_dev, found.st_ino) != self._file_id:
            return f"store {self.path} was deleted or replaced while jobdeck ran"
        return None

    def _write_together(
        self,
        conn: sqlite3.Connection,
        batch: list[Operation],
        actions: list[Any] | None,
        ready: Callable[[], None],
    ) -> bool:
        """Write `batch` the cheap way, without savepoints; False if an operation failed.

        A batch of actions only is one statement and its own transaction, committed
        (durably) when it returns. Any other batch runs in one explicit transaction,
        consecutive actions together. False: nothing was written.
        """
        max_rows = self.max_rows
        if actions is None and all(op.work is None for op in batch):
            actions = list(chain.from_iterable([op.actions for op in batch]))
        if actions is not None and len(actions) <= max_rows * ACTION_WIDTH:
            statement = actions_statement(actions, max_rows)
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
                    run_actions(conn, actions_run, max_rows)
                    actions_run = []
                results.append(op.run(conn, max_rows))
            if actions_run:
                run_actions(conn, actions_run, max_rows)
        except Exception:
            self._roll_back(conn)
            return False
        self._commit(conn, list(zip(batch, results, strict=True)))
        return True

    def _write_isolated(self, conn: sqlite3.Connection, batch: list[Operation]) -> None:
        """Write `batch` with a SAVEPOINT per operation, so a failing one fails alone."""
        if not self._begin(conn, batch):
            return
        done: list[tuple[Operation, Any]] = []
        for index, op in enumerate(batch):
            try:
                conn.execute("SAVEPOINT op")
                result = op.run(conn, self.max_rows)
                conn.execute("RELEASE op")
            except Exception as exc:
                failure = write_failure(self.path, exc)
                if not self._roll_back_to_savepoint(conn):
                    # SQLite dropped the whole transaction (disk full, I/O error):
                    # nothing of this batch is stored, so every operation fails.
                    for other in [o for o, _ in done] + batch[index + 1 :]:
                        other.error = self._lost_with(failure)
                    op.error = failure
                    return
                op.error = failure
            else:
                done.append((op, result))
        self._commit(conn, done)

    def _lost_with(self, failure: Exception) -> StoreError:
        """The error of an operation whose transaction `failure` of another one undid."""
        if isinstance(failure, StoreRejected) or not isinstance(failure, StoreError):
            return StoreUnavailable(
                f"store {self.path} cannot be written: a write in the same transaction "
                f"failed and SQLite undid it all ({failure})"
            )
        # The store's own trouble (full, I/O, corrupt): the same for every operation.
        return type(failure)(str(failure))

    @staticmethod
    def _roll_back(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _begin(self, conn: sqlite3.Connection, batch: list[Operation]) -> bool:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for op in batch:
                op.error = store_error(self.path, "cannot be written", exc)
            return False
        return True

    def _commit(self, conn: sqlite3.Connection, done: list[tuple[Operation, Any]]) -> None:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            for op, _ in done:
                op.error = store_error(self.path, "cannot be written", exc)
            return
        self._succeed(done)

    def _succeed(self, done: list[tuple[Operation, Any]]) -> None:
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
