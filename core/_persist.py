"""Writes that outlive a failing store: retried while they may succeed, never for ever.

Store failures come in two kinds. Transient ones (disk full, database locked, a lost
connection: `StoreUnavailable`, any `StoreError` or `OSError`) are retried with backoff
while health says "failing", and nothing in memory is lost meanwhile. Permanent ones
(`StoreRejected`: text the store cannot encode, a constraint; or an unexpected exception,
which no retry will cure) are not retried: the write is counted as refused, health shows
it, and the engine goes on (a run still ends). Once stopping, retries get at most what is
left of the shutdown grace: a dead disk at stop time does not hang the exit.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from ._eligibility import Lifecycle
from ._engine import Engine
from ._errors import LeaseLost, StoreError, StoreRejected, describe
from ._runtime import WorkerRuntime
from ._store import Coordinator, WorkerChange

T = TypeVar("T")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0


class WriteRefused(Exception):
    """A store write was given up on: refused by the store, or out of time at stop."""


async def persist(engine: Engine, write: Callable[..., Awaitable[T]], *args: Any,
                  **kwargs: Any) -> T:
    """Await `write(*args, **kwargs)`, retrying transient store failures.

    Raises:
        WriteRefused: the write cannot succeed (permanent), or the shutdown grace ran
            out while retrying it; it is counted in the store's health.
        LeaseLost: the coordinator refused a run write: its lease is gone.
    """
    try:
        result = await write(*args, **kwargs)
    except LeaseLost:
        raise
    except Exception as exc:
        return await persist_after(engine, exc, write, *args, **kwargs)
    wrote(engine)
    return result


def wrote(engine: Engine) -> None:
    """A write succeeded: the store is not failing (any more)."""
    health = engine.store_health
    if health.failing:
        health.failing = 0


async def persist_after(engine: Engine, failure: Exception,
                        write: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """`persist`, once a first try of the write has failed with `failure`.

    For the paths every run takes: they try the write themselves (one coroutine frame
    less), and come here only when it fails.
    """
    health = engine.store_health
    delay = FIRST_DELAY_S
    exc = failure
    while True:
        health.last_error = describe(exc)
        if not _transient(exc):
            health.rejected += 1
            raise WriteRefused(health.last_error) from exc
        health.failing += 1
        deadline = _retry_deadline(engine)
        if trio.current_time() + delay > deadline:
            health.rejected += 1
            raise WriteRefused(f"gave up at shutdown: {health.last_error}") from exc
        await trio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY_S)
        try:
            result = await write(*args, **kwargs)
        except LeaseLost:
            raise
        except Exception as again:
            exc = again
        else:
            wrote(engine)
            return result


def _transient(exc: Exception) -> bool:
    if isinstance(exc, StoreRejected):
        return False
    return isinstance(exc, (StoreError, OSError))


def _retry_deadline(engine: Engine) -> float:
    """Retries go on while running; once stopping, until the grace is over."""
    if engine.lifecycle is Lifecycle.RUNNING or engine.stopping_t is None:
        return math.inf
    if engine.skip_grace:
        return engine.stopping_t
    return engine.stopping_t + engine.grace_s()


async def change_worker(
    engine: Engine, coordinator: Coordinator, w: WorkerRuntime, change: WorkerChange
) -> None:
    """Record a change of a worker's shared state; a refused write is counted."""
    try:
        await persist(engine, coordinator.change_worker, w.name, change)
    except WriteRefused:
        pass
