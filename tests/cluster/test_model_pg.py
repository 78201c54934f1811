"""A stateful model of the cluster: random steps on 2-3 virtual nodes, promises checked in SQL.

Hypothesis drives PgCoordinator nodes (each its own PgStore and pool, and a "listener"
connection holding the node's advisory lock, as a running node's listener does) on one
throwaway database with random steps: manual triggers with payloads; scheduled
occurrences offered by one node or by two at once (the compare-and-set on
`(worker, due_at)`); claims, alone or two nodes racing; ends under the run's token
(success, a failure that retries, a last failure that dead-letters, cut off by a
shutdown), under a stale one or under an earlier token of the same worker; time passing
(the SQL clock `jd_now()` moved on), a node missing its heartbeats (others reap it) or
stalling past its lease and then ending its runs late; a node killed (its connections
dropped: the fast hint), leaving, coming back; drains; enable and disable. The workers'
specs are drawn too: schedules, retries, circuits, `blocks` pairs and `depends_on`.

After every step the promises are checked in SQL, against what the database holds, not
against the model's idea of it: at most one lease per worker; a `blocks` pair never
running together; the cluster's slots and each node's capacity; one trigger and at most
one success per scheduled occurrence (G1); no outcome recorded under a stale token (G3);
every trigger acknowledged or seen stays pending, claimed under a lease, succeeded or
dead-lettered (G5); lease tokens only grow; a live node is never reaped. Each claim is
also judged against the state just before it (enabled, not open, fresh dependencies, an
active node), and each end or refusal against what the lease was.

Hypothesis's rules are synchronous; the nodes live in one trio run in a thread of its
own (`Portal`), which each step calls into. Each example has its own database, cloned
from a migrated template in which PostgreSQL pretends to have started long ago: the
restart window (which has its own test) would otherwise hide every reap for 30 s.

The default run is small and fixed (derandomized: the same examples every time). For a
longer hunt with new examples each time: `JOBDECK_MODEL_EXAMPLES=500`.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import attrs
import psycopg
import pytest
import trio
from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from jobdeck import JobContext, LeaseLost, Orchestrator, RunStatus, Source, Trigger
from jobdeck._errors import NodeFenced
from jobdeck._lifecycle import Effect, RunEvent, RunPhase
from jobdeck._pg_coordinator import PgCoordinator
from jobdeck._pg_pool import connect
from jobdeck._pg_schema import migrate
from jobdeck._pg_view import set_node_state
from jobdeck._runtime import ActiveRun, Phase
from jobdeck._spec import Mode
from jobdeck._store import DeadLetterDraft, WorkerChange
from jobdeck._text import safe_json

from .conftest import PgServer
from .nodes import coordinator, joined

T = TypeVar("T")

#: Examples of the longer hunt (new ones each run); 0: the default, fixed run.
LONG_EXAMPLES = int(os.environ.get("JOBDECK_MODEL_EXAMPLES", "0") or 0)
#: Every node's lease (the default): time passes in chunks shorter than it.
LEASE_S = 30.0
#: The scheduled workers' interval: time steps of 25 s and 65 s pass occurrences.
INTERVAL_S = 20.0
#: Slack for the real clock, which runs on under the shifted one between two reads.
SLACK_S = 0.5
#: The default, fixed run: examples, and steps at most in each (~15 s on 2 busy cores).
EXAMPLES, STEPS = 30, 50
NODE_NAMES = ("a", "b", "c")

_databases = itertools.count()

#: How often the model reached each path, over one test run (see `saw`).
REACHED: Counter[str] = Counter()
#: Kinds of path the fixed default run must reach (each a prefix of paths `saw` counts),
#: lest the model check nothing much. It reaches most of the paths themselves (an end
#: refused under a stale token, a node reaped by the fast hint, two nodes offering one
#: occurrence...); which ones shifts with any change to the model's draws.
MUST_REACH = (
    "a claim admitted runs", "two nodes claimed at once", "an end recorded",
    "an end refused", "a sweep reaped", "a node found itself fenced", "an occurrence stored",
    "occurrences coalesced", "a dependent chained",
)


def saw(path: str) -> None:
    """Count a path the model reached (and tell Hypothesis's statistics)."""
    REACHED[path] += 1
    event(path)


async def noop(ctx: JobContext) -> None:
    """Never called: the model ends runs itself."""


# ---------------------------------------------------------------------- the config


@attrs.frozen
class Config:
    """One example's cluster: the workers' specs (every node the same), the cluster's
    slots and each node's capacity."""

    workers: tuple[tuple[str, dict[str, Any]], ...]
    blocks: tuple[tuple[str, str], ...]
    max_concurrent: int
    capacities: tuple[int, ...]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.workers]

    def depends_on(self, name: str) -> list[str]:
        return list(dict(self.workers)[name].get("depends_on", ()))

    def setup(self, orch: Orchestrator) -> None:
        blocks: dict[str, list[str]] = {}
        for x, y in self.blocks:
            blocks.setdefault(x, []).append(y)
        for name, spec in self.workers:
            orch.register(name, noop, blocks=blocks.get(name, []), **spec)


@st.composite
def configs(draw: st.DrawFn) -> Config:
    names = [f"w{i}" for i in range(draw(st.integers(2, 4)))]
    workers = []
    for i, name in enumerate(names):
        spec: dict[str, Any] = {
            "mode": draw(st.sampled_from(["scheduled", "triggered", "continuous"])),
            "max_retries": draw(st.sampled_from([0, 1, 2])),
            "max_consecutive_failures": draw(st.sampled_from([1, 2, 3])),
            "circuit_cooldown_seconds": draw(st.sampled_from([None, 15.0])),
            "priority": draw(st.sampled_from(["low", "normal", "high"])),
        }
        if spec["mode"] == "scheduled":
            spec["interval_seconds"] = INTERVAL_S
        if i:
            depends_on = draw(st.lists(st.sampled_from(names[:i]), unique=True, max_size=2))
            if depends_on:
                spec["depends_on"] = depends_on
        workers.append((name, spec))
    pairs = st.tuples(st.sampled_from(names), st.sampled_from(names)).filter(
        lambda p: p[0] < p[1]
    )
    blocks = draw(st.lists(pairs, unique=True, min_size=1, max_size=2))
    nodes = draw(st.integers(2, 3))
    return Config(
        workers=tuple(workers), blocks=tuple(blocks),
        max_concurrent=draw(st.sampled_from([2, 3, 1])),
        # the first node can always run something; the others may not (capacity 0)
        capacities=(draw(st.integers(1, 3)), *(draw(st.integers(0, 3)) for _ in range(1, nodes))),
    )


#: Text as it may come from outside: lone surrogates and control characters included.
TEXT = st.text(st.characters(categories=["L", "N", "Zs", "Cc", "Cs", "So"]), max_size=6)
PAYLOADS = st.none() | TEXT | st.dictionaries(
    TEXT, st.none() | st.integers(-(10**6), 10**6) | TEXT, max_size=3
)


# ---------------------------------------------------------------------- trio in a thread


class Portal:
    """One trio run in a thread of its own; synchronous code calls into it."""

    def __init__(self) -> None:
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="model-trio", daemon=True)

    def _main(self) -> None:
        async def serve() -> None:
            self._stop = trio.Event()
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._stop.wait()

        trio.run(serve)

    def __enter__(self) -> Portal:
        self._thread.start()
        assert self._ready.wait(30), "the trio thread did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(30)

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """`await fn(*args, **kwargs)` in the trio run; its result or its exception."""
        return trio.from_thread.run(
            functools.partial(fn, *args, **kwargs), trio_token=self._token
        )


# ---------------------------------------------------------------------- the model's parts


@attrs.define(eq=False, repr=False)
class Node:
    """A virtual node: its orchestrator (never run: the model steps its coordinator) and
    the connection holding its advisory lock, as its listener would."""

    name: str
    orch: Orchestrator
    listener: psycopg.Connection
    #: `up`, `killed` (connections dropped, row left behind) or `left` (deregistered).
    state: str = "up"
    #: database time its lease runs to, as its last join or heartbeat set it.
    expires_at: datetime | None = None
    #: the node id whose advisory lock the listener holds.
    lock_of: int | None = None

    @property
    def coord(self) -> PgCoordinator:
        return coordinator(self.orch)

    def __repr__(self) -> str:
        return f"{self.name}#{self.coord.node_id}"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))  # as Hypothesis prints a falsifying example


@attrs.define(eq=False, repr=False)
class Held:
    """A run a node was given by a claim, as that node sees it (perhaps stale by now)."""

    node: Node
    run: ActiveRun

    @property
    def running(self) -> bool:
        return self.run.state.phase is RunPhase.RUNNING

    @property
    def waiting(self) -> bool:
        return self.run.state.phase is RunPhase.RETRY_WAIT

    def __repr__(self) -> str:
        state = self.run.state.phase.value
        return (f"{self.run.record.worker} token {self.run.token} attempt {self.run.attempt}"
                f" {state} on {self.node.name}")

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


# ---------------------------------------------------------------------- the model


class ClusterModel(RuleBasedStateMachine):
    """Random steps on a few nodes of one cluster; the promises in SQL after each."""

    server: ClassVar[PgServer]
    template: ClassVar[str]
    portal: ClassVar[Portal]

    def __init__(self) -> None:
        super().__init__()
        self.dsn = self.dbname = ""
        self.db: psycopg.Connection | None = None
        self.config: Config | None = None
        self.nodes: list[Node] = []
        self.held: list[Held] = []
        #: every trigger acknowledged or seen, and the payload an acknowledged one carries
        #: (`...`: not known, not checked).
        self.triggers: dict[str, Any] = {}
        #: runs seen `interrupted`, by id, and their tokens: no outcome may follow.
        self.interrupted: dict[str, int] = {}
        self.tokens_seen: set[int] = set()
        #: ids of incarnations that are gone without leaving: killed, or fenced and
        #: joined again under a new id (their locks are free: the fast hint reaps them).
        self.abandoned: set[int] = set()

    # ------------------------------------------------------------------ helpers

    def q(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        assert self.db is not None
        params = args[0] if len(args) == 1 and isinstance(args[0], dict) else args or None
        cur = self.db.execute(query, params)
        return cur.fetchall() if cur.description else []

    def one(self, query: str, *args: Any) -> Any:
        rows = self.q(query, *args)
        return rows[0][0] if rows else None

    def up(self) -> list[Node]:
        return [n for n in self.nodes if n.state == "up"]

    def draw_node(self, data: st.DataObject, label: str = "node") -> Node:
        return data.draw(st.sampled_from(self.up()), label=label)

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return self.portal.run(fn, *args, **kwargs)

    def start_node(self, name: str, capacity: int) -> Node:
        assert self.config is not None
        orch = self.run(joined, self.dsn, name, self.config.setup, capacity=capacity,
                        max_concurrent=self.config.max_concurrent, lease_seconds=LEASE_S,
                        history_per_worker=10_000, pool_size=2)
        node = Node(name=name, orch=orch, listener=connect(self.dsn))
        self.hold_lock(node)
        return node

    def hold_lock(self, node: Node) -> None:
        """Take the node's (new) id's advisory lock on its listener; note its lease."""
        node_id = node.coord.node_id
        assert node_id is not None
        assert node.coord._hold_lock(node.listener, node.lock_of, node_id)
        node.lock_of = node_id
        node.expires_at = self.one("SELECT expires_at FROM jd_nodes WHERE id = %s", node_id)

    def rejoin(self, node: Node, fenced_id: int | None) -> None:
        """The node found itself fenced: it stops what it held and joins again."""
        saw("a node found itself fenced and joined again")
        if fenced_id is not None:
            self.abandoned.add(fenced_id)
        self.run(node.coord.on_fenced, fenced_id)
        self.hold_lock(node)
        self.forget_dropped()

    def forget_dropped(self) -> None:
        """Retry waits a fenced node dropped are nobody's any more: forget them."""
        def kept(h: Held) -> bool:
            if h.node.state != "up":
                return False
            if h.waiting:
                w = h.node.orch._engine.workers[h.run.record.worker]
                return w.run is h.run and w.phase is Phase.RETRY_WAIT
            return True

        self.held = [h for h in self.held if kept(h)]

    def lease_live(self, token: int) -> bool:
        """Whether `token`'s lease is held, by a node whose lease has not run out."""
        return bool(self.one(
            "SELECT n.expires_at > jd_now() FROM jd_leases l JOIN jd_nodes n"
            " ON n.id = l.node_id WHERE l.token = %s", token
        ))

    def footprint(self, run: ActiveRun) -> dict[str, Any]:
        """Everything an end of `run` could write."""
        worker, trigger_id = run.record.worker, run.trigger.id
        return {
            "run": self.q("SELECT * FROM jd_runs WHERE id = %s", run.record.id),
            "detail": self.q("SELECT * FROM jd_run_details WHERE run_id = %s", run.record.id),
            "dlq": self.q("SELECT * FROM jd_dlq ORDER BY id"),
            "trigger": self.q("SELECT * FROM jd_triggers WHERE id = %s", trigger_id),
            "leases": self.q("SELECT * FROM jd_leases ORDER BY token"),
            "worker": self.q("SELECT * FROM jd_workers WHERE name = %s", worker),
            "dependents": self.q("SELECT count(*) FROM jd_triggers WHERE source = 'dependency'"),
        }

    def admission_before(self) -> dict[str, Any]:
        return {
            "workers": {name: (enabled, start, success) for name, enabled, start, success
                        in self.q("SELECT name, enabled, start_seq, success_seq"
                                  " FROM jd_workers")},
            "leases": {tok: worker for tok, worker in self.q("SELECT token, worker FROM"
                                                              " jd_leases")},
            "nodes": dict(self.q("SELECT id, state FROM jd_nodes")),
        }

    def check_admission(self, before: dict[str, Any]) -> None:
        """The leases a claim just handed out, judged against the state before it."""
        assert self.config is not None
        after = self.q("SELECT l.token, l.worker, l.node_id, w.circuit FROM jd_leases l"
                       " JOIN jd_workers w ON w.name = l.worker")
        old = before["leases"]
        for token, worker, node_id, circuit in after:
            if token in old:
                continue
            enabled, start_seq, _ = before["workers"][worker]
            assert enabled, f"{worker} was claimed (token {token}) while disabled"
            assert circuit != "open", f"{worker} was claimed (token {token}) with its circuit open"
            assert before["nodes"].get(node_id) == "active", (
                f"{worker} was claimed (token {token}) by node {node_id},"
                f" {before['nodes'].get(node_id) or 'gone'} before the claim"
            )
            for dep in self.config.depends_on(worker):
                success = before["workers"][dep][2]
                assert success is not None and (start_seq is None or success >= start_seq), (
                    f"{worker} was claimed (token {token}) without a fresh success of {dep}"
                    f" (its last start seq {start_seq}, {dep}'s last success seq {success})"
                )
                held_by_dep = [t for t, w in old.items() if w == dep
                               and any(t == a[0] for a in after)]
                assert not held_by_dep, (
                    f"{worker} was claimed (token {token}) while {dep} held lease"
                    f" {held_by_dep}"
                )

    def lease_state(self, node: Node) -> str:
        """`live` (its lease runs on past the slack), `over` (gone or run out), or `edge`."""
        left = self.one("SELECT extract(epoch FROM expires_at - jd_now()) FROM jd_nodes"
                        " WHERE id = %s", node.coord.node_id)
        if left is None or left <= 0:
            return "over"
        return "live" if left > SLACK_S else "edge"

    def claim_on(self, nodes: list[Node], limit: int) -> None:
        """The nodes claim at the same moment, each resuming its retries whose wait it
        judges over; then each claim is judged against the state before them."""
        before = self.admission_before()
        leases = {node.name: self.lease_state(node) for node in nodes}
        node_ids = {node.name: node.coord.node_id for node in nodes}
        claimed: dict[str, list[ActiveRun] | None] = {}

        async def claim(node: Node) -> None:
            engine = node.orch._engine
            ready = [
                w for h in self.held
                if h.node is node and h.waiting
                and (w := engine.workers[h.run.record.worker]).run is h.run
                and w.phase is Phase.RETRY_WAIT
            ]
            try:
                claimed[node.name] = await node.coord.claim(ready, 0.0, limit)
            except NodeFenced:
                claimed[node.name] = None

        async def together() -> None:
            async with trio.open_nursery() as nursery:
                for node in nodes:
                    nursery.start_soon(claim, node)

        self.run(together)
        if len(nodes) == 2:
            saw("two nodes claimed at once")
        known = {id(h.run) for h in self.held}
        for node in nodes:
            runs = claimed[node.name]
            if runs is None:
                assert leases[node.name] != "live", f"node {node} was told it is fenced while live"
                self.rejoin(node, node_ids[node.name])
                continue
            assert leases[node.name] != "over", (
                f"node {node} claimed {runs} though its lease had run out")
            assert len(runs) <= limit
            for run in runs:
                saw("a claim admitted runs" if id(run) not in known else "a claim resumed a retry")
                if id(run) not in known:
                    assert run.token not in self.tokens_seen, (
                        f"a claim handed out token {run.token} again")
                    self.held.append(Held(node=node, run=run))
        self.check_admission(before)

    # ------------------------------------------------------------------ set-up

    @initialize(config=configs(), data=st.data())
    def start(self, config: Config, data: st.DataObject) -> None:
        """The example's database and nodes, and the triggers already waiting."""
        self.config = config
        self.dbname = f"jd_model_{os.getpid()}_{next(_databases)}"
        with psycopg.connect(self.server.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.dbname} TEMPLATE {self.template}")
        self.dsn = self.server.dsn(self.dbname)
        self.db = connect(self.dsn)
        for name, capacity in zip(NODE_NAMES, config.capacities, strict=False):
            self.nodes.append(self.start_node(name, capacity))
        waiting = data.draw(st.lists(st.sampled_from(config.names), max_size=6),
                            label="triggers waiting")
        for worker in waiting:
            self.accept(self.nodes[0], worker, None)

    def accept(self, node: Node, worker: str, payload: Any) -> None:
        """A manual trigger, stored through `node` as its control path does."""
        payload = safe_json(payload)  # JSON made safe before it is stored
        trigger = Trigger(worker=worker, source=Source.MANUAL, payload=payload,
                          accepted_at=datetime.now(UTC))
        self.run(node.orch.store.add_trigger, trigger)
        self.triggers[trigger.id] = payload  # acknowledged: it must not be lost

    def teardown(self) -> None:
        for node in self.nodes:
            if node.state == "up":
                try:
                    self.run(node.orch.store.close)
                finally:
                    node.listener.close()
        if self.db is not None:
            self.db.close()
        if self.dbname:
            with psycopg.connect(self.server.dsn(), autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {self.dbname} WITH (FORCE)")

    # ------------------------------------------------------------------ control

    @precondition(lambda self: self.up())
    @rule(data=st.data(), payloads=st.lists(PAYLOADS, min_size=1, max_size=3))
    def trigger(self, data: st.DataObject, payloads: list[Any]) -> None:
        """Manual triggers accepted by any node: durable once acknowledged."""
        assert self.config is not None
        node = self.draw_node(data)
        for payload in payloads:
            worker = data.draw(st.sampled_from(self.config.names), label="worker")
            self.accept(node, worker, payload)

    @precondition(lambda self: self.up())
    @rule(data=st.data(), action=st.sampled_from(["disable", "enable", "drain", "undrain"]))
    def control(self, data: st.DataObject, action: str) -> None:
        """Through any node: disable or enable a worker (enabling closes its circuit);
        drain or undrain a node by name."""
        assert self.config is not None
        node = self.draw_node(data, "through")
        if action in ("drain", "undrain"):
            target = data.draw(st.sampled_from([n.name for n in self.nodes]), label="node")
            state = "draining" if action == "drain" else "active"
            self.run(set_node_state, node.coord, target, state)
            assert self.q("SELECT DISTINCT state FROM jd_nodes WHERE name = %s", target) in (
                [], [(state,)])
            return
        worker = data.draw(st.sampled_from(self.config.names), label="worker")
        change = WorkerChange.ENABLE if action == "enable" else WorkerChange.DISABLE
        self.run(node.coord.change_worker, worker, change)
        assert self.one("SELECT enabled FROM jd_workers WHERE name = %s", worker) is (
            action == "enable")

    # ------------------------------------------------------------------ schedules

    @precondition(lambda self: self.up() and self.config is not None and any(
        spec["mode"] == "scheduled" for _, spec in self.config.workers))
    @rule(data=st.data())
    def offer(self, data: st.DataObject) -> None:
        """One node, or two at once, wake for the due schedules (the compare-and-set)."""
        nodes = data.draw(st.lists(st.sampled_from(self.up()), min_size=1, max_size=2,
                                   unique=True), label="nodes")
        results: list[dict[str, datetime]] = []

        async def advance(node: Node) -> None:
            engine = node.orch._engine
            due = [w for w in engine.workers.values() if w.spec.mode is Mode.SCHEDULED]
            nexts, _ = await node.coord.advance_schedules(due)
            results.append(nexts)

        async def together() -> None:
            async with trio.open_nursery() as nursery:
                for node in nodes:
                    nursery.start_soon(advance, node)

        stored = self.one("SELECT count(*) FROM jd_triggers WHERE source = 'schedule'")
        folded = self.one("SELECT sum(coalesced) FROM jd_workers")
        self.run(together)
        if self.one("SELECT count(*) FROM jd_triggers WHERE source = 'schedule'") > stored:
            saw("an occurrence stored")
            if len(nodes) == 2:
                saw("two nodes offered one occurrence")
        if self.one("SELECT sum(coalesced) FROM jd_workers") > folded:
            saw("occurrences coalesced")
        cursors = dict(self.q("SELECT name, next_due FROM jd_workers WHERE next_due"
                              " IS NOT NULL"))
        for nexts in results:
            for name, due in nexts.items():
                assert due == cursors[name], (
                    f"{name}: a node was told its next due time is {due}, the cursor says"
                    f" {cursors[name]}"
                )

    # ------------------------------------------------------------------ claims

    @precondition(lambda self: self.up())
    @rule(data=st.data(), limit=st.integers(1, 3))
    def claim(self, data: st.DataObject, limit: int) -> None:
        """A node claims work and resumes its retries; or two race (write skew on
        `blocks`, the slots, dependencies)."""
        nodes = data.draw(st.lists(st.sampled_from(self.up()), min_size=1, max_size=2,
                                   unique=True), label="nodes")
        self.claim_on(nodes, limit)

    # ------------------------------------------------------------------ ends

    def end(self, held: Held, outcome: str, token: int | None = None) -> None:
        """End `held`'s attempt with `outcome`, under its token or `token` (an earlier
        one of the same worker); a refusal must leave no trace, an acceptance must have
        had a live lease to show for it."""
        run = held.run if token is None else attrs.evolve(held.run, token=token)
        forged = token is not None
        live = self.lease_live(run.token)
        before = self.footprint(held.run)
        coord = held.node.coord
        w = held.node.orch._engine.workers[run.record.worker]
        now = datetime.now(UTC)
        retried = False
        dlq_id: int | None = None
        try:
            if outcome == "success":
                run.advance(RunEvent.SUCCEEDED, now=0.0)
                record = run.record.finished(RunStatus.SUCCEEDED, ended_at=now,
                                             attempts=run.attempt, duration_s=0.01)
                self.run(coord.finish, run, record)
            elif outcome == "interrupted":
                # cut off by its node's shutdown: recorded, and its trigger kept
                effects = run.advance(RunEvent.INTERRUPTED, now=0.0)
                record = run.record.finished(RunStatus.INTERRUPTED, ended_at=now,
                                             attempts=run.attempt, duration_s=0.01,
                                             error="interrupted: shutdown")
                self.run(coord.finish, run, record, requeue=Effect.REQUEUE in effects)
            else:
                effects = run.advance(RunEvent.FAILED, now=0.0, retry_delay=1.0)
                if Effect.WAIT_RETRY in effects:
                    retried = True
                    self.run(coord.retry_wait, run, 1.0)
                else:
                    error = f"RuntimeError: attempt {run.attempt} failed"
                    record = run.record.finished(RunStatus.FAILED, ended_at=now,
                                                 attempts=run.attempt, duration_s=0.01,
                                                 error=error)
                    dlq_id = self.run(coord.finish, run, record, dead_letter=DeadLetterDraft(
                        error=error, traceback="Traceback (the model's)\n"))
        except LeaseLost:
            assert not live, f"{held}: the end under live lease {run.token} was refused"
            after = self.footprint(held.run)
            changed = [k for k in before if before[k] != after[k]]
            assert not changed, (
                f"{held}: an end under stale token {run.token} was refused, yet changed"
                f" {changed}: {[(before[k], after[k]) for k in changed]}"
            )
            saw("an end refused: " + ("an earlier token" if forged else "a stale token"))
            if not forged:
                self.held.remove(held)
                if w.run is held.run:
                    w.phase, w.run = Phase.IDLE, None
            return
        assert live, f"{held}: an end under stale token {run.token} was recorded"
        assert not forged
        saw("an end recorded: " + ("retry" if retried else "dead letter" if outcome == "failure"
                                   else outcome))
        if retried:
            w.phase = Phase.RETRY_WAIT
            assert self.q("SELECT phase FROM jd_leases WHERE token = %s", run.token) == [
                ("retry_wait",)]
            return
        self.held.remove(held)
        if w.run is held.run:
            w.phase, w.run = Phase.IDLE, None
        status = {"success": "succeeded", "failure": "failed"}.get(outcome, outcome)
        assert self.q("SELECT status, token FROM jd_runs WHERE id = %s", run.record.id) == [
            (status, run.token)]
        if status == "interrupted":
            assert self.q("SELECT state FROM jd_triggers WHERE id = %s", run.trigger.id) == [
                ("pending",)], f"{held}: interrupted, its trigger was not requeued"
        assert self.q("SELECT 1 FROM jd_leases WHERE token = %s", run.token) == []
        if self.one("SELECT count(*) FROM jd_triggers WHERE source = 'dependency'") > before[
            "dependents"][0][0]:
            saw("a dependent chained")
        if self.one("SELECT circuit FROM jd_workers WHERE name = %s", run.record.worker) == "open":
            saw("a circuit opened")
        if dlq_id is not None:
            assert self.q("SELECT token, trigger_id FROM jd_dlq WHERE id = %s", dlq_id) == [
                (run.token, run.trigger.id)]
        elif status == "failed":
            pytest.fail(f"{held}: its last failure was not dead-lettered")

    @rule(data=st.data(), count=st.integers(1, 3))
    def finish(self, data: st.DataObject, count: int) -> None:
        """Nodes end runs they were given (their leases perhaps lost meanwhile: stale),
        each under its token, or under an earlier token of the same worker (always
        refused): a success, a failure (retried, or dead-lettered when its attempts are
        spent), or cut off by a shutdown (its trigger kept)."""
        for _ in range(count):
            # Which runs a node holds depends on races (two nodes claiming at once), so
            # the same draws are made whatever it holds: Hypothesis replays draws.
            index = data.draw(st.integers(0, 15), label="run (index)")
            outcome = data.draw(st.sampled_from(["success", "failure", "interrupted"]),
                                label="outcome")
            # (3: under an earlier token, at the index drawn next; else its own)
            forged = data.draw(st.integers(0, 3), label="token") == 3
            earlier_index = data.draw(st.integers(0, 15), label="earlier token (index)")
            running = [h for h in self.held if h.running]
            if not running:
                return
            held = running[index % len(running)]
            note(f"run: {held}")
            if not forged:
                self.end(held, outcome)
                continue
            earlier = [t for (t,) in self.q(
                "SELECT token FROM jd_runs WHERE worker = %s AND token < %s ORDER BY token",
                held.run.record.worker, held.run.token)] or [0]
            token = earlier[earlier_index % len(earlier)]
            note(f"under the earlier token {token}")
            self.end(held, outcome, token=token)

    # ------------------------------------------------------------------ time and faults

    def clock_moves(self, seconds: float, missing: Node | None = None) -> None:
        """The cluster's clock moves on in steps shorter than a lease; after each, every
        node up but `missing` heartbeats (one that finds itself fenced joins again)."""
        left = seconds
        while left > 0:
            step = min(left, 10.0)
            left -= step
            self.q("UPDATE jd_cluster SET clock_offset_s = clock_offset_s + %s", step)
            for node in self.up():
                if node is missing:
                    continue
                node_id = node.coord.node_id
                if self.run(node.coord.heartbeat):
                    node.expires_at = self.one(
                        "SELECT expires_at FROM jd_nodes WHERE id = %s", node_id)
                else:
                    self.rejoin(node, node_id)

    @precondition(lambda self: self.nodes)
    @rule(seconds=st.sampled_from([1.5, 10.0, 25.0, 65.0]))
    def time_passes(self, seconds: float) -> None:
        """Time passes (retry waits end, occurrences come due, circuits cool down); every
        node heartbeats on time."""
        self.clock_moves(seconds)

    @precondition(lambda self: self.up())
    @rule(data=st.data())
    def reap(self, data: st.DataObject) -> None:
        """A node's sweep reaps every node gone: expired, or (the fast hint) whose lock
        is free with its last heartbeat over a second old; never one that lives."""
        node = self.draw_node(data)
        present = {i: expired for i, expired in self.q(
            "SELECT id, expires_at <= jd_now() FROM jd_nodes")}
        self.run(node.coord.reap)
        gone = present.keys() - {i for (i,) in self.q("SELECT id FROM jd_nodes")}
        for node_id in gone:
            saw("a sweep reaped an expired node" if present[node_id]
                else "a sweep reaped a killed node (the fast hint)")
            assert present[node_id] or node_id in self.abandoned, (
                f"node {node_id} was reaped with its lease running and its lock held")
        expired = self.q("SELECT id, name FROM jd_nodes WHERE expires_at"
                         " <= jd_now() - make_interval(secs => %s)", SLACK_S)
        assert not expired, f"nodes expired but not reaped by a sweep: {expired}"
        hinted = self.q("SELECT id, name FROM jd_nodes WHERE id = ANY(%s) AND heartbeat_at"
                        " < jd_now() - make_interval(secs => %s)", list(self.abandoned),
                        1.0 + SLACK_S)
        assert not hinted, f"killed nodes left unreaped by a sweep (the fast hint): {hinted}"

    @precondition(lambda self: self.nodes)
    @rule(data=st.data())
    def fault(self, data: st.DataObject) -> None:
        """Something happens to a node: it misses its heartbeats while time passes (for
        1.5 s, or past its lease: others reap it), stalls past its lease then ends what
        it ran (late, refused), dies at once (SIGKILL: its connections
        drop, its lock is free, its row and leases stay until someone reaps them), leaves
        (what it holds is interrupted and requeued, its row goes), or, down, comes back
        (a new incarnation, same name)."""
        assert self.config is not None
        kinds = ["misses heartbeats", "stalls", "is killed", "leaves"] if self.up() else []
        if any(n.state != "up" for n in self.nodes):
            kinds.append("comes back")
        kind = data.draw(st.sampled_from(kinds), label="fault")
        if kind == "comes back":
            gone = data.draw(st.sampled_from([n for n in self.nodes if n.state != "up"]),
                             label="node")
            index = self.nodes.index(gone)
            self.nodes[index] = self.start_node(gone.name, self.config.capacities[index])
            return
        node = self.draw_node(data)
        if kind == "misses heartbeats":
            seconds = data.draw(st.sampled_from([1.5, 35.0]), label="for seconds")
            self.clock_moves(seconds, missing=node)
            return
        if kind == "stalls":
            # frozen past its lease (SIGSTOP, a long pause), perhaps reaped meanwhile by
            # a peer; it wakes and ends what it ran: every end must be refused
            reaped = data.draw(st.booleans(), label="reaped meanwhile")
            self.clock_moves(35.0, missing=node)
            peers = [n for n in self.up() if n is not node]
            if reaped and peers:
                self.run(peers[0].coord.reap)
            for held in [h for h in self.held if h.node is node and h.running]:
                assert not self.lease_live(held.run.token)
                self.end(held, "success")
            return
        node_id = node.coord.node_id
        self.held = [h for h in self.held if h.node is not node]
        if kind == "leaves":
            node.state = "left"
            if self.q("SELECT 1 FROM jd_leases WHERE node_id = %s", node_id):
                saw("a node left holding runs")
            self.run(node.orch.store.close)
            node.listener.close()
            assert self.q("SELECT token FROM jd_leases WHERE node_id = %s", node_id) == []
            assert self.q("SELECT 1 FROM jd_nodes WHERE id = %s", node_id) == []
            return
        node.state = "killed"
        pid = node.listener.info.backend_pid
        self.abandoned.add(node_id)
        node.listener.close()
        self.run(node.orch.store.pool.close)
        deadline = time.monotonic() + 10
        while self.q("SELECT 1 FROM pg_stat_activity WHERE pid = %s", pid):
            assert time.monotonic() < deadline, "the killed node's connection lingers"
            time.sleep(0.01)

    # ------------------------------------------------------------------ the promises

    @invariant()
    def promises(self) -> None:
        if self.db is None:
            return
        config = self.config
        assert config is not None

        rows = self.q("SELECT worker, array_agg(token) FROM jd_leases GROUP BY worker"
                      " HAVING count(*) > 1")
        assert not rows, f"a worker holds two leases: {rows}"

        xs, ys = [x for x, _ in config.blocks], [y for _, y in config.blocks]
        rows = self.q(
            "SELECT a.worker, a.token, b.worker, b.token FROM unnest(%s::text[], %s::text[])"
            " AS p(x, y) JOIN jd_leases a ON a.worker = p.x JOIN jd_leases b ON b.worker = p.y"
            " WHERE a.phase = 'running' AND b.phase = 'running'", xs, ys)
        assert not rows, f"a blocks pair runs together: {rows}"

        running = self.one("SELECT count(*) FROM jd_leases WHERE phase = 'running'")
        assert running <= config.max_concurrent, (
            f"{running} running, over the cluster's {config.max_concurrent} slots")
        capacity = dict(zip(NODE_NAMES, config.capacities, strict=False))
        for node_id, name, count in self.q(
            "SELECT n.id, n.name, count(*) FROM jd_leases l JOIN jd_nodes n ON n.id = l.node_id"
            " WHERE l.phase = 'running' GROUP BY n.id, n.name"
        ):
            assert count <= capacity[name], (
                f"node {name}#{node_id} runs {count}, over its capacity {capacity[name]}")

        # G1: one trigger per scheduled occurrence, whatever became of it; one success
        rows = self.q(
            "SELECT worker, due_at, array_agg(DISTINCT id) FROM ("
            " SELECT worker, due_at, id FROM jd_triggers WHERE source = 'schedule'"
            " UNION SELECT worker, due_at, trigger_id FROM jd_runs WHERE source = 'schedule'"
            " UNION SELECT worker, due_at, trigger_id FROM jd_dlq WHERE source = 'schedule'"
            ") o GROUP BY worker, due_at HAVING count(DISTINCT id) > 1 OR due_at IS NULL")
        assert not rows, f"a scheduled occurrence has two triggers (or no due time): {rows}"
        rows = self.q("SELECT worker, due_at, count(*) FROM jd_runs WHERE status = 'succeeded'"
                      " AND source = 'schedule' GROUP BY worker, due_at HAVING count(*) > 1")
        assert not rows, f"a scheduled occurrence succeeded twice: {rows}"

        # a running run holds its lease (same token and node), and a lease its run
        rows = self.q("SELECT r.id, r.token FROM jd_runs r WHERE r.status = 'running'"
                      " AND NOT EXISTS (SELECT 1 FROM jd_leases l WHERE l.run_id = r.id"
                      " AND l.token = r.token AND l.node_id = r.node_id)")
        assert not rows, f"runs recorded running with no lease: {rows}"
        rows = self.q("SELECT l.token, l.worker FROM jd_leases l WHERE NOT EXISTS (SELECT 1"
                      " FROM jd_runs r WHERE r.id = l.run_id AND r.status = 'running')")
        assert not rows, f"leases whose run is not running: {rows}"
        rows = self.q("SELECT l.token, l.trigger_id FROM jd_leases l LEFT JOIN jd_triggers t"
                      " ON t.id = l.trigger_id WHERE t.state IS DISTINCT FROM 'claimed'")
        assert not rows, f"leases whose trigger is not claimed: {rows}"

        # G3: an interrupted run gets no outcome afterwards; a dead letter is its run's
        for run_id, token in self.q("SELECT id, token FROM jd_runs WHERE status"
                                    " = 'interrupted'"):
            self.interrupted[run_id] = token
        rows = self.q("SELECT id, status, token FROM jd_runs WHERE id = ANY(%s)"
                      " AND status <> 'interrupted'", list(self.interrupted))
        assert not rows, f"an outcome recorded after the run was interrupted: {rows}"
        rows = self.q("SELECT d.id, d.token, r.status, r.token FROM jd_dlq d LEFT JOIN jd_runs"
                      " r ON r.id = d.run_id WHERE r.status IS DISTINCT FROM 'failed'"
                      " OR r.token IS DISTINCT FROM d.token")
        assert not rows, f"dead letters that are not their run's last failure: {rows}"

        # G5: every trigger seen is pending, claimed under a lease, succeeded or in the DLQ
        for (trigger_id,) in self.q("SELECT id FROM jd_triggers"):
            self.triggers.setdefault(trigger_id, ...)
        rows = self.q(
            "SELECT u.id FROM unnest(%s::text[]) AS u(id) WHERE NOT EXISTS (SELECT 1"
            " FROM jd_triggers t WHERE t.id = u.id AND (t.state = 'pending' OR EXISTS"
            " (SELECT 1 FROM jd_leases l WHERE l.trigger_id = t.id)))"
            " AND NOT EXISTS (SELECT 1 FROM jd_runs r WHERE r.trigger_id = u.id"
            "  AND r.status = 'succeeded')"
            " AND NOT EXISTS (SELECT 1 FROM jd_dlq d WHERE d.trigger_id = u.id)",
            list(self.triggers))
        assert not rows, f"triggers lost (not pending, leased, succeeded or in the DLQ): {rows}"
        acked = {k: v for k, v in self.triggers.items() if v is not ...}
        for trigger_id, payload in self.q(
            "SELECT id, payload FROM jd_triggers WHERE id = ANY(%(ids)s) UNION ALL"
            " SELECT trigger_id, payload FROM jd_runs WHERE trigger_id = ANY(%(ids)s)"
            " UNION ALL SELECT trigger_id, payload FROM jd_dlq WHERE trigger_id = ANY(%(ids)s)",
            {"ids": list(acked)},
        ) if acked else []:
            assert payload == acked[trigger_id], (
                f"trigger {trigger_id}: payload {payload!r} stored, {acked[trigger_id]!r}"
                " acknowledged")

        # tokens only grow: each new one above all before it, and along each worker's runs
        tokens = {t for (t,) in self.q("SELECT token FROM jd_runs")}
        new = tokens - self.tokens_seen
        if new and self.tokens_seen:
            assert min(new) > max(self.tokens_seen), (
                f"new tokens {sorted(new)} not above those before (max"
                f" {max(self.tokens_seen)})")
        self.tokens_seen |= new
        rows = self.q("SELECT worker, token, prev FROM (SELECT worker, token, lag(token)"
                      " OVER (PARTITION BY worker ORDER BY seq) AS prev FROM jd_runs) x"
                      " WHERE token <= prev")
        assert not rows, f"a worker's runs with tokens not growing: {rows}"

        # a live node is never reaped
        present = {i for (i,) in self.q("SELECT id FROM jd_nodes")}
        db_now = self.one("SELECT jd_now()")
        for node in self.up():
            if node.coord.node_id not in present and node.expires_at is not None:
                assert (node.expires_at - db_now).total_seconds() <= SLACK_S, (
                    f"node {node} was reaped while its lease ran to {node.expires_at}"
                    f" (database time now {db_now})")


def _settings() -> settings:
    if LONG_EXAMPLES:
        return settings(max_examples=LONG_EXAMPLES, stateful_step_count=50, deadline=None,
                        database=None, derandomize=False, report_multiple_bugs=False,
                        suppress_health_check=list(HealthCheck))
    return settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
                    derandomize=True, suppress_health_check=list(HealthCheck),
                    report_multiple_bugs=False)


@pytest.fixture
def model_template(pg_server: PgServer) -> Iterator[str]:
    """A migrated database the examples' databases are cloned from, in which PostgreSQL
    pretends to have started long ago (no restart window hides a reap)."""
    name = f"jd_model_template_{os.getpid()}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
    try:
        with connect(pg_server.dsn(name)) as conn:
            migrate(conn, "the model's template")
            conn.execute("CREATE OR REPLACE FUNCTION jd_server_started() RETURNS timestamptz"
                         " LANGUAGE sql AS $$ SELECT '-infinity'::timestamptz $$")
        yield name
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_random_steps_on_virtual_nodes_keep_the_cluster_promises(
    pg_server: PgServer, model_template: str
) -> None:
    """Random triggers, occurrences, claims, ends (stale tokens too), missed heartbeats,
    kills, drains and toggles on 2-3 nodes never break a promise checked in SQL."""
    REACHED.clear()
    with Portal() as portal:
        ClusterModel.server = pg_server
        ClusterModel.template = model_template
        ClusterModel.portal = portal
        run_state_machine_as_test(ClusterModel, settings=_settings())
    if LONG_EXAMPLES:
        print(f"paths the model reached: {dict(REACHED.most_common())}")  # shown with -s
        return
    # The fixed run must have gone where the promises can break, or it proves little.
    missed = [kind for kind in MUST_REACH if not any(p.startswith(kind) for p in REACHED)]
    assert not missed, f"the model's examples never reached: {missed} (reached: {REACHED})"
