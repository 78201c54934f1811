"""A cluster node's reads of the whole cluster: its cached view, and what `/cluster` shows.

`refresh` reads, at most every `REFRESH_S` on the node's wake-ups (a NOTIFY, the
once-a-second poll), what the node's snapshots show of other nodes: every worker's
lease and pending count, the shared enable and circuit state, the cluster's pause,
whether an operator drained this node, the pending triggers of the workers someone
asked about lately, and the cluster's figures (live nodes, slots, leases, DLQ size) that
`/metrics` shows. Snapshots and scrapes then read the copy
(`Engine.cluster`), never the database. `cluster_status` and `cluster_leases` are the
HTTP API's reads, one query each, when asked.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
import trio
from psycopg import conninfo

from ._circuit import CircuitState
from ._cluster_view import (
    ASKED_KEPT_S,
    PENDING_SHOWN,
    ClusterFigures,
    ClusterView,
    LeaseView,
)
from ._pg_rows import notify
from ._records import Circuit, Source, Trigger

if TYPE_CHECKING:
    from ._pg_coordinator import PgCoordinator

#: Seconds between two refreshes of a node's view, at most (the poll's period).
REFRESH_S = 1.0

# One statement for the workers and the cluster (the idle poll stays within G11): the
# cluster's row comes first, joined to every worker (none registered: one row of NULLs).
_WORKERS = """
SELECT k.paused, k.node_state, extract(epoch FROM k.node_expires - k.now), k.figures,
       w.name, w.enabled, w.circuit, w.consecutive_failures, w.opened_at,
       l.token, l.phase, n.name, extract(epoch FROM n.expires_at - k.now),
       w.lost_node, extract(epoch FROM k.now - w.lost_at), p.n
FROM (SELECT jd_now() AS now, c.paused, me.state AS node_state, me.expires_at AS node_expires,
             ARRAY[(SELECT count(*) FROM jd_nodes n
                    WHERE n.state = 'active' AND n.expires_at > jd_now()),
                   (SELECT count(*) FROM jd_nodes n
                    WHERE n.state = 'draining' AND n.expires_at > jd_now()),
                   (SELECT count(*) FROM jd_leases l WHERE l.phase = 'running'),
                   coalesce(c.max_concurrent, 0),
                   (SELECT count(*) FROM jd_leases),
                   (SELECT count(*) FROM jd_dlq)] AS figures
      FROM jd_cluster c LEFT JOIN jd_nodes me ON me.id = %s) k
LEFT JOIN jd_workers w ON w.name = ANY(%s)
LEFT JOIN jd_leases l ON l.worker = w.name
LEFT JOIN jd_nodes n ON n.id = l.node_id
LEFT JOIN (SELECT t.worker, count(*) AS n FROM jd_triggers t WHERE t.state = 'pending'
           GROUP BY t.worker) p ON p.worker = w.name
"""
_PENDING = """
SELECT id, worker, source, payload, accepted_at FROM (
    SELECT t.*, row_number() OVER (PARTITION BY t.worker ORDER BY t.ready_at, t.accept_seq) AS k
    FROM jd_triggers t WHERE t.state = 'pending' AND t.worker = ANY(%s)) x
WHERE k <= %s ORDER BY worker, k
"""


async def refresh(coordinator: PgCoordinator) -> None:
    """Read the cluster into this node's view and apply what other nodes changed."""
    engine = coordinator._engine
    names = list(engine.workers)
    node_id = coordinator.node_id
    view = engine.cluster
    now = trio.current_time()
    asked = []
    if view is not None:
        for name, t in list(view.asked.items()):
            if now - t > ASKED_KEPT_S:
                del view.asked[name]
            else:
                asked.append(name)

    def read(conn: psycopg.Connection) -> tuple[list[Any], list[Any]]:
        rows = conn.execute(_WORKERS, (node_id, names)).fetchall()
        pending = []
        if asked and any(row[-1] for row in rows):
            pending = conn.execute(_PENDING, (asked, PENDING_SHOWN)).fetchall()
        return rows, pending

    own_used = engine.slots_used
    rows, pending = await coordinator._pool.run_autocommit(read)
    now = trio.current_time()
    if view is None:
        view = engine.cluster = ClusterView(
            node=coordinator.node_name, store=short_target(coordinator._store.dsn)
        )
    view.refreshed_t = now
    view.leases.clear()
    view.pending.clear()
    view.lost.clear()
    view.pending_triggers.clear()
    for (_, _, _, _, name, enabled, circuit, failures, opened_at, token, phase, holder,
         expires_s, lost_node, lost_ago, count) in rows:
        if name is None:
            continue  # no worker registered: the cluster's row alone
        w = engine.workers[name]
        if w.enabled != enabled or w.circuit.value != circuit or (
            w.consecutive_failures != failures
        ):
            # changed on another node (an operator, or a run's end there)
            w.enabled = enabled
            opened = engine.trio_time_of(opened_at) if circuit != w.circuit.value else (
                w.breaker.opened_at
            )
            w.breaker = CircuitState(Circuit(circuit), failures, opened)
            engine.health_watch.add(name)
        if token is not None:
            view.leases[name] = LeaseView(
                node=holder, token=token, phase=phase, expires_t=now + float(expires_s)
            )
        if count:
            view.pending[name] = int(count)
        if lost_node is not None:
            view.lost[name] = (lost_node, now - float(lost_ago))
    for trigger_id, worker, source, payload, accepted_at in pending:
        view.pending_triggers.setdefault(worker, []).append(
            Trigger(id=trigger_id, worker=worker, source=Source(source), payload=payload,
                    accepted_at=accepted_at)
        )
    engine.pending_count = view.pending_total
    if rows:
        paused, state, own_expires_s, figures = rows[0][:4]
        view.own_expires_t = None if own_expires_s is None else now + float(own_expires_s)
        active, draining, used, slots, leases, dead = (int(x) for x in figures)
        view.figures = ClusterFigures(
            nodes_active=active, nodes_draining=draining, slots_used=used, slots_max=slots,
            leases=leases, dlq_size=dead,
        )
        # this node's runs when the cluster's were counted (snapshots add what it started
        # or ended since)
        view.own_used = own_used
        # the DLQ is the cluster's: dead letters of other nodes count too
        engine.dlq_size = dead
        coordinator.cluster_state(paused=paused, draining=state == "draining")
    view.capacity = coordinator.capacity
    view.listener_ok = coordinator.lock_held
    view.node_state = (
        "fenced" if coordinator.self_fenced else "draining" if coordinator.draining
        else "active"
    )


async def cluster_status(coordinator: PgCoordinator) -> dict[str, Any]:
    """The nodes of the cluster and its slots, as `GET /cluster` shows them."""
    hashes = coordinator._spec_hashes()

    def read(conn: psycopg.Connection) -> dict[str, Any]:
        nodes = conn.execute(
            "SELECT n.id, n.name, n.host, n.pid, n.state, n.capacity, n.lease_s,"
            " extract(epoch FROM k.now - n.heartbeat_at),"
            " extract(epoch FROM n.expires_at - k.now), n.clock_skew_s, n.lock_held,"
            " n.started_at,"
            " (SELECT count(*) FROM jd_leases l WHERE l.node_id = n.id"
            "  AND l.phase = 'running'),"
            " (SELECT count(*) FROM jd_leases l WHERE l.node_id = n.id),"
            " (SELECT coalesce(json_object_agg(nw.worker, nw.spec_hash), '{}')"
            "  FROM jd_node_workers nw WHERE nw.node_id = n.id)"
            " FROM jd_nodes n CROSS JOIN (SELECT jd_now() AS now) k ORDER BY n.name, n.id"
        ).fetchall()
        cluster = conn.execute(
            "SELECT paused, max_concurrent, (SELECT count(*) FROM jd_leases"
            " WHERE phase = 'running'), (SELECT count(*) FROM jd_triggers"
            " WHERE state = 'pending') FROM jd_cluster"
        ).fetchone()
        assert cluster is not None
        return {"nodes": nodes, "cluster": cluster}

    found = await coordinator._pool.run_autocommit(read)
    paused, max_concurrent, running, pending = found["cluster"]
    out_nodes = []
    for (node_id, name, host, pid, state, capacity, lease_s, beat_age, expires_in, skew,
         lock_held, started_at, used, leases, node_hashes) in found["nodes"]:
        differences = _spec_differences(hashes, node_hashes)
        out_nodes.append({
            "name": name,
            "id": node_id,
            "this_node": node_id == coordinator.node_id,
            "host": host,
            "pid": pid,
            "state": state,
            "used": used,
            "leases": leases,
            "capacity": capacity,
            "lease_seconds": lease_s,
            "heartbeat_age_s": _round(beat_age),
            "lease_expires_s": _round(expires_in),
            "clock_skew_s": _round(skew),
            "fast_failover_lock": lock_held,
            "started_at": _time(started_at),
            "config_match": not differences,
            "spec_differences": differences,
        })
    return {
        "node": coordinator.node_name,
        "paused": paused,
        "slots": {"used": running, "max": max_concurrent},
        "pending": pending,
        "nodes": out_nodes,
    }


async def cluster_leases(coordinator: PgCoordinator) -> list[dict[str, Any]]:
    """Every live lease of the cluster, as `GET /cluster/leases` shows them."""
    def read(conn: psycopg.Connection) -> list[Any]:
        return conn.execute(
            "SELECT l.token, l.worker, l.run_id, l.trigger_id, n.name, l.phase, l.attempt,"
            " l.claimed_at, extract(epoch FROM l.retry_at - k.now),"
            " extract(epoch FROM n.expires_at - k.now)"
            " FROM jd_leases l JOIN jd_nodes n ON n.id = l.node_id"
            " CROSS JOIN (SELECT jd_now() AS now) k ORDER BY l.token"
        ).fetchall()

    rows = await coordinator._pool.run_autocommit(read)
    return [
        {
            "token": token, "worker": worker, "run_id": run_id, "trigger_id": trigger_id,
            "node": node, "phase": phase, "attempt": attempt, "claimed_at": _time(claimed),
            "retry_in_s": _round(retry_in), "lease_expires_s": _round(expires_in),
        }
        for (token, worker, run_id, trigger_id, node, phase, attempt, claimed, retry_in,
             expires_in) in rows
    ]


async def set_node_state(coordinator: PgCoordinator, name: str, state: str) -> int:
    """Drain (`draining`) or undrain (`active`) the nodes named `name`; how many."""
    def write(conn: psycopg.Connection) -> int:
        count = conn.execute(
            "UPDATE jd_nodes SET state = %s WHERE name = %s", (state, name)
        ).rowcount
        notify(conn)
        return count

    return await coordinator._pool.run(write)


def short_target(dsn: str) -> str:
    """`pg://host/db` (the port when not 5432): where the cluster is, never the password."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "pg://?"
    host = str(params.get("host") or params.get("hostaddr") or "localhost").split(",")[0]
    port = str(params.get("port") or "5432").split(",")[0]
    where = host if port == "5432" else f"{host}:{port}"
    return f"pg://{where}/{params.get('dbname') or params.get('user') or ''}"


def _spec_differences(mine: dict[str, str], theirs: dict[str, str]) -> list[str]:
    """What differs between this node's workers and another's: names, in words."""
    out = []
    for name in sorted(mine.keys() | theirs.keys()):
        if name not in theirs:
            out.append(f"{name}: not on that node")
        elif name not in mine:
            out.append(f"{name}: not on this node")
        elif mine[name] != theirs[name]:
            out.append(f"{name}: a different spec")
    return out


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
