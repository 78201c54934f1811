"""`PgStore`: the journal on PostgreSQL, shared by every node of a cluster.

Triggers, run history, the DLQ and the workers' shared state live in the tables of
`_pg_schema`; each call is one transaction in a worker thread (`_pg_pool`). On its own
(the store contract, `jobdeck dlq`) it is a store like SQLite's. Given to an
`Orchestrator`, it brings the cluster's pieces (`cluster()`): a `PgCoordinator` that
decides admission in the database, and a `ClusterDispatcher`; then `open()` joins the
cluster (registers this node and its workers) and returns no pending triggers or
unfinished runs, since those belong to the cluster, not to this process.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import psycopg
from psycopg import conninfo

from ._detail_json import detail_of_json
from ._errors import UnknownDeadLetter, UnknownRun
from ._pg_pool import PgPool
from ._pg_rows import (
    DLQ_COLUMNS,
    RUN_COLUMNS,
    WORKER_COLUMNS,
    dead_letter_of,
    dlq_size,
    insert_trigger,
    json_param,
    notify,
    put_detail,
    read_workers,
    run_of,
)
from ._pg_schema import migrate
from ._pg_view import short_target
from ._records import (
    DeadLetter,
    RunDetail,
    RunDetailDraft,
    RunRecord,
    Source,
    StoredState,
    Trigger,
    WorkerState,
)
from ._store import DeadLetterDraft

#: The least time the server waits on a node inside a transaction before ending it
#: (a loaded machine may pause a thread between two statements for a while).
IDLE_IN_TRANSACTION_MIN_S = 1.0

if TYPE_CHECKING:
    from ._engine import Engine
    from ._pg_coordinator import PgCoordinator
    from ._pg_dispatch import ClusterDispatcher

class PgStore:
    """The Store protocol on PostgreSQL (`postgresql://…`); a cluster's shared journal.

    Args:
        dsn: a libpq connection string or `postgresql://` URL.
        history_per_worker: finished or running runs kept per worker.
        node_name: this node's name in the cluster (default `hostname:pid`).
        capacity: runs this node may hold at once (default: `max_concurrent_workers`).
        lease_seconds: how long a node's lease lasts without a heartbeat.
        heartbeat_seconds: how often the lease is renewed (default: a third of it).
    """

    def __init__(
        self,
        dsn: str,
        *,
        history_per_worker: int = 200,
        node_name: str | None = None,
        capacity: int | None = None,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float | None = None,
        pool_size: int = 4,
    ) -> None:
        self.dsn = dsn
        self.history_per_worker = history_per_worker
        self.node_name = node_name
        self.capacity = capacity
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = (
            heartbeat_seconds if heartbeat_seconds is not None else lease_seconds / 3
        )
        # A node cut off inside a transaction (a claim's holds the admission lock) must
        # not stall the cluster for more than a heartbeat: its peers reap it on time.
        self.pool = PgPool(
            dsn, size=pool_size,
            idle_in_transaction_s=max(IDLE_IN_TRANSACTION_MIN_S, self.heartbeat_seconds),
        )
        self.coordinator: PgCoordinator | None = None

    # ------------------------------------------------------------------ cluster


    def token_file_name(self) -> str:
        """The name of the API token file the nodes of this cluster on one machine share:
        named for the database (host, port, database, user; never the password)."""
        params = conninfo.conninfo_to_dict(self.dsn)
        where = [str(params.get(key) or "") for key in ("host", "port", "dbname", "user")]
        digest = hashlib.sha256("\0".join(where).encode("utf-8", "surrogateescape"))
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", short_target(self.dsn).removeprefix("pg://"))
        return f"pg-{slug.strip('-')[:60]}-{digest.hexdigest()[:8]}.token"
    def cluster(self, engine: Engine) -> tuple[PgCoordinator, ClusterDispatcher]:
        """The coordinator and dispatcher an Orchestrator on this store uses."""
        from ._pg_coordinator import PgCoordinator
        from ._pg_dispatch import ClusterDispatcher

        self.coordinator = PgCoordinator(self, engine)
        return self.coordinator, ClusterDispatcher(engine, self.coordinator)

    # ------------------------------------------------------------------ open / close

    async def open(self) -> StoredState:
        """Create or migrate the schema; join the cluster if an Orchestrator runs on it.

        Raises:
            StoreError: the server cannot be reached, refuses the login, or holds a
                schema newer than this code.
        """
        try:
            await self.pool.run_autocommit(
                lambda conn: migrate(conn, f"store {self.pool.where}")
            )
            if self.coordinator is not None:
                return await self.coordinator.join()
            return await self.pool.run(_read_state)
        except BaseException:
            # Nobody closes a store that failed to open: leave no connection behind.
            self.pool.discard_idle()
            raise

    async def close(self) -> None:
        """Leave the cluster (what this node holds is requeued) and close connections."""
        if self.coordinator is not None:
            await self.coordinator.leave()
        await self.pool.close()

    # ------------------------------------------------------------------ writes

    async def add_trigger(self, trigger: Trigger) -> None:
        def write(conn: psycopg.Connection) -> None:
            insert_trigger(conn, trigger)
            notify(conn)

        await self.pool.run(write)

    async def start_run(self, run: RunRecord) -> None:
        await self.pool.run(lambda conn: _upsert_run(conn, run))

    async def finish_run(
        self,
        run: RunRecord,
        *,
        worker: WorkerState,
        requeue: bool = False,
        dead_letter: DeadLetterDraft | None = None,
        triggers: Sequence[Trigger] = (),
        detail: RunDetailDraft | None = None,
    ) -> int | None:
        """Record a run's end without a lease (one process's view: the store contract)."""
        history = self.history_per_worker

        def write(conn: psycopg.Connection) -> int | None:
            _upsert_run(conn, run)
            put_detail(conn, run.id, detail)
            _save_worker(conn, worker)
            entry_id = None
            if dead_letter is not None:
                row = conn.execute(
                    "INSERT INTO jd_dlq (worker, trigger_id, source, payload, error, traceback,"
                    " attempts, started_at, failed_at, run_id)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (run.worker, run.trigger.id, run.trigger.source.value,
                     json_param(run.trigger.payload), dead_letter.error, dead_letter.traceback,
                     run.attempts, run.started_at, run.ended_at, run.id),
                ).fetchone()
                assert row is not None
                entry_id = int(row[0])
            if requeue:
                conn.execute(
                    "UPDATE jd_triggers SET state = 'pending' WHERE id = %s", (run.trigger.id,)
                )
                if conn.execute("SELECT 1 FROM jd_triggers WHERE id = %s",
                                (run.trigger.id,)).fetchone() is None:
                    insert_trigger(conn, run.trigger)
            else:
                conn.execute("DELETE FROM jd_triggers WHERE id = %s", (run.trigger.id,))
            for trigger in triggers:
                insert_trigger(conn, trigger)
            conn.execute(
                "DELETE FROM jd_runs x WHERE x.worker = %(w)s AND x.status <> 'running'"
                " AND x.seq <= (SELECT y.seq FROM jd_runs y WHERE y.worker = %(w)s"
                " ORDER BY y.seq DESC OFFSET %(n)s LIMIT 1)",
                {"w": run.worker, "n": history},
            )
            notify(conn)
            return entry_id

        return await self.pool.run(write)

    async def save_worker(self, state: WorkerState) -> None:
        await self.pool.run(lambda conn: _save_worker(conn, state))

    # ------------------------------------------------------------------ reads

    async def runs(self, worker: str | None = None, limit: int = 50) -> list[RunRecord]:
        where = "" if worker is None else "WHERE worker = %(w)s "

        def read(conn: psycopg.Connection) -> list[RunRecord]:
            rows = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM jd_runs {where}"
                "ORDER BY started_at DESC, seq LIMIT %(n)s",
                {"w": worker, "n": limit},
            ).fetchall()
            return [run_of(r) for r in rows]

        return await self.pool.run(read)

    async def run_detail(self, run_id: str) -> RunDetail:
        def read(conn: psycopg.Connection) -> RunDetail:
            row = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM jd_runs WHERE id = %s", (run_id,)
            ).fetchone()
            if row is None:
                raise UnknownRun(run_id)
            found = conn.execute(
                "SELECT attempts, logs, logs_dropped FROM jd_run_details WHERE run_id = %s",
                (run_id,),
            ).fetchone()
            return RunDetail.of(run_of(row), None if found is None else detail_of_json(*found))

        return await self.pool.run(read)

    async def dlq_list(self, limit: int | None = None) -> list[DeadLetter]:
        def read(conn: psycopg.Connection) -> list[DeadLetter]:
            rows = conn.execute(
                f"SELECT {DLQ_COLUMNS} FROM jd_dlq ORDER BY id DESC LIMIT %s", (limit,)
            ).fetchall()
            return [dead_letter_of(r) for r in rows]

        return await self.pool.run(read)

    async def dlq_get(self, entry_id: int) -> DeadLetter:
        def read(conn: psycopg.Connection) -> DeadLetter:
            row = conn.execute(
                f"SELECT {DLQ_COLUMNS} FROM jd_dlq WHERE id = %s", (entry_id,)
            ).fetchone()
            if row is None:
                raise UnknownDeadLetter(entry_id)
            return dead_letter_of(row)

        return await self.pool.run(read)

    async def dlq_replay(self, entry_id: int, trigger: Trigger) -> None:
        def write(conn: psycopg.Connection) -> None:
            if conn.execute("DELETE FROM jd_dlq WHERE id = %s RETURNING id",
                            (entry_id,)).fetchone() is None:
                raise UnknownDeadLetter(entry_id)
            insert_trigger(conn, trigger)
            notify(conn)

        await self.pool.run(write)

    async def dlq_delete(self, entry_id: int) -> None:
        def write(conn: psycopg.Connection) -> None:
            if conn.execute("DELETE FROM jd_dlq WHERE id = %s RETURNING id",
                            (entry_id,)).fetchone() is None:
                raise UnknownDeadLetter(entry_id)

        await self.pool.run(write)

    async def dlq_purge(self) -> int:
        def write(conn: psycopg.Connection) -> int:
            row = conn.execute(
                "WITH gone AS (DELETE FROM jd_dlq RETURNING 1) SELECT count(*) FROM gone"
            ).fetchone()
            return int(row[0]) if row else 0

        return await self.pool.run(write)


def _upsert_run(conn: psycopg.Connection, run: RunRecord) -> None:
    t = run.trigger
    conn.execute(
        "INSERT INTO jd_runs (id, worker, trigger_id, source, payload, accepted_at, status,"
        " started_at, ended_at, attempts, duration_s, error)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status,"
        " ended_at = EXCLUDED.ended_at, attempts = EXCLUDED.attempts,"
        " duration_s = EXCLUDED.duration_s, error = EXCLUDED.error",
        (run.id, run.worker, t.id, t.source.value, json_param(t.payload), t.accepted_at,
         run.status.value, run.started_at, run.ended_at, run.attempts, run.duration_s,
         run.error),
    )


def _save_worker(conn: psycopg.Connection, state: WorkerState) -> None:
    conn.execute(
        f"INSERT INTO jd_workers ({WORKER_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (name) DO UPDATE SET enabled = EXCLUDED.enabled,"
        " circuit = EXCLUDED.circuit, opened_at = EXCLUDED.opened_at,"
        " consecutive_failures = EXCLUDED.consecutive_failures,"
        " last_start = EXCLUDED.last_start, last_success = EXCLUDED.last_success,"
        " last_error = EXCLUDED.last_error",
        (state.name, state.enabled, state.circuit.value, state.opened_at,
         state.consecutive_failures, state.last_start, state.last_success, state.last_error),
    )


def _read_state(conn: psycopg.Connection) -> StoredState:
    """Everything stored, as one process owning the data would see it."""
    pending = tuple(
        Trigger(id=i, worker=w, source=Source(s), payload=p, accepted_at=a)
        for i, w, s, p, a in conn.execute(
            "SELECT id, worker, source, payload, accepted_at FROM jd_triggers"
            " WHERE state = 'pending' ORDER BY accept_seq"
        )
    )
    # Running with no lease: cut off with nobody holding it (leased runs are reaped).
    unfinished = tuple(
        run_of(row)
        for row in conn.execute(
            f"SELECT {RUN_COLUMNS} FROM jd_runs r WHERE status = 'running'"
            " AND NOT EXISTS (SELECT 1 FROM jd_leases l WHERE l.run_id = r.id) ORDER BY seq"
        )
    )
    return StoredState(
        workers=read_workers(conn), pending=pending, unfinished_runs=unfinished,
        dlq_size=dlq_size(conn),
    )

