"""Store failures told apart: transient ones retried, permanent ones recorded, none for ever."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from jobdeck import (
    Health,
    JobContext,
    MemoryStore,
    OrchestratorStopped,
    RunSucceeded,
    StoreRejected,
    StoreUnavailable,
)
from tests.core.conftest import make_orchestrator


class FailingStore(MemoryStore):
    """A memory store whose `finish_run` raises `error` for the next `times` calls."""

    def __init__(self, error: Exception | None = None, times: int = 0) -> None:
        super().__init__()
        self.error = error
        self.times = times
        self.finish_calls = 0

    async def finish_run(self, *args: Any, **kwargs: Any) -> Any:
        self.finish_calls += 1
        if self.error is not None and self.times > 0:
            self.times -= 1
            raise self.error
        return await super().finish_run(*args, **kwargs)


async def quick(ctx: JobContext) -> None:
    await trio.sleep(1)


async def test_transient_failure_is_retried_until_the_write_lands(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A run's end that meets a locked store is retried with backoff, then recorded;
    health says failing meanwhile and recovers once it lands."""
    store = FailingStore(StoreUnavailable("database is locked"), times=3)
    orch = make_orchestrator(store=store, health_interval_seconds=0.25)
    orch.register("w", quick, mode="triggered")
    async with trio.open_nursery() as nursery:
        await nursery.start(orch.run)
        with orch.subscribe() as events:
            await orch.trigger("w")
            await trio.sleep(2.0)
            assert orch.snapshot().health is Health.FAILING
            async for event in events:
                if isinstance(event, RunSucceeded):
                    break
        # 1 s of work, then waits of 0.5, 1 and 2 s between the four tries.
        assert trio.current_time() == 4.5
        assert store.finish_calls == 4
        await trio.sleep(1)
        assert orch.snapshot().health is Health.OK
        assert orch.snapshot().store_errors == 0
        orch.stop(grace=0)


async def test_permanent_failure_is_not_retried_and_the_run_still_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A write the store refuses for good is tried once, counted, shown as degraded
    health naming it, and the run ends all the same."""
    store = FailingStore(StoreRejected("cannot encode text"), times=1)
    orch = make_orchestrator(store=store, health_interval_seconds=0.25)
    orch.register("w", quick, mode="triggered")
    async with trio.open_nursery() as nursery:
        await nursery.start(orch.run)
        with orch.subscribe() as events:
            await orch.trigger("w")
            async for event in events:
                if isinstance(event, RunSucceeded):
                    break
        assert store.finish_calls == 1
        await trio.sleep(1)
        snap = orch.snapshot()
        assert snap.health is Health.DEGRADED
        assert any("refused 1 write" in r and "cannot encode" in r for r in snap.health_reasons)
        assert snap.workers[0].runs_ok == 1
        orch.stop(grace=0)


async def test_a_store_failing_every_write_at_stop_cannot_hang_the_exit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Stopping with a dead disk: the exit comes within the grace plus a bounded margin,
    and `orchestrator_stopped` says which write could not be stored."""
    store = FailingStore(StoreUnavailable("disk I/O error"), times=10**9)
    orch = make_orchestrator(store=store, shutdown_grace_seconds=5, stuck_after_seconds=2)
    orch.register("w", quick, mode="triggered")
    with orch.subscribe() as events:
        async with trio.open_nursery() as nursery:
            await nursery.start(orch.run)
            await orch.trigger("w")
            await trio.sleep(0.5)
            orch.stop()
            stop_started = trio.current_time()
            await orch.wait_stopped()
            took = trio.current_time() - stop_started
        stopped = [e async for e in events if isinstance(e, OrchestratorStopped)]
    assert took <= 5 + 2 + 1
    (event,) = stopped
    assert event.store_error is not None and "disk I/O error" in event.store_error
