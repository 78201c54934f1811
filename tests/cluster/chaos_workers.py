"""The chaos test's worker: each attempt records itself in a witness table.

A node of the chaos test (`test_chaos.py`) imports this module from its config. Every
attempt writes one `chaos_witness` row when it starts (worker, the occurrence's
`due_at`, its fencing token, node, pid) and sets its `end_t` when it ends, however it
ends (done, failed, cancelled): what ran where, and when, as the workers saw it,
independent of what jobdeck recorded. Times are the machine's wall clock (every node
runs on the same machine as the test). A SIGKILLed attempt leaves its `end_t` null.

The witness writes go straight to PostgreSQL (`JOBDECK_CHAOS_WITNESS`), never through
the node's own connection or the test's blackholing proxy, and are retried for a while
(the server may be restarting).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psycopg
import trio
from psycopg.types.json import Jsonb

#: Where the witness table is (a libpq connection string), and who this node is.
WITNESS_ENV, NODE_ENV = "JOBDECK_CHAOS_WITNESS", "JOBDECK_CHAOS_NODE"
#: How long a witness write keeps trying (a restarting server comes back well within it).
WRITE_FOR_S = 20.0

WITNESS_TABLE = """
CREATE TABLE IF NOT EXISTS chaos_witness (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    worker text NOT NULL, run_id text NOT NULL, trigger_id text NOT NULL,
    due_at timestamptz, token bigint NOT NULL, attempt int NOT NULL,
    node text NOT NULL, pid int NOT NULL, payload jsonb,
    start_t double precision NOT NULL, end_t double precision, outcome text
)
"""

_lock = threading.Lock()
_conn: psycopg.Connection | None = None


def _write(query: str, args: tuple[Any, ...]) -> Any:
    """Run one statement on this process's witness connection, reconnecting as needed."""
    global _conn
    deadline = time.monotonic() + WRITE_FOR_S
    with _lock:
        while True:
            try:
                if _conn is None or _conn.closed:
                    _conn = psycopg.connect(os.environ[WITNESS_ENV], autocommit=True,
                                            connect_timeout=5)
                cur = _conn.execute(query, args)
                return cur.fetchone() if cur.description else None
            except psycopg.OperationalError:
                if _conn is not None:
                    _conn.close()
                    _conn = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


async def work(ctx: Any) -> None:
    """Work for `params.seconds` (cancellable); fail when the payload says `fail`."""
    start = time.time()
    payload = ctx.payload if isinstance(ctx.payload, dict) else None
    row = await trio.to_thread.run_sync(
        _write,
        "INSERT INTO chaos_witness (worker, run_id, trigger_id, due_at, token, attempt, node,"
        " pid, payload, start_t) SELECT %s, %s, %s, (SELECT due_at FROM jd_runs WHERE id = %s),"
        " %s, %s, %s, %s, %s, %s RETURNING id",
        (ctx.worker, ctx.run_id, ctx.trigger_id, ctx.run_id, ctx.fencing_token, ctx.attempt,
         os.environ.get(NODE_ENV, "?"), os.getpid(),
         Jsonb(payload) if payload is not None else None, start),
    )
    outcome = "cancelled"
    try:
        await trio.sleep(float(ctx.params.get("seconds", 0.3)))
        if payload is not None and payload.get("fail"):
            outcome = "failed"
            raise RuntimeError("failed on purpose")
        outcome = "done"
    finally:
        end = time.time()
        with trio.move_on_after(WRITE_FOR_S + 5, shield=True):
            await trio.to_thread.run_sync(
                _write, "UPDATE chaos_witness SET end_t = %s, outcome = %s WHERE id = %s",
                (end, outcome, row[0]),
            )
