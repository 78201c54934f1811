"""PgCoordinator driven by hand: schedules by compare-and-set, claims under the lock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import trio

from jobdeck import JobContext, OccurrenceCoalesced, Orchestrator, Source, Trigger
from jobdeck._runtime import WorkerRuntime

from .nodes import coordinator, joined, shift_clock, sql


async def noop(ctx: JobContext) -> None:
    pass


def setup(orch: Orchestrator) -> None:
    orch.register("tick", noop, interval_seconds=60)
    orch.register("left", noop, mode="triggered", blocks=["right"])
    orch.register("right", noop, mode="triggered")


@pytest.fixture
async def two(pg_dsn: str) -> AsyncIterator[tuple[Orchestrator, Orchestrator]]:
    a = await joined(pg_dsn, "a", setup)
    b = await joined(pg_dsn, "b", setup)
    try:
        yield a, b
    finally:
        await a.store.close()
        await b.store.close()


async def test_two_nodes_advancing_one_occurrence_store_one_trigger(
    pg_dsn: str, two: tuple[Orchestrator, Orchestrator]
) -> None:
    """Both nodes wake for the same due time: one compare-and-set wins, one trigger."""
    a, b = two
    tick = [a._engine.workers["tick"]], [b._engine.workers["tick"]]
    results = []

    async def advance(orch: Orchestrator, workers: list[WorkerRuntime]) -> None:
        results.append(await coordinator(orch).advance_schedules(workers))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(advance, a, tick[0])
        nursery.start_soon(advance, b, tick[1])
    ((anchor,),) = sql(pg_dsn, "SELECT anchor FROM jd_workers WHERE name = 'tick'")
    assert sql(pg_dsn, "SELECT worker, source, due_at FROM jd_triggers") == [
        ("tick", "schedule", anchor)
    ]
    nexts = {r[0]["tick"] for r in results}
    assert len(nexts) == 1 and (nexts.pop() - anchor).total_seconds() == 60


async def test_missed_occurrences_coalesce_into_the_pending_one_and_are_counted(
    pg_dsn: str, two: tuple[Orchestrator, Orchestrator]
) -> None:
    """Due times passed while a schedule trigger still waits fold into it, counted."""
    a, _ = two
    tick = [a._engine.workers["tick"]]
    await coordinator(a).advance_schedules(tick)
    shift_clock(pg_dsn, 200)  # the occurrences at +60, +120 and +180 s pass
    nexts, _ = await coordinator(a).advance_schedules(tick)
    ((anchor, coalesced),) = sql(pg_dsn, "SELECT anchor, coalesced FROM jd_workers"
                                         " WHERE name = 'tick'")
    assert (nexts["tick"] - anchor).total_seconds() == 240
    assert coalesced == 3
    assert sql(pg_dsn, "SELECT count(*) FROM jd_triggers") == [(1,)]


async def test_claims_at_once_never_admit_a_blocks_pair(
    pg_dsn: str, two: tuple[Orchestrator, Orchestrator]
) -> None:
    """Two nodes claiming together, each able to take one side of a blocks pair: one wins."""
    a, b = two
    for name in ("left", "right"):
        await a.store.add_trigger(
            Trigger(worker=name, source=Source.MANUAL, accepted_at=datetime.now(UTC))
        )
    admitted: list[str] = []

    async def claim(orch: Orchestrator) -> None:
        runs = await coordinator(orch).claim([], trio.current_time(), 1)
        admitted.extend(r.record.worker for r in runs)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(claim, a)
        nursery.start_soon(claim, b)
    assert len(admitted) == 1
    assert sql(pg_dsn, "SELECT count(*) FROM jd_leases") == [(1,)]


async def test_a_coalesced_occurrence_is_announced(
    pg_dsn: str, two: tuple[Orchestrator, Orchestrator]
) -> None:
    """The node whose compare-and-set folds missed occurrences into the pending one
    publishes `occurrence_coalesced`: the worker, the first due time folded, and how
    many (the one whose trigger still waits, and the one skipped after it)."""
    a, _ = two
    tick = [a._engine.workers["tick"]]
    with a.subscribe() as sub:
        await coordinator(a).advance_schedules(tick)
        ((first_due,),) = sql(pg_dsn, "SELECT due_at FROM jd_triggers")
        shift_clock(pg_dsn, 130)  # +60 and +120 pass while the first trigger waits
        await coordinator(a).advance_schedules(tick)
        events = []
        while True:
            try:
                events.append(sub.receive.receive_nowait())
            except trio.WouldBlock:
                break
    coalesced = [e for e in events if isinstance(e, OccurrenceCoalesced)]
    assert [(e.worker, e.count) for e in coalesced] == [("tick", 2)]
    assert coalesced[0].due_at == first_due + timedelta(seconds=60)
    assert coalesced[0].to_dict()["event"] == "occurrence_coalesced"
