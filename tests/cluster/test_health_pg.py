"""A cluster node's own health: degraded while its LISTEN connection is down (it polls)
and while its clock is more than 1 s from the database's; ok again once that passes."""

from __future__ import annotations

import psycopg
import trio
from psycopg.conninfo import conninfo_to_dict

from jobdeck import Health, Orchestrator
from jobdeck import _events as ev
from jobdeck._http_app import create_app
from jobdeck._logformat import status_line
from jobdeck._pg_membership import lock_key
from tests.core.test_http import TOKEN, call

from .conftest import PgServer
from .nodes import coordinator, make_node, running, shift_clock, sql, wait_until
from .test_membership import Hang, job, of, recording

LISTENER_DOWN = "listener down: polling every 1s"


def healthy(orch: Orchestrator) -> bool:
    return orch.snapshot().health is Health.OK


def listener_pid(dsn: str, orch: Orchestrator) -> int | None:
    """The backend of `orch`'s listener: the session holding its node's advisory lock."""
    node_id = coordinator(orch).node_id
    assert node_id is not None
    cls, key = lock_key(node_id)
    rows = sql(dsn, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND classid = %s AND objid = %s", cls, key)
    return rows[0][0] if rows else None


def set_connections(server: PgServer, dsn: str, allowed: bool) -> None:
    """Let new sessions into the test's database, or keep them all out (superusers too);
    sessions already open stay."""
    name = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {str(allowed).lower()}")


async def warm_pool(orch: Orchestrator, connections: int = 3) -> None:
    """Open a few store connections at once, so the node needs no new one for a while."""
    pool = coordinator(orch)._pool
    async with trio.open_nursery() as nursery:
        for _ in range(connections):
            nursery.start_soon(pool.run, lambda conn: conn.execute("SELECT pg_sleep(0.2)"))


async def test_listener_down_degrades_until_it_reconnects(
    pg_server: PgServer, pg_dsn: str
) -> None:
    """With its listener's backend terminated and no way back in, a node is degraded
    ("listener down: polling every 1s") in its snapshot, /healthz (still 200) and status
    line; it goes on polling; once it can connect again it is ok."""
    hang = Hang()
    a = make_node(pg_dsn, "a", job(hang))
    app = create_app(a, token=TOKEN)
    async with running(a):
        await warm_pool(a)
        await wait_until(lambda: coordinator(a).lock_held and healthy(a), within=20)
        pid = listener_pid(pg_dsn, a)
        assert pid is not None
        set_connections(pg_server, pg_dsn, False)
        try:
            sql(pg_server.dsn(), "SELECT pg_terminate_backend(%s)", pid)
            await wait_until(lambda: LISTENER_DOWN in a.snapshot().health_reasons, within=20)
            snap = a.snapshot()
            assert snap.health is Health.DEGRADED
            assert LISTENER_DOWN in status_line(snap)
            reply = await call(app, "GET", "/healthz")
            assert reply.status == 200
            assert (reply.json()["health"], reply.json()["reasons"]) == (
                "degraded", [LISTENER_DOWN]
            )
            # still at work, by the poll: a trigger runs
            await a.trigger("job")
            await hang.running.wait()
            hang.release.set()
        finally:
            set_connections(pg_server, pg_dsn, True)
        await wait_until(lambda: healthy(a) and coordinator(a).lock_held, within=20)
        assert listener_pid(pg_dsn, a) not in (None, pid)
        assert (await call(app, "GET", "/healthz")).json()["reasons"] == []


async def test_a_listener_that_reconnects_at_once_stays_ok(pg_dsn: str) -> None:
    """A terminated listener that connects again at once leaves the node ok: it was
    never left polling."""
    a = make_node(pg_dsn, "a", job(Hang()))
    async with running(a):
        await wait_until(lambda: coordinator(a).lock_held and healthy(a), within=20)
        pid = listener_pid(pg_dsn, a)
        sql(pg_dsn, "SELECT pg_terminate_backend(%s)", pid)
        await wait_until(lambda: listener_pid(pg_dsn, a) not in (None, pid), within=20)
        await trio.sleep(1.5)  # a health tick or more
        assert LISTENER_DOWN not in a.snapshot().health_reasons


async def test_clock_skew_over_a_second_degrades_until_it_is_back(pg_dsn: str) -> None:
    """With the database's clock 3 s ahead, the node's next heartbeat finds its clock
    behind and its health degraded ("clock skew 3.0s (behind the database)"), /cluster
    shows the skew; with the clocks together again it is ok."""
    a = make_node(pg_dsn, "a", job(Hang()), heartbeat_seconds=0.3)
    app = create_app(a, token=TOKEN)
    async with running(a):
        await wait_until(lambda: healthy(a), within=20)
        shift_clock(pg_dsn, 3.0)

        def skewed() -> bool:
            return any(r.startswith("clock skew ") for r in a.snapshot().health_reasons)

        await wait_until(skewed, within=20)
        snap = a.snapshot()
        assert snap.health is Health.DEGRADED
        (reason,) = snap.health_reasons
        assert reason.endswith("s (behind the database)")
        assert 2.5 < float(reason.removeprefix("clock skew ").split("s")[0]) < 3.5
        (node,) = (await call(app, "GET", "/cluster")).json()["nodes"]
        assert -3.5 < node["clock_skew_s"] < -2.5
        shift_clock(pg_dsn, -3.0)
        await wait_until(lambda: healthy(a), within=20)
        assert a.snapshot().health_reasons == ()


async def test_a_lost_database_connection_is_announced_and_so_is_its_return(
    pg_server: PgServer, pg_dsn: str
) -> None:
    """The listener's backend terminated with the database closed to new sessions:
    `database_lost` names why, then, once sessions are let in again, `database_back`
    says how long the node was cut off."""
    a = make_node(pg_dsn, "a", job(Hang()))
    async with running(a):
        await wait_until(lambda: coordinator(a).lock_held, within=20)
        async with recording(a) as seen:
            pid = listener_pid(pg_dsn, a)
            set_connections(pg_server, pg_dsn, False)
            try:
                sql(pg_server.dsn(), "SELECT pg_terminate_backend(%s)", pid)
                await wait_until(lambda: bool(of(seen, ev.DatabaseLost)), within=20)
                await trio.sleep(1.5)  # cut off a while: it keeps trying, and says so once
            finally:
                set_connections(pg_server, pg_dsn, True)
            await wait_until(lambda: bool(of(seen, ev.DatabaseBack)), within=20)
    (lost,) = of(seen, ev.DatabaseLost)
    (back,) = of(seen, ev.DatabaseBack)
    assert lost.node == back.node == "a"
    assert lost.reason
    assert back.down_s >= 1.5
    assert seen.index(lost) < seen.index(back)
