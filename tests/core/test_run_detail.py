"""A run opened: `orch.run_detail(id)` gives its attempts and its own log lines."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from jobdeck import JobContext, UnknownRun
from tests.core.conftest import make_orchestrator, running


async def flaky(ctx: JobContext) -> None:
    ctx.log.info("attempt %d with %s", ctx.attempt, ctx.payload)
    await trio.sleep(1)
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")


async def test_run_detail_has_every_attempt_and_the_runs_log_lines(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A retried run shows both attempts (the first with its error and traceback) and its
    own lines only."""
    orch = make_orchestrator()
    orch.register("flaky", flaky, mode="triggered", retry_backoff_seconds=1)
    orch.register("other", flaky, mode="triggered", retry_backoff_seconds=1)
    async with running(orch):
        await orch.trigger("flaky", {"n": 1})
        await orch.trigger("other", {"n": 2})
        await trio.sleep(10)
        (record,) = await orch.history("flaky")
        detail = await orch.run_detail(record.id)
    assert detail.record == record
    first, second = detail.attempts
    assert (first.number, first.error, first.duration_s) == (
        1, "RuntimeError: first attempt fails", 1.0
    )
    assert first.traceback is not None and "first attempt fails" in first.traceback
    assert (second.number, second.error, second.traceback) == (2, None, None)
    assert second.started_at > first.ended_at  # type: ignore[operator]
    assert [line.message for line in detail.logs] == [
        "attempt 1 with {'n': 1}", "attempt 2 with {'n': 1}",
    ]


async def test_a_running_run_can_be_opened(autojump_clock: trio.testing.MockClock) -> None:
    """A run still going shows its lines so far and its attempt without an end."""
    orch = make_orchestrator()
    orch.register("flaky", flaky, mode="triggered")
    async with running(orch):
        await orch.trigger("flaky")
        await trio.sleep(0.5)
        run_id = orch.snapshot().worker("flaky").run_id
        assert run_id is not None
        detail = await orch.run_detail(run_id)
    assert [line.message for line in detail.logs] == ["attempt 1 with None"]
    assert [(a.number, a.ended_at) for a in detail.attempts] == [(1, None)]


async def test_unknown_run_id(autojump_clock: trio.testing.MockClock) -> None:
    """An id no run has raises UnknownRun."""
    orch = make_orchestrator()
    async with running(orch):
        with pytest.raises(UnknownRun):
            await orch.run_detail("0000000000000000")

