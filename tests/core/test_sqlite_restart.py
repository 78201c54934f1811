"""What survives a restart on the SQLite store: two orchestrators, one after the other.

Real clock (the store works in threads), short intervals, generous timeouts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import trio

from jobdeck import (
    Event,
    HealthChanged,
    JobContext,
    Orchestrator,
    OrchestratorConfig,
    RunFailed,
    RunInterrupted,
    RunRecord,
    RunStarted,
    RunSucceeded,
    Source,
    SQLiteStore,
    Subscription,
    Trigger,
    WorkerDisabled,
)

E = TypeVar("E", bound=Event)

#: Upper bound on any wait here: nothing should take near this long.
PATIENCE_S = 15.0


def orchestrator(path: Path) -> Orchestrator:
    return Orchestrator(OrchestratorConfig(shutdown_grace_seconds=5), store=SQLiteStore(path))


@asynccontextmanager
async def running(orch: Orchestrator) -> AsyncIterator[Subscription]:
    """Run `orch` for the block with a subscription to its events; stop it after."""
    with orch.subscribe() as events:
        async with trio.open_nursery() as nursery:
            await nursery.start(orch.run)
            try:
                yield events
            finally:
                orch.stop()


async def next_event(
    events: Subscription, kind: type[E], where: Callable[[E], bool] = lambda _: True
) -> E:
    with trio.fail_after(PATIENCE_S):
        async for event in events:
            if isinstance(event, kind) and where(event):
                return event
    raise AssertionError(f"the events ended before a {kind.__name__}")


async def test_schedule_continues_from_the_stored_last_start(tmp_path: Path) -> None:
    """A scheduled worker runs one interval after its stored last start, not at start-up."""
    interval = 1.5

    async def tick(ctx: JobContext) -> None:
        pass

    first = orchestrator(tmp_path / "s.db")
    first.register("tick", tick, interval_seconds=interval)
    async with running(first) as events:
        started = await next_event(events, RunStarted)
        await next_event(events, RunSucceeded)

    second = orchestrator(tmp_path / "s.db")
    second.register("tick", tick, interval_seconds=interval)
    restarted_at = datetime.now(UTC)
    async with running(second) as events:
        again = await next_event(events, RunStarted)
    due = started.ts + timedelta(seconds=interval)
    assert restarted_at < due, "the restart came too late to tell"
    assert again.source == Source.SCHEDULE.value
    assert again.ts >= due - timedelta(milliseconds=50), "ran at start-up instead of when due"
    assert again.ts < due + timedelta(seconds=1)


async def test_overdue_schedule_runs_once_at_restart(tmp_path: Path) -> None:
    """Due times missed while down run once at the next start, then the grid goes on."""
    interval = 1.0

    async def tick(ctx: JobContext) -> None:
        pass

    first = orchestrator(tmp_path / "s.db")
    first.register("tick", tick, interval_seconds=interval)
    async with running(first) as events:
        anchor = (await next_event(events, RunStarted)).ts
        await next_event(events, RunSucceeded)
    # Down until halfway between the third and fourth grid points.
    await trio.sleep((anchor + timedelta(seconds=2.5) - datetime.now(UTC)).total_seconds())

    second = orchestrator(tmp_path / "s.db")
    second.register("tick", tick, interval_seconds=interval)
    restarted_at = datetime.now(UTC)
    async with running(second) as events:
        caught_up = await next_event(events, RunStarted)
        following = await next_event(events, RunStarted)
    assert caught_up.ts - restarted_at < timedelta(seconds=0.3)
    # No burst for the two missed due times: the next run waits for the next grid point.
    assert following.ts >= anchor + timedelta(seconds=3 * interval - 0.05)


async def test_disabled_worker_stays_disabled_with_its_trigger(tmp_path: Path) -> None:
    """A worker disabled before a restart is still disabled, its trigger held, until enabled."""
    seen: list[Any] = []

    async def job(ctx: JobContext) -> None:
        seen.append(ctx.payload)

    first = orchestrator(tmp_path / "s.db")
    first.register("job", job, mode="triggered")
    async with running(first):
        await first.disable("job")
        await first.trigger("job", {"n": 7})

    second = orchestrator(tmp_path / "s.db")
    second.register("job", job, mode="triggered")
    async with running(second) as events:
        worker = second.snapshot().workers[0]
        assert (worker.enabled, worker.state, worker.pending) == (False, "disabled", 1)
        await trio.sleep(0.3)
        assert seen == []
        await second.enable("job")
        await next_event(events, RunSucceeded)
    assert seen == [{"n": 7}]


async def test_failure_count_and_open_circuit_survive(tmp_path: Path) -> None:
    """Consecutive failures count on across restarts; an opened circuit stays open."""
    async def broken(ctx: JobContext) -> None:
        raise ValueError("always")

    spec: dict[str, Any] = dict(mode="triggered", max_retries=0, max_consecutive_failures=3)
    first = orchestrator(tmp_path / "s.db")
    first.register("broken", broken, **spec)
    async with running(first) as events:
        for _ in range(2):
            await first.trigger("broken")
            await next_event(events, RunFailed)

    second = orchestrator(tmp_path / "s.db")
    second.register("broken", broken, **spec)
    async with running(second) as events:
        snap = second.snapshot()
        worker = snap.workers[0]
        assert (worker.consecutive_failures, worker.enabled, snap.dlq_size) == (2, True, 2)
        assert worker.last_error == "ValueError: always"
        await second.trigger("broken")
        disabled = await next_event(events, WorkerDisabled)
    assert disabled.reason == "circuit open after 3 failures"

    third = orchestrator(tmp_path / "s.db")
    third.register("broken", broken, **spec)
    async with running(third):
        snap = third.snapshot()
        worker = snap.workers[0]
        assert (worker.circuit, worker.state) == ("open", "circuit_open")
        assert worker.consecutive_failures == 3
        assert snap.dlq_size == 3


async def test_last_start_and_success_survive(tmp_path: Path) -> None:
    """A worker's last start and last success are what the next process shows."""
    async def job(ctx: JobContext) -> None:
        pass

    first = orchestrator(tmp_path / "s.db")
    first.register("job", job, mode="triggered")
    async with running(first) as events:
        await first.trigger("job")
        await next_event(events, RunSucceeded)
        before = first.snapshot().workers[0]

    second = orchestrator(tmp_path / "s.db")
    second.register("job", job, mode="triggered")
    async with running(second):
        after = second.snapshot().workers[0]
    assert before.last_start is not None and before.last_success is not None
    assert (after.last_start, after.last_success) == (before.last_start, before.last_success)


async def test_run_left_running_is_recovered_and_runs_again(tmp_path: Path) -> None:
    """A run a crash left `running` is recorded interrupted (crash) and its trigger re-run."""
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    await store.open()
    trigger = Trigger(
        worker="job", source=Source.MANUAL, payload={"file": "a.csv"},
        accepted_at=datetime.now(UTC),
    )
    await store.add_trigger(trigger)
    await store.start_run(RunRecord(worker="job", trigger=trigger, started_at=datetime.now(UTC)))
    await store.close()  # what a killed process leaves behind

    seen: list[Any] = []

    async def job(ctx: JobContext) -> None:
        seen.append((ctx.trigger_id, ctx.payload))

    orch = orchestrator(path)
    orch.register("job", job, mode="triggered")
    async with running(orch) as events:
        interrupted = await next_event(events, RunInterrupted)
        await next_event(events, RunSucceeded)
    assert (interrupted.reason, interrupted.trigger_id) == ("crash", trigger.id)
    assert seen == [(trigger.id, {"file": "a.csv"})]
    again = SQLiteStore(path)
    stored = await again.open()
    await again.close()
    assert (stored.pending, stored.unfinished_runs) == ((), ())


async def test_run_interrupted_by_shutdown_runs_after_restart(tmp_path: Path) -> None:
    """A run cancelled at shutdown (past the grace) is pending, with its payload, next time."""
    seen: list[Any] = []

    async def slow(ctx: JobContext) -> None:
        seen.append(ctx.payload)
        if len(seen) == 1:
            await trio.sleep_forever()

    first = orchestrator(tmp_path / "s.db")
    first.register("slow", slow, mode="triggered")
    with first.subscribe() as events:
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            await first.trigger("slow", [1, 2])
            await next_event(events, RunStarted)
            first.stop(grace=0.1)
            interrupted = await next_event(events, RunInterrupted)
    assert interrupted.reason == "shutdown"

    second = orchestrator(tmp_path / "s.db")
    second.register("slow", slow, mode="triggered")
    async with running(second) as events:
        await next_event(events, RunSucceeded)
    assert seen == [[1, 2], [1, 2]]


async def test_full_disk_degrades_health_and_the_write_is_retried(tmp_path: Path) -> None:
    """A run's end that does not fit on disk is retried; health says so until it fits."""
    release = trio.Event()

    async def verbose_failure(ctx: JobContext) -> None:
        await release.wait()
        raise ValueError("x" * 200_000)  # a big DLQ entry: the file must grow to hold it

    store = SQLiteStore(tmp_path / "s.db")
    orch = Orchestrator(OrchestratorConfig(health_interval_seconds=0.05), store=store)
    orch.register("job", verbose_failure, mode="triggered", max_retries=0)
    async with running(orch) as events:
        await orch.trigger("job")
        await next_event(events, RunStarted)
        _cap_file(store, extra_pages=0)
        release.set()
        failing = await next_event(
            events, HealthChanged, lambda e: e.worker is None and e.health == "failing"
        )
        assert "store errors" in " ".join(failing.reasons)
        assert orch.snapshot().store_errors > 0
        _cap_file(store, extra_pages=1_000_000)
        await next_event(events, RunFailed)
        assert orch.snapshot().store_errors == 0
    again = SQLiteStore(tmp_path / "s.db")
    try:
        assert (await again.open()).dlq_size == 1
    finally:
        await again.close()


def _cap_file(store: SQLiteStore, *, extra_pages: int) -> None:
    # Test-only: a "disk" that is full once the file has grown by `extra_pages`.
    conn = store._writer.conn
    assert conn is not None
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.execute(f"PRAGMA max_page_count = {pages + extra_pages}")


async def test_run_detail_survives_a_restart(tmp_path: Path) -> None:
    """A run's attempts and log lines are in the store: a new orchestrator shows them."""

    async def flaky(ctx: JobContext) -> None:
        ctx.log.info("attempt %d with %s", ctx.attempt, ctx.payload)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")

    first = orchestrator(tmp_path / "s.db")
    first.register("flaky", flaky, mode="triggered", retry_backoff_seconds=0.01)
    async with running(first) as events:
        await first.trigger("flaky", "x")
        done = await next_event(events, RunSucceeded)

    second = orchestrator(tmp_path / "s.db")
    second.register("flaky", flaky, mode="triggered")
    async with running(second):
        detail = await second.run_detail(done.run_id)
    assert [(a.number, a.error) for a in detail.attempts] == [
        (1, "RuntimeError: first attempt fails"), (2, None),
    ]
    assert [line.message for line in detail.logs] == ["attempt 1 with x", "attempt 2 with x"]
