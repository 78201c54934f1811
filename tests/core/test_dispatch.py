"""Dispatch: priorities, slots, triggers, dependencies, blocks and schedules, in virtual time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from jobdeck import JobContext, Orchestrator, OrchestratorConfig
from tests.core.conftest import MaxRandom, make_orchestrator, running, virtual_wall_clock

Record = list[tuple[str, float]]


def recorder(
    record: Record, seconds: float = 0.0, *, fail: bool = False
) -> Callable[[JobContext], Awaitable[None]]:
    """A worker that records (name, start time), works `seconds`, then returns or raises."""

    async def work(ctx: JobContext) -> None:
        record.append((ctx.worker, trio.current_time()))
        await trio.sleep(seconds)
        if fail:
            raise RuntimeError(f"{ctx.worker} failed")

    return work


# --- priorities and ordering ----------------------------------------------------------


async def test_priority_order_with_one_slot(autojump_clock: trio.testing.MockClock) -> None:
    """With one busy slot, queued workers start critical, high, normal, then low."""
    record: Record = []
    orch = make_orchestrator(max_concurrent_workers=1)
    orch.register("busy", recorder(record, 10), mode="triggered")
    for priority in ("low", "normal", "high", "critical"):
        orch.register(priority, recorder(record, 1), mode="triggered", priority=priority)
    async with running(orch):
        await orch.trigger("busy")
        await trio.sleep(1)
        for priority in ("low", "normal", "high", "critical"):
            await orch.trigger(priority)
        await trio.sleep_until(20)
    assert record == [
        ("busy", 0.0),
        ("critical", 10.0),
        ("high", 11.0),
        ("normal", 12.0),
        ("low", 13.0),
    ]


async def test_equal_priority_earliest_due_first(autojump_clock: trio.testing.MockClock) -> None:
    """Among equal priorities the run that has been due longest starts first."""
    record: Record = []
    orch = make_orchestrator(max_concurrent_workers=1)
    orch.register("busy", recorder(record, 10), mode="triggered")
    orch.register("a", recorder(record, 1), mode="triggered")
    orch.register("b", recorder(record, 1), mode="triggered")
    async with running(orch):
        await orch.trigger("busy")
        await trio.sleep_until(1)
        await orch.trigger("b")
        await trio.sleep_until(2)
        await orch.trigger("a")
        await trio.sleep_until(20)
    assert record == [("busy", 0.0), ("b", 10.0), ("a", 11.0)]


async def test_equal_priority_equal_due_registration_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Equal priority and equal due time start in registration order."""
    record: Record = []
    orch = make_orchestrator(max_concurrent_workers=1)
    orch.register("busy", recorder(record, 10), mode="triggered")
    for name in ("first", "second", "third"):
        orch.register(name, recorder(record, 1), mode="triggered")
    async with running(orch):
        await orch.trigger("busy")
        await trio.sleep_until(1)
        for name in ("third", "first", "second"):
            await orch.trigger(name)
        await trio.sleep_until(20)
    assert record == [("busy", 0.0), ("first", 10.0), ("second", 11.0), ("third", 12.0)]


# --- triggers, slots, enable and pause -------------------------------------------------


async def test_manual_trigger_queues_behind_concurrency_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A manual trigger waits for a free slot and says "queued: 1/1 slots busy"."""
    record: Record = []
    orch = make_orchestrator(max_concurrent_workers=1)
    orch.register("busy", recorder(record, 10), mode="triggered")
    orch.register("other", recorder(record, 1), mode="triggered")
    async with running(orch):
        await orch.trigger("busy")
        await trio.sleep_until(1)
        await orch.trigger("other")
        await trio.sleep_until(2)
        snap = orch.snapshot().worker("other")
        assert (snap.state, snap.reason, snap.pending) == (
            "waiting",
            "queued: 1/1 slots busy",
            1,
        )
        await trio.sleep_until(20)
    assert record == [("busy", 0.0), ("other", 10.0)]


async def test_triggers_for_running_worker_queue_and_never_overlap(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A worker triggered 3 times runs 3 times, one after another, never concurrently."""
    spans: list[tuple[float, float]] = []
    active = 0
    most_active = 0

    async def work(ctx: JobContext) -> None:
        nonlocal active, most_active
        active += 1
        most_active = max(most_active, active)
        start = trio.current_time()
        await trio.sleep(5)
        spans.append((start, trio.current_time()))
        active -= 1

    orch = make_orchestrator(max_concurrent_workers=5)
    orch.register("w", work, mode="triggered")
    async with running(orch):
        for _ in range(3):
            await orch.trigger("w")
        await trio.sleep_until(1)
        snap = orch.snapshot().worker("w")
        assert (snap.state, snap.pending) == ("running", 2)
        await trio.sleep_until(30)
    assert spans == [(0.0, 5.0), (5.0, 10.0), (10.0, 15.0)]
    assert most_active == 1


async def test_trigger_for_disabled_worker_is_held_until_enable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A trigger for a disabled worker is kept, and runs as soon as the worker is enabled."""
    record: Record = []
    orch = make_orchestrator()
    orch.register("w", recorder(record), mode="triggered", enabled=False)
    async with running(orch):
        await orch.trigger("w")
        await trio.sleep_until(5)
        snap = orch.snapshot().worker("w")
        assert (snap.state, snap.reason, snap.pending) == ("disabled", "disabled", 1)
        assert record == []
        await orch.enable("w")
        await trio.sleep_until(6)
    assert record == [("w", 5.0)]


async def test_pause_stops_new_starts_and_resume_restarts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """While paused nothing starts (reason "paused"); resume starts the missed run at once."""
    record: Record = []
    orch = make_orchestrator()
    orch.register("w", recorder(record, 1), interval_seconds=10)
    async with running(orch):
        await trio.sleep_until(5)
        orch.pause()
        await trio.sleep_until(15)
        snapshot = orch.snapshot()
        assert snapshot.state == "paused"
        assert snapshot.worker("w").reason == "paused"
        await trio.sleep_until(25)
        orch.resume()
        await trio.sleep_until(35)
    assert record == [("w", 0.0), ("w", 25.0), ("w", 30.0)]


# --- depends_on ------------------------------------------------------------------------


async def test_dependent_first_run_waits_for_a_dependency_success(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A dependent's first run waits until its dependency has succeeded once."""
    record: Record = []
    orch = make_orchestrator()
    orch.register("a", recorder(record, 1), mode="triggered")
    orch.register("b", recorder(record), interval_seconds=100, depends_on=["a"])
    async with running(orch):
        await trio.sleep_until(5)
        assert orch.snapshot().worker("b").reason == "waiting on a"
        await orch.trigger("a")
        await trio.sleep_until(10)
    assert record == [("a", 5.0), ("b", 6.0)]


async def test_dependent_waits_for_a_fresh_dependency_success(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After the dependent runs, its next run waits until the dependency succeeds again."""
    record: Record = []
    orch = make_orchestrator()
    orch.register("a", recorder(record, 1), mode="triggered")
    orch.register("b", recorder(record, 1), interval_seconds=10, depends_on=["a"])
    async with running(orch):
        await orch.trigger("a")
        await trio.sleep_until(12)
        assert orch.snapshot().worker("b").reason == "waiting on a"
        await trio.sleep_until(15)
        await orch.trigger("a")
        await trio.sleep_until(18)
    assert record == [("a", 0.0), ("b", 1.0), ("a", 15.0), ("b", 16.0)]


async def test_running_dependency_blocks_the_dependent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A dependent does not start while its dependency is running, fresh success or not."""
    record: Record = []

    async def a(ctx: JobContext) -> None:
        record.append((ctx.worker, trio.current_time()))
        await trio.sleep(ctx.payload["seconds"])
        if ctx.payload["fail"]:
            raise RuntimeError("second run of a fails")

    orch = make_orchestrator()
    orch.register("a", a, mode="triggered", max_retries=0)
    orch.register(
        "b", recorder(record), interval_seconds=10, run_at_start=False, depends_on=["a"]
    )
    async with running(orch):
        await orch.trigger("a", {"seconds": 1, "fail": False})
        await trio.sleep_until(5)
        await orch.trigger("a", {"seconds": 10, "fail": True})
        await trio.sleep_until(12)
        # a succeeded at t=1, after b's last start (never), but a is running now.
        assert orch.snapshot().worker("b").reason == "waiting on a"
        await trio.sleep_until(20)
    assert record == [("a", 0.0), ("a", 5.0), ("b", 15.0)]


async def test_triggered_chain_runs_once_per_success(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Triggered workers a -> b -> c run in order after each success of a, from "dependency"."""
    record: Record = []
    sources: dict[str, list[str]] = {"b": [], "c": []}

    async def step(ctx: JobContext) -> None:
        record.append((ctx.worker, trio.current_time()))
        if ctx.worker in sources:
            sources[ctx.worker].append(ctx.source)
        await trio.sleep(1)
        if ctx.payload == "fail":
            raise RuntimeError("a fails this time")

    orch = make_orchestrator()
    orch.register("a", step, mode="triggered", max_retries=0)
    orch.register("b", step, mode="triggered", depends_on=["a"])
    orch.register("c", step, mode="triggered", depends_on=["b"])
    async with running(orch):
        await orch.trigger("a")
        await trio.sleep_until(10)
        await orch.trigger("a")
        await trio.sleep_until(20)
        await orch.trigger("a", "fail")
        await trio.sleep_until(30)
    assert record == [
        ("a", 0.0), ("b", 1.0), ("c", 2.0),
        ("a", 10.0), ("b", 11.0), ("c", 12.0),
        ("a", 20.0),
    ]  # fmt: skip
    assert sources == {"b": ["dependency"] * 2, "c": ["dependency"] * 2}


# --- blocks ----------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), [("b", "a"), ("a", "b")])
async def test_blocks_holds_both_ways(
    autojump_clock: trio.testing.MockClock, first: str, second: str
) -> None:
    """`blocks` declared on one side keeps either worker from starting while the other runs."""
    record: Record = []
    orch = make_orchestrator()
    orch.register("a", recorder(record, 5), mode="triggered", blocks=["b"])
    orch.register("b", recorder(record, 5), mode="triggered")
    async with running(orch):
        await orch.trigger(first)
        await trio.sleep_until(1)
        await orch.trigger(second)
        await trio.sleep_until(2)
        assert orch.snapshot().worker(second).reason == f"blocked by {first}"
        await trio.sleep_until(20)
    assert record == [(first, 0.0), (second, 5.0)]


# --- scheduled -------------------------------------------------------------------------


async def test_fixed_rate_schedule_runs_at_start(autojump_clock: trio.testing.MockClock) -> None:
    """An interval schedule with run_at_start fires at 0, 10, 20, 30."""
    record: Record = []
    orch = make_orchestrator()
    orch.register("w", recorder(record, 1), interval_seconds=10)
    async with running(orch):
        await trio.sleep_until(35)
    assert record == [("w", 0.0), ("w", 10.0), ("w", 20.0), ("w", 30.0)]


async def test_fixed_rate_schedule_without_run_at_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With run_at_start=False the first run comes one interval after start."""
    record: Record = []
    orch = make_orchestrator()
    orch.register("w", recorder(record, 1), interval_seconds=10, run_at_start=False)
    async with running(orch):
        await trio.sleep(5)
        assert orch.snapshot().worker("w").reason == "next in 5s"
        await trio.sleep_until(35)
    assert record == [("w", 10.0), ("w", 20.0), ("w", 30.0)]


async def test_overrun_coalesces_missed_due_times(autojump_clock: trio.testing.MockClock) -> None:
    """A 35 s run on a 10 s grid is followed by one run at once, then the grid: no burst."""
    record: Record = []
    active = 0
    most_active = 0

    async def work(ctx: JobContext) -> None:
        nonlocal active, most_active
        active += 1
        most_active = max(most_active, active)
        record.append((ctx.worker, trio.current_time()))
        await trio.sleep(35 if len(record) == 1 else 1)
        active -= 1

    orch = make_orchestrator()
    orch.register("w", work, interval_seconds=10)
    async with running(orch):
        await trio.sleep_until(55)
    assert record == [("w", 0.0), ("w", 35.0), ("w", 40.0), ("w", 50.0)]
    assert most_active == 1


async def test_manual_trigger_does_not_shift_schedule(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A manual trigger of a scheduled worker runs at once and leaves the grid alone."""
    runs: list[tuple[float, str]] = []

    async def work(ctx: JobContext) -> None:
        runs.append((trio.current_time(), ctx.source))
        await trio.sleep(1)

    orch = make_orchestrator()
    orch.register("w", work, interval_seconds=10)
    async with running(orch):
        await trio.sleep_until(3)
        await orch.trigger("w")
        await trio.sleep_until(25)
    assert runs == [(0.0, "schedule"), (3.0, "manual"), (10.0, "schedule"), (20.0, "schedule")]


async def test_cron_schedule(autojump_clock: trio.testing.MockClock) -> None:
    """A "*/5 * * * *" cron schedule started at 00:00:00 first fires at 00:05 (t=300)."""
    record: Record = []
    orch = make_orchestrator()
    orch.register("w", recorder(record, 1), cron="*/5 * * * *")
    async with running(orch):
        await trio.sleep_until(10)
        assert orch.snapshot().worker("w").reason == "next in 4m 50s"
        await trio.sleep_until(700)
    assert record == [("w", 300.0), ("w", 600.0)]


# --- continuous ------------------------------------------------------------------------


async def test_continuous_reruns_as_soon_as_iteration_returns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A continuous worker starts at start-up and again the moment each iteration returns."""
    record: Record = []
    orch = make_orchestrator()
    orch.register("w", recorder(record, 2), mode="continuous")
    async with running(orch):
        await trio.sleep_until(7)
    assert record == [("w", 0.0), ("w", 2.0), ("w", 4.0), ("w", 6.0)]


async def test_continuous_failing_iteration_retries_with_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A failing continuous iteration is retried after backoff (1, 2, 4 s), not at once."""
    record: Record = []
    orch = Orchestrator(OrchestratorConfig(), now=virtual_wall_clock, rng=MaxRandom())
    orch.register(
        "w", recorder(record, fail=True), mode="continuous", max_retries=3,
        max_consecutive_failures=100,
    )  # fmt: skip
    async with running(orch):
        await trio.sleep_until(6.5)
    assert record == [("w", 0.0), ("w", 1.0), ("w", 3.0)]


async def test_continuous_failed_iterations_back_off_without_retries(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With max_retries=0, failed continuous iterations still back off: 1, 2, 4 s apart."""
    record: Record = []
    orch = Orchestrator(OrchestratorConfig(), now=virtual_wall_clock, rng=MaxRandom())
    orch.register(
        "w", recorder(record, fail=True), mode="continuous", max_retries=0,
        max_consecutive_failures=100,
    )  # fmt: skip
    async with running(orch):
        await trio.sleep_until(2)
        assert orch.snapshot().worker("w").reason == "backing off: next in 1s"
        await trio.sleep_until(6.5)
    assert record == [("w", 0.0), ("w", 1.0), ("w", 3.0)]


# --- the worker's context --------------------------------------------------------------


async def test_ctx_fields_and_payload_round_trip(autojump_clock: trio.testing.MockClock) -> None:
    """ctx carries worker, run id, trigger id, source, attempt, payload and params."""
    seen: list[JobContext] = []

    async def work(ctx: JobContext) -> None:
        seen.append(ctx)

    payload: Any = {"items": [1, 2.5, "x", None, True], "nested": {"k": "v"}}
    orch = make_orchestrator()
    orch.register("w", work, mode="triggered", params={"url": "https://example.org", "rows": 3})
    async with running(orch):
        trigger_id = await orch.trigger("w", payload)
        await trio.sleep(1)
        (run,) = await orch.history("w")
    (ctx,) = seen
    assert ctx.worker == "w"
    assert ctx.run_id == run.id
    assert ctx.trigger_id == trigger_id == run.trigger.id
    assert ctx.source == "manual"
    assert ctx.attempt == 1
    assert ctx.payload == payload
    assert dict(ctx.params) == {"url": "https://example.org", "rows": 3}


async def test_ctx_attempt_counts_up_within_one_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A retried run's attempts see attempt 1, 2, ... with the same run and trigger ids."""
    seen: list[tuple[int, str, str]] = []

    async def work(ctx: JobContext) -> None:
        seen.append((ctx.attempt, ctx.run_id, ctx.trigger_id))
        if ctx.attempt < 3:
            raise RuntimeError("not yet")

    orch = make_orchestrator()
    orch.register("w", work, mode="triggered", max_retries=3)
    async with running(orch):
        await orch.trigger("w")
        await trio.sleep(10)
    assert [attempt for attempt, _, _ in seen] == [1, 2, 3]
    assert len({(run_id, trigger_id) for _, run_id, trigger_id in seen}) == 1


async def test_ctx_trigger_hands_work_to_another_worker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """ctx.trigger starts another worker with the given payload, as a manual trigger."""
    seen: list[tuple[float, str, Any]] = []

    async def hand_off(ctx: JobContext) -> None:
        await trio.sleep(2)
        await ctx.trigger("b", {"from": ctx.worker})

    async def b(ctx: JobContext) -> None:
        seen.append((trio.current_time(), ctx.source, ctx.payload))

    orch = make_orchestrator()
    orch.register("a", hand_off, mode="triggered")
    orch.register("b", b, mode="triggered")
    async with running(orch):
        await orch.trigger("a")
        await trio.sleep_until(5)
    assert seen == [(2.0, "manual", {"from": "a"})]


async def test_dispatch_is_event_driven(autojump_clock: trio.testing.MockClock) -> None:
    """A trigger at t=3.7 starts at exactly t=3.7, not at a polling tick."""
    record: Record = []
    orch = make_orchestrator()
    orch.register("w", recorder(record), mode="triggered")
    async with running(orch):
        await trio.sleep_until(3.7)
        await orch.trigger("w")
        await trio.sleep_until(10)
    assert record == [("w", 3.7)]


async def test_pending_triggers_lists_what_waits_oldest_first(autojump_clock):
    """`pending_triggers(name)` lists the triggers held for a worker, oldest first."""
    orch = make_orchestrator()

    async def work(ctx):
        await trio.sleep(1)

    orch.register("w", work, mode="triggered", enabled=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(orch.run)
        first = await orch.trigger("w", {"n": 1})
        second = await orch.trigger("w", {"n": 2})
        pending = orch.pending_triggers("w")
        assert [t.id for t in pending] == [first, second]
        assert [t.payload for t in pending] == [{"n": 1}, {"n": 2}]
        orch.stop()


async def test_jitter_delays_each_due_time_within_its_bound(autojump_clock):
    """`jitter_seconds` adds a random delay in [0, jitter) to each grid time, never earlier."""
    orch = make_orchestrator()
    starts: list[float] = []

    async def work(ctx):
        starts.append(trio.current_time())

    orch.register("w", work, interval_seconds=10, jitter_seconds=2)
    async with running(orch):
        await trio.sleep(45)
    assert len(starts) == 5
    offsets = [start - 10 * k for k, start in enumerate(starts)]
    assert all(0 <= offset < 2 for offset in offsets)
    assert len(set(offsets)) > 1  # really random, not a fixed shift
