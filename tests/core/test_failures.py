"""Failure handling: timeouts, retries, backoff, the DLQ, the circuit breaker, events, logs."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import TypeVar

import pytest
import trio
import trio.testing

from jobdeck import (
    AttemptFailed,
    Event,
    JobContext,
    MemoryStore,
    Orchestrator,
    OrchestratorConfig,
    RunFailed,
    RunSucceeded,
    Source,
    Subscription,
    WorkerDisabled,
    WorkerEnabled,
)
from tests.core.conftest import EPOCH, MaxRandom, make_orchestrator, running, virtual_wall_clock

E = TypeVar("E", bound=Event)


def max_jitter_orchestrator(**config: object) -> Orchestrator:
    """Like `make_orchestrator`, with backoff waits at their ceiling (deterministic)."""
    return Orchestrator(
        OrchestratorConfig(**config),  # type: ignore[arg-type]
        now=virtual_wall_clock,
        rng=MaxRandom(),
    )


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


async def fail_always(ctx: JobContext) -> None:
    await trio.sleep(1)
    raise RuntimeError("always fails")


# --- timeouts and retries --------------------------------------------------------------


async def test_timeout_is_an_attempt_failure(autojump_clock: trio.testing.MockClock) -> None:
    """An attempt past timeout_seconds fails with "timed out after 2s" in events and DLQ."""

    async def hang(ctx: JobContext) -> None:
        await trio.sleep_forever()

    orch = make_orchestrator()
    orch.register("w", hang, mode="triggered", timeout_seconds=2, max_retries=0)
    with orch.subscribe() as events:
        async with running(orch):
            await orch.trigger("w")
            await trio.sleep_until(5)
            (entry,) = await orch.dead_letters()
        (attempt_failed,) = received(events, AttemptFailed)
    assert (attempt_failed.error, attempt_failed.duration_s) == ("timed out after 2s", 2.0)
    assert attempt_failed.ts == EPOCH + timedelta(seconds=2)
    assert entry.error == "timed out after 2s"


async def test_timeout_error_is_the_run_failed_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The run_failed event of a run that timed out carries "timed out after 2s"."""

    async def hang(ctx: JobContext) -> None:
        await trio.sleep_forever()

    orch = make_orchestrator()
    orch.register("w", hang, mode="triggered", timeout_seconds=2, max_retries=0)
    with orch.subscribe() as events:
        async with running(orch):
            await orch.trigger("w")
            await trio.sleep_until(5)
        (run_failed,) = received(events, RunFailed)
    assert run_failed.error == "timed out after 2s"


async def test_attempt_returning_late_after_its_timeout_timed_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An attempt that shields itself past its timeout and then returns is still a timeout."""

    async def shielded(ctx: JobContext) -> None:
        with trio.CancelScope(shield=True):
            await trio.sleep(10)

    orch = make_orchestrator()
    orch.register("w", shielded, mode="triggered", timeout_seconds=2, max_retries=0)
    with orch.subscribe() as events:
        async with running(orch):
            await orch.trigger("w")
            await trio.sleep_until(15)
            snap = orch.snapshot().worker("w")
        (run_failed,) = received(events, RunFailed)
    assert (run_failed.error, run_failed.duration_s) == ("timed out after 2s", 10.0)
    assert (snap.runs_ok, snap.runs_failed) == (0, 1)


@pytest.mark.parametrize(("max_retries", "attempts"), [(0, 1), (1, 2), (3, 4)])
async def test_max_retries_gives_attempts(
    autojump_clock: trio.testing.MockClock, max_retries: int, attempts: int
) -> None:
    """max_retries 0, 1, 3 make 1, 2, 4 attempts before the run fails."""
    calls: list[int] = []

    async def work(ctx: JobContext) -> None:
        calls.append(ctx.attempt)
        raise RuntimeError("nope")

    orch = make_orchestrator()
    orch.register("w", work, mode="triggered", max_retries=max_retries)
    async with running(orch):
        await orch.trigger("w")
        await trio.sleep(100)
        (entry,) = await orch.dead_letters()
    assert calls == list(range(1, attempts + 1))
    assert entry.attempts == attempts


async def test_backoff_grows_and_is_capped(autojump_clock: trio.testing.MockClock) -> None:
    """Each retry waits at most min(cap, base * 2**(n-1)) after the n-th failed attempt."""
    orch = make_orchestrator()
    orch.register(
        "w", fail_always, mode="triggered", max_retries=6,
        retry_backoff_seconds=1, retry_backoff_max_seconds=5,
    )  # fmt: skip
    with orch.subscribe() as events:
        async with running(orch):
            await orch.trigger("w")
            await trio.sleep(100)
        failed = received(events, AttemptFailed)
    assert [f.attempt for f in failed] == [1, 2, 3, 4, 5, 6, 7]
    for f in failed[:-1]:
        assert f.retry_in_s is not None
        assert 0 <= f.retry_in_s <= min(5, 1 * 2 ** (f.attempt - 1))
    assert failed[-1].retry_in_s is None
    assert not failed[-1].will_retry


async def test_backoff_with_deterministic_rng(autojump_clock: trio.testing.MockClock) -> None:
    """With jitter at its ceiling the waits are exactly 1, 2, 4, then capped at 5."""
    starts: list[float] = []

    async def work(ctx: JobContext) -> None:
        starts.append(trio.current_time())
        raise RuntimeError("nope")

    orch = max_jitter_orchestrator()
    orch.register(
        "w", work, mode="triggered", max_retries=5,
        retry_backoff_seconds=1, retry_backoff_max_seconds=5,
    )  # fmt: skip
    with orch.subscribe() as events:
        async with running(orch):
            await orch.trigger("w")
            await trio.sleep(100)
        failed = received(events, AttemptFailed)
    assert [f.retry_in_s for f in failed] == [1, 2, 4, 5, 5, None]
    assert starts == [0, 1, 3, 7, 12, 17]


async def test_retry_wait_holds_no_slot(autojump_clock: trio.testing.MockClock) -> None:
    """While a run waits to retry, its slot is free: another worker runs meanwhile."""
    starts: list[tuple[str, float]] = []

    async def flaky(ctx: JobContext) -> None:
        starts.append((ctx.worker, trio.current_time()))
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")

    async def other(ctx: JobContext) -> None:
        starts.append((ctx.worker, trio.current_time()))
        await trio.sleep(5)

    orch = max_jitter_orchestrator(max_concurrent_workers=1)
    orch.register("flaky", flaky, mode="triggered", retry_backoff_seconds=10)
    orch.register("other", other, mode="triggered")
    async with running(orch):
        await orch.trigger("flaky")
        await trio.sleep_until(1)
        await orch.trigger("other")
        await trio.sleep_until(2)
        snap = orch.snapshot().worker("flaky")
        assert (snap.state, snap.reason) == ("retrying", "retrying in 8s (attempt 2/4)")
        assert orch.snapshot().worker("other").state == "running"
        await trio.sleep_until(20)
    assert starts == [("flaky", 0.0), ("other", 1.0), ("flaky", 10.0)]


# --- dead-letter queue -----------------------------------------------------------------


def explode_with_payload(payload: object) -> None:
    raise ValueError(f"cannot handle {payload!r}")


async def test_dead_letter_entry_contents(autojump_clock: trio.testing.MockClock) -> None:
    """A failed run's DLQ entry keeps worker, source, payload, error, traceback, attempts, times."""

    async def work(ctx: JobContext) -> None:
        explode_with_payload(ctx.payload)

    orch = max_jitter_orchestrator()
    orch.register("w", work, mode="triggered", max_retries=1, retry_backoff_seconds=3)
    async with running(orch):
        await trio.sleep_until(2)
        trigger_id = await orch.trigger("w", {"order": 7})
        await trio.sleep_until(10)
        (run,) = await orch.history("w")
        (entry,) = await orch.dead_letters()
        assert orch.snapshot().dlq_size == 1
    assert entry.worker == "w"
    assert entry.source is Source.MANUAL
    assert entry.payload == {"order": 7}
    assert entry.error == "ValueError: cannot handle {'order': 7}"
    assert "explode_with_payload" in entry.traceback
    assert "ValueError: cannot handle" in entry.traceback
    assert entry.attempts == 2
    assert entry.started_at == EPOCH + timedelta(seconds=2)
    assert entry.failed_at == EPOCH + timedelta(seconds=5)
    assert (entry.trigger_id, entry.run_id) == (trigger_id, run.id)


# --- circuit breaker -------------------------------------------------------------------


async def test_circuit_opens_after_consecutive_failed_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The N-th failed run in a row opens the circuit: worker_disabled, reason says why."""
    orch = make_orchestrator()
    orch.register("w", fail_always, mode="triggered", max_retries=0, max_consecutive_failures=3)
    with orch.subscribe() as events:
        async with running(orch):
            for _ in range(3):
                await orch.trigger("w")
            await trio.sleep_until(2.5)
            assert received(events, WorkerDisabled) == []
            await trio.sleep_until(3.5)
            snap = orch.snapshot().worker("w")
            (disabled,) = received(events, WorkerDisabled)
    assert disabled.reason == "circuit open after 3 failures"
    assert disabled.ts == EPOCH + timedelta(seconds=3)
    assert (snap.state, snap.circuit, snap.enabled) == ("circuit_open", "open", True)
    assert snap.reason == "disabled: circuit open after 3 failures"


async def test_open_circuit_stops_dispatch_and_holds_triggers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An open circuit starts no run, due or triggered; triggers are kept."""
    starts: list[float] = []

    async def work(ctx: JobContext) -> None:
        starts.append(trio.current_time())
        raise RuntimeError("down")

    orch = make_orchestrator()
    orch.register(
        "w", work, interval_seconds=10, max_retries=0, max_consecutive_failures=2
    )
    async with running(orch):
        await trio.sleep_until(15)
        await orch.trigger("w")
        await trio.sleep_until(60)
        snap = orch.snapshot().worker("w")
    assert starts == [0.0, 10.0]
    assert snap.pending == 1


async def test_manual_enable_closes_circuit_and_resets_failures(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Enabling a worker closes its open circuit, resets the count and runs held triggers."""
    starts: list[float] = []

    async def work(ctx: JobContext) -> None:
        starts.append(trio.current_time())
        if len(starts) <= 2:
            raise RuntimeError("down")

    orch = make_orchestrator()
    orch.register("w", work, mode="triggered", max_retries=0, max_consecutive_failures=2)
    async with running(orch):
        for _ in range(3):
            await orch.trigger("w")
        await trio.sleep_until(10)
        assert orch.snapshot().worker("w").circuit == "open"
        await orch.enable("w")
        snap = orch.snapshot().worker("w")
        assert (snap.circuit, snap.consecutive_failures) == ("closed", 0)
        await trio.sleep_until(20)
    assert starts == [0.0, 0.0, 10.0]


async def test_half_open_trial_success_closes_circuit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After the cooldown one trial run is let through; its success closes the circuit."""
    starts: list[float] = []

    async def work(ctx: JobContext) -> None:
        starts.append(trio.current_time())
        await trio.sleep(1)
        if len(starts) <= 2:
            raise RuntimeError("down")

    orch = make_orchestrator()
    orch.register(
        "w", work, mode="triggered", max_retries=0, max_consecutive_failures=2,
        circuit_cooldown_seconds=30,
    )  # fmt: skip
    with orch.subscribe() as events:
        async with running(orch):
            for _ in range(3):
                await orch.trigger("w")
            await trio.sleep_until(40)
            snap = orch.snapshot().worker("w")
        enabled = received(events, WorkerEnabled)
    assert starts == [0.0, 1.0, 32.0]
    assert [(e.reason, e.ts) for e in enabled] == [
        ("circuit half-open: one trial run", EPOCH + timedelta(seconds=32)),
        ("circuit closed: trial run succeeded", EPOCH + timedelta(seconds=33)),
    ]
    assert (snap.circuit, snap.consecutive_failures) == ("closed", 0)


async def test_half_open_trial_failure_reopens_circuit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A failed trial run re-opens the circuit, and the next trial comes a cooldown later."""
    starts: list[float] = []

    async def work(ctx: JobContext) -> None:
        starts.append(trio.current_time())
        await trio.sleep(1)
        raise RuntimeError("still down")

    orch = make_orchestrator()
    orch.register(
        "w", work, mode="triggered", max_retries=0, max_consecutive_failures=2,
        circuit_cooldown_seconds=30,
    )  # fmt: skip
    with orch.subscribe() as events:
        async with running(orch):
            for _ in range(4):
                await orch.trigger("w")
            await trio.sleep_until(40)
            snap = orch.snapshot().worker("w")
            await trio.sleep_until(70)
        disabled = received(events, WorkerDisabled)
    assert starts == [0.0, 1.0, 32.0, 63.0]
    assert [(e.reason, e.ts) for e in disabled[:2]] == [
        ("circuit open after 2 failures", EPOCH + timedelta(seconds=2)),
        ("circuit re-opened: trial run failed", EPOCH + timedelta(seconds=33)),
    ]
    assert snap.circuit == "open"


async def test_success_resets_consecutive_failures(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A successful run resets the failure count, so the circuit needs N new failures."""
    outcomes = iter([False, False, True, False, False])

    async def work(ctx: JobContext) -> None:
        if not next(outcomes):
            raise RuntimeError("fails")

    orch = make_orchestrator()
    orch.register("w", work, mode="triggered", max_retries=0, max_consecutive_failures=3)
    async with running(orch):
        for expected in (1, 2, 0, 1, 2):
            await orch.trigger("w")
            await trio.sleep(1)
            assert orch.snapshot().worker("w").consecutive_failures == expected
        assert orch.snapshot().worker("w").circuit == "closed"


# --- whatever a worker raises ----------------------------------------------------------


class Meltdown(BaseException):
    """A BaseException that is neither Exception nor one of Python's own."""


@pytest.mark.parametrize(
    ("raised", "error"),
    [
        (SystemExit(3), "SystemExit: 3"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
        (Meltdown("core"), "Meltdown: core"),
    ],
)
async def test_base_exception_fails_only_the_worker(
    autojump_clock: trio.testing.MockClock, raised: BaseException, error: str
) -> None:
    """A worker raising SystemExit, KeyboardInterrupt or a BaseException fails only itself."""
    starts: list[tuple[str, float]] = []

    async def bad(ctx: JobContext) -> None:
        raise raised

    async def good(ctx: JobContext) -> None:
        starts.append((ctx.worker, trio.current_time()))

    orch = make_orchestrator()
    orch.register("bad", bad, mode="triggered", max_retries=0)
    orch.register("good", good, interval_seconds=10)
    with orch.subscribe() as events:
        async with running(orch):
            await orch.trigger("bad")
            await trio.sleep_until(25)
            assert orch.snapshot().state == "running"
        (run_failed,) = received(events, RunFailed)
    assert (run_failed.worker, run_failed.error) == ("bad", error)
    assert starts == [("good", 0.0), ("good", 10.0), ("good", 20.0)]


async def test_sync_worker_runs_in_a_thread_and_its_errors_are_recorded() -> None:
    """A plain `def` worker runs in a worker thread; what it raises is a recorded failure."""
    threads: list[int] = []

    def blocking(ctx: JobContext) -> None:
        threads.append(threading.get_ident())
        raise OSError("disk on fire")

    # Real clock: with autojump, trio could jump past the timeout while the thread works.
    orch = make_orchestrator()
    orch.register("w", blocking, mode="triggered", max_retries=0)
    with trio.fail_after(10), orch.subscribe() as events:
        async with running(orch):
            await orch.trigger("w")
            async for event in events:
                if isinstance(event, RunFailed):
                    break
            (entry,) = await orch.dead_letters()
    assert threads and threads[0] != threading.get_ident()
    assert event.error == "OSError: disk on fire"
    assert entry.error == "OSError: disk on fire"
    assert "blocking" in entry.traceback


# --- events ----------------------------------------------------------------------------


async def test_slow_subscriber_loses_events_without_slowing_the_core(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A subscriber that never reads drops events (counted); runs keep their times."""
    starts: list[float] = []

    async def work(ctx: JobContext) -> None:
        starts.append(trio.current_time())
        await trio.sleep(1)

    orch = make_orchestrator()
    orch.register("w", work, mode="triggered")
    with orch.subscribe(max_buffer=2) as slow, orch.subscribe() as complete:
        async with running(orch):
            for _ in range(5):
                await orch.trigger("w")
            await trio.sleep_until(10)
            snapshot = orch.snapshot()
            dropped = (slow.dropped, orch.events.dropped, snapshot.events_dropped)
        assert len(received(complete, RunSucceeded)) == 5
    assert starts == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert dropped[0] > 0
    assert dropped == (dropped[0],) * 3


# --- logs ------------------------------------------------------------------------------


async def test_ctx_log_lines_are_kept_with_run_id(autojump_clock: trio.testing.MockClock) -> None:
    """ctx.log lines land in orch.logs(worker), tagged with the run id that wrote them."""
    run_ids: list[str] = []

    async def work(ctx: JobContext) -> None:
        run_ids.append(ctx.run_id)
        ctx.log.info("handling %s", ctx.payload)

    orch = make_orchestrator()
    orch.register("w", work, mode="triggered")
    async with running(orch):
        await orch.trigger("w", "first")
        await orch.trigger("w", "second")
        await trio.sleep(1)
    lines = orch.logs("w")
    assert [(line.run_id, line.level, line.message) for line in lines] == [
        (run_ids[0], "INFO", "handling first"),
        (run_ids[1], "INFO", "handling second"),
    ]
    assert {line.worker for line in lines} == {"w"}


async def test_log_ring_buffer_is_bounded(autojump_clock: trio.testing.MockClock) -> None:
    """log_lines_per_worker=5 keeps the last 5 lines and counts the ones dropped, in the
    worker's ring buffer and in the run's own lines alike."""

    async def chatty(ctx: JobContext) -> None:
        for i in range(8):
            ctx.log.info("line %d", i)

    orch = make_orchestrator(log_lines_per_worker=5)
    orch.register("w", chatty, mode="triggered")
    async with running(orch):
        await orch.trigger("w")
        await trio.sleep(1)
        (record,) = await orch.history("w")
        detail = await orch.run_detail(record.id)
    assert [line.message for line in orch.logs("w")] == [f"line {i}" for i in range(3, 8)]
    assert orch.log_lines_dropped == 3
    assert [line.message for line in detail.logs] == [f"line {i}" for i in range(3, 8)]
    assert detail.logs_dropped == 3
    assert orch.snapshot().log_lines_dropped == 3


async def test_async_worker_blocking_the_loop_past_its_timeout_is_timed_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An `async def` that blocks (never awaits) past its deadline is timed out, and the
    error says it held the event loop; it is not recorded as a success."""

    async def blocks(ctx: JobContext) -> None:
        autojump_clock.jump(2.0)  # what `time.sleep(2)` does to trio's clock

    orch = make_orchestrator()
    orch.register("w", blocks, mode="triggered", timeout_seconds=0.5, max_retries=0)
    with orch.subscribe() as events:
        async with running(orch):
            await orch.trigger("w")
            await trio.sleep(5)
        failed = received(events, RunFailed)
    (event,) = failed
    assert event.error == "timed out after 0.5s (held the event loop for 2.0s)"
    assert orch.snapshot().workers[0].runs_ok == 0


async def test_undecodable_text_from_a_worker_is_escaped_where_it_enters(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An error naming an undecodable file and a log line with a lone surrogate and a
    terminal escape are escaped once, the same way everywhere: the run still ends,
    is dead-lettered, and every text it left encodes as UTF-8."""
    import os

    name = os.fsdecode(b"caf\xe9.csv")

    async def parse(ctx: JobContext) -> None:
        ctx.log.warning("odd \ud800 and \x1b[2J")
        raise ValueError(f"cannot parse {name}")

    store = MemoryStore()
    orch = make_orchestrator(store=store)
    orch.register("w", parse, mode="triggered", max_retries=0)
    async with running(orch):
        await orch.trigger("w", {"file": name})
        await trio.sleep(1)
    (entry,) = await store.dlq_list()
    assert entry.error == "ValueError: cannot parse caf\\xe9.csv"
    assert entry.payload == {"file": "caf\\xe9.csv"}
    entry.traceback.encode("utf-8")
    (line,) = orch.logs("w")
    assert line.message == "odd \\ud800 and \\x1b[2J"
