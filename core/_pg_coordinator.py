"""`PgCoordinator`: what may start, decided in PostgreSQL for every node of a cluster.

There is no leader. Each node registers itself (a `jd_nodes` row with a lease it renews
every lease/3) and the workers it can run; admission is one call of `jd_claim` under
one advisory lock (see `_pg_schema`), which hands out leases whose tokens fence every
later write; `jd_finish` records a run's end only while its lease is held. Schedules
advance by a compare-and-set on `jd_workers.next_due`, so each occurrence yields at
most one trigger whichever nodes wake for it. Nodes learn of new work from
LISTEN/NOTIFY, waiting on the libpq socket in trio itself, and poll once a second in
case a notification was missed.

Membership (heartbeats, self-fencing, reaping, the listener) is `_pg_membership`'s.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs
import psycopg
import trio

from . import _events as ev
from ._circuit import CircuitState
from ._control import apply_pause
from ._engine import Engine
from ._errors import LeaseLost, NodeFenced
from ._lifecycle import RunEvent, RunState, run_transition
from ._persist import WriteRefused, persist
from ._pg_membership import Membership, with_notices
from ._pg_rows import dlq_size, notify, put_detail, read_workers
from ._records import Circuit, RunDetailDraft, RunRecord, Source, StoredState, Trigger, new_id
from ._runtime import ActiveRun, Phase, WorkerRuntime
from ._schedule import next_cron_time, next_grid_time
from ._spec import Mode, WorkerSpec
from ._store import DeadLetterDraft, WorkerChange

if TYPE_CHECKING:
    from ._pg_membership import NodeStore

#: Spec keys that change only what a person sees, not how a worker runs.
_DISPLAY_ONLY = frozenset({"expected_seconds", "example_payload"})


def spec_hash(spec: WorkerSpec, fn_ref: str) -> str:
    """A short hash of what makes a worker behave as it does (its function and spec)."""
    fields = {k: v for k, v in attrs.asdict(spec).items() if k not in _DISPLAY_ONLY}
    text = json.dumps([fn_ref, fields], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def next_occurrence(
    spec: WorkerSpec, anchor: datetime | None, current: datetime, now: datetime
) -> tuple[datetime, int]:
    """The schedule's next due time after `now`, and how many it skipped past `current`.

    An interval keeps to its grid (`anchor + k * interval`); a cron to its expression.
    """
    if spec.cron is not None:
        return next_cron_time(spec.cron, spec.timezone, now).astimezone(UTC), 0
    interval = spec.interval_seconds
    base = (anchor or current).timestamp()
    nxt = next_grid_time(base, interval, now.timestamp())
    missed = max(0, round((nxt - current.timestamp()) / interval) - 1)
    return datetime.fromtimestamp(nxt, UTC), missed


class PgCoordinator(Membership):
    """The Coordinator protocol on PostgreSQL, plus this node's membership of the cluster."""

    def __init__(self, store: NodeStore, engine: Engine) -> None:
        super().__init__(store, engine)
        self._hashes: dict[str, str] = {}
        #: pause writes not done yet (refreshes leave the pause alone meanwhile).
        self._pause_writes = 0
        self._pause_lock = trio.Lock()
        #: the dispatcher's ready set (a resume makes every worker look again).
        self.dispatcher_ready: set[str] = set()
        #: run ends waiting to be written, whether a batch of them is being written, and
        #: the event its end sets (see `_finish_batched`).
        self._finishes: list[_Finish] = []
        self._finishing = False
        self._finished = trio.Event()

    # ------------------------------------------------------------------ membership

    async def join(self) -> StoredState:
        """Register this node and its workers; the shared worker state and DLQ size.

        Pending triggers and unfinished runs are the cluster's, so none are returned: the
        database hands them out through `claim`, and reaps what dead nodes held. A pause
        asked for before the node ran pauses the cluster; else the node takes the
        cluster's pause as it finds it.
        """
        engine = self._engine
        # The database chains dependents (`jd_finish`), judged over the whole cluster:
        # none are chained from this node's memory, which sees only its own successes.
        engine.dependents = {name: [] for name in engine.workers}
        self._hashes = {
            name: spec_hash(w.spec, w.fn_ref) for name, w in engine.workers.items()
        }
        pause_asked = engine.paused

        def write(conn: psycopg.Connection) -> tuple[StoredState, int]:
            row = conn.execute(
                "UPDATE jd_cluster SET max_concurrent = %s, paused = paused OR %s"
                " RETURNING paused",
                (engine.config.max_concurrent_workers, pause_asked),
            ).fetchone()
            engine.paused = bool(row and row[0])
            self._sync_workers(conn)
            node_id = self._register(conn)
            return StoredState(workers=read_workers(conn), dlq_size=dlq_size(conn)), node_id

        state, node_id = await self._pool.run(write)
        self._joined(node_id)
        return state

    def _spec_hashes(self) -> dict[str, str]:
        return self._hashes

    # ------------------------------------------------------------------ shared state

    def share_pause(self) -> None:
        """This node was paused or resumed: make it the cluster's (`jd_cluster.paused`).

        Written in the background (`pause()` is not awaited), the latest wish last;
        until it is written, refreshes do not undo it.
        """
        engine = self._engine
        if engine.nursery is None:
            return  # not running yet: joining writes it
        self._pause_writes += 1
        engine.nursery.start_soon(self._write_pause)

    async def _write_pause(self) -> None:
        engine = self._engine

        def write(conn: psycopg.Connection, paused: bool) -> None:
            conn.execute("UPDATE jd_cluster SET paused = %s", (paused,))
            notify(conn)

        try:
            async with self._pause_lock:
                paused = engine.paused
                await persist(engine, self._pool.run, lambda conn: write(conn, paused))
        except WriteRefused:
            pass  # counted in the store's health
        finally:
            self._pause_writes -= 1

    def cluster_state(self, *, paused: bool, draining: bool) -> None:
        """Apply the cluster's pause and this node's drain, as a refresh read them."""
        engine = self._engine
        if paused != engine.paused and not self._pause_writes:
            apply_pause(engine, self.dispatcher_ready, paused)
        if draining != self.draining:
            self.draining = draining
            engine.notify()

    def _sync_workers(self, conn: psycopg.Connection) -> None:
        """Upsert each worker's spec (what admission reads); shared state is left alone.

        A new scheduled worker's cursor starts now (database time), or one interval on
        (`run_at_start = false`), or at the cron's next time; an existing one continues.
        """
        engine = self._engine
        row = conn.execute("SELECT jd_now()").fetchone()
        assert row is not None
        now: datetime = row[0]
        params = []
        for name, w in engine.workers.items():
            spec = w.spec
            due: datetime | None = None
            if spec.mode is Mode.SCHEDULED:
                if spec.cron is not None:
                    due = next_cron_time(spec.cron, spec.timezone, now).astimezone(UTC)
                else:
                    due = now if spec.run_at_start else now + timedelta(
                        seconds=spec.interval_seconds
                    )
            params.append((
                name, spec.mode.value, self._hashes[name], int(spec.priority), w.index,
                sorted(engine.blockers.get(name, ())), list(spec.depends_on),
                spec.max_consecutive_failures, spec.circuit_cooldown_seconds,
                spec.retry_backoff_seconds, spec.retry_backoff_max_seconds, spec.enabled,
                due, due,
            ))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO jd_workers (name, mode, spec_hash, priority, ord, blocks,"
                " depends_on, max_failures, cooldown_s, backoff_s, backoff_max_s, enabled,"
                " anchor, next_due) VALUES (%s, %s, %s, %s, %s, %s::text[], %s::text[],"
                " %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET mode = EXCLUDED.mode,"
                " spec_hash = EXCLUDED.spec_hash, priority = EXCLUDED.priority,"
                " ord = EXCLUDED.ord, blocks = EXCLUDED.blocks,"
                " depends_on = EXCLUDED.depends_on, max_failures = EXCLUDED.max_failures,"
                " cooldown_s = EXCLUDED.cooldown_s, backoff_s = EXCLUDED.backoff_s,"
                " backoff_max_s = EXCLUDED.backoff_max_s,"
                " anchor = CASE WHEN EXCLUDED.mode = 'scheduled'"
                "   THEN coalesce(jd_workers.anchor, EXCLUDED.anchor) END,"
                " next_due = CASE WHEN EXCLUDED.mode = 'scheduled'"
                "   THEN coalesce(jd_workers.next_due, EXCLUDED.next_due) END",
                params,
            )
            # A continuous worker has one standing trigger, whichever node runs it.
            cur.executemany(
                "INSERT INTO jd_triggers (id, worker, source, accepted_at, ready_at)"
                " VALUES (%s, %s, 'continuous', jd_now(), jd_now()) ON CONFLICT DO NOTHING",
                [(new_id(), name) for name, w in engine.workers.items()
                 if w.spec.mode is Mode.CONTINUOUS],
            )

    # ------------------------------------------------------------------ admission

    def claim_now(
        self, ready: Sequence[WorkerRuntime], now: float, limit: int
    ) -> list[ActiveRun] | None:
        """Never at once: the database decides, in `claim`."""
        return None

    def admit_now(self, w: WorkerRuntime, now: float) -> ActiveRun | None:
        """Never at once: admission is the database's, in the dispatcher's claim."""
        return None

    async def claim(
        self, ready: Sequence[WorkerRuntime], now: float, limit: int
    ) -> list[ActiveRun]:
        """Admit runs anywhere in the cluster's pending work, for this node, best first.

        `ready` names this node's retries whose wait is over (they resume if a slot is
        free and no blocker runs); new runs come from the cluster's pending triggers.

        Raises:
            NodeFenced: this node's lease expired; it holds nothing any more.
        """
        engine = self._engine
        resume = [w.run.token for w in ready if w.phase is Phase.RETRY_WAIT and w.run]
        node_id = self.node_id
        rows, lost = await self._pool.run(
            lambda conn: with_notices(conn, lambda c: c.execute(
                "SELECT * FROM jd_claim(%s, %s, %s::bigint[])", (node_id, limit, resume)
            ).fetchall())
        )
        self._reaped(lost)
        admitted = []
        for (token, run_id, name, trigger_id, source, payload, accepted_at, _due,
             started_at, _attempt, resumed, enabled, circuit, failures) in rows:
            w = engine.workers[name]
            w.enabled = enabled
            if w.circuit.value != circuit or w.consecutive_failures != failures:
                w.breaker = CircuitState(Circuit(circuit), failures, w.breaker.opened_at)
            if resumed:
                run = w.run
                assert run is not None and run.token == token
                run.advance(RunEvent.STARTED, now=now)
            else:
                trigger = Trigger(
                    id=trigger_id, worker=name, source=Source(source), payload=payload,
                    accepted_at=accepted_at,
                )
                spec = w.spec
                state, _ = run_transition(
                    RunState(
                        spec.max_retries + 1,
                        trigger.source is not Source.CONTINUOUS,
                        spec.mode is Mode.CONTINUOUS,
                    ),
                    RunEvent.STARTED,
                    now=now,
                )
                run = ActiveRun(
                    record=RunRecord(id=run_id, worker=name, trigger=trigger,
                                     started_at=started_at),
                    token=token, state=state, attempt=state.attempt,
                )
                w.run = run
                w.last_start_seq = next(engine.seq)
                w.last_start = started_at
            w.phase = Phase.RUNNING
            w.stuck = False
            engine.slots_used += 1
            run.holds_slot = True
            engine.attempting.add(name)
            run.attempt_started_t = now
            run.attempt_deadline_t = float("inf")
            run.cancel_requested_t = None
            admitted.append(run)
        return admitted

    async def advance_schedules(
        self, workers: Sequence[WorkerRuntime]
    ) -> tuple[dict[str, datetime], datetime]:
        """Move each due schedule on by compare-and-set, and store its occurrence.

        Only the node whose `UPDATE ... WHERE next_due = <what it read>` matches makes
        the occurrence's trigger (at most one per `(worker, due_at)`, by a unique index
        too); an occurrence that finds a schedule trigger of its worker still pending
        is folded into it and counted (`jd_workers.coalesced`), as are due times missed
        while nobody was up.

        Returns:
            Each worker's next due time, and the database's clock when read.
        """
        by_name = {w.name: w for w in workers}
        rng = self._engine.rng
        #: (worker, due time, occurrences folded) for the `occurrence_coalesced` events.
        coalesced: list[tuple[str, datetime, int]] = []

        def write(conn: psycopg.Connection) -> tuple[dict[str, datetime], datetime]:
            rows = conn.execute(
                "SELECT name, anchor, next_due, jd_now() FROM jd_workers"
                " WHERE name = ANY(%s) AND next_due IS NOT NULL",
                (list(by_name),),
            ).fetchall()
            out: dict[str, datetime] = {}
            db_now = None
            created = False
            for name, anchor, current, db_now in rows:
                if current > db_now:
                    out[name] = current
                    continue
                spec = by_name[name].spec
                nxt, missed = next_occurrence(spec, anchor, current, db_now)
                moved = conn.execute(
                    "UPDATE jd_workers SET next_due = %s, coalesced = coalesced + %s"
                    " WHERE name = %s AND next_due = %s",
                    (nxt, missed, name, current),
                ).rowcount
                if not moved:
                    row = conn.execute(
                        "SELECT next_due FROM jd_workers WHERE name = %s", (name,)
                    ).fetchone()
                    if row is not None and row[0] is not None:
                        out[name] = row[0]
                    continue
                out[name] = nxt
                jitter = spec.jitter_seconds
                ready_at = current + timedelta(
                    seconds=rng.uniform(0, jitter) if jitter > 0 else 0.0
                )
                inserted = conn.execute(
                    "INSERT INTO jd_triggers (id, worker, source, accepted_at, due_at, ready_at)"
                    " SELECT %(id)s, %(w)s, 'schedule', jd_now(), %(due)s, %(ready)s"
                    " WHERE NOT EXISTS (SELECT 1 FROM jd_triggers WHERE worker = %(w)s"
                    "   AND source = 'schedule' AND state = 'pending')"
                    " ON CONFLICT DO NOTHING",
                    {"id": new_id(), "w": name, "due": current, "ready": ready_at},
                ).rowcount
                if inserted:
                    created = True
                else:
                    conn.execute(
                        "UPDATE jd_workers SET coalesced = coalesced + 1 WHERE name = %s",
                        (name,),
                    )
                if missed or not inserted:
                    # the occurrence due at `current` (if a trigger still waits) and
                    # those skipped after it run as one run: say how many were folded
                    coalesced.append((name, current, missed + (0 if inserted else 1)))
            if created:
                notify(conn)
            if db_now is None:
                row = conn.execute("SELECT jd_now()").fetchone()
                assert row is not None
                db_now = row[0]
            return out, db_now

        result = await self._pool.run(write)
        engine = self._engine
        for name, due, count in coalesced:
            engine.publish(
                ev.OccurrenceCoalesced(ts=engine.now(), worker=name, due_at=due, count=count)
            )
        return result

    # ------------------------------------------------------------------ records

    async def started(self, run: ActiveRun) -> None:
        """Nothing to do: the claim recorded the run as running with its lease."""

    async def finish(
        self,
        run: ActiveRun,
        record: RunRecord,
        *,
        requeue: bool = False,
        dead_letter: DeadLetterDraft | None = None,
        triggers: Sequence[Trigger] = (),
    ) -> int | None:
        """Record the run's end under its token (`jd_finish`).

        `triggers` is ignored: the database chains dependents itself, over the whole
        cluster's successes; the triggers it makes are announced here.

        Raises:
            LeaseLost: the lease is gone (this node was reaped): nothing was written.
        """
        history = self._store.history_per_worker
        item = _Finish(
            (run.token, record.status.value, record.ended_at, record.attempts,
             record.duration_s, record.error, requeue,
             None if dead_letter is None else dead_letter.error,
             None if dead_letter is None else dead_letter.traceback, history),
            record.id, run.detail(),
        )
        row = await self._finish_batched(item)
        engine = self._engine
        # The run's slot is freed as soon as this returns (before anything yields), so
        # look for work then: the local dispatcher wakes for a freed slot only when its
        # own ready set wants one, and the cluster's pending work is not in it. (The
        # end's NOTIFY may come first, and find the slot not free yet.)
        engine.notify()
        lost, dlq_id, chained_ids, chained_workers = row
        if lost:
            raise LeaseLost(record.worker, run.token)
        for trigger_id, worker in zip(chained_ids, chained_workers, strict=True):
            engine.publish(
                ev.TriggerAccepted(
                    ts=record.ended_at or engine.now(), worker=worker, trigger_id=trigger_id,
                    source=Source.DEPENDENCY.value,
                )
            )
        return None if dlq_id is None else int(dlq_id)

    async def _finish_batched(self, item: _Finish) -> tuple[Any, ...]:
        """`item`'s `jd_finish` row, written in one transaction with the other ends
        waiting meanwhile (group commit).

        No task of its own: the first end to find no write in flight writes everything
        queued (in one round trip, pipelined); the ends that come meanwhile wait for it,
        and the first of them writes the next batch. A batch that fails is written again
        one end per transaction, so each end gets its own outcome (one end's bad data,
        or a deadlock between batches, fails only that end).
        """
        self._finishes.append(item)
        while item.row is None and not item.alone:
            if self._finishing:
                try:
                    await self._finished.wait()
                except BaseException:
                    if item in self._finishes:  # not taken: nobody writes it now
                        self._finishes.remove(item)
                    raise
                continue
            self._finishing = True
            batch, self._finishes = self._finishes, []  # `item` among them
            try:
                rows = await self._pool.run(partial(_write_finishes, batch=batch))
            except Exception:
                if len(batch) == 1:
                    raise
                for other in batch:
                    other.alone = True
            except BaseException:
                for other in batch:
                    other.alone = True  # their own tasks write them, one by one
                raise
            else:
                for other, row in zip(batch, rows, strict=True):
                    other.row = row
            finally:
                self._finishing = False
                done, self._finished = self._finished, trio.Event()
                done.set()
        if item.row is None:
            return (await self._pool.run(partial(_write_finishes, batch=[item])))[0]
        return item.row

    async def retry_wait(self, run: ActiveRun, delay: float) -> None:
        """The run waits `delay` seconds to retry: its lease holds no cluster slot meanwhile.

        Raises:
            LeaseLost: the lease is gone.
        """
        def write(conn: psycopg.Connection) -> int:
            count = conn.execute(
                "UPDATE jd_leases l SET phase = 'retry_wait',"
                " retry_at = jd_now() + make_interval(secs => %s) FROM jd_nodes n"
                " WHERE l.token = %s AND n.id = l.node_id AND n.expires_at > jd_now()",
                (delay, run.token),
            ).rowcount
            notify(conn)
            return count

        if not await self._pool.run(write):
            raise LeaseLost(run.record.worker, run.token)

    async def change_worker(self, name: str, change: WorkerChange) -> None:
        """An operator's or the circuit's change, as an UPDATE of the columns it names."""
        sql = {
            WorkerChange.ENABLE: "UPDATE jd_workers SET enabled = true, circuit = 'closed',"
            " consecutive_failures = 0, opened_at = NULL WHERE name = %s",
            WorkerChange.DISABLE: "UPDATE jd_workers SET enabled = false WHERE name = %s",
            WorkerChange.HALF_OPEN: "UPDATE jd_workers SET circuit = 'half_open'"
            " WHERE name = %s AND circuit = 'open'",
        }[change]

        def write(conn: psycopg.Connection) -> None:
            conn.execute(sql, (name,))
            notify(conn)

        await self._pool.run(write)


@attrs.define
class _Finish:
    """One run's end waiting to be written by `_finish_batched`."""

    #: the arguments of `jd_finish`
    args: tuple[Any, ...]
    run_id: str
    detail: RunDetailDraft | None
    #: its `jd_finish` row, once written
    row: tuple[Any, ...] | None = None
    #: its batch failed: written again on its own
    alone: bool = False


_FINISH_SQL = "SELECT * FROM jd_finish(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"


def _write_finishes(conn: psycopg.Connection, batch: Sequence[_Finish]) -> list[tuple[Any, ...]]:
    """Each end's `jd_finish` (sent together, in one round trip), then the details of
    those whose lease held, in the caller's transaction."""
    if len(batch) == 1:
        found = conn.execute(_FINISH_SQL, batch[0].args).fetchone()
        rows = [found]
    else:
        with conn.pipeline():
            cursors = [conn.execute(_FINISH_SQL, item.args) for item in batch]
        rows = [cur.fetchone() for cur in cursors]
    out = []
    for item, row in zip(batch, rows, strict=True):
        assert row is not None
        if not row[0]:
            put_detail(conn, item.run_id, item.detail)  # in the same transaction as the end
        out.append(tuple(row))
    return out


__all__ = ["NodeFenced", "PgCoordinator"]
