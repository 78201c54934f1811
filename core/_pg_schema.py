"""The cluster's schema on PostgreSQL: tables, the database clock, and the admission functions.

Migrations are versioned (`jd_schema.version`) and applied under a transaction-scoped
advisory lock, so nodes that start together on an empty database migrate it once: the
first takes the lock and creates everything, the others wait, then find it done. A
database whose schema is newer than this code is refused (`StoreError`): an older node
must not write to tables it does not understand.

Every time comparison goes through `jd_now()` (`clock_timestamp()` plus
`jd_cluster.clock_offset_s`), the database's clock and never a node's, so tests move
the whole cluster's time forward (leases expire, circuits cool down) without sleeping.

Admission is one server-side call, `jd_claim`, under one advisory lock: `SKIP LOCKED`
alone cannot see that two nodes each admitted one of a `blocks` pair (write skew), or
count cluster slots. A run's end is `jd_finish`, which starts by deleting the lease by
its token: no lease, no write (fencing).
"""

from __future__ import annotations

import psycopg

from ._errors import StoreError

#: The advisory lock key of migrations (pg_advisory_xact_lock(bigint)): "jobdeck" + 1.
MIGRATION_LOCK = 0x6A6F_6264_6563_6B01
#: The advisory lock key every claim and reap holds for its transaction.
ADMISSION_LOCK = 0x6A6F_6264_6563_6B02
#: The channel nodes LISTEN on; commits that create work or free capacity NOTIFY it.
CHANNEL = "jobdeck"
#: The most runs one `jd_claim` call admits (the advisory lock is held that long).
CLAIM_BATCH = 16

_V1 = """
CREATE TABLE jd_cluster (
    one bool PRIMARY KEY DEFAULT true CHECK (one),
    paused bool NOT NULL DEFAULT false,
    max_concurrent int NOT NULL DEFAULT 5,
    -- added to clock_timestamp() by jd_now(): tests shift the cluster's time with it
    clock_offset_s double precision NOT NULL DEFAULT 0
);
INSERT INTO jd_cluster DEFAULT VALUES;

CREATE FUNCTION jd_now() RETURNS timestamptz LANGUAGE sql VOLATILE AS
$$ SELECT clock_timestamp() + make_interval(secs => clock_offset_s) FROM jd_cluster $$;

CREATE TABLE jd_nodes (                       -- one row per incarnation of a node
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL, host text NOT NULL, pid int NOT NULL,
    capacity int NOT NULL CHECK (capacity >= 0),
    lease_s double precision NOT NULL,
    state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'draining')),
    started_at timestamptz NOT NULL, heartbeat_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE TABLE jd_workers (
    name text PRIMARY KEY,
    -- the spec as admission needs it (NULL mode: known only from a stored state)
    mode text, spec_hash text,
    priority int NOT NULL DEFAULT 1, ord int NOT NULL DEFAULT 0,
    blocks text[] NOT NULL DEFAULT '{}',      -- symmetric: both sides name each other
    depends_on text[] NOT NULL DEFAULT '{}',
    max_failures int NOT NULL DEFAULT 5, cooldown_s double precision,
    backoff_s double precision NOT NULL DEFAULT 1,
    backoff_max_s double precision NOT NULL DEFAULT 60,
    -- shared runtime state, changed only as deltas
    enabled bool NOT NULL DEFAULT true,
    circuit text NOT NULL DEFAULT 'closed' CHECK (circuit IN ('closed', 'open', 'half_open')),
    opened_at timestamptz, consecutive_failures int NOT NULL DEFAULT 0,
    anchor timestamptz, next_due timestamptz,             -- the schedule's cursor (CAS)
    coalesced bigint NOT NULL DEFAULT 0,                  -- occurrences folded into one run
    start_seq bigint, success_seq bigint,                 -- jd_seq: the fresh-success rule
    dependency_mark bigint NOT NULL DEFAULT -1,           -- jd_seq of the last auto-trigger
    last_start timestamptz, last_success timestamptz, last_error text
);

-- which workers each node can run, and with which spec: a node claims only those
CREATE TABLE jd_node_workers (
    node_id bigint NOT NULL REFERENCES jd_nodes ON DELETE CASCADE,
    worker text NOT NULL, spec_hash text NOT NULL,
    PRIMARY KEY (node_id, worker)
);

CREATE SEQUENCE jd_fence;        -- lease tokens: the fencing tokens
CREATE SEQUENCE jd_seq;          -- orders starts, successes and auto-triggers
CREATE SEQUENCE jd_accept_seq;   -- orders triggers as accepted

CREATE TABLE jd_triggers (
    id text PRIMARY KEY, worker text NOT NULL, source text NOT NULL, payload json,
    accepted_at timestamptz NOT NULL,
    due_at timestamptz,                      -- the occurrence, for schedule triggers
    ready_at timestamptz NOT NULL,           -- may start from (due + jitter, backoff)
    accept_seq bigint NOT NULL DEFAULT nextval('jd_accept_seq'),
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed'))
);
CREATE UNIQUE INDEX jd_triggers_occurrence ON jd_triggers (worker, due_at)
    WHERE source = 'schedule';
CREATE UNIQUE INDEX jd_triggers_continuous ON jd_triggers (worker)
    WHERE source = 'continuous';
CREATE INDEX jd_triggers_pending ON jd_triggers (worker, ready_at, accept_seq)
    WHERE state = 'pending';

CREATE TABLE jd_leases (
    token bigint PRIMARY KEY,
    worker text NOT NULL UNIQUE,             -- no self-overlap
    trigger_id text NOT NULL UNIQUE, run_id text NOT NULL UNIQUE,
    node_id bigint NOT NULL REFERENCES jd_nodes,
    phase text NOT NULL CHECK (phase IN ('running', 'retry_wait')),
    attempt int NOT NULL DEFAULT 1, retry_at timestamptz, claimed_at timestamptz NOT NULL
);
CREATE INDEX jd_leases_node ON jd_leases (node_id);

CREATE TABLE jd_runs (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    id text PRIMARY KEY, worker text NOT NULL,
    trigger_id text NOT NULL, source text NOT NULL, payload json,
    accepted_at timestamptz NOT NULL, due_at timestamptz,
    status text NOT NULL, started_at timestamptz NOT NULL, ended_at timestamptz,
    attempts int NOT NULL DEFAULT 1, duration_s double precision, error text,
    node_id bigint, token bigint
);
CREATE INDEX jd_runs_worker ON jd_runs (worker, seq);
CREATE INDEX jd_runs_started ON jd_runs (started_at);
CREATE UNIQUE INDEX jd_runs_occurrence ON jd_runs (worker, due_at)
    WHERE status = 'succeeded' AND source = 'schedule';

CREATE TABLE jd_dlq (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    worker text NOT NULL, trigger_id text NOT NULL, source text NOT NULL, payload json,
    error text NOT NULL, traceback text NOT NULL, attempts int NOT NULL,
    started_at timestamptz NOT NULL, failed_at timestamptz NOT NULL, run_id text NOT NULL,
    node_id bigint, token bigint, due_at timestamptz
);
"""

_V1_FUNCTIONS = """
-- Reap nodes whose lease expired: their leases become interrupted runs (node_lost) and
-- their triggers go back to pending; the node rows go. Holds the admission lock.
CREATE FUNCTION jd_reap(p_now timestamptz) RETURNS int LANGUAGE plpgsql AS $$
DECLARE n int; v_id bigint; v_dead bigint[] := '{}';
BEGIN
    PERFORM pg_advisory_xact_lock({admission});
    -- locked, so a heartbeat racing this reap either lands first (and the node lives)
    -- or finds the row gone (and the node knows it is fenced)
    FOR v_id IN SELECT id FROM jd_nodes WHERE expires_at <= p_now FOR UPDATE LOOP
        v_dead := v_dead || v_id;
    END LOOP;
    IF cardinality(v_dead) = 0 THEN RETURN 0; END IF;
    WITH gone AS (
        DELETE FROM jd_leases l WHERE l.node_id = ANY(v_dead) RETURNING l.*
    ), runs AS (
        UPDATE jd_runs r SET status = 'interrupted', ended_at = p_now,
            attempts = g.attempt, error = 'interrupted: node_lost'
        FROM gone g WHERE r.id = g.run_id RETURNING r.id
    ), triggers AS (
        UPDATE jd_triggers t SET state = 'pending' FROM gone g
        WHERE t.id = g.trigger_id RETURNING t.id
    )
    SELECT count(*) INTO n FROM gone;
    DELETE FROM jd_nodes WHERE id = ANY(v_dead);
    PERFORM pg_notify('{channel}', '');
    RETURN n;
END $$;

-- Admit runs for node p_node: retries it holds (p_resume, tokens whose wait it judged
-- over) and new runs of pending triggers, best first, up to p_limit, the free cluster
-- slots and the node's capacity. Raises JDF01 when the node's row is gone or expired.
CREATE FUNCTION jd_claim(p_node bigint, p_limit int, p_resume bigint[])
RETURNS TABLE (token bigint, run_id text, worker text, trigger_id text, source text,
               payload json, accepted_at timestamptz, due_at timestamptz,
               started_at timestamptz, attempt int, resumed bool,
               enabled bool, circuit text, consecutive_failures int)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_now timestamptz;
    v_capacity int; v_state text; v_paused bool; v_max int; v_free int;
    c record; v_token bigint; v_run text; v_start bigint;
BEGIN
    PERFORM pg_advisory_xact_lock({admission});
    v_now := jd_now();
    PERFORM jd_reap(v_now);
    SELECT n.capacity, n.state INTO v_capacity, v_state FROM jd_nodes n
    WHERE n.id = p_node AND n.expires_at > v_now;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'node % is fenced: its lease expired', p_node USING ERRCODE = 'JDF01';
    END IF;
    UPDATE jd_workers w SET circuit = 'half_open'
    WHERE w.circuit = 'open' AND w.cooldown_s IS NOT NULL
      AND w.opened_at + make_interval(secs => w.cooldown_s) <= v_now;
    SELECT k.paused, k.max_concurrent INTO v_paused, v_max FROM jd_cluster k;
    IF v_paused OR v_state <> 'active' THEN RETURN; END IF;
    v_free := least(
        p_limit, 16,
        v_max - (SELECT count(*) FROM jd_leases l WHERE l.phase = 'running'),
        v_capacity - (SELECT count(*) FROM jd_leases l
                      WHERE l.phase = 'running' AND l.node_id = p_node));
    FOR c IN
        SELECT w.name, w.priority, w.ord, w.blocks, w.depends_on, w.start_seq,
               t.id AS tid, t.ready_at AS due, t.accept_seq, NULL::bigint AS resume
        FROM (SELECT DISTINCT ON (p.worker) p.* FROM jd_triggers p
              WHERE p.state = 'pending' AND p.ready_at <= v_now
              ORDER BY p.worker, p.ready_at, p.accept_seq) t
        JOIN jd_workers w ON w.name = t.worker
        JOIN jd_node_workers nw ON nw.node_id = p_node AND nw.worker = w.name
                               AND nw.spec_hash = w.spec_hash
        WHERE w.enabled AND w.circuit <> 'open'
          AND NOT EXISTS (SELECT 1 FROM jd_leases l WHERE l.worker = w.name)
        UNION ALL
        SELECT w.name, w.priority, w.ord, w.blocks, w.depends_on, w.start_seq,
               l.trigger_id, l.retry_at, 0, l.token
        FROM jd_leases l JOIN jd_workers w ON w.name = l.worker
        WHERE l.token = ANY(p_resume) AND l.node_id = p_node
        ORDER BY priority DESC, due, ord, accept_seq
    LOOP
        EXIT WHEN v_free <= 0;
        -- judged against the leases taken so far, this batch's included
        CONTINUE WHEN EXISTS (SELECT 1 FROM jd_leases l
                              WHERE l.phase = 'running' AND l.worker = ANY(c.blocks));
        IF c.resume IS NULL THEN
            CONTINUE WHEN EXISTS (SELECT 1 FROM jd_leases l
                                  WHERE l.worker = c.name OR l.worker = ANY(c.depends_on));
            CONTINUE WHEN (SELECT count(*) FROM jd_workers d
                           WHERE d.name = ANY(c.depends_on) AND d.success_seq IS NOT NULL
                             AND (c.start_seq IS NULL OR d.success_seq >= c.start_seq))
                          < cardinality(c.depends_on);
            v_token := nextval('jd_fence');
            v_run := lpad(to_hex(v_token), 16, '0');
            v_start := nextval('jd_seq');
            INSERT INTO jd_leases (token, worker, trigger_id, run_id, node_id, phase, attempt,
                                   claimed_at)
            VALUES (v_token, c.name, c.tid, v_run, p_node, 'running', 1, v_now);
            WITH taken AS (UPDATE jd_triggers p SET state = 'claimed' WHERE p.id = c.tid
                           RETURNING p.*)
            INSERT INTO jd_runs (id, worker, trigger_id, source, payload, accepted_at, due_at,
                                 status, started_at, attempts, node_id, token)
            SELECT v_run, c.name, p.id, p.source, p.payload, p.accepted_at, p.due_at,
                   'running', v_now, 1, p_node, v_token FROM taken p;
            UPDATE jd_workers w SET start_seq = v_start, last_start = v_now
            WHERE w.name = c.name;
            RETURN QUERY
                SELECT v_token, v_run, c.name, p.id, p.source, p.payload, p.accepted_at,
                       p.due_at, v_now, 1, false, w.enabled, w.circuit, w.consecutive_failures
                FROM jd_triggers p JOIN jd_workers w ON w.name = p.worker WHERE p.id = c.tid;
        ELSE
            UPDATE jd_leases l SET phase = 'running', attempt = l.attempt + 1, retry_at = NULL
            WHERE l.token = c.resume;
            RETURN QUERY
                SELECT l.token, l.run_id, l.worker, l.trigger_id, NULL::text, NULL::json,
                       NULL::timestamptz, NULL::timestamptz, v_now, l.attempt, true,
                       w.enabled, w.circuit, w.consecutive_failures
                FROM jd_leases l JOIN jd_workers w ON w.name = l.worker
                WHERE l.token = c.resume;
        END IF;
        v_free := v_free - 1;
    END LOOP;
END $$;

-- Record a run's end under its lease token. No lease (reaped, fenced): lost, nothing
-- written. Else the run, the worker's changes as deltas, the DLQ, the trigger (removed,
-- or back to pending), and the triggered dependents whose dependencies all freshly
-- succeeded (their rows locked in name order before their marks are read).
CREATE FUNCTION jd_finish(
    p_token bigint, p_status text, p_ended_at timestamptz, p_attempts int,
    p_duration double precision, p_error text, p_requeue bool,
    p_dlq_error text, p_dlq_traceback text, p_history int,
    OUT lost bool, OUT dlq_id bigint, OUT chained_ids text[], OUT chained_workers text[])
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    l jd_leases; r jd_runs; w jd_workers; d record; v_now timestamptz := jd_now();
    v_id text; v_backoff double precision;
BEGIN
    lost := false; chained_ids := '{}'; chained_workers := '{}';
    -- a lease is held only while its node's lease is: an expired node writes nothing,
    -- reaped or not yet
    DELETE FROM jd_leases x USING jd_nodes n
    WHERE x.token = p_token AND n.id = x.node_id AND n.expires_at > v_now
    RETURNING x.* INTO l;
    IF NOT FOUND THEN lost := true; RETURN; END IF;
    UPDATE jd_runs x SET status = p_status, ended_at = p_ended_at, attempts = p_attempts,
        duration_s = p_duration, error = p_error
    WHERE x.id = l.run_id RETURNING * INTO r;
    IF p_status = 'succeeded' THEN
        UPDATE jd_workers x SET consecutive_failures = 0, circuit = 'closed',
            opened_at = NULL, success_seq = nextval('jd_seq'), last_success = p_ended_at
        WHERE x.name = l.worker RETURNING * INTO w;
    ELSIF p_status = 'failed' THEN
        UPDATE jd_workers x SET consecutive_failures = x.consecutive_failures + 1,
            last_error = p_error,
            circuit = CASE WHEN x.circuit = 'half_open'
                             OR x.consecutive_failures + 1 >= x.max_failures
                           THEN 'open' ELSE x.circuit END,
            opened_at = CASE WHEN x.circuit = 'half_open'
                               OR x.consecutive_failures + 1 >= x.max_failures
                             THEN v_now ELSE x.opened_at END
        WHERE x.name = l.worker RETURNING * INTO w;
    END IF;
    IF p_dlq_error IS NOT NULL THEN
        INSERT INTO jd_dlq (worker, trigger_id, source, payload, error, traceback, attempts,
                            started_at, failed_at, run_id, node_id, token, due_at)
        VALUES (r.worker, r.trigger_id, r.source, r.payload, p_dlq_error, p_dlq_traceback,
                p_attempts, r.started_at, p_ended_at, r.id, l.node_id, l.token, r.due_at)
        RETURNING id INTO dlq_id;
    END IF;
    IF r.source = 'continuous' THEN
        -- the continuous worker's standing trigger: pending again, after a failure
        -- backed off like a retry (full jitter, growing with the failures in a row)
        v_backoff := CASE WHEN p_status = 'failed' THEN
            least(w.backoff_max_s, w.backoff_s
                  * 2 ^ least(greatest(w.consecutive_failures - 1, 0), 1023)) * random()
            ELSE 0 END;
        UPDATE jd_triggers x SET state = 'pending',
            ready_at = v_now + make_interval(secs => v_backoff)
        WHERE x.id = l.trigger_id;
    ELSIF p_requeue THEN
        UPDATE jd_triggers x SET state = 'pending' WHERE x.id = l.trigger_id;
    ELSE
        DELETE FROM jd_triggers x WHERE x.id = l.trigger_id;
    END IF;
    IF p_status = 'succeeded' THEN
        FOR d IN SELECT x.name, x.depends_on, x.dependency_mark FROM jd_workers x
                 WHERE x.mode = 'triggered' AND l.worker = ANY(x.depends_on)
                 ORDER BY x.name FOR UPDATE
        LOOP
            IF (SELECT count(*) FROM jd_workers y
                WHERE y.name = ANY(d.depends_on) AND y.success_seq > d.dependency_mark)
               = cardinality(d.depends_on) THEN
                v_id := 'd' || lpad(to_hex(nextval('jd_seq')), 15, '0');
                UPDATE jd_workers x SET dependency_mark = nextval('jd_seq') WHERE x.name = d.name;
                INSERT INTO jd_triggers (id, worker, source, accepted_at, ready_at)
                VALUES (v_id, d.name, 'dependency', p_ended_at, v_now);
                chained_ids := chained_ids || v_id;
                chained_workers := chained_workers || d.name;
            END IF;
        END LOOP;
    END IF;
    DELETE FROM jd_runs x WHERE x.worker = l.worker AND x.status <> 'running'
      AND x.seq <= (SELECT y.seq FROM jd_runs y WHERE y.worker = l.worker
                    ORDER BY y.seq DESC OFFSET p_history LIMIT 1);
    PERFORM pg_notify('{channel}', '');
END $$;

-- A node leaves: what it still holds is interrupted and requeued, its row goes.
CREATE FUNCTION jd_leave(p_node bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({admission});
    UPDATE jd_nodes SET expires_at = '-infinity' WHERE id = p_node;
    PERFORM jd_reap(jd_now());
END $$;
""".replace("{admission}", str(ADMISSION_LOCK)).replace("{channel}", CHANNEL)

#: The advisory lock class (pg_try_advisory_lock(int, int)) of the locks each node holds
#: on its listener connection, keyed by node id: free within ms of a crash (the fast hint).
NODE_LOCK_CLASS = 0x6A64_0001
#: A node whose lock is free and whose last heartbeat is older than this is reaped at once.
HINT_AFTER_S = 1.0
#: The message of the NOTICE `jd_reap` raises per node it reaps (its DETAIL is JSON).
NODE_LOST_NOTICE = "jobdeck node_lost"


def _claim_v2() -> str:
    """`jd_claim` with one change: a draining node admits no new run but still resumes
    its own retries (it finishes what it holds)."""
    start = _V1_FUNCTIONS.index("CREATE FUNCTION jd_claim(")
    end = _V1_FUNCTIONS.index("-- Record a run's end under its lease token.")
    text = _V1_FUNCTIONS[start:end].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    changes = [
        ("    IF v_paused OR v_state <> 'active' THEN RETURN; END IF;\n",
         "    IF v_paused THEN RETURN; END IF;\n"),
        ("        IF c.resume IS NULL THEN\n",
         "        IF c.resume IS NULL THEN\n            CONTINUE WHEN v_state <> 'active';\n"),
    ]
    for before, after in changes:
        assert text.count(before) == 1, before
        text = text.replace(before, after)
    return text


_V2 = """
-- what a node measured of its wall clock against the database's, at its last heartbeat
ALTER TABLE jd_nodes ADD COLUMN clock_skew_s double precision;
-- the node's listener holds its advisory lock (the fast hint applies to it)
ALTER TABLE jd_nodes ADD COLUMN lock_held bool NOT NULL DEFAULT false;
-- the last node lost while running the worker, and when (shown as `requeued: ...`)
ALTER TABLE jd_workers ADD COLUMN lost_node text;
ALTER TABLE jd_workers ADD COLUMN lost_at timestamptz;

-- when the server (re)started: a function, so a test can pretend it just did
CREATE FUNCTION jd_server_started() RETURNS timestamptz LANGUAGE sql STABLE AS
$$ SELECT pg_postmaster_start_time() $$;

-- Reap the nodes that are gone: a lease expired, a node left ('-infinity'), or the fast
-- hint (its listener's advisory lock is free and its last heartbeat older than 1 s: it
-- crashed). For one lease period after the server (re)started, nobody is reaped but
-- those that left: every node lost its connections and locks at once and could not
-- heartbeat meanwhile. Raises one NOTICE per node reaped, for the reaper's `node_lost`.
CREATE OR REPLACE FUNCTION jd_reap(p_now timestamptz) RETURNS int LANGUAGE plpgsql AS $$
DECLARE n int; d record; v_dead bigint[] := '{}'; v_restart timestamptz; v_runs int;
BEGIN
    PERFORM pg_advisory_xact_lock({admission});
    -- (against jd_now(): a test that moves the cluster's clock on moves past it too)
    v_restart := jd_server_started();
    FOR d IN SELECT x.id, x.name FROM jd_nodes x
             WHERE x.expires_at = '-infinity'
                OR (v_restart + make_interval(secs => x.lease_s) <= p_now
                    AND (x.expires_at <= p_now
                         -- CASE: the lock is tried only for a node the hint applies to
                         OR CASE WHEN x.lock_held AND x.heartbeat_at
                                      < p_now - make_interval(secs => {hint_s})
                                 THEN pg_try_advisory_xact_lock({lock_class},
                                                                (x.id % 2147483647)::int)
                                 ELSE false END))
             ORDER BY x.id FOR UPDATE
    LOOP
        v_dead := v_dead || d.id;
        SELECT count(*) INTO v_runs FROM jd_leases l WHERE l.node_id = d.id;
        RAISE NOTICE '{notice}' USING DETAIL = json_build_object(
            'node', d.name, 'node_id', d.id, 'interrupted', v_runs)::text;
    END LOOP;
    IF cardinality(v_dead) = 0 THEN RETURN 0; END IF;
    WITH gone AS (
        DELETE FROM jd_leases l WHERE l.node_id = ANY(v_dead) RETURNING l.*
    ), runs AS (
        UPDATE jd_runs r SET status = 'interrupted', ended_at = p_now,
            attempts = g.attempt, error = 'interrupted: node_lost'
        FROM gone g WHERE r.id = g.run_id RETURNING r.id
    ), triggers AS (
        UPDATE jd_triggers t SET state = 'pending' FROM gone g
        WHERE t.id = g.trigger_id RETURNING t.id
    ), workers AS (
        UPDATE jd_workers w SET lost_node = x.name, lost_at = p_now
        FROM gone g JOIN jd_nodes x ON x.id = g.node_id
        WHERE w.name = g.worker AND x.expires_at <> '-infinity' RETURNING w.name
    )
    SELECT count(*) INTO n FROM gone;
    DELETE FROM jd_nodes WHERE id = ANY(v_dead);
    PERFORM pg_notify('{channel}', '');
    RETURN n;
END $$;
""".replace("{admission}", str(ADMISSION_LOCK)).replace("{channel}", CHANNEL).replace(
    "{lock_class}", str(NODE_LOCK_CLASS)
).replace("{hint_s}", repr(HINT_AFTER_S)).replace("{notice}", NODE_LOST_NOTICE)

#: Each migration takes the schema from its index to the next version.
#: What a run's end stores besides its record: its attempts and log lines, which go
#: with the run when the history drops it.
_V3 = """
CREATE TABLE jd_run_details (
    run_id text PRIMARY KEY REFERENCES jd_runs (id) ON DELETE CASCADE,
    attempts jsonb NOT NULL, logs jsonb NOT NULL, logs_dropped int NOT NULL
);
"""


def _claim_v4() -> str:
    """`jd_claim` finding each worker's first pending trigger by a skip scan of the
    pending index (one index descent per worker with pending work), where v2's
    `DISTINCT ON` read and sorted every pending trigger, under the admission lock, at
    every claim: with thousands pending that was most of the time the lock was held.
    The same candidates: a worker's first pending trigger by (ready_at, accept_seq),
    if it is ready."""
    text = _claim_v2()
    before = (
        "        FROM (SELECT DISTINCT ON (p.worker) p.* FROM jd_triggers p\n"
        "              WHERE p.state = 'pending' AND p.ready_at <= v_now\n"
        "              ORDER BY p.worker, p.ready_at, p.accept_seq) t\n"
    )
    after = (
        "        FROM (WITH RECURSIVE firsts AS (\n"
        "                  (SELECT p.worker, p.id, p.ready_at, p.accept_seq FROM jd_triggers p\n"
        "                   WHERE p.state = 'pending'\n"
        "                   ORDER BY p.worker, p.ready_at, p.accept_seq LIMIT 1)\n"
        "                  UNION ALL\n"
        "                  SELECT q.* FROM firsts f, LATERAL (\n"
        "                      SELECT p.worker, p.id, p.ready_at, p.accept_seq\n"
        "                      FROM jd_triggers p\n"
        "                      WHERE p.state = 'pending' AND p.worker > f.worker\n"
        "                      ORDER BY p.worker, p.ready_at, p.accept_seq LIMIT 1) q)\n"
        "              SELECT * FROM firsts WHERE firsts.ready_at <= v_now) t\n"
    )
    assert text.count(before) == 1, before
    return text.replace(before, after)


MIGRATIONS: tuple[str, ...] = (_V1 + _V1_FUNCTIONS, _V2 + _claim_v2(), _V3, _claim_v4())
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: psycopg.Connection, where: str) -> int:
    """Bring the schema up to date, once across nodes starting together.

    Returns:
        The schema version the database had before.

    Raises:
        StoreError: the database's schema is newer than this code knows.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS jd_schema ("
            " one bool PRIMARY KEY DEFAULT true CHECK (one), version int NOT NULL)"
        )
        row = conn.execute("SELECT version FROM jd_schema").fetchone()
        found = 0 if row is None else int(row[0])
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"{where}: its schema is version {found}, newer than this jobdeck knows"
                f" ({SCHEMA_VERSION}); upgrade jobdeck on this node"
            )
        for version in range(found, SCHEMA_VERSION):
            conn.execute(MIGRATIONS[version])
        if found < SCHEMA_VERSION:
            conn.execute(
                "INSERT INTO jd_schema (version) VALUES (%(v)s)"
                " ON CONFLICT (one) DO UPDATE SET version = %(v)s",
                {"v": SCHEMA_VERSION},
            )
    return found
