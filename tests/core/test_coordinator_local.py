"""The local coordinator's admission and lease decisions, pure: no event loop runs."""

from __future__ import annotations

import random
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
import trio

from jobdeck import JobContext, LeaseLost, MemoryStore, OrchestratorConfig, WorkerSpec
from jobdeck._coordinator_local import LocalCoordinator
from jobdeck._eligibility import Lifecycle
from jobdeck._engine import Engine
from jobdeck._lifecycle import RunPhase
from jobdeck._records import RunStatus, Source, Trigger
from jobdeck._runtime import Phase, QueuedTrigger, WorkerRuntime
from tests.core.conftest import make_orchestrator, running

T = TypeVar("T")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def done(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never yields (the memory store never waits)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise AssertionError("the coroutine yielded")


def engine_with(*specs: WorkerSpec, slots: int = 5) -> tuple[Engine, LocalCoordinator]:
    engine = Engine(
        OrchestratorConfig(max_concurrent_workers=slots), MemoryStore(), now=lambda: T0,
        rng=random.Random(0),
    )
    for index, spec in enumerate(specs):
        engine.workers[spec.name] = WorkerRuntime(
            spec=spec, fn=lambda ctx: None, fn_ref="m:f", index=index, is_async=False
        )
    blockers: dict[str, set[str]] = {spec.name: set() for spec in specs}
    for spec in specs:
        for other in spec.blocks:
            blockers[spec.name].add(other)
            blockers[other].add(spec.name)
    engine.blockers = {name: frozenset(b) for name, b in blockers.items()}
    engine.lifecycle = Lifecycle.RUNNING
    return engine, LocalCoordinator(engine)


def triggered(name: str, **spec: Any) -> WorkerSpec:
    return WorkerSpec(name=name, mode="triggered", **spec)  # type: ignore[arg-type]


def queue(engine: Engine, name: str, payload: Any = None) -> Trigger:
    trigger = Trigger(worker=name, source=Source.MANUAL, payload=payload, accepted_at=T0)
    engine.workers[name].queue(QueuedTrigger(trigger=trigger, queued_t=0.0))
    engine.pending_count += 1
    return trigger


def test_admits_in_the_order_given_while_slots_last() -> None:
    """Three ready workers, two slots: the first two are admitted, holding slots."""
    engine, coordinator = engine_with(triggered("a"), triggered("b"), triggered("c"), slots=2)
    for name in "abc":
        queue(engine, name)
    ready = [engine.workers[n] for n in "cab"]
    admitted = coordinator.claim_now(ready, now=0.0, limit=2)
    assert [run.record.worker for run in admitted] == ["c", "a"]
    assert engine.slots_used == 2
    assert engine.workers["c"].phase is Phase.RUNNING
    assert engine.workers["b"].phase is Phase.IDLE


def test_a_blocking_pair_is_never_admitted_together() -> None:
    """`a` blocks `b`: admitting `a` makes `b` ineligible within the same claim."""
    engine, coordinator = engine_with(triggered("a", blocks=["b"]), triggered("b"))
    queue(engine, "a")
    queue(engine, "b")
    admitted = coordinator.claim_now(list(engine.workers.values()), now=0.0, limit=5)
    assert [run.record.worker for run in admitted] == ["a"]


def test_admission_takes_the_oldest_trigger_and_gives_a_fresh_token() -> None:
    """Each admitted run serves its worker's oldest trigger and holds its own lease."""
    engine, coordinator = engine_with(triggered("a"), triggered("b"))
    first = queue(engine, "a", 1)
    queue(engine, "a", 2)
    queue(engine, "b")
    runs = coordinator.claim_now(list(engine.workers.values()), now=0.0, limit=5)
    run_a = next(r for r in runs if r.record.worker == "a")
    assert run_a.trigger is first
    assert run_a.state.phase is RunPhase.RUNNING and run_a.attempt == 1
    assert len({r.token for r in runs}) == 2
    assert coordinator.holds("a") == run_a.token
    assert engine.pending_count == 1


def test_a_dependency_that_has_not_succeeded_holds_its_dependent() -> None:
    """`report` depends on `fetch`, which never succeeded: not admitted."""
    engine, coordinator = engine_with(triggered("fetch"), triggered("report", depends_on=["fetch"]))
    queue(engine, "report")
    assert coordinator.claim_now([engine.workers["report"]], now=0.0, limit=5) == []
    engine.workers["fetch"].last_success_seq = next(engine.seq)
    assert len(coordinator.claim_now([engine.workers["report"]], now=0.0, limit=5)) == 1


def test_paused_admits_nothing() -> None:
    """While paused, a ready worker with a slot free is not admitted."""
    engine, coordinator = engine_with(triggered("a"))
    queue(engine, "a")
    engine.paused = True
    assert coordinator.claim_now([engine.workers["a"]], now=0.0, limit=5) == []


def test_finish_with_the_lease_token_records_the_end_and_frees_the_lease() -> None:
    """The run's own token writes its end; the lease is gone afterwards."""
    engine, coordinator = engine_with(triggered("a"))
    queue(engine, "a")
    (run,) = coordinator.claim_now([engine.workers["a"]], now=0.0, limit=1)
    done(coordinator.started(run))
    record = run.record.finished(RunStatus.SUCCEEDED, ended_at=T0, attempts=1, duration_s=0.1)
    done(coordinator.finish(run, record))
    assert coordinator.holds("a") is None
    (stored,) = done(engine.store.runs("a"))
    assert stored.status is RunStatus.SUCCEEDED


def test_a_stale_token_changes_nothing() -> None:
    """A write carrying a token that no longer holds the lease raises LeaseLost and
    leaves the store as it was."""
    engine, coordinator = engine_with(triggered("a"))
    queue(engine, "a")
    (run,) = coordinator.claim_now([engine.workers["a"]], now=0.0, limit=1)
    done(coordinator.started(run))
    record = run.record.finished(RunStatus.FAILED, ended_at=T0, attempts=1, duration_s=0.1)
    run.token += 1000  # as if the lease had been taken away and granted again
    with pytest.raises(LeaseLost):
        done(coordinator.finish(run, record))
    (stored,) = done(engine.store.runs("a"))
    assert stored.status is RunStatus.RUNNING
    assert done(engine.store.dlq_list()) == []


async def test_a_worker_sees_its_runs_lease_token_as_fencing_token(
    autojump_clock: Any,
) -> None:
    """`ctx.fencing_token` is the run's lease token: its retries share it, each new run
    gets a higher one (local runs have tokens too)."""
    seen: list[tuple[int, int]] = []

    async def work(ctx: JobContext) -> None:
        seen.append((ctx.attempt, ctx.fencing_token))
        if ctx.attempt == 1:
            raise RuntimeError("once")

    orch = make_orchestrator()
    orch.register("job", work, mode="triggered", max_retries=1, retry_backoff_seconds=0.1)
    async with running(orch):
        await orch.trigger("job")
        await trio.sleep(5)
        await orch.trigger("job")
        await trio.sleep(5)
    assert [attempt for attempt, _ in seen] == [1, 2, 1, 2]
    first, second = seen[0][1], seen[2][1]
    assert seen[1][1] == first and seen[3][1] == second and second > first > 0
