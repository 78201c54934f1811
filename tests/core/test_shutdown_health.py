"""Graceful shutdown, restart and crash recovery, and the health monitor, in virtual time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

import trio
import trio.testing

from jobdeck import (
    Event,
    HealthChanged,
    JobContext,
    MemoryStore,
    Orchestrator,
    OrchestratorConfig,
    OrchestratorState,
    OrchestratorStopped,
    RunInterrupted,
    RunRecord,
    RunStatus,
    RunSucceeded,
    Source,
    Subscription,
    Trigger,
)
from tests.core.conftest import EPOCH, MaxRandom, make_orchestrator, running, virtual_wall_clock

E = TypeVar("E", bound=Event)


def received(subscription: Subscription, kind: type[E]) -> list[E]:
    """The events of one kind queued on `subscription` so far (it is drained)."""
    events: list[E] = []
    while True:
        try:
            event = subscription.receive.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return events
        if isinstance(event, kind):
            events.append(event)


def sleeper(seconds: float) -> Any:
    """A worker that works for `seconds`."""

    async def work(ctx: JobContext) -> None:
        await trio.sleep(seconds)

    return work


async def pending_ids(store: MemoryStore) -> set[str]:
    """Ids of the triggers the store holds as pending."""
    return {trigger.id for trigger in (await store.open()).pending}


async def fail_always(ctx: JobContext) -> None:
    raise RuntimeError("always fails")


# --- graceful shutdown -----------------------------------------------------------------


async def test_run_ending_inside_grace_finishes(autojump_clock: trio.testing.MockClock) -> None:
    """A run that ends inside the grace finishes and is recorded succeeded."""
    store = MemoryStore()
    orch = make_orchestrator(store=store, shutdown_grace_seconds=10)
    orch.register("w", sleeper(5), mode="triggered")
    async with trio.open_nursery() as nursery:
        await nursery.start(orch.run)
        await orch.trigger("w")
        await trio.sleep_until(1)
        orch.stop()
        await orch.wait_stopped()
        assert trio.current_time() == 5.0
    (run,) = await store.runs("w")
    assert run.status is RunStatus.SUCCEEDED
    assert await pending_ids(store) == set()


async def test_run_past_grace_is_interrupted_and_requeued(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A run still going at the end of the grace is cancelled, recorded interrupted, re-queued."""
    store = MemoryStore()
    orch = make_orchestrator(store=store, shutdown_grace_seconds=10)
    orch.register("w", sleeper(100), mode="triggered")
    with orch.subscribe() as events:
        async with trio.open_nursery() as nursery:
            await nursery.start(orch.run)
            trigger_id = await orch.trigger("w")
            await trio.sleep_until(1)
            orch.stop()
            await orch.wait_stopped()
            assert trio.current_time() == 11.0
        (interrupted,) = received(events, RunInterrupted)
    assert (interrupted.reason, interrupted.trigger_id) == ("shutdown", trigger_id)
    (run,) = await store.runs("w")
    assert run.status is RunStatus.INTERRUPTED
    assert await pending_ids(store) == {trigger_id}


async def test_second_stop_skips_the_rest_of_the_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A second stop() ends the grace at once; the run is still recorded interrupted."""
    store = MemoryStore()
    orch = make_orchestrator(store=store, shutdown_grace_seconds=10)
    orch.register("w", sleeper(100), mode="triggered")
    with orch.subscribe() as events:
        async with trio.open_nursery() as nursery:
            await nursery.start(orch.run)
            trigger_id = await orch.trigger("w")
            await trio.sleep_until(1)
            orch.stop()
            await trio.sleep_until(3)
            orch.stop()
            await orch.wait_stopped()
            assert trio.current_time() == 3.0
        (interrupted,) = received(events, RunInterrupted)
    assert interrupted.reason == "shutdown"
    assert await pending_ids(store) == {trigger_id}


async def test_snapshot_counts_the_grace_down_while_stopping(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """While stopping, the snapshot says how much grace is left; a second stop makes it 0."""
    orch = make_orchestrator(shutdown_grace_seconds=10)
    orch.register("w", sleeper(100), mode="triggered")
    async with trio.open_nursery() as nursery:
        await nursery.start(orch.run)
        assert orch.snapshot().grace_left_s is None
        await orch.trigger("w")
        await trio.sleep_until(1)
        orch.stop()
        await trio.sleep_until(5)
        snap = orch.snapshot()
        assert snap.state is OrchestratorState.STOPPING
        assert snap.grace_left_s == 6.0
        orch.stop()
        assert orch.snapshot().grace_left_s == 0.0
        await orch.wait_stopped()


async def test_run_in_retry_wait_is_interrupted_at_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A run waiting to retry at stop is interrupted at once; its trigger is kept, no DLQ."""
    store = MemoryStore()
    orch = Orchestrator(
        OrchestratorConfig(shutdown_grace_seconds=10), store=store, now=virtual_wall_clock,
        rng=MaxRandom(),
    )  # fmt: skip
    orch.register("w", fail_always, mode="triggered", retry_backoff_seconds=10)
    with orch.subscribe() as events:
        async with trio.open_nursery() as nursery:
            await nursery.start(orch.run)
            trigger_id = await orch.trigger("w")
            await trio.sleep_until(2)
            assert orch.snapshot().worker("w").state == "retrying"
            orch.stop()
            await orch.wait_stopped()
            assert trio.current_time() == 2.0
        (interrupted,) = received(events, RunInterrupted)
    assert (interrupted.reason, interrupted.attempt) == ("shutdown", 1)
    assert await pending_ids(store) == {trigger_id}
    assert await store.dlq_list() == []


async def test_worker_ignoring_cancellation_is_flagged_stuck(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A shielded worker is flagged stuck; shutdown ends after grace + stuck_after_seconds."""

    async def shielded(ctx: JobContext) -> None:
        with trio.CancelScope(shield=True):
            await trio.sleep(1000)

    orch = make_orchestrator(shutdown_grace_seconds=10, stuck_after_seconds=5)
    orch.register("w", shielded, mode="triggered")
    with orch.subscribe() as events:
        async with trio.open_nursery() as nursery:
            await nursery.start(orch.run)
            await orch.trigger("w")
            await trio.sleep_until(1)
            orch.stop()
            await orch.wait_stopped()
            assert trio.current_time() == 16.0
        queued = received(events, Event)
    (interrupted,) = [e for e in queued if isinstance(e, RunInterrupted)]
    (stopped,) = [e for e in queued if isinstance(e, OrchestratorStopped)]
    assert interrupted.reason == "stuck"
    assert stopped.stuck == 1


async def test_continuous_worker_finishes_its_iteration_at_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """At stop a continuous worker finishes the iteration it is in and is not run again."""
    starts: list[float] = []

    async def loop(ctx: JobContext) -> None:
        starts.append(trio.current_time())
        await trio.sleep(3)

    orch = make_orchestrator(shutdown_grace_seconds=30)
    orch.register("w", loop, mode="continuous")
    with orch.subscribe() as events:
        async with trio.open_nursery() as nursery:
            await nursery.start(orch.run)
            await trio.sleep_until(4)
            orch.stop()
            await orch.wait_stopped()
            assert trio.current_time() == 6.0
        assert len(received(events, RunSucceeded)) == 2
    assert starts == [0.0, 3.0]


# --- restart and crash recovery --------------------------------------------------------


async def test_restart_runs_trigger_left_pending_by_interrupted_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A second orchestrator on the same store runs the trigger an interrupted run left."""
    store = MemoryStore()
    first = make_orchestrator(store=store, shutdown_grace_seconds=1)
    first.register("w", sleeper(100), mode="triggered")
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        trigger_id = await first.trigger("w", {"n": 1})
        await trio.sleep_until(1)
        first.stop()
    assert trio.current_time() == 2.0

    seen: list[tuple[float, str, Any, str]] = []

    async def work(ctx: JobContext) -> None:
        seen.append((trio.current_time(), ctx.trigger_id, ctx.payload, ctx.source))

    second = make_orchestrator(store=store)
    second.register("w", work, mode="triggered")
    async with running(second):
        await trio.sleep_until(5)
    assert seen == [(2.0, trigger_id, {"n": 1}, "manual")]
    assert await pending_ids(store) == set()


async def test_crash_leftover_run_is_interrupted_and_rerun(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A run left "running" by a crash is recorded interrupted ("crash") and its trigger re-runs."""
    store = MemoryStore()
    trigger = Trigger(worker="w", source=Source.MANUAL, payload={"n": 2}, accepted_at=EPOCH)
    crashed = RunRecord(worker="w", trigger=trigger, started_at=EPOCH)
    await store.add_trigger(trigger)
    await store.start_run(crashed)
    await trio.sleep_until(10)

    seen: list[tuple[float, str, Any]] = []

    async def work(ctx: JobContext) -> None:
        seen.append((trio.current_time(), ctx.trigger_id, ctx.payload))

    orch = make_orchestrator(store=store)
    orch.register("w", work, mode="triggered")
    with orch.subscribe() as events:
        async with running(orch):
            await trio.sleep_until(15)
        (interrupted,) = received(events, RunInterrupted)
    assert (interrupted.reason, interrupted.run_id) == ("crash", crashed.id)
    assert seen == [(10.0, trigger.id, {"n": 2})]
    statuses = {run.id: run.status for run in await store.runs("w")}
    assert statuses[crashed.id] is RunStatus.INTERRUPTED
    assert sorted(s.value for s in statuses.values()) == ["interrupted", "succeeded"]


# --- health: the orchestrator ----------------------------------------------------------


async def test_blocked_event_loop_shows_as_loop_lag(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A worker that blocks the loop for 2 s shows as loop lag and degrades overall health."""

    async def blocker(ctx: JobContext) -> None:
        await trio.sleep(0.5)
        autojump_clock.jump(2.0)  # no checkpoint: to trio, the loop was blocked for 2 s

    orch = make_orchestrator()
    orch.register("w", blocker, mode="triggered")
    async with running(orch):
        await orch.trigger("w")
        await trio.sleep_until(3.0)  # the monitor's tick due at 1.0 woke at 2.5
        snapshot = orch.snapshot()
    assert snapshot.loop_lag_s >= 1.5
    assert snapshot.health == "degraded"
    assert any("event loop lag" in reason for reason in snapshot.health_reasons)


# --- health: each worker ---------------------------------------------------------------


async def test_retried_success_is_degraded(autojump_clock: trio.testing.MockClock) -> None:
    """A run that succeeded only after a retry makes the worker degraded."""

    async def flaky(ctx: JobContext) -> None:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")

    orch = make_orchestrator()
    orch.register("w", flaky, mode="triggered")
    with orch.subscribe() as events:
        async with running(orch):
            await orch.trigger("w")
            await trio.sleep_until(3.5)
            snap = orch.snapshot().worker("w")
        changes = [e for e in received(events, HealthChanged) if e.worker == "w"]
    assert (snap.health, snap.health_reasons) == ("degraded", ("1 retried of the last 1 runs",))
    assert [(c.previous, c.health) for c in changes] == [("ok", "degraded")]


async def test_failing_at_half_the_circuit_threshold(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Failed runs in a row reaching half of max_consecutive_failures make a worker failing."""
    orch = make_orchestrator()
    orch.register("w", fail_always, mode="triggered", max_retries=0, max_consecutive_failures=4)
    async with running(orch):
        await orch.trigger("w")
        await trio.sleep_until(1.5)
        assert orch.snapshot().worker("w").health == "degraded"
        await orch.trigger("w")
        await trio.sleep_until(2.5)
        snap = orch.snapshot().worker("w")
    assert snap.health == "failing"
    assert snap.health_reasons == ("2 failed runs in a row (circuit opens at 4)",)


async def test_open_circuit_is_disabled_health(autojump_clock: trio.testing.MockClock) -> None:
    """A worker whose circuit opened has health disabled."""
    orch = make_orchestrator()
    orch.register("w", fail_always, mode="triggered", max_retries=0, max_consecutive_failures=2)
    async with running(orch):
        await orch.trigger("w")
        await orch.trigger("w")
        await trio.sleep_until(1.5)
        snap = orch.snapshot().worker("w")
    assert (snap.health, snap.health_reasons) == (
        "disabled",
        ("circuit open after 2 failures",),
    )


async def test_timed_out_worker_not_returning_is_stuck(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A worker that has not returned stuck_after_seconds after its timeout fired is stuck."""

    async def shielded(ctx: JobContext) -> None:
        with trio.CancelScope(shield=True):
            await trio.sleep(100)

    orch = make_orchestrator(stuck_after_seconds=5)
    orch.register("w", shielded, mode="triggered", timeout_seconds=2)
    with orch.subscribe() as events:
        async with running(orch):
            await orch.trigger("w")
            await trio.sleep_until(6.5)
            assert orch.snapshot().worker("w").health == "ok"
            await trio.sleep_until(7.5)
            snap = orch.snapshot().worker("w")
        changes = [e for e in received(events, HealthChanged) if e.worker == "w"]
    assert (snap.state, snap.health) == ("stuck", "stuck")
    assert snap.reason == "stuck: did not return after being cancelled"
    assert (changes[0].health, changes[0].ts) == ("stuck", EPOCH + timedelta(seconds=7))


async def test_continuous_worker_without_heartbeat_is_stalled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A continuous iteration silent for more than stall_seconds makes the worker stalled."""
    orch = make_orchestrator()
    orch.register("w", sleeper(100), mode="continuous", timeout_seconds=0, stall_seconds=10)
    async with running(orch):
        await trio.sleep_until(9.5)
        assert orch.snapshot().worker("w").health == "ok"
        await trio.sleep_until(11.5)
        snap = orch.snapshot().worker("w")
    assert (snap.health, snap.health_reasons) == ("stalled", ("no heartbeat for 11s",))


async def test_heartbeat_keeps_a_long_iteration_ok(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A long continuous iteration that heartbeats more often than stall_seconds stays ok."""

    async def beating(ctx: JobContext) -> None:
        for _ in range(20):
            await trio.sleep(5)
            ctx.heartbeat()

    orch = make_orchestrator()
    orch.register("w", beating, mode="continuous", timeout_seconds=0, stall_seconds=10)
    with orch.subscribe() as events:
        async with running(orch):
            await trio.sleep_until(50.5)
            snap = orch.snapshot().worker("w")
        changes = [e for e in received(events, HealthChanged) if e.worker == "w"]
    assert (snap.state, snap.health) == ("running", "ok")
    assert changes == []


async def test_scheduled_worker_held_back_is_overdue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A scheduled worker held back for more than one interval is overdue."""
    orch = make_orchestrator()
    orch.register("never", fail_always, mode="triggered", max_retries=0)
    orch.register("w", sleeper(0), interval_seconds=10, depends_on=["never"])
    async with running(orch):
        await orch.trigger("never")
        await trio.sleep_until(9.5)
        assert orch.snapshot().worker("w").health == "ok"
        await trio.sleep_until(11.5)
        snap = orch.snapshot().worker("w")
    assert (snap.health, snap.reason) == ("overdue", "waiting on never")
    assert snap.health_reasons == ("scheduled run late by 11s",)


async def test_pause_is_not_overdue_and_lateness_counts_from_resume(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Paused for many intervals, a scheduled worker stays ok (and so does the overall
    health); after resume it is late only once more than an interval passes unstarted."""
    orch = make_orchestrator()
    orch.register("never", fail_always, mode="triggered", max_retries=0)
    orch.register("w", sleeper(0), interval_seconds=2, depends_on=["never"])
    async with running(orch):
        await trio.sleep(0.5)
        orch.pause()
        await trio.sleep(10)
        snap = orch.snapshot()
        assert (snap.state, snap.health) == ("paused", "ok")
        assert snap.worker("w").health == "ok"
        orch.resume()
        await trio.sleep(1.5)
        assert orch.snapshot().worker("w").health == "ok"
        await trio.sleep(1.5)
        assert orch.snapshot().worker("w").health == "overdue"


async def test_operator_disabled_worker_keeps_overall_health_ok(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A worker disabled by an operator shows disabled but leaves overall health ok."""
    orch = make_orchestrator()
    orch.register("w", sleeper(0), interval_seconds=10)
    async with running(orch):
        await orch.disable("w")
        await trio.sleep_until(1.5)
        snapshot = orch.snapshot()
    assert snapshot.worker("w").health == "disabled"
    assert snapshot.health == "ok"


async def test_circuit_opened_worker_makes_overall_health_bad(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A worker whose circuit opened makes overall health disabled (not serving)."""
    orch = make_orchestrator()
    orch.register("w", fail_always, mode="triggered", max_retries=0, max_consecutive_failures=1)
    with orch.subscribe() as events:
        async with running(orch):
            await orch.trigger("w")
            await trio.sleep_until(1.5)
            snapshot = orch.snapshot()
        overall = [e for e in received(events, HealthChanged) if e.worker is None]
    assert snapshot.health == "disabled"
    assert snapshot.health_reasons == ("w: circuit open",)
    assert [(e.previous, e.health) for e in overall][:1] == [("ok", "disabled")]


def test_stop_refuses_a_grace_that_is_not_a_duration() -> None:
    """stop(grace=nan) or a negative grace is a ValueError naming it, not a crash later."""
    import math

    import pytest

    orch = make_orchestrator()
    for bad in (math.nan, -1.0, math.inf):
        with pytest.raises(ValueError, match="grace"):
            orch.stop(grace=bad)
