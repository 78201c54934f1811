"""Running jobdeck inside a benchmark: stores, an aligned clock and event counting."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Container, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from jobdeck import Event, MemoryStore, Orchestrator, RunSucceeded, Store, Subscription

from ._harness import Clocks

STORES = ("memory", "sqlite")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def sqlite_missing() -> str | None:
    """Why the SQLite store cannot be benchmarked here, or None if it can."""
    try:
        from jobdeck import SQLiteStore  # noqa: F401
    except ImportError as exc:
        return f"SQLite store not importable yet ({exc})"
    return None


@contextmanager
def make_store(kind: str) -> Iterator[Store]:
    """A fresh store of `kind`; an SQLite file lives in a temporary folder for the run."""
    if kind == "memory":
        yield MemoryStore()
        return
    from jobdeck import SQLiteStore

    with tempfile.TemporaryDirectory(prefix="jobdeck-bench-") as folder:
        yield SQLiteStore(os.path.join(folder, "bench.db"))


def trio_wall_clock() -> datetime:
    """Wall time that follows trio's clock exactly, so stored times map back to grid times."""
    try:
        return EPOCH + timedelta(seconds=trio.current_time())
    except RuntimeError:
        return datetime.now(UTC)


async def noop(ctx: Any) -> None:
    """The no-op job every throughput benchmark runs: it yields once, like the baselines."""
    await trio.lowlevel.checkpoint()


@asynccontextmanager
async def running(orch: Orchestrator, *, grace: float = 5.0) -> AsyncIterator[trio.Nursery]:
    """Run `orch` in a nursery for the block; stop it gracefully and wait at the end."""
    async with trio.open_nursery() as nursery:
        await nursery.start(orch.run)
        try:
            yield nursery
        finally:
            orch.stop(grace)
            with trio.CancelScope(shield=True):
                await orch.wait_stopped()


async def count_events(
    sub: Subscription, kind: type[Event], wanted: int, *, workers: Container[str] | None = None
) -> int:
    """Receive until `wanted` events of `kind` (of `workers`, if given) have arrived.

    Drains what is queued without a checkpoint per event, so counting costs the
    measured system as little as possible. Returns how many events were received.

    Raises:
        RuntimeError: the subscription dropped events (its buffer was too small).
    """

    def counts(event: Event) -> bool:
        return isinstance(event, kind) and (
            workers is None or getattr(event, "worker", None) in workers
        )

    seen = received = 0
    receive = sub.receive
    while seen < wanted:
        event = await receive.receive()
        received += 1
        seen += counts(event)
        while True:
            try:
                event = receive.receive_nowait()
            except trio.WouldBlock:
                break
            received += 1
            seen += counts(event)
        if sub.dropped:
            raise RuntimeError(f"the benchmark's subscription dropped {sub.dropped} events")
    return received


async def trigger_burst(orch: Orchestrator, names: Sequence[str], jobs: int,
                        producers: int) -> Clocks:
    """Send `jobs` triggers round-robin over `names` from `producers` concurrent tasks.

    Returns the clocks from the first trigger to the last of their `RunSucceeded` events.
    """
    wanted = set(names)

    async def produce(first: int) -> None:
        for i in range(first, jobs, producers):
            await orch.trigger(names[i % len(names)])

    # Per job: trigger_accepted, run_started, run_succeeded; other workers' events too.
    with orch.subscribe(4 * jobs + 10_000) as sub:
        clocks = Clocks().start()
        async with trio.open_nursery() as nursery:
            for first in range(min(producers, jobs)):
                nursery.start_soon(produce, first)
            await count_events(sub, RunSucceeded, jobs, workers=wanted)
        clocks.stop()
    failed = sum(w.runs_failed for w in orch.snapshot().workers if w.name in wanted)
    if failed:
        raise RuntimeError(f"{failed} no-op runs failed")
    return clocks
