"""What every Store must do (core/_store.py's protocol), as tests any store can run.

A test module subclasses `StoreContract` in a class named `Test...` and provides:

- a fixture `make_store`: a callable `make_store(*, history_per_worker=200) -> Store`
  returning a new, *unopened* store over fresh, empty data (each call its own data);
- `async def reopen(self, store) -> Store`: given a store that has just been closed,
  an *unopened* store over the same data, as a new process would see it (MemoryStore:
  the same instance; SQLite: a new store on the same file).

The contract opens, closes and reopens stores itself, and closes every store it
opened when a test ends. It only uses the Store protocol, never an implementation's
internals, so the same tests hold every store to the same behaviour.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobdeck import (
    Attempt,
    Circuit,
    DeadLetter,
    DeadLetterDraft,
    RunDetail,
    RunDetailDraft,
    RunLogLine,
    RunRecord,
    RunStatus,
    Source,
    Store,
    StoredState,
    Trigger,
    UnknownDeadLetter,
    UnknownRun,
    WorkerState,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

MakeStore = Callable[..., Store]
Restart = Callable[[Store], Awaitable[tuple[Store, StoredState]]]

PAYLOADS = [
    pytest.param(value, id=name)
    for name, value in {
        "null": None,
        "true": True,
        "false": False,
        "zero": 0,
        "negative": -7,
        "2**53": 2**53,
        "float": 3.25,
        "inexact-float": 0.1,
        "empty-string": "",
        "unicode": "héllo ✓ 日本語 🚀",
        "empty-list": [],
        "empty-object": {},
        "mixed-list": [1, "two", None, 3.5, [True]],
        "nested-object": {"url": "https://x.example", "n": [1, 2], "deep": {"x": None}, "é": "ü"},
    }.items()
]


def at(seconds: float) -> datetime:
    """A UTC timestamp `seconds` after T0."""
    return T0 + timedelta(seconds=seconds)


def trigger(
    worker: str = "fetch", *, payload: Any = None, t: float = 0.0, source: Source = Source.MANUAL
) -> Trigger:
    """A trigger accepted `t` seconds after T0."""
    return Trigger(worker=worker, source=source, payload=payload, accepted_at=at(t))


def started(tr: Trigger, *, t: float = 1.0, **kw: Any) -> RunRecord:
    """A run of `tr` that has just started."""
    return RunRecord(worker=tr.worker, trigger=tr, started_at=at(t), **kw)


def ended(run: RunRecord, status: RunStatus, *, after: float = 2.0, **kw: Any) -> RunRecord:
    """`run` finished `after` seconds after it started."""
    return RunRecord(
        id=run.id, worker=run.worker, trigger=run.trigger, status=status,
        started_at=run.started_at, ended_at=run.started_at + timedelta(seconds=after),
        duration_s=after, **kw,
    )


def state(worker: str = "fetch", **kw: Any) -> WorkerState:
    return WorkerState(name=worker, **kw)


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON: `True` is not `1`, `1.0` is not `1`, key order aside."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


class StoreContract:
    """The Store protocol's behaviour. Subclasses provide `make_store` and `reopen`."""

    @pytest.fixture
    def make_store(self) -> MakeStore:
        """`make_store(*, history_per_worker=200)`: a new unopened store on fresh data."""
        raise NotImplementedError("a StoreContract subclass provides the make_store fixture")

    async def reopen(self, store: Store) -> Store:
        """An unopened store over the data of `store`, which has just been closed."""
        raise NotImplementedError("a StoreContract subclass provides reopen()")

    # ------------------------------------------------------------ plumbing

    @asynccontextmanager
    async def opened(self, store: Store) -> AsyncIterator[Store]:
        """`store`, opened for the duration of the block and closed after it."""
        try:
            await store.open()
            yield store
        finally:
            await store.close()

    @pytest.fixture
    async def store(self, make_store: MakeStore) -> AsyncIterator[Store]:
        """An opened store on empty data, closed when the test ends."""
        async with self.opened(make_store()) as store:
            yield store

    @pytest.fixture
    async def restart(self) -> AsyncIterator[Restart]:
        """`await restart(store)`: close it and open what a new process would find."""
        reopened: list[Store] = []

        async def restart(store: Store) -> tuple[Store, StoredState]:
            await store.close()
            again = await self.reopen(store)
            reopened.append(again)
            return again, await again.open()

        try:
            yield restart
        finally:
            for again in reversed(reopened):
                await again.close()

    async def dead_letter(self, store: Store, *, worker: str = "fetch", t: float = 0.0) -> int:
        """Store a failed run with a DLQ entry; its id."""
        run = ended(started(trigger(worker, t=t), t=t + 1), RunStatus.FAILED, attempts=4)
        entry_id = await store.finish_run(
            run, worker=state(worker, consecutive_failures=1),
            dead_letter=DeadLetterDraft(error="boom", traceback="Traceback: boom"),
        )
        assert entry_id is not None
        return entry_id

    # ------------------------------------------------------------ open / close

    async def test_open_on_empty_data_gives_empty_state(self, make_store: MakeStore) -> None:
        """A new store opens with no workers, triggers, unfinished runs or dead letters."""
        store = make_store()
        try:
            assert await store.open() == StoredState()
        finally:
            await store.close()

    async def test_close_twice_is_safe(self, make_store: MakeStore) -> None:
        """Closing a store a second time does nothing and raises nothing."""
        store = make_store()
        await store.open()
        await store.close()
        await store.close()

    async def test_reopen_of_untouched_store_is_empty(
        self, store: Store, restart: Restart
    ) -> None:
        """Opening, closing and reopening without writes keeps the store empty."""
        _, stored = await restart(store)
        assert stored == StoredState()

    # ------------------------------------------------------------ triggers

    async def test_pending_triggers_survive_reopen_in_order(
        self, store: Store, restart: Restart
    ) -> None:
        """Accepted triggers come back pending, in the order accepted, payloads intact."""
        triggers = [
            trigger("fetch", payload={"n": 1}, t=1),
            trigger("report", payload=[1, 2], t=2, source=Source.SCHEDULE),
            trigger("fetch", payload="third", t=3),
        ]
        for tr in triggers:
            await store.add_trigger(tr)
        _, stored = await restart(store)
        assert stored.pending == tuple(triggers)

    @pytest.mark.parametrize("payload", PAYLOADS)
    async def test_trigger_payload_round_trips(
        self, store: Store, restart: Restart, payload: Any
    ) -> None:
        """Every kind of JSON value survives as a trigger payload, type and all."""
        await store.add_trigger(trigger(payload=payload))
        _, stored = await restart(store)
        assert same_json(stored.pending[0].payload, payload)

    async def test_trigger_fields_round_trip(self, store: Store, restart: Restart) -> None:
        """A trigger's id, worker, source, payload and timestamp come back unchanged."""
        tr = Trigger(
            id="t-1", worker="report", source=Source.DEPENDENCY, payload={"a": 1},
            accepted_at=datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC),
        )
        await store.add_trigger(tr)
        _, stored = await restart(store)
        (back,) = stored.pending
        assert back == tr
        assert back.accepted_at.utcoffset() == timedelta(0)

    # ------------------------------------------------------------ runs

    async def test_started_run_is_unfinished_after_reopen(
        self, store: Store, restart: Restart
    ) -> None:
        """A run left `running` (a crash) comes back among the unfinished runs."""
        tr = trigger(payload={"k": "v"})
        await store.add_trigger(tr)
        run = started(tr)
        await store.start_run(run)
        _, stored = await restart(store)
        assert stored.unfinished_runs == (run,)
        assert stored.pending == (tr,)

    async def test_succeeded_run_removes_its_trigger(
        self, store: Store, restart: Restart
    ) -> None:
        """A succeeded run's trigger is no longer pending and the run is not unfinished."""
        tr = trigger()
        await store.add_trigger(tr)
        run = started(tr)
        await store.start_run(run)
        await store.finish_run(ended(run, RunStatus.SUCCEEDED), worker=state())
        _, stored = await restart(store)
        assert (stored.pending, stored.unfinished_runs, stored.dlq_size) == ((), (), 0)

    async def test_finish_run_stores_the_worker_state(
        self, store: Store, restart: Restart
    ) -> None:
        """The worker's state given with a run's end is what a restart finds."""
        tr = trigger()
        run = started(tr)
        await store.start_run(run)
        after = state(last_start=at(1), last_success=at(3))
        await store.finish_run(ended(run, RunStatus.SUCCEEDED), worker=after)
        _, stored = await restart(store)
        assert stored.workers == {"fetch": after}

    async def test_finished_run_is_in_history(self, store: Store) -> None:
        """A finished run is listed with its final status, attempts and error."""
        run = started(trigger())
        await store.start_run(run)
        done = ended(run, RunStatus.FAILED, attempts=3, error="ValueError: bad")
        await store.finish_run(done, worker=state())
        assert await store.runs("fetch") == [done]

    async def test_running_run_is_in_history(self, store: Store) -> None:
        """A run that has started and not ended is listed as running."""
        run = started(trigger())
        await store.start_run(run)
        assert await store.runs("fetch") == [run]

    async def test_requeue_keeps_a_pending_trigger_once(
        self, store: Store, restart: Restart
    ) -> None:
        """An interrupted run's stored trigger stays pending, exactly once."""
        tr = trigger(payload={"retry": "me"})
        await store.add_trigger(tr)
        run = started(tr)
        await store.start_run(run)
        await store.finish_run(ended(run, RunStatus.INTERRUPTED), worker=state(), requeue=True)
        _, stored = await restart(store)
        assert (stored.pending, stored.unfinished_runs) == ((tr,), ())

    async def test_requeue_adds_a_trigger_that_was_not_stored(
        self, store: Store, restart: Restart
    ) -> None:
        """Requeueing a run whose trigger was never stored (a schedule) makes it pending."""
        tr = trigger(source=Source.SCHEDULE)
        run = started(tr)
        await store.start_run(run)
        await store.finish_run(ended(run, RunStatus.INTERRUPTED), worker=state(), requeue=True)
        _, stored = await restart(store)
        assert stored.pending == (tr,)

    async def test_finish_run_adds_caused_triggers(
        self, store: Store, restart: Restart
    ) -> None:
        """Triggers a run's end causes (its dependents) are pending, with the run ended."""
        tr = trigger("fetch")
        await store.add_trigger(tr)
        run = started(tr)
        await store.start_run(run)
        caused = [
            trigger("process", source=Source.DEPENDENCY, t=3),
            trigger("report", source=Source.DEPENDENCY, t=3),
        ]
        await store.finish_run(ended(run, RunStatus.SUCCEEDED), worker=state(), triggers=caused)
        _, stored = await restart(store)
        assert (stored.pending, stored.unfinished_runs) == (tuple(caused), ())

    async def test_history_is_bounded_per_worker(self, make_store: MakeStore) -> None:
        """Only the newest `history_per_worker` runs of each worker are kept, newest first."""
        async with self.opened(make_store(history_per_worker=3)) as store:
            fetches = [started(trigger("fetch"), t=i) for i in range(6)]
            reports = [started(trigger("report"), t=10 + i) for i in range(2)]
            for run in fetches + reports:
                await store.start_run(run)
                await store.finish_run(ended(run, RunStatus.SUCCEEDED), worker=state(run.worker))
            assert [r.id for r in await store.runs("fetch")] == [r.id for r in fetches[:2:-1]]
            assert [r.id for r in await store.runs("report")] == [r.id for r in reports[::-1]]

    # ------------------------------------------------------------ run details

    async def test_run_detail_keeps_attempts_and_log_lines(
        self, store: Store, restart: Restart
    ) -> None:
        """A run's attempts (error, traceback) and log lines stored with its end survive."""
        run = started(trigger(payload={"n": 1}))
        await store.start_run(run)
        detail = RunDetailDraft(
            attempts=(
                Attempt(number=1, started_at=at(1), ended_at=at(2), duration_s=1.0,
                        error="ValueError: no", traceback="Traceback: no"),
                Attempt(number=2, started_at=at(3), ended_at=at(4), duration_s=1.0),
            ),
            logs=(RunLogLine(ts=at(1.5), level="INFO", message="héllo\nsecond line"),),
            logs_dropped=7,
        )
        done = ended(run, RunStatus.SUCCEEDED, attempts=2)
        await store.finish_run(done, worker=state(), detail=detail)
        again, _ = await restart(store)
        found = await again.run_detail(run.id)
        assert found == RunDetail(
            record=done, attempts=detail.attempts, logs=detail.logs, logs_dropped=7
        )

    async def test_run_detail_without_a_stored_detail_has_its_one_attempt(
        self, store: Store
    ) -> None:
        """A run stored without detail has the one attempt its record describes."""
        run = started(trigger())
        await store.start_run(run)
        done = ended(run, RunStatus.SUCCEEDED)
        await store.finish_run(done, worker=state())
        found = await store.run_detail(run.id)
        assert found.record == done and found.logs == () and found.logs_dropped == 0
        assert found.attempts == (
            Attempt(number=1, started_at=done.started_at, ended_at=done.ended_at,
                    duration_s=done.duration_s),
        )

    async def test_run_detail_of_an_unknown_run(self, store: Store) -> None:
        """An id no run has raises UnknownRun."""
        with pytest.raises(UnknownRun):
            await store.run_detail("nope")

    async def test_run_details_go_with_the_history(self, make_store: MakeStore) -> None:
        """A run dropped from a worker's history takes its detail with it."""
        async with self.opened(make_store(history_per_worker=2)) as store:
            runs = [started(trigger(), t=i) for i in range(4)]
            for run in runs:
                await store.start_run(run)
                line = RunLogLine(ts=at(1), level="INFO", message=run.id)
                await store.finish_run(
                    ended(run, RunStatus.SUCCEEDED), worker=state(),
                    detail=RunDetailDraft(logs=(line,)),
                )
            with pytest.raises(UnknownRun):
                await store.run_detail(runs[0].id)
            kept = await store.run_detail(runs[-1].id)
            assert [line.message for line in kept.logs] == [runs[-1].id]

    async def test_runs_across_workers_newest_first(self, store: Store) -> None:
        """`runs(None)` lists every worker's runs together, newest first."""
        runs = [started(trigger(name), t=t) for t, name in enumerate(["a", "b", "a", "c"])]
        for run in runs:
            await store.start_run(run)
        assert [r.id for r in await store.runs(None)] == [r.id for r in reversed(runs)]

    async def test_runs_limit(self, store: Store) -> None:
        """`runs(limit=n)` gives the n newest runs."""
        runs = [started(trigger(), t=t) for t in range(5)]
        for run in runs:
            await store.start_run(run)
        assert [r.id for r in await store.runs("fetch", limit=2)] == [runs[4].id, runs[3].id]

    async def test_runs_of_an_unknown_worker_is_empty(self, store: Store) -> None:
        """Asking for the history of a worker with no runs gives an empty list."""
        assert await store.runs("nobody") == []

    # ------------------------------------------------------------ worker state

    async def test_save_worker_round_trips_every_field(
        self, store: Store, restart: Restart
    ) -> None:
        """Every WorkerState field, tz-aware datetimes and the circuit enum come back."""
        saved = WorkerState(
            name="fetch", enabled=False, circuit=Circuit.OPEN,
            opened_at=datetime(2026, 2, 3, 4, 5, 6, 789012, tzinfo=UTC),
            consecutive_failures=5,
            last_start=datetime(2026, 2, 3, 4, 0, 0, 1, tzinfo=UTC),
            last_success=datetime(2026, 2, 1, 0, 0, tzinfo=UTC),
            last_error="TimeoutError: timed out after 30s ✗",
        )
        await store.save_worker(saved)
        _, stored = await restart(store)
        back = stored.workers["fetch"]
        assert back == saved
        assert back.opened_at is not None and back.opened_at.utcoffset() == timedelta(0)

    @pytest.mark.parametrize("circuit", list(Circuit))
    async def test_save_worker_round_trips_each_circuit(
        self, store: Store, restart: Restart, circuit: Circuit
    ) -> None:
        """Each circuit state is stored as itself."""
        await store.save_worker(state(circuit=circuit))
        _, stored = await restart(store)
        assert stored.workers["fetch"].circuit is circuit

    async def test_save_worker_defaults_round_trip(
        self, store: Store, restart: Restart
    ) -> None:
        """A state with every optional field empty comes back with them empty."""
        await store.save_worker(state())
        _, stored = await restart(store)
        assert stored.workers == {"fetch": state()}

    async def test_save_worker_replaces_the_previous_state(
        self, store: Store, restart: Restart
    ) -> None:
        """Saving a worker twice keeps only the later state."""
        await store.save_worker(state(enabled=False))
        await store.save_worker(state(enabled=True, consecutive_failures=2))
        _, stored = await restart(store)
        assert stored.workers == {"fetch": state(enabled=True, consecutive_failures=2)}

    # ------------------------------------------------------------ dead letters

    async def test_dead_letter_has_every_field(self, store: Store) -> None:
        """A failed run's DLQ entry holds its worker, trigger, error, attempts and times."""
        tr = trigger(payload={"file": "a.csv"}, t=0, source=Source.REPLAY)
        await store.add_trigger(tr)
        run = started(tr, t=1)
        await store.start_run(run)
        done = ended(run, RunStatus.FAILED, after=9, attempts=4, error="ValueError: bad")
        entry_id = await store.finish_run(
            done, worker=state(consecutive_failures=1),
            dead_letter=DeadLetterDraft(error="ValueError: bad", traceback="Traceback ...\n"),
        )
        assert entry_id is not None
        assert await store.dlq_get(entry_id) == DeadLetter(
            id=entry_id, worker="fetch", trigger_id=tr.id, source=Source.REPLAY,
            payload={"file": "a.csv"}, error="ValueError: bad", traceback="Traceback ...\n",
            attempts=4, started_at=at(1), failed_at=at(10), run_id=run.id,
        )

    async def test_dead_lettered_run_leaves_pending(
        self, store: Store, restart: Restart
    ) -> None:
        """A run that went to the DLQ no longer has a pending trigger; the DLQ has it."""
        await self.dead_letter(store)
        _, stored = await restart(store)
        assert (stored.pending, stored.unfinished_runs, stored.dlq_size) == ((), (), 1)

    async def test_dead_letters_survive_reopen(self, store: Store, restart: Restart) -> None:
        """DLQ entries are durable: the same entries under the same ids after a restart."""
        await self.dead_letter(store, t=0)
        await self.dead_letter(store, worker="report", t=10)
        before = await store.dlq_list()
        again, _ = await restart(store)
        assert await again.dlq_list() == before

    @pytest.mark.parametrize("payload", PAYLOADS)
    async def test_dead_letter_payload_round_trips(
        self, store: Store, restart: Restart, payload: Any
    ) -> None:
        """Every kind of JSON value survives as a dead letter's payload."""
        run = ended(started(trigger(payload=payload)), RunStatus.FAILED)
        entry_id = await store.finish_run(
            run, worker=state(), dead_letter=DeadLetterDraft(error="e", traceback="tb")
        )
        assert entry_id is not None
        again, _ = await restart(store)
        assert same_json((await again.dlq_get(entry_id)).payload, payload)

    async def test_dead_letter_ids_are_new(self, store: Store) -> None:
        """Each DLQ entry gets an id of its own."""
        ids = [await self.dead_letter(store, t=t) for t in range(3)]
        assert len(set(ids)) == 3

    async def test_finish_run_without_dead_letter_returns_none(self, store: Store) -> None:
        """A run's end that adds no DLQ entry returns no id."""
        run = started(trigger())
        await store.start_run(run)
        assert await store.finish_run(ended(run, RunStatus.SUCCEEDED), worker=state()) is None

    async def test_dlq_list_newest_first(self, store: Store) -> None:
        """The DLQ lists the latest entry first."""
        ids = [await self.dead_letter(store, t=t) for t in range(3)]
        assert [e.id for e in await store.dlq_list()] == ids[::-1]

    async def test_dlq_list_limit(self, store: Store) -> None:
        """`dlq_list(limit=n)` gives the n newest entries."""
        ids = [await self.dead_letter(store, t=t) for t in range(4)]
        assert [e.id for e in await store.dlq_list(limit=2)] == [ids[3], ids[2]]

    async def test_dlq_get_unknown_id(self, store: Store) -> None:
        """Getting an id the DLQ does not hold raises UnknownDeadLetter."""
        with pytest.raises(UnknownDeadLetter):
            await store.dlq_get(12345)

    async def test_dlq_delete_unknown_id(self, store: Store) -> None:
        """Deleting an id the DLQ does not hold raises UnknownDeadLetter."""
        with pytest.raises(UnknownDeadLetter):
            await store.dlq_delete(12345)

    async def test_dlq_replay_unknown_id(self, store: Store) -> None:
        """Replaying an id the DLQ does not hold raises UnknownDeadLetter."""
        with pytest.raises(UnknownDeadLetter):
            await store.dlq_replay(12345, trigger(source=Source.REPLAY))

    async def test_dlq_replay_unknown_id_stores_no_trigger(
        self, store: Store, restart: Restart
    ) -> None:
        """A replay that fails on an unknown id leaves nothing pending (it is atomic)."""
        with pytest.raises(UnknownDeadLetter):
            await store.dlq_replay(12345, trigger(source=Source.REPLAY))
        _, stored = await restart(store)
        assert stored.pending == ()

    async def test_dlq_delete_removes_the_entry(self, store: Store, restart: Restart) -> None:
        """A deleted entry is gone for good; the others stay."""
        first = await self.dead_letter(store, t=0)
        second = await self.dead_letter(store, t=10)
        await store.dlq_delete(first)
        again, stored = await restart(store)
        assert [e.id for e in await again.dlq_list()] == [second]
        assert stored.dlq_size == 1

    async def test_dlq_replay_moves_the_entry_to_pending(
        self, store: Store, restart: Restart
    ) -> None:
        """Replay removes the entry and stores the new trigger as pending, durably."""
        entry_id = await self.dead_letter(store)
        entry = await store.dlq_get(entry_id)
        replay = trigger(entry.worker, payload=entry.payload, t=20, source=Source.REPLAY)
        await store.dlq_replay(entry_id, replay)
        again, stored = await restart(store)
        assert (stored.pending, stored.dlq_size) == ((replay,), 0)
        with pytest.raises(UnknownDeadLetter):
            await again.dlq_get(entry_id)

    async def test_dlq_purge_returns_the_count_and_empties(
        self, store: Store, restart: Restart
    ) -> None:
        """Purge removes every entry and says how many there were."""
        for t in range(3):
            await self.dead_letter(store, t=t)
        assert await store.dlq_purge() == 3
        again, stored = await restart(store)
        assert (await again.dlq_list(), stored.dlq_size) == ([], 0)

    async def test_dlq_purge_on_empty_returns_zero(self, store: Store) -> None:
        """Purging an empty DLQ removes nothing and says 0."""
        assert await store.dlq_purge() == 0

    async def test_dlq_ids_are_not_reused_after_delete(self, store: Store) -> None:
        """An entry added after a delete gets a new id, so an old id never means another run."""
        first = await self.dead_letter(store, t=0)
        second = await self.dead_letter(store, t=1)
        await store.dlq_delete(second)
        third = await self.dead_letter(store, t=2)
        assert third not in (first, second)
