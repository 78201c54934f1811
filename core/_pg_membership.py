"""A node's membership of a cluster: joining, heartbeats, fencing, reaping, leaving.

Each node has a `jd_nodes` row with a lease it renews every lease/3. Three ways keep a
node that is gone from holding work:
- Reaping (in every claim, and a sweep when a node does not claim): a node whose lease
  expired loses its leases; its runs are recorded `interrupted` and their triggers
  requeued (`node_lost`, published by the node that reaped it).
- The fast hint: each node holds an advisory lock keyed by its id on its listener
  connection. The lock is free within milliseconds of a crash, so a peer that finds it
  free while the node's last heartbeat is older than 1 s reaps it at once: failover
  after a SIGKILL takes about a second whatever `lease_seconds` is. A hint only, never
  the truth: it makes a node gone sooner, never keeps one alive.
- Self-fencing: a node with no successful heartbeat for 0.8 x lease (by its own
  monotonic clock) cancels its own attempts before anyone can reap it (their results
  would be refused) and publishes `self_fenced`; it takes work again once a heartbeat
  gets through (or, reaped meanwhile, once it joined again as a new node).
After a PostgreSQL restart nobody is reaped during the first lease period (`jd_reap`).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import psycopg
import trio

from . import _events as ev
from ._cluster_view import ClusterFigures
from ._engine import Engine
from ._errors import StoreError, StoreUnavailable, describe
from ._pg_pool import PgPool, connect
from ._pg_schema import CHANNEL, NODE_LOCK_CLASS, NODE_LOST_NOTICE
from ._runtime import Phase
from ._text import safe_text

T = TypeVar("T")

#: Seconds between looks for work when no notification comes (and listener retries).
POLL_S = 1.0
#: Self-fence after this share of the lease without a successful heartbeat.
SELF_FENCE_SHARE = 0.8
#: Seconds between heartbeats while self-fenced (to learn soon that the database is back).
FENCED_RETRY_S = 0.5


class NodeStore(Protocol):
    """What a node takes from its store (`PgStore`): its connections and settings."""

    dsn: str
    pool: PgPool
    history_per_worker: int
    node_name: str | None
    capacity: int | None
    lease_seconds: float
    heartbeat_seconds: float


def lock_key(node_id: int) -> tuple[int, int]:
    """The advisory lock (class, key) of node `node_id` (see `jd_reap`)."""
    return NODE_LOCK_CLASS, node_id % 2147483647


def with_notices(
    conn: psycopg.Connection, fn: Callable[[psycopg.Connection], T]
) -> tuple[T, list[dict[str, Any]]]:
    """`fn(conn)`, and the nodes `jd_reap` reported reaping meanwhile (its NOTICEs)."""
    lost: list[dict[str, Any]] = []

    def on_notice(diag: psycopg.errors.Diagnostic) -> None:
        if diag.message_primary == NODE_LOST_NOTICE and diag.message_detail:
            lost.append(json.loads(diag.message_detail))

    conn.add_notice_handler(on_notice)
    try:
        return fn(conn), lost
    finally:
        conn.remove_notice_handler(on_notice)


class Membership:
    """This node's place in the cluster; the base of `PgCoordinator`."""

    def __init__(self, store: NodeStore, engine: Engine) -> None:
        self._store = store
        self._pool = store.pool
        self._engine = engine
        self.node_name = store.node_name or f"{socket.gethostname()}:{os.getpid()}"
        self.capacity = (
            store.capacity if store.capacity is not None
            else engine.config.max_concurrent_workers
        )
        self.lease_s = store.lease_seconds
        self.heartbeat_s = store.heartbeat_seconds
        self.node_id: int | None = None
        #: times this node found itself fenced and joined again.
        self.fenced = 0
        #: no heartbeat got through for 0.8 x lease: it claims nothing until one does.
        self.self_fenced = False
        #: an operator drained this node: it claims no new run, finishes what it holds.
        self.draining = False
        #: trio time the last heartbeat that got through was sent (or the node joined).
        self.last_beat_t = 0.0
        #: trio time of the last reap this node ran (in a claim or the sweep).
        self.last_reap_t = -float("inf")
        #: whether the listener holds this node's advisory lock (the fast hint).
        self.lock_held = False
        self._leaving = False
        #: held while this node joins again after being fenced (see `on_fenced`).
        self._rejoining = trio.Lock()

    # ------------------------------------------------------------------ reading

    @property
    def listener_up(self) -> bool:
        """Whether the LISTEN connection is up (else the node only polls)."""
        return self._engine.node_health.listener_down_poll_s is None

    @property
    def clock_skew_s(self) -> float | None:
        """This node's clock minus the database's, at its last heartbeat."""
        return self._engine.node_health.clock_skew_s

    @property
    def figures(self) -> ClusterFigures | None:
        """The cluster's shared figures as this node last read them (None: not yet)."""
        view = self._engine.cluster
        return None if view is None else view.figures

    # ------------------------------------------------------------------ joining

    def _register(self, conn: psycopg.Connection) -> int:
        """Insert this node's row (a new incarnation) and the workers it can run."""
        row = conn.execute(
            "INSERT INTO jd_nodes (name, host, pid, capacity, lease_s, state, started_at,"
            " heartbeat_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, jd_now(), jd_now(),"
            " jd_now() + make_interval(secs => %s)) RETURNING id",
            (self.node_name, socket.gethostname(), os.getpid(), self.capacity, self.lease_s,
             "draining" if self.draining else "active", self.lease_s),
        ).fetchone()
        assert row is not None
        node_id = int(row[0])
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO jd_node_workers (node_id, worker, spec_hash) VALUES (%s, %s, %s)",
                [(node_id, name, h) for name, h in self._spec_hashes().items()],
            )
        return node_id

    def _spec_hashes(self) -> dict[str, str]:
        raise NotImplementedError

    def _joined(self, node_id: int) -> None:
        """This node is registered as `node_id`: say so, and count its lease from now."""
        self.node_id = node_id
        self.self_fenced = False
        self.last_beat_t = trio.current_time()
        engine = self._engine
        engine.publish(
            ev.NodeJoined(ts=engine.now(), node=self.node_name, node_id=node_id,
                          capacity=self.capacity)
        )

    # ------------------------------------------------------------------ heartbeats

    async def heartbeat(self) -> bool:
        """Renew this node's lease; False if it was gone (reaped: fenced).

        It also measures this node's clock against the database's (`jd_now()`): the
        skew is stored in its row (`/cluster` shows it) and judged by health.
        """
        node_id = self.node_id
        now = self._engine.now

        def write(conn: psycopg.Connection) -> float | None:
            # The wall clock read here, not before a wait for a connection: a busy pool
            # must not read as skew.
            row = conn.execute(
                "UPDATE jd_nodes SET heartbeat_at = jd_now(),"
                " expires_at = jd_now() + make_interval(secs => lease_s),"
                " clock_skew_s = extract(epoch FROM %s::timestamptz - jd_now())"
                " WHERE id = %s AND expires_at > jd_now() RETURNING clock_skew_s",
                (now(), node_id),
            ).fetchone()
            return None if row is None else float(row[0])

        skew = await self._pool.run(write)
        if skew is None:
            return False
        self._engine.node_health.clock_skew_s = skew
        return True

    async def _heartbeats(self) -> None:
        health = self._engine.store_health
        while not self._leaving:
            await trio.sleep(
                min(self.heartbeat_s, FENCED_RETRY_S) if self.self_fenced else self.heartbeat_s
            )
            if self._leaving:
                return
            node_id = self.node_id
            sent = trio.current_time()
            try:
                alive = await self.heartbeat()
            except StoreError as exc:
                health.last_error = describe(exc)
                continue
            if alive and node_id == self.node_id:
                # counted from when it was sent: the database set the expiry then
                self.last_beat_t = sent
                if self.self_fenced:
                    self.self_fenced = False
                    self._engine.notify()
            elif not alive:
                await self.on_fenced(node_id)

    async def _watch_lease(self) -> None:
        """Self-fence when no heartbeat got through for 0.8 x lease (monotonic clock)."""
        while not self._leaving:
            deadline = self.last_beat_t + SELF_FENCE_SHARE * self.lease_s
            if self.self_fenced or trio.current_time() < deadline:
                await trio.sleep_until(
                    trio.current_time() + FENCED_RETRY_S if self.self_fenced else deadline
                )
                continue
            self._fence_self(
                f"no heartbeat for {SELF_FENCE_SHARE * self.lease_s:g}s"
                f" (0.8 x its {self.lease_s:g}s lease)"
            )

    def _fence_self(self, reason: str) -> int:
        """Cancel this node's attempts and drop its retry waits: none may be recorded
        as its own any more. Returns how many; publishes `self_fenced`."""
        engine = self._engine
        self.self_fenced = True
        cancelled = 0
        now = trio.current_time()
        for w in engine.workers.values():
            run = w.run
            if run is None:
                continue
            if w.phase is Phase.RUNNING:
                cancelled += 1
                run.cancel_requested_t = now
                run.cancel_reason = "self_fenced"
                if run.cancel_scope is not None:
                    run.cancel_scope.cancel()
            elif w.phase is Phase.RETRY_WAIT:
                cancelled += 1
                w.phase, w.run = Phase.IDLE, None
                engine.attempting.discard(w.name)
        engine.publish(
            ev.SelfFenced(ts=engine.now(), node=self.node_name, node_id=self.node_id or 0,
                          reason=reason, cancelled=cancelled)
        )
        return cancelled

    async def on_fenced(self, node_id: int | None = None) -> None:
        """This node was reaped: stop what it runs (nothing of it will be recorded) and
        join again as a new node.

        Args:
            node_id: the node id that was found fenced; if this node has joined again
                since (a heartbeat and a claim both found out), there is nothing to do.
        """
        # A heartbeat and a claim often find out together: the first joins again, the
        # second then sees a new id and leaves it be (else two rows, one a ghost).
        async with self._rejoining:
            if node_id is not None and node_id != self.node_id:
                return
            self.fenced += 1
            if not self.self_fenced or any(
                w.run is not None for w in self._engine.workers.values()
            ):
                self._fence_self("reaped: its lease expired")
            if self._leaving:
                return
            try:
                self._joined(await self._pool.run(self._register))
            except StoreError as exc:
                # still fenced: the next heartbeat (of the old id) finds out and tries again
                self._engine.store_health.last_error = describe(exc)

    # ------------------------------------------------------------------ reaping

    def _reaped(self, lost: list[dict[str, Any]]) -> None:
        """Publish `node_lost` for each peer this node's transaction reaped."""
        engine = self._engine
        self.last_reap_t = trio.current_time()
        for node in lost:
            if node["node_id"] == self.node_id:
                continue
            engine.publish(
                ev.NodeLost(ts=engine.now(), node=node["node"], node_id=node["node_id"],
                            interrupted=node["interrupted"])
            )

    async def reap(self) -> int:
        """Reap every node that is gone (see `jd_reap`); how many leases that ended."""
        def write(conn: psycopg.Connection) -> int:
            row = conn.execute("SELECT jd_reap(jd_now())").fetchone()
            return int(row[0]) if row else 0

        count, lost = await self._pool.run(lambda conn: with_notices(conn, write))
        self._reaped(lost)
        return count

    async def leave(self) -> None:
        """Deregister: what this node still holds is interrupted and requeued."""
        self._leaving = True
        node_id, self.node_id = self.node_id, None
        if node_id is None:
            return
        try:
            await self._pool.run(lambda conn: conn.execute("SELECT jd_leave(%s)", (node_id,)))
        except StoreError:
            pass  # the lease runs out instead, and another node reaps what is left

    # ------------------------------------------------------------------ background

    async def serve(self) -> None:
        """Heartbeats, the lease watch, and wake-ups from LISTEN/NOTIFY or the poll,
        until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._heartbeats)
            nursery.start_soon(self._watch_lease)
            nursery.start_soon(self._listen)

    async def _listen(self) -> None:
        """Wake the dispatcher on each NOTIFY, and at least once every POLL_S seconds.

        While the LISTEN connection is down (it cannot connect again) the node polls
        every POLL_S seconds, and its health says so until the listener is back.
        """
        engine = self._engine
        node_health = engine.node_health
        #: trio time the connection was lost, until it is back (said by events).
        lost_t: float | None = None
        while True:
            try:
                conn = await trio.to_thread.run_sync(self._listener_connection)
            except StoreError as exc:
                node_health.listener_down_poll_s = POLL_S
                if lost_t is None:
                    lost_t = trio.current_time()
                    self._say_lost(str(exc))
                await trio.sleep(POLL_S)
                engine.notify()
                continue
            node_health.listener_down_poll_s = None
            if lost_t is not None:
                engine.publish(ev.DatabaseBack(
                    ts=engine.now(), node=self.node_name,
                    down_s=round(trio.current_time() - lost_t, 3),
                ))
                lost_t = None
            try:
                await self._wake_on_notify(conn)
            except (psycopg.Error, OSError) as exc:
                # reconnect at once; the poll covers the gap (and health, if it lasts)
                node_health.listener_down_poll_s = POLL_S
                lost_t = trio.current_time()
                self._say_lost(describe(exc))
            finally:
                self.lock_held = False
                conn.close()

    def _say_lost(self, reason: str) -> None:
        engine = self._engine
        engine.publish(ev.DatabaseLost(
            ts=engine.now(), node=self.node_name, reason=safe_text(reason) or "connection lost",
        ))

    def _listener_connection(self) -> psycopg.Connection:
        conn = connect(self._store.dsn)
        try:
            conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:  # the server went away in between
            conn.close()
            raise StoreUnavailable(f"LISTEN failed: {describe(exc)}") from None
        return conn

    def _hold_lock(self, conn: psycopg.Connection, held: int | None, node_id: int) -> bool:
        """Take node `node_id`'s advisory lock on the listener connection (releasing
        the one of `held`, an earlier incarnation), and say so in its row."""
        if held is not None:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", lock_key(held))
        row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", lock_key(node_id)).fetchone()
        if row is None or not row[0]:
            return False  # a reaper holds it for a moment: try again at the next wake
        conn.execute("UPDATE jd_nodes SET lock_held = true WHERE id = %s", (node_id,))
        return True

    async def _wake_on_notify(self, conn: psycopg.Connection[Any]) -> None:
        pgconn = conn.pgconn
        engine = self._engine
        held: int | None = None
        while True:
            node_id = self.node_id
            if node_id is not None and node_id != held:
                ok = await trio.to_thread.run_sync(self._hold_lock, conn, held, node_id)
                held = node_id if ok else None
                self.lock_held = ok
            with trio.move_on_after(POLL_S):
                await trio.lowlevel.wait_readable(pgconn.socket)
            pgconn.consume_input()  # raises OperationalError if the server went away
            while pgconn.notifies() is not None:
                pass  # any number of notifications: one look for work
            engine.notify()
