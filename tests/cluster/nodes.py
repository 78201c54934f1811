"""Virtual nodes: several Orchestrators in one trio process, each a node on one database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import trio

from jobdeck import Orchestrator, OrchestratorConfig
from jobdeck._pg_coordinator import PgCoordinator
from jobdeck._pg_store import PgStore

Setup = Callable[[Orchestrator], None]


def make_node(dsn: str, name: str, setup: Setup, *, max_concurrent: int = 5,
              **store: Any) -> Orchestrator:
    """An orchestrator that is cluster node `name`, with the workers `setup` registers."""
    orch = Orchestrator(
        OrchestratorConfig(max_concurrent_workers=max_concurrent, shutdown_grace_seconds=0),
        store=PgStore(dsn, node_name=name, **store),
    )
    setup(orch)
    return orch


def coordinator(orch: Orchestrator) -> PgCoordinator:
    store = orch.store
    assert isinstance(store, PgStore) and store.coordinator is not None
    return store.coordinator


@asynccontextmanager
async def running(*nodes: Orchestrator) -> AsyncIterator[trio.Nursery]:
    """Run every node for the body of the block, then stop them all without grace."""
    async with trio.open_nursery() as nursery:
        for node in nodes:
            await nursery.start(node.run)
        try:
            yield nursery
        finally:
            for node in nodes:
                node.stop(grace=0)


def sql(dsn: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of one query, on a connection of its own (what the database holds now)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, args or None)
        return cur.fetchall() if cur.description else []


def shift_clock(dsn: str, seconds: float) -> None:
    """Move the cluster's clock (`jd_now()`) forward: leases expire, nobody sleeps."""
    sql(dsn, "UPDATE jd_cluster SET clock_offset_s = clock_offset_s + %s", seconds)


async def wait_until(check: Callable[[], bool], within: float = 10.0,
                     interval: float = 0.02) -> None:
    """Look at `check` on the real clock until it holds; fail after `within` seconds.

    (What it waits for happens in the database or in another node: no event to await.)
    """
    with trio.fail_after(within):
        while True:
            if check():
                return
            await trio.sleep(interval)


async def joined(dsn: str, name: str, setup: Setup, **store: Any) -> Orchestrator:
    """A node that has joined the cluster (store open) without dispatching: for driving
    its coordinator by hand."""
    from jobdeck._graph import symmetric_blocks

    orch = make_node(dsn, name, setup, **store)
    engine = orch._engine
    engine.blockers = symmetric_blocks(w.spec for w in engine.workers.values())
    await orch.store.open()
    return orch
