"""Membership of a cluster: its events, self-fencing, the fast failover hint, the restart
window, the cluster-wide pause and what a node's snapshot shows of the others."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import trio

from jobdeck import (
    Event,
    JobContext,
    Orchestrator,
    OrchestratorState,
    Source,
    StoreUnavailable,
    Trigger,
)
from jobdeck import _events as ev
from jobdeck._pg_membership import lock_key
from jobdeck._pg_schema import ADMISSION_LOCK

from .nodes import coordinator, joined, make_node, running, shift_clock, sql, wait_until


class Hang:
    """Each call waits until cancelled or released; counts calls and remembers tokens."""

    def __init__(self) -> None:
        self.calls = 0
        self.tokens: list[int] = []
        self.cancelled = 0
        self.running = trio.Event()
        self.release = trio.Event()

    async def __call__(self, ctx: JobContext) -> None:
        self.calls += 1
        self.tokens.append(ctx.fencing_token)
        self.running.set()
        try:
            await self.release.wait()
        except trio.Cancelled:
            self.cancelled += 1
            raise


@asynccontextmanager
async def recording(orch: Orchestrator) -> AsyncIterator[list[Event]]:
    """Every event `orch` publishes while the block runs, in a list kept up to date."""
    seen: list[Event] = []
    with orch.subscribe() as sub:
        async with trio.open_nursery() as nursery:
            async def pump() -> None:
                async for event in sub:
                    seen.append(event)

            nursery.start_soon(pump)
            try:
                yield seen
            finally:
                nursery.cancel_scope.cancel()


def of(events: list[Event], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def job(hang: Hang) -> Any:
    def setup(orch: Orchestrator) -> None:
        orch.register("job", hang, mode="triggered")

    return setup


async def test_a_node_that_joins_says_so(pg_dsn: str) -> None:
    """`node_joined` names the node, its id in the cluster and its capacity."""
    a = make_node(pg_dsn, "a", job(Hang()), capacity=3)
    async with recording(a) as seen, running(a):
        await wait_until(lambda: bool(of(seen, ev.NodeJoined)))
    (joined_event,) = of(seen, ev.NodeJoined)
    assert (joined_event.node, joined_event.node_id, joined_event.capacity) == (
        "a", coordinator(a).node_id or joined_event.node_id, 3
    )
    assert joined_event.to_dict()["event"] == "node_joined"


async def test_the_node_that_reaps_a_peer_says_node_lost(pg_dsn: str) -> None:
    """A peer whose lease ran out is reaped by a running node, which publishes
    `node_lost` with the peer's name and how many runs it held."""
    hang = Hang()
    a = await joined(pg_dsn, "a", job(hang), lease_seconds=3)
    try:
        await a.store.add_trigger(
            Trigger(worker="job", source=Source.MANUAL, accepted_at=datetime.now(UTC))
        )
        assert len(await coordinator(a).claim([], trio.current_time(), 1)) == 1
        b = make_node(pg_dsn, "b", job(hang))
        async with recording(b) as seen, running(b):
            shift_clock(pg_dsn, 5)
            await wait_until(lambda: bool(of(seen, ev.NodeLost)))
            await wait_until(lambda: hang.calls == 1)  # the requeued trigger ran on b
            hang.release.set()
        (lost,) = of(seen, ev.NodeLost)
        assert (lost.node, lost.interrupted) == ("a", 1)
        assert sql(pg_dsn, "SELECT status, error FROM jd_runs ORDER BY seq")[0] == (
            "interrupted", "interrupted: node_lost"
        )
    finally:
        await a.store.close()


async def test_a_refused_run_write_says_lease_lost(pg_dsn: str) -> None:
    """A run whose node was reaped ends without recording: `lease_lost` names the
    worker, the run and the stale token."""
    hang = Hang()
    a = make_node(pg_dsn, "a", job(hang))
    async with recording(a) as seen, running(a):
        await a.trigger("job")
        await hang.running.wait()
        coordinator(a).capacity = 0  # when a joins again, it takes no more work
        ((token, run_id),) = sql(pg_dsn, "SELECT token, run_id FROM jd_leases")
        sql(pg_dsn, "UPDATE jd_nodes SET expires_at = jd_now() - interval '1 s'")
        hang.release.set()
        await wait_until(lambda: bool(of(seen, ev.LeaseLost)))
    (lost,) = of(seen, ev.LeaseLost)
    assert (lost.worker, lost.run_id, lost.token) == ("job", run_id, token)
    assert hang.tokens == [token]


async def test_a_node_whose_heartbeats_fail_fences_itself_then_works_again(
    pg_dsn: str,
) -> None:
    """No heartbeat for 0.8 x lease: the node cancels its attempts and says
    `self_fenced` before anyone reaps it; once heartbeats get through it runs work again."""
    hang = Hang()
    a = make_node(pg_dsn, "a", job(hang), lease_seconds=1.5, heartbeat_seconds=0.2)
    member = coordinator(a)
    real_heartbeat = member.heartbeat

    async def failing() -> bool:
        raise StoreUnavailable("store down (test)")

    async with recording(a) as seen, running(a):
        await a.trigger("job")
        await hang.running.wait()
        member.heartbeat = failing  # type: ignore[method-assign]
        started = trio.current_time()
        await wait_until(lambda: bool(of(seen, ev.SelfFenced)), within=5)
        fenced_after = trio.current_time() - started
        (fenced,) = of(seen, ev.SelfFenced)
        assert fenced.cancelled == 1 and "no heartbeat" in fenced.reason
        assert fenced_after < 1.5  # before the lease (1.5 s) is over
        await wait_until(lambda: hang.cancelled == 1 and a.snapshot().running == 0)
        member.heartbeat = real_heartbeat  # type: ignore[method-assign]
        await wait_until(lambda: not member.self_fenced)
        hang.release.set()
        await wait_until(lambda: hang.calls == 2)  # the run's trigger, requeued, runs again
        await wait_until(lambda: sql(pg_dsn, "SELECT count(*) FROM jd_runs"
                                             " WHERE status = 'succeeded'") == [(1,)])
    # the cancelled run was recorded (a's row outlived the outage) as cut off by the fence
    assert sql(pg_dsn, "SELECT status, error FROM jd_runs ORDER BY seq")[0] == (
        "interrupted", "interrupted: self_fenced"
    )
    assert [e.reason for e in of(seen, ev.RunInterrupted)] == ["self_fenced"]


def server_started(dsn: str, when: str) -> None:
    """Pretend PostgreSQL (re)started at `when` (`jd_server_started()`)."""
    sql(dsn, "CREATE OR REPLACE FUNCTION jd_server_started() RETURNS timestamptz"
             f" LANGUAGE sql AS $$ SELECT '{when}'::timestamptz $$")


@contextmanager
def holding_lock(dsn: str, node_id: int) -> Iterator[psycopg.Connection]:
    """A connection holding `node_id`'s advisory lock, as its listener would."""
    conn = psycopg.connect(dsn, autocommit=True)
    try:
        assert conn.execute("SELECT pg_try_advisory_lock(%s, %s)", lock_key(node_id)
                            ).fetchone() == (True,)
        conn.execute("UPDATE jd_nodes SET lock_held = true WHERE id = %s", (node_id,))
        yield conn
    finally:
        conn.close()


async def test_a_peer_whose_listener_lock_is_gone_is_reaped_within_a_second_or_so(
    pg_dsn: str,
) -> None:
    """A peer with a 30 s lease whose lock is held is left alone; once its connection
    closes (a SIGKILL), a running node reaps it in about a second."""
    hang = Hang()
    a = await joined(pg_dsn, "a", job(hang))  # lease 30 s
    try:
        a_id = coordinator(a).node_id
        assert a_id is not None
        await a.store.add_trigger(
            Trigger(worker="job", source=Source.MANUAL, accepted_at=datetime.now(UTC))
        )
        assert len(await coordinator(a).claim([], trio.current_time(), 1)) == 1
        b = make_node(pg_dsn, "b", job(hang))
        server_started(pg_dsn, "-infinity")  # not within a lease (30 s) of its start
        with holding_lock(pg_dsn, a_id) as listener:
            sql(pg_dsn, "UPDATE jd_nodes SET heartbeat_at = jd_now() - interval '5 s'"
                        " WHERE id = %s", a_id)
            async with recording(b) as seen, running(b):
                await trio.sleep(1.5)  # b's polls come and go: the lock is held
                assert sql(pg_dsn, "SELECT count(*) FROM jd_nodes WHERE id = %s",
                           a_id) == [(1,)]
                listener.close()
                killed = trio.current_time()
                await wait_until(lambda: bool(of(seen, ev.NodeLost)), within=5)
                # the next poll (<= 1 s) reaps it; slack for a loaded test machine
                assert trio.current_time() - killed < 2.5
                await wait_until(lambda: hang.calls == 1)
                hang.release.set()
        assert of(seen, ev.NodeLost)[0].node == "a"
    finally:
        await a.store.close()


async def test_a_running_node_holds_its_lock(pg_dsn: str) -> None:
    """A running node's listener takes its advisory lock and says so in its row."""
    a = make_node(pg_dsn, "a", job(Hang()))
    async with running(a):
        await wait_until(lambda: coordinator(a).lock_held)
        a_id = coordinator(a).node_id
        assert sql(pg_dsn, "SELECT lock_held FROM jd_nodes WHERE id = %s", a_id) == [(True,)]
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            assert conn.execute("SELECT pg_try_advisory_lock(%s, %s)", lock_key(a_id or 0)
                                ).fetchone() == (False,)


async def test_nobody_is_reaped_during_the_first_lease_after_a_server_restart(
    pg_dsn: str,
) -> None:
    """Just after PostgreSQL (re)started, an expired node is kept for one lease period."""
    a = await joined(pg_dsn, "a", job(Hang()), lease_seconds=3)
    b = await joined(pg_dsn, "b", job(Hang()))
    try:
        server_started(pg_dsn, sql(pg_dsn, "SELECT jd_now()::text")[0][0])
        sql(pg_dsn, "UPDATE jd_nodes SET expires_at = jd_now() - interval '1 s'"
                    " WHERE name = 'a'")
        assert await coordinator(b).reap() == 0
        assert sql(pg_dsn, "SELECT name FROM jd_nodes ORDER BY name") == [("a",), ("b",)]
        shift_clock(pg_dsn, 4)  # the restart's first lease period (3 s) is over
        assert await coordinator(b).reap() == 0  # a held nothing: no lease ended
        assert sql(pg_dsn, "SELECT name FROM jd_nodes") == [("b",)]
    finally:
        await a.store.close()
        await b.store.close()


async def test_a_pause_on_one_node_pauses_the_cluster(pg_dsn: str) -> None:
    """`pause()` on a holds work on b too (b's snapshot says paused); `resume()` on b
    lets it run and a's snapshot shows it resumed."""
    hang = Hang()
    a = make_node(pg_dsn, "a", job(hang), capacity=0)
    b = make_node(pg_dsn, "b", job(hang))
    async with running(a, b):
        a.pause()
        await wait_until(lambda: b.snapshot().state is OrchestratorState.PAUSED)
        assert sql(pg_dsn, "SELECT paused FROM jd_cluster") == [(True,)]
        await a.trigger("job")
        await trio.sleep(1.2)  # b's polls come and go
        assert hang.calls == 0
        b.resume()
        await wait_until(lambda: hang.calls == 1)
        await wait_until(lambda: a.snapshot().state is OrchestratorState.RUNNING)
        hang.release.set()
    assert sql(pg_dsn, "SELECT paused FROM jd_cluster") == [(False,)]


async def test_a_snapshot_shows_work_running_and_pending_on_other_nodes(pg_dsn: str) -> None:
    """Node a sees the run on b (`running on b`, node, token), the cluster's pending
    triggers, and a disable made through b, within a poll; all without a query."""
    hang = Hang()
    a = make_node(pg_dsn, "a", job(hang), capacity=0)
    b = make_node(pg_dsn, "b", job(hang))
    async with running(a, b):
        await a.trigger("job")
        await hang.running.wait()
        second = await a.trigger("job", {"n": 2})
        ((token,),) = sql(pg_dsn, "SELECT token FROM jd_leases")

        def seen_on_a() -> bool:
            w = a.snapshot().worker("job")
            return w.reason == "running on b" and w.pending == 1

        await wait_until(seen_on_a)
        snap = a.snapshot()
        w = snap.worker("job")
        assert (w.state, w.node, w.lease_token) == ("running", "b", token)
        assert w.lease_expires_s is not None and 0 < w.lease_expires_s <= 30
        assert snap.pending == 1
        # read from the refresh after someone asks (then for as long as they keep asking)
        await wait_until(lambda: [t.id for t in a.pending_triggers("job")] == [second])
        assert b.snapshot().worker("job").node == "b"
        await b.disable("job")
        await wait_until(lambda: not a.snapshot().worker("job").enabled)
        hang.release.set()


async def test_a_trigger_requeued_from_a_lost_node_says_so(pg_dsn: str) -> None:
    """The trigger of a run whose node was lost waits as `requeued: a lost 0s ago`."""
    a = await joined(pg_dsn, "a", job(Hang()), lease_seconds=3)
    try:
        await a.store.add_trigger(
            Trigger(worker="job", source=Source.MANUAL, accepted_at=datetime.now(UTC))
        )
        assert len(await coordinator(a).claim([], trio.current_time(), 1)) == 1
        b = make_node(pg_dsn, "b", job(Hang()), capacity=0)
        async with running(b):
            shift_clock(pg_dsn, 5)
            await wait_until(
                lambda: b.snapshot().worker("job").reason.startswith("requeued: a lost")
            )
            w = b.snapshot().worker("job")
            assert (w.state, w.pending) == ("waiting", 1)
            assert w.reason.endswith("s ago")
    finally:
        await a.store.close()


async def test_a_database_at_schema_1_is_migrated_forward(pg_dsn: str) -> None:
    """A cluster's database made by the first release takes today's schema."""
    from jobdeck._pg_schema import MIGRATIONS, SCHEMA_VERSION

    sql(pg_dsn, "CREATE TABLE jd_schema (one bool PRIMARY KEY DEFAULT true CHECK (one),"
                " version int NOT NULL)")
    sql(pg_dsn, MIGRATIONS[0])
    sql(pg_dsn, "INSERT INTO jd_schema (version) VALUES (1)")
    a = make_node(pg_dsn, "a", job(Hang()))
    async with running(a):
        await wait_until(lambda: coordinator(a).lock_held)
    assert sql(pg_dsn, "SELECT version FROM jd_schema") == [(SCHEMA_VERSION,)]
    assert SCHEMA_VERSION == len(MIGRATIONS) == 4


async def test_a_node_fenced_twice_at_once_joins_again_once(pg_dsn: str) -> None:
    """A heartbeat and a claim that both find the node reaped make one new incarnation
    and one `self_fenced`, not a second (ghost) node row."""
    a = await joined(pg_dsn, "a", job(Hang()), lease_seconds=3)
    try:
        node = coordinator(a)
        old = node.node_id
        sql(pg_dsn, "UPDATE jd_nodes SET expires_at = jd_now() - interval '1 s'")
        sql(pg_dsn, "SELECT jd_reap(jd_now())")
        async with recording(a) as seen:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(node.on_fenced, old)
                nursery.start_soon(node.on_fenced, old)
            await wait_until(lambda: bool(of(seen, ev.NodeJoined)))
        assert node.node_id != old and node.fenced == 1
        assert sql(pg_dsn, "SELECT id FROM jd_nodes WHERE name = 'a'") == [(node.node_id,)]
        assert len(of(seen, ev.SelfFenced)) == 1 and len(of(seen, ev.NodeJoined)) == 1
    finally:
        await a.store.close()


async def test_a_node_cut_off_inside_a_transaction_does_not_stall_the_cluster(
    pg_dsn: str,
) -> None:
    """A node cut off between a statement and its commit (a partition) would hold its
    row lock and the admission lock until TCP gave up, hours on: every claim and reap of
    the cluster waiting on it. The server ends such a silent transaction after a
    heartbeat interval, so a peer reaps the node all the same."""
    a = await joined(pg_dsn, "a", job(Hang()), lease_seconds=3)
    b = await joined(pg_dsn, "b", job(Hang()), lease_seconds=3)
    try:
        a_id = coordinator(a).node_id
        sql(pg_dsn, "CREATE OR REPLACE FUNCTION jd_server_started() RETURNS timestamptz"
            " LANGUAGE sql STABLE AS $$ SELECT '-infinity'::timestamptz $$")  # long up
        sql(pg_dsn, "UPDATE jd_nodes SET expires_at = jd_now() - interval '1 s' WHERE id = %s",
            a_id)
        silent = trio.Event()

        def cut_off(conn: psycopg.Connection) -> None:
            conn.execute("UPDATE jd_nodes SET heartbeat_at = jd_now() WHERE id = %s", (a_id,))
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADMISSION_LOCK,))  # as a claim
            trio.from_thread.run_sync(silent.set)
            time.sleep(5)  # no commit comes: the network ate it

        async def a_goes_silent() -> None:
            with pytest.raises(StoreUnavailable):
                await a.store.pool.run(cut_off)  # type: ignore[attr-defined]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(a_goes_silent)
            await silent.wait()
            started = trio.current_time()
            await coordinator(b).reap()
            assert trio.current_time() - started < 4
            assert sql(pg_dsn, "SELECT name FROM jd_nodes") == [("b",)]
    finally:
        await a.store.close()
        await b.store.close()
