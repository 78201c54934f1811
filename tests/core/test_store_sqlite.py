"""The SQLite store meets the Store contract, commits in batches, and guards its file.

These tests run on trio's real clock: the store works in threads, and virtual time does
not mix with threads (STYLE.md).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

import jobdeck._sqlite_schema as sqlite_schema
from jobdeck import (
    Circuit,
    DeadLetterDraft,
    MemoryStore,
    RunStatus,
    Source,
    SQLiteStore,
    Store,
    StoredState,
    StoreError,
    StoreInUse,
    StoreRejected,
    StoreUnavailable,
    Trigger,
    UnknownDeadLetter,
    WorkerState,
)
from jobdeck._sqlite_errors import store_error
from jobdeck._sqlite_schema import MIGRATIONS
from jobdeck._sqlite_store import lock_path_of

from .store_contract import MakeStore, StoreContract, at, ended, started, state, trigger


class TestSQLiteStore(StoreContract):
    """SQLiteStore: a restart is a new store on the same file."""

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> MakeStore:
        numbers = itertools.count()

        def make_store(*, history_per_worker: int = 200) -> Store:
            path = tmp_path / f"store-{next(numbers)}.db"
            return SQLiteStore(path, history_per_worker=history_per_worker)

        return make_store

    async def reopen(self, store: Store) -> Store:
        assert isinstance(store, SQLiteStore)
        return SQLiteStore(store.path, history_per_worker=store.history_per_worker)


# ---------------------------------------------------------------------- group commit


async def test_concurrent_writes_share_commits(tmp_path: Path) -> None:
    """Many add_trigger calls at once cost far fewer commits than calls, all stored."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        before = store.commits
        triggers = [trigger(payload={"n": n}, t=n) for n in range(200)]
        async with trio.open_nursery() as nursery:
            for tr in triggers:
                nursery.start_soon(store.add_trigger, tr)
        commits = store.commits - before
        assert commits < len(triggers) / 10, f"{commits} commits for {len(triggers)} calls"
        assert store.writes == len(triggers)
    finally:
        await store.close()
    again = SQLiteStore(tmp_path / "s.db")
    try:
        assert {t.id for t in (await again.open()).pending} == {t.id for t in triggers}
    finally:
        await again.close()


async def test_write_returns_only_after_its_commit(tmp_path: Path) -> None:
    """When add_trigger returns, another connection already sees the trigger."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(_add_and_check, store, tmp_path / "s.db", trigger(t=n))
    finally:
        await store.close()


async def _add_and_check(store: SQLiteStore, path: Path, tr: Trigger) -> None:
    await store.add_trigger(tr)
    found = await trio.to_thread.run_sync(_pending_ids, path)
    assert tr.id in found


def _pending_ids(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM pending")}


async def test_failing_write_does_not_fail_its_batch(tmp_path: Path) -> None:
    """A write that fails (unknown DLQ id) in a batch leaves the others in it stored."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    outcomes: dict[str, BaseException | None] = {}

    async def attempt(name: str, call: Any) -> None:
        try:
            await call
        except UnknownDeadLetter as exc:
            outcomes[name] = exc
        else:
            outcomes[name] = None

    triggers = [trigger(t=n) for n in range(5)]
    try:
        before = store.commits
        async with trio.open_nursery() as nursery:
            nursery.start_soon(attempt, "first", store.add_trigger(triggers[0]))
            nursery.start_soon(attempt, "bad", store.dlq_delete(999))
            for n, tr in enumerate(triggers[1:], 1):
                nursery.start_soon(attempt, f"t{n}", store.add_trigger(tr))
        assert store.commits - before == 1, "the writes were meant to share one batch"
        assert isinstance(outcomes.pop("bad"), UnknownDeadLetter)
        assert set(outcomes.values()) == {None}
    finally:
        await store.close()
    again = SQLiteStore(tmp_path / "s.db")
    try:
        assert set((await again.open()).pending) == set(triggers)
    finally:
        await again.close()


async def test_disk_full_is_unavailable_and_the_store_recovers(tmp_path: Path) -> None:
    """A write that does not fit fails with StoreUnavailable, stores nothing, and later
    writes work."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        await store.add_trigger(trigger(t=0))
        _limit_pages(store, extra=0)  # the file may not grow any more: "disk full"
        big = trigger(payload="x" * 200_000, t=1)
        with pytest.raises(StoreUnavailable, match="full"):
            await store.add_trigger(big)
        _limit_pages(store, extra=1_000_000)
        later = trigger(t=2)
        await store.add_trigger(later)
    finally:
        await store.close()
    again = SQLiteStore(tmp_path / "s.db")
    try:
        assert [t.accepted_at for t in (await again.open()).pending] == [at(0), at(2)]
    finally:
        await again.close()


def _limit_pages(store: SQLiteStore, *, extra: int) -> None:
    # Test-only: cap the file through the writer connection (SQLite's max_page_count).
    conn = store._writer.conn
    assert conn is not None
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages + extra}")


async def test_history_bound_holds_across_reopen(tmp_path: Path) -> None:
    """The history limit counts runs stored by earlier opens too."""
    path = tmp_path / "s.db"
    for round_ in range(2):
        store = SQLiteStore(path, history_per_worker=4)
        await store.open()
        try:
            for t in range(3):
                run = started(trigger(), t=round_ * 10 + t)
                await store.start_run(run)
                await store.finish_run(ended(run, RunStatus.SUCCEEDED), worker=state())
        finally:
            await store.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (count,) = conn.execute("SELECT count(*) FROM runs").fetchone()
    assert count == 4


# ---------------------------------------------------------------------- errors told apart

SURROGATE = "\ud800"  # a lone surrogate: no UTF-8 encoding, so SQLite cannot take it


def _unencodable_finish(run: Any) -> Callable[[SQLiteStore], Awaitable[Any]]:
    return lambda s: s.finish_run(
        ended(run, RunStatus.FAILED, error=f"bad {SURROGATE} text"), worker=state()
    )


def _unencodable_dead_letter(run: Any) -> Callable[[SQLiteStore], Awaitable[Any]]:
    return lambda s: s.finish_run(
        ended(run, RunStatus.FAILED, error="ValueError"), worker=state(),
        dead_letter=DeadLetterDraft(error="ValueError", traceback=f"line {SURROGATE}"),
    )


@pytest.mark.parametrize(
    "bad_call", [_unencodable_finish, _unencodable_dead_letter], ids=["run-error", "dlq-entry"]
)
async def test_unencodable_write_is_rejected_alone_in_its_batch(
    tmp_path: Path, bad_call: Callable[[Any], Callable[[SQLiteStore], Awaitable[Any]]]
) -> None:
    """A run's end holding a lone surrogate fails with StoreRejected; the other writes
    of its batch are committed all the same."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    run = started(trigger(t=0))
    await store.add_trigger(run.trigger)
    await store.start_run(run)
    triggers = [trigger("report", t=n) for n in range(1, 5)]
    outcomes: dict[str, BaseException | None] = {}

    async def attempt(name: str, call: Callable[[SQLiteStore], Awaitable[Any]]) -> None:
        try:
            await call(store)
        except StoreError as exc:
            outcomes[name] = exc
        else:
            outcomes[name] = None

    try:
        before = store.commits
        async with trio.open_nursery() as nursery:
            nursery.start_soon(attempt, "first", lambda s: s.add_trigger(triggers[0]))
            nursery.start_soon(attempt, "bad", bad_call(run))
            nursery.start_soon(attempt, "worker", lambda s: s.save_worker(state("report")))
            for n, tr in enumerate(triggers[1:], 1):
                nursery.start_soon(attempt, f"t{n}", lambda s, tr=tr: s.add_trigger(tr))
        assert store.commits - before == 1, "the writes were meant to share one batch"
        bad = outcomes.pop("bad")
        assert isinstance(bad, StoreRejected)
        str(bad).encode()  # the message itself is safe to log
        assert set(outcomes.values()) == {None}
    finally:
        await store.close()
    again = SQLiteStore(tmp_path / "s.db")
    try:
        stored = await again.open()
        assert stored.pending[0] == run.trigger
        assert set(stored.pending[1:]) == set(triggers)  # queued in any order
        assert stored.unfinished_runs == (run,)  # its end was not stored
        assert stored.workers == {"report": state("report")}
        assert stored.dlq_size == 0
    finally:
        await again.close()


async def test_payload_json_cannot_encode_is_rejected(tmp_path: Path) -> None:
    """A trigger whose payload is not JSON data fails with StoreRejected; the store works on."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        with pytest.raises(StoreRejected, match="not JSON serializable"):
            await store.add_trigger(trigger(payload={"ids": {1, 2}}))
        good = trigger(t=1)
        await store.add_trigger(good)
        assert (await store.open()).pending == (good,)
    finally:
        await store.close()


async def test_locked_store_is_unavailable_and_the_store_recovers(tmp_path: Path) -> None:
    """While another connection holds the write lock past the busy timeout, writes fail
    with StoreUnavailable; once it lets go they work again."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    await store.open()
    conn = store._writer.conn
    assert conn is not None
    conn.execute("PRAGMA busy_timeout = 50")  # test-only: not 30 s
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
        try:
            other.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StoreUnavailable, match="locked"):
                await store.add_trigger(trigger(t=0))
            other.execute("ROLLBACK")
            later = trigger(t=1)
            await store.add_trigger(later)
            assert (await store.open()).pending == (later,)
        finally:
            await store.close()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_writes_fail_once_the_store_file_is_deleted_or_replaced(
    tmp_path: Path, how: str
) -> None:
    """Writes after the store file was deleted or replaced fail with StoreUnavailable
    instead of being acknowledged into a file the next start would not find."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.add_trigger(trigger(t=0))
        if how == "deleted":
            path.unlink()
        else:
            other = tmp_path / "other.db"
            with contextlib.closing(sqlite3.connect(other)) as conn:
                conn.execute("CREATE TABLE unrelated (n INTEGER)")
                conn.commit()
            os.replace(other, path)
        message = re.escape(f"store {path} was deleted or replaced while jobdeck ran")
        with pytest.raises(StoreUnavailable, match=message):
            await store.add_trigger(trigger(t=1))
        with pytest.raises(StoreUnavailable, match=message):
            await store.save_worker(state())
    finally:
        await store.close()


def _failure(path: Path, provoke: str) -> sqlite3.Error:
    """The sqlite3 exception `provoke` names, raised by real SQLite on a file at `path`."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=0)) as conn:
        conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, name TEXT UNIQUE)")
        conn.execute("INSERT INTO t VALUES (1, 'a')")
        statements = {
            "constraint": "INSERT INTO t VALUES (2, 'a')",
            "mismatch": "INSERT INTO t VALUES ('x', 'b')",
            "no such table": "INSERT INTO nope VALUES (1)",
            "full": "INSERT INTO t VALUES (3, zeroblob(100000))",
        }
        if provoke == "full":
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
            conn.execute(f"PRAGMA max_page_count = {pages}")
        if provoke == "busy":
            with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
                other.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    return exc
        try:
            conn.execute(statements[provoke])
        except sqlite3.Error as exc:
            return exc
    raise AssertionError(f"{provoke}: no error")


@pytest.mark.parametrize(
    ("provoke", "kind"),
    [
        ("constraint", StoreRejected),
        ("mismatch", StoreRejected),
        ("no such table", StoreRejected),
        ("full", StoreUnavailable),
        ("busy", StoreUnavailable),
    ],
)
def test_sqlite_failures_are_told_apart(
    tmp_path: Path, provoke: str, kind: type[StoreError]
) -> None:
    """Each kind of SQLite failure is the StoreError subclass that says whether to retry."""
    failure = _failure(tmp_path / "f.db", provoke)
    error = store_error(tmp_path / "s.db", "cannot be written", failure)
    assert type(error) is kind
    assert str(error).startswith(f"store {tmp_path / 's.db'}")


# ---------------------------------------------------------------------- batches


async def _queued_in_order(
    store: Store, calls: list[Callable[[Store], Awaitable[Any]]]
) -> list[int]:
    """Make `calls` on `store` at once (one batch); the order they were queued in."""
    order: list[int] = []

    async def call(index: int) -> None:
        order.append(index)  # queued in the same step: nothing yields before the queue
        await calls[index](store)

    async with trio.open_nursery() as nursery:
        for index in range(len(calls)):
            nursery.start_soon(call, index)
    return order


async def _same_as_one_by_one(
    tmp_path: Path,
    before: list[Callable[[Store], Awaitable[Any]]],
    together: list[Callable[[Store], Awaitable[Any]]],
    *,
    history_per_worker: int,
    max_rows: int | None = None,
) -> tuple[SQLiteStore, MemoryStore]:
    """Run `before` one by one, then `together` in one batch, on SQLite; the same calls,
    one by one in the order they were queued, on a MemoryStore. Both stores, open."""
    store = SQLiteStore(tmp_path / "s.db", history_per_worker=history_per_worker)
    await store.open()
    if max_rows is not None:
        store._writer.max_rows = max_rows  # statements of a few actions each
    reference = MemoryStore(history_per_worker=history_per_worker)
    await reference.open()
    for call in before:
        await call(store)
        await call(reference)
    commits = store.commits
    order = await _queued_in_order(store, together)
    assert store.commits == commits + 1, "the calls were meant to share one transaction"
    for index in order:
        await together[index](reference)
    return store, reference


async def test_a_batch_trims_history_as_runs_one_by_one_would(tmp_path: Path) -> None:
    """Runs stored in one batch trim a worker's history after each run, as one by one:
    a running run pushed out by newer ones comes back, newest, when it ends."""
    runs = [started(trigger(), t=t) for t in range(4)]
    before: list[Callable[[Store], Awaitable[Any]]] = [
        lambda s: s.start_run(runs[0]),
        lambda s: s.finish_run(ended(runs[0], RunStatus.SUCCEEDED), worker=state()),
        lambda s: s.start_run(runs[1]),
    ]
    together: list[Callable[[Store], Awaitable[Any]]] = [
        lambda s: s.start_run(runs[2]),
        lambda s: s.start_run(runs[3]),
        lambda s: s.finish_run(ended(runs[1], RunStatus.FAILED), worker=state()),
        lambda s: s.finish_run(ended(runs[2], RunStatus.SUCCEEDED), worker=state()),
    ]
    store, reference = await _same_as_one_by_one(
        tmp_path, before, together, history_per_worker=2
    )
    try:
        assert await store.runs("fetch") == await reference.runs("fetch")
    finally:
        await store.close()


async def test_a_batch_split_into_statements_is_one_transaction(tmp_path: Path) -> None:
    """A batch of more actions than one statement takes is still one commit, in order."""
    triggers = [trigger(payload={"n": n}, t=n) for n in range(10)]
    run = started(triggers[0], t=20)
    caused = [trigger("report", t=21)]
    together: list[Callable[[Store], Awaitable[Any]]] = [
        *(lambda s, tr=tr: s.add_trigger(tr) for tr in triggers[1:]),
        lambda s: s.finish_run(ended(run, RunStatus.SUCCEEDED), worker=state(), triggers=caused),
    ]
    before: list[Callable[[Store], Awaitable[Any]]] = [
        lambda s: s.add_trigger(triggers[0]),
        lambda s: s.start_run(run),
    ]
    store, reference = await _same_as_one_by_one(
        tmp_path, before, together, history_per_worker=200, max_rows=3
    )
    await store.close()
    again = SQLiteStore(store.path)
    try:
        stored, expected = await again.open(), await reference.open()
        assert stored.pending == expected.pending
        assert stored.workers == expected.workers
    finally:
        await again.close()


async def test_finish_with_the_state_of_another_worker(tmp_path: Path) -> None:
    """finish_run stores the worker state given, whoever's it is."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        run = started(trigger())
        await store.add_trigger(run.trigger)
        await store.start_run(run)
        other = state("report", enabled=False, consecutive_failures=3)
        await store.finish_run(ended(run, RunStatus.FAILED, error="boom"), worker=other,
                               requeue=True)
    finally:
        await store.close()
    again = SQLiteStore(tmp_path / "s.db")
    try:
        stored = await again.open()
        assert stored.workers == {"report": other}
        assert stored.pending == (run.trigger,)
        [found] = await again.runs("fetch")
        assert (found.status, found.error) == (RunStatus.FAILED, "boom")
    finally:
        await again.close()


def _hold_the_writer(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> tuple[
    threading.Event, threading.Event
]:
    """Make the writer stop before its next batch: (it has stopped, let it go)."""
    stopped, go = threading.Event(), threading.Event()
    commit = store._writer._commit_batch

    def held(*args: Any) -> None:
        stopped.set()
        go.wait(10)
        commit(*args)

    monkeypatch.setattr(store._writer, "_commit_batch", held)
    return stopped, go


async def test_write_cancelled_while_queued_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write whose caller is cancelled before the writer takes it is not stored."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    stopped, go = _hold_the_writer(store, monkeypatch)
    first, second, third = trigger(t=0), trigger(t=1), trigger(t=2)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(store.add_trigger, first)
            await trio.to_thread.run_sync(stopped.wait, 10)  # the writer has `first`
            with trio.move_on_after(0.05) as scope:
                await store.add_trigger(second)  # queued behind it
            assert scope.cancelled_caught
            nursery.start_soon(store.add_trigger, third)
            await trio.sleep(0.01)
            go.set()
    finally:
        go.set()
        await store.close()
    again = SQLiteStore(tmp_path / "s.db")
    try:
        assert (await again.open()).pending == (first, third)
    finally:
        await again.close()


async def test_write_cancelled_once_taken_returns_and_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller cancelled after the writer took its write returns at once; the write is
    committed all the same."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    stopped, go = _hold_the_writer(store, monkeypatch)
    first = trigger(t=0)
    try:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store.add_trigger, first)
                await trio.to_thread.run_sync(stopped.wait, 10)
                scope.cancel()
        assert scope.cancelled_caught
        assert not go.is_set()  # the caller did not wait for the commit
        go.set()
    finally:
        go.set()
        await store.close()
    again = SQLiteStore(tmp_path / "s.db")
    try:
        assert (await again.open()).pending == (first,)
    finally:
        await again.close()


# ---------------------------------------------------------------------- damaged rows

T = "'2026-01-01T12:00:00+00:00'"
_PENDING = "INSERT INTO pending (id, worker, source, payload, accepted_at) VALUES "
_RUNNING = (
    "INSERT INTO runs (id, worker, trigger_id, trigger_source, trigger_payload,"
    " trigger_accepted_at, status, started_at, started_ts, attempts) VALUES "
)
_DEAD_LETTER = (
    "INSERT INTO dlq (worker, trigger_id, source, payload, error, traceback, attempts,"
    " started_at, failed_at, run_id) VALUES "
)

#: A damaged row written behind the store's back, and the start of what open reports.
DAMAGED_AT_OPEN = {
    "payload-not-json": (
        _PENDING + f"('bad', 'fetch', 'manual', '{{not json', {T})",
        "pending row id 'bad': payload is not JSON",
    ),
    "unknown-source": (
        _PENDING + f"('bad', 'fetch', 'telepathy', 'null', {T})",
        "pending row id 'bad': source 'telepathy' is not one of schedule, manual,",
    ),
    "garbled-date": (
        _PENDING + "('bad', 'fetch', 'manual', 'null', '2026-13-45 25:61')",
        "pending row id 'bad': accepted_at '2026-13-45 25:61' is not an ISO 8601 time",
    ),
    "date-without-offset": (
        _PENDING + "('bad', 'fetch', 'manual', 'null', '2026-01-01T12:00:00')",
        "pending row id 'bad': accepted_at '2026-01-01T12:00:00' is not an ISO 8601 time",
    ),
    "text-not-utf8": (
        _PENDING + f"('bad', CAST(x'66ff' AS TEXT), 'manual', 'null', {T})",
        "pending row id 'bad': worker holds bytes that are not UTF-8 text",
    ),
    "unknown-circuit": (
        "INSERT INTO workers VALUES ('bad', 1, 'melted', NULL, 0, NULL, NULL, NULL)",
        "workers row name 'bad': circuit 'melted' is not one of closed, open, half_open",
    ),
    "count-not-integer": (
        "INSERT INTO workers VALUES ('bad', 1, 'closed', NULL, 'many', NULL, NULL, NULL)",
        "workers row name 'bad': consecutive_failures 'many' is not an integer",
    ),
    "running-run-garbled-start": (
        _RUNNING + f"('bad', 'fetch', 't-bad', 'manual', 'null', {T}, 'running',"
        " 'noon', 0, 1)",
        "runs row id 'bad': started_at 'noon' is not an ISO 8601 time",
    ),
}


async def _store_with_good_rows(path: Path) -> StoredState:
    """A store at `path` holding two pending triggers, a running run, a worker's state and
    two dead letters; what it holds, as open returns it."""
    store = SQLiteStore(path)
    await store.open()
    try:
        good = [trigger(payload={"n": n}, t=n) for n in range(2)]
        for tr in good:
            await store.add_trigger(tr)
        await store.start_run(started(good[0], t=5))
        await store.save_worker(state(consecutive_failures=2))
        for n in range(2):
            failed = ended(started(trigger(payload=n, t=10 + n)), RunStatus.FAILED, error="boom")
            await store.finish_run(
                failed, worker=state(consecutive_failures=2),
                dead_letter=DeadLetterDraft(error="boom", traceback="Traceback"),
            )
    finally:
        await store.close()
    again = SQLiteStore(path)
    try:
        return await again.open()
    finally:
        await again.close()


def _damage(path: Path, *statements: str) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in statements:
            conn.execute(statement)


def _dump(path: Path) -> list[tuple[Any, ...]]:
    """Every row of every table, as stored."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.text_factory = bytes
        return [
            row
            for table in ("workers", "pending", "runs", "dlq")
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")
        ]


@pytest.mark.parametrize("damage", DAMAGED_AT_OPEN.values(), ids=DAMAGED_AT_OPEN.keys())
async def test_damaged_row_is_quarantined_at_open(tmp_path: Path, damage: tuple[str, str]) -> None:
    """A damaged row does not stop open: every good row is there, the damaged one is
    named by table and id in `quarantined` and left in the file as it was."""
    statement, reported = damage
    path = tmp_path / "s.db"
    good = await _store_with_good_rows(path)
    _damage(path, statement)
    rows_before = _dump(path)
    store = SQLiteStore(path)
    try:
        stored = await store.open()
        assert (stored.workers, stored.pending) == (good.workers, good.pending)
        assert (stored.unfinished_runs, stored.dlq_size) == (good.unfinished_runs, 2)
        [message] = stored.quarantined
        assert message.startswith(reported), message
        assert store.quarantined == stored.quarantined
        str(message).encode()  # safe to log, whatever the row holds
    finally:
        await store.close()
    assert _dump(path) == rows_before


async def test_damaged_dead_letter_is_skipped_in_the_list(tmp_path: Path) -> None:
    """dlq_list skips a damaged entry, names it in `quarantined`, lists every good one."""
    path = tmp_path / "s.db"
    await _store_with_good_rows(path)
    _damage(path, _DEAD_LETTER + f"('fetch', 't', 'bogus', 'null', 'e', 'tb', 1, {T}, {T}, 'r')")
    store = SQLiteStore(path)
    try:
        assert (await store.open()).dlq_size == 3
        assert [entry.id for entry in await store.dlq_list()] == [2, 1]
        assert store.quarantined == (
            "dlq row id 3: source 'bogus' is not one of schedule, manual, dependency, "
            "replay, continuous",
        )
        assert [entry.id for entry in await store.dlq_list(limit=1)] == []  # newest: id 3
        await store.dlq_delete(3)  # a damaged entry can still be removed
        assert [entry.id for entry in await store.dlq_list()] == [2, 1]
        assert store.quarantined == ()
    finally:
        await store.close()


async def test_getting_a_damaged_dead_letter_names_its_row(tmp_path: Path) -> None:
    """dlq_get of a damaged entry raises StoreError naming table and id; others still load."""
    path = tmp_path / "s.db"
    await _store_with_good_rows(path)
    _damage(path, _DEAD_LETTER + f"('fetch', 't', 'manual', 'null', 'e', 'tb', 1, {T},"
            " 'later', 'r')")
    store = SQLiteStore(path)
    await store.open()
    try:
        with pytest.raises(StoreError, match=r"dlq row id 3: failed_at 'later' is not an ISO"):
            await store.dlq_get(3)
        assert (await store.dlq_get(2)).id == 2
        with pytest.raises(UnknownDeadLetter):
            await store.dlq_get(4)
    finally:
        await store.close()


async def test_damaged_run_is_skipped_in_history(tmp_path: Path) -> None:
    """runs() skips a damaged run and names it in `quarantined`; the good runs are listed."""
    path = tmp_path / "s.db"
    good = await _store_with_good_rows(path)
    _damage(path, _RUNNING + f"('bad', 'fetch', 't-bad', 'manual', 'null', {T}, 'exploded', {T},"
            " 1e12, 1)")  # the newest start: first in the history, were it not damaged
    store = SQLiteStore(path)
    await store.open()
    try:
        found = await store.runs("fetch")
        assert good.unfinished_runs[0] in found
        assert len(found) == 3  # the running run and the two failed ones
        assert store.quarantined == (
            "runs row id 'bad': status 'exploded' is not one of running, succeeded, failed, "
            "interrupted",
        )
    finally:
        await store.close()


# ---------------------------------------------------------------------- schema versions


def _v1_file(path: Path) -> None:
    """A store file exactly as schema version 1 wrote it, with one of each record."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            "INSERT INTO pending (id, worker, source, payload, accepted_at)"
            " VALUES ('t1', 'fetch', 'manual', '{\"n\": 1}', '2026-01-01T12:00:00+00:00')"
        )
        conn.execute(
            "INSERT INTO workers VALUES ('fetch', 0, 'open', '2026-01-01T12:00:05+00:00', 5,"
            " '2026-01-01T12:00:01+00:00', NULL, 'ValueError: bad')"
        )
        conn.execute(
            "INSERT INTO dlq (worker, trigger_id, source, payload, error, traceback, attempts,"
            " started_at, failed_at, run_id) VALUES ('fetch', 't0', 'schedule', 'null',"
            " 'ValueError: bad', 'Traceback', 4, '2026-01-01T11:00:00+00:00',"
            " '2026-01-01T11:00:09+00:00', 'r0')"
        )


def _check_v1_data(stored: StoredState) -> None:
    assert stored.pending == (
        Trigger(id="t1", worker="fetch", source=Source.MANUAL, payload={"n": 1},
                accepted_at=at(0)),
    )
    assert stored.workers["fetch"] == WorkerState(
        name="fetch", enabled=False, circuit=Circuit.OPEN, opened_at=at(5),
        consecutive_failures=5, last_start=at(1), last_error="ValueError: bad",
    )
    assert stored.dlq_size == 1


def _user_version(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


async def test_version_1_file_opens_with_its_data(tmp_path: Path) -> None:
    """A store written by schema version 1 opens with today's code, data intact."""
    path = tmp_path / "v1.db"
    _v1_file(path)
    store = SQLiteStore(path)
    try:
        _check_v1_data(await store.open())
        assert (await store.dlq_list())[0].error == "ValueError: bad"
    finally:
        await store.close()
    assert _user_version(path) == len(MIGRATIONS)


async def test_version_1_file_is_migrated_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a version 1 file runs every later migration once, in order, keeping data."""
    path = tmp_path / "v1.db"
    _v1_file(path)
    later = (
        ("ALTER TABLE dlq ADD COLUMN note TEXT", "UPDATE dlq SET note = 'migrated'"),
        ("CREATE TABLE audit (line TEXT)", "INSERT INTO audit VALUES ('step 3')"),
    )
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", MIGRATIONS + later)
    for _ in range(2):  # the second open finds nothing left to migrate
        store = SQLiteStore(path)
        try:
            _check_v1_data(await store.open())
        finally:
            await store.close()
    assert _user_version(path) == len(MIGRATIONS) + 2
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT note FROM dlq").fetchall() == [("migrated",)]
        assert conn.execute("SELECT line FROM audit").fetchall() == [("step 3",)]


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A store written by a newer jobdeck is refused with a clear error, left untouched."""
    path = tmp_path / "new.db"
    _v1_file(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this jobdeck"):
        await SQLiteStore(path).open()
    assert _user_version(path) == len(MIGRATIONS) + 1


async def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    """A SQLite file that is not a jobdeck store is refused, not written into."""
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE customers (name TEXT)")
        conn.commit()
    with pytest.raises(StoreError, match="not a jobdeck store"):
        await SQLiteStore(path).open()
    assert _user_version(path) == 0
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)


# ---------------------------------------------------------------------- opening and owning


async def test_garbage_file_is_a_clear_store_error(tmp_path: Path) -> None:
    """A file that is not a database gives a StoreError naming the path."""
    path = tmp_path / "junk.db"
    path.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(StoreError, match=f"store {path} is corrupt or not a jobdeck store"):
        await SQLiteStore(path).open()


async def test_damaged_pages_are_a_clear_store_error(tmp_path: Path) -> None:
    """A real store whose pages were overwritten is refused as corrupt."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    await store.open()
    for n in range(300):
        await store.add_trigger(trigger(payload="x" * 100, t=n))
    await store.close()
    data = bytearray(path.read_bytes())
    assert len(data) > 8192
    data[4096:len(data)] = b"\xa5" * (len(data) - 4096)
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=f"store {path}"):
        await SQLiteStore(path).open()
    # A refused open leaves nothing held: the lock is free again.
    with pytest.raises(StoreError):
        await SQLiteStore(path).open()


async def test_second_owner_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    """While a store is open, opening it again fails at once with the owner's pid."""
    path = tmp_path / "s.db"
    first = SQLiteStore(path)
    await first.open()
    try:
        assert lock_path_of(path).read_text().strip() == str(os.getpid())
        with pytest.raises(StoreInUse, match=f"store {path} is in use by pid {os.getpid()}"):
            await SQLiteStore(path).open()
    finally:
        await first.close()
    second = SQLiteStore(path)
    await second.open()
    await second.close()


async def test_store_under_a_regular_file_is_refused(tmp_path: Path) -> None:
    """A store path whose folder is a file is a StoreError, whoever runs it (even root)."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="is not a folder"):
        await SQLiteStore(blocker / "s.db").open()


async def test_store_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    """A store path in a folder that does not exist is a StoreError naming the folder."""
    with pytest.raises(StoreError, match="does not exist"):
        await SQLiteStore(tmp_path / "nope" / "s.db").open()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
async def test_store_in_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    """A store in a folder the process may not write is a StoreError saying so."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(StoreError, match="not writable"):
            await SQLiteStore(folder / "s.db").open()
    finally:
        folder.chmod(0o755)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only files anyway")
async def test_read_only_store_file_is_refused(tmp_path: Path) -> None:
    """An existing store file the process may not write is a StoreError saying so."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    path.chmod(0o444)
    with pytest.raises(StoreError, match="read-only"):
        await SQLiteStore(path).open()


async def test_writes_after_close_are_refused(tmp_path: Path) -> None:
    """A closed store raises StoreError rather than writing."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.add_trigger(trigger())


async def test_cancelled_writers_leave_the_store_working(tmp_path: Path) -> None:
    """Writers cancelled at any moment leave no batch half-done and the writer usable."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    stored: list[Trigger] = []

    async def add(tr: Trigger) -> None:
        await store.add_trigger(tr)
        stored.append(tr)

    try:
        for round_ in range(20):
            with trio.move_on_after(0.0005 * round_):
                async with trio.open_nursery() as nursery:
                    for n in range(20):
                        nursery.start_soon(add, trigger(t=round_ * 100 + n))
        last = trigger(t=10_000)
        await store.add_trigger(last)
        stored.append(last)
    finally:
        await store.close()
    again = SQLiteStore(tmp_path / "s.db")
    try:
        pending = set((await again.open()).pending)
    finally:
        await again.close()
    # Every acknowledged write is stored; a cancelled one may or may not be.
    assert set(stored) <= pending
