"""Small worker functions for the dashboard tests: quick, deterministic, async."""

from __future__ import annotations

import time

import trio

from jobdeck import JobContext


async def ok(ctx: JobContext) -> None:
    """Succeed after `params.seconds` (default 0), logging one line."""
    await trio.sleep(float(ctx.params.get("seconds", 0)))
    ctx.log.info("%s done (payload %r)", ctx.worker, ctx.payload)


async def fail(ctx: JobContext) -> None:
    """Fail after `params.seconds` with `params.message`."""
    await trio.sleep(float(ctx.params.get("seconds", 0)))
    raise RuntimeError(ctx.params.get("message", "boom"))


async def fail_unless_replayed(ctx: JobContext) -> None:
    """Fail, except when the run is a replay from the dead-letter queue."""
    if ctx.source != "replay":
        raise RuntimeError("needs a replay")
    ctx.log.info("replayed with %r", ctx.payload)


async def sleep_long(ctx: JobContext) -> None:
    """Run for `params.seconds` (default 60): something in flight at shutdown."""
    await trio.sleep(float(ctx.params.get("seconds", 60)))


async def fail_first_attempt(ctx: JobContext) -> None:
    """Fail attempt 1 (an upstream 503), succeed on the retry."""
    await trio.sleep(float(ctx.params.get("seconds", 0.5)))
    if ctx.attempt == 1:
        raise ConnectionError("upstream answered 503 Service Unavailable")
    ctx.log.info("fetched rates on attempt %d", ctx.attempt)


def block(ctx: JobContext) -> None:
    """A plain `def` that blocks its thread for `params.seconds`: past a short timeout it
    cannot be cancelled, and is flagged stuck."""
    time.sleep(float(ctx.params.get("seconds", 1.5)))


def showcase() -> dict[str, tuple[object, dict[str, object]]]:
    """A small but busy config for snapshot tests: every state shows within 12 s."""
    return {
        "fetch-orders": (ok, {"interval_seconds": 30, "priority": "high",
                              "params": {"seconds": 1.5}}),
        "process-orders": (ok, {"interval_seconds": 60, "depends_on": ["fetch-orders"],
                                "params": {"seconds": 3}}),
        "flaky-rates": (fail_first_attempt, {"interval_seconds": 10, "max_retries": 2,
                                             "retry_backoff_seconds": 0.5}),
        "broken-export": (fail, {"interval_seconds": 3, "max_retries": 0,
                                 "max_consecutive_failures": 3,
                                 "params": {"seconds": 0.3,
                                            "message": "disk quota exceeded"}}),
        "slow-report": (sleep_long, {"interval_seconds": 20, "timeout_seconds": 2,
                                     "max_retries": 0, "params": {"seconds": 5}}),
        "stream": (ok, {"mode": "continuous", "timeout_seconds": 0,
                        "params": {"seconds": 2}}),
        "send-email": (ok, {"mode": "triggered", "params": {"seconds": 0.5}}),
        "backup": (sleep_long, {"interval_seconds": 25, "blocks": ["compact"],
                                "params": {"seconds": 20}}),
        "compact": (ok, {"interval_seconds": 30, "params": {"seconds": 3}}),
        "cleanup": (ok, {"interval_seconds": 3600, "priority": "low",
                         "run_at_start": False}),
    }
