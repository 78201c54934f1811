"""Virtual nodes on one database: the cluster's promises, each with real PostgreSQL.

Several Orchestrators in one trio process, each its own node (its own PgStore, pool and
listener), on trio's real clock (the stores work in threads). Time that must pass for a
lease to expire is moved on through `jd_now()` instead of slept.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
import trio

from jobdeck import (
    JobContext,
    LeaseLost,
    Orchestrator,
    RunStatus,
    StoreRejected,
    StoreUnavailable,
)

from .nodes import coordinator, make_node, running, shift_clock, sql, wait_until


class Recorder:
    """Worker functions that record who ran when, across every node of the process."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []
        self.running = 0
        self.most = 0
        self.started: list[str] = []

    def sleeper(self, seconds: float):  # type: ignore[no-untyped-def]
        async def work(ctx: JobContext) -> None:
            self.started.append(ctx.worker)
            self.running += 1
            self.most = max(self.most, self.running)
            start = trio.current_time()
            try:
                await trio.sleep(seconds)
            finally:
                self.running -= 1
                self.spans.append((ctx.worker, start, trio.current_time()))

        return work


def node_of_runs(dsn: str, worker: str) -> list[tuple[str, int, str]]:
    return sql(dsn, "SELECT r.status, n.id, r.id FROM jd_runs r LEFT JOIN jd_nodes n"
                    " ON n.id = r.node_id WHERE r.worker = %s ORDER BY r.seq", worker)


async def test_each_scheduled_occurrence_runs_once_across_nodes(pg_dsn: str) -> None:
    """Three nodes waking for the same 0.2 s schedule store and run each occurrence once."""
    rec = Recorder()

    def setup(orch: Orchestrator) -> None:
        orch.register("tick", rec.sleeper(0.0), interval_seconds=0.2)

    nodes = [make_node(pg_dsn, name, setup) for name in "abc"]
    async with running(*nodes):
        await trio.sleep(2.0)
    runs = sql(pg_dsn, "SELECT due_at, status, node_id FROM jd_runs WHERE worker = 'tick'")
    dues = [due for due, _, _ in runs]
    assert len(runs) >= 6
    assert len(set(dues)) == len(dues), "an occurrence ran twice"
    assert None not in dues
    assert {status for _, status, _ in runs} <= {"succeeded", "interrupted"}
    assert len(rec.started) == len(runs)


async def test_blocks_pair_never_runs_together_across_nodes(pg_dsn: str) -> None:
    """Two nodes claiming at once never admit both sides of a `blocks` pair (write skew)."""
    rec = Recorder()

    def setup(orch: Orchestrator) -> None:
        orch.register("left", rec.sleeper(0.05), mode="triggered", blocks=["right"])
        orch.register("right", rec.sleeper(0.05), mode="triggered")

    a, b = make_node(pg_dsn, "a", setup), make_node(pg_dsn, "b", setup)
    async with running(a, b):
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(a.trigger, "left")
                nursery.start_soon(b.trigger, "right")
        await wait_until(lambda: len(rec.spans) == 16, within=20)
    lefts = [(s, e) for w, s, e in rec.spans if w == "left"]
    rights = [(s, e) for w, s, e in rec.spans if w == "right"]
    overlaps = [(x, y) for x in lefts for y in rights if x[0] < y[1] and y[0] < x[1]]
    assert overlaps == []
    ran_on = {n for _, n, _ in node_of_runs(pg_dsn, "left") + node_of_runs(pg_dsn, "right")}
    assert len(ran_on) >= 1


async def test_max_concurrent_workers_is_cluster_wide(pg_dsn: str) -> None:
    """Three nodes with 2 cluster slots never run more than 2 workers at once in all."""
    rec = Recorder()
    names = [f"w{i}" for i in range(6)]

    def setup(orch: Orchestrator) -> None:
        for name in names:
            orch.register(name, rec.sleeper(0.15), mode="triggered")

    nodes = [make_node(pg_dsn, n, setup, max_concurrent=2) for n in "abc"]
    async with running(*nodes):
        for round_ in range(2):
            for i, name in enumerate(names):
                await nodes[(i + round_) % 3].trigger(name)
        await wait_until(lambda: len(rec.spans) == 12, within=20)
    assert rec.most == 2
    starts = sorted((s, 1) for _, s, _ in rec.spans) + sorted((e, -1) for _, _, e in rec.spans)
    assert max(itertools.accumulate(d for _, d in sorted(starts))) <= 2


async def test_trigger_accepted_on_one_node_runs_on_another(pg_dsn: str) -> None:
    """A node with no capacity accepts a trigger durably; a node with capacity runs it."""
    rec = Recorder()

    def setup(orch: Orchestrator) -> None:
        orch.register("job", rec.sleeper(0.0), mode="triggered")

    a = make_node(pg_dsn, "a", setup, capacity=0)
    b = make_node(pg_dsn, "b", setup)
    async with running(a, b):
        trigger_id = await a.trigger("job", {"from": "a"})
        await wait_until(lambda: len(rec.spans) == 1)
        ((node_id,),) = sql(pg_dsn, "SELECT node_id FROM jd_runs WHERE trigger_id = %s",
                            trigger_id)
        assert node_id == coordinator(b).node_id != coordinator(a).node_id


async def test_dependents_chain_across_nodes(pg_dsn: str) -> None:
    """A `triggered` worker depending on another runs once after each success of it,
    whichever node ran the dependency."""
    rec = Recorder()

    def setup(orch: Orchestrator) -> None:
        orch.register("fetch", rec.sleeper(0.0), mode="triggered")
        orch.register("report", rec.sleeper(0.0), mode="triggered", depends_on=["fetch"])

    a = make_node(pg_dsn, "a", setup)
    b = make_node(pg_dsn, "b", setup, capacity=0)
    async with running(a, b):
        await b.trigger("fetch")
        await wait_until(lambda: rec.started.count("report") == 1)
        await b.trigger("fetch")
        await wait_until(lambda: rec.started.count("report") == 2)
    assert rec.started == ["fetch", "report", "fetch", "report"]


async def test_failed_run_retries_dead_letters_and_opens_the_circuit(pg_dsn: str) -> None:
    """A run failing every attempt retries through the coordinator, lands in the DLQ once
    and opens the shared circuit."""
    attempts: list[int] = []

    async def broken(ctx: JobContext) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError("boom")

    def setup(orch: Orchestrator) -> None:
        orch.register("broken", broken, mode="triggered", max_retries=2,
                      retry_backoff_seconds=0.05, max_consecutive_failures=1)

    a, b = make_node(pg_dsn, "a", setup), make_node(pg_dsn, "b", setup)
    async with running(a, b):
        await a.trigger("broken")
        await wait_until(lambda: sql(pg_dsn, "SELECT count(*) FROM jd_dlq") == [(1,)])
    assert attempts == [1, 2, 3]
    assert sql(pg_dsn, "SELECT circuit, consecutive_failures FROM jd_workers"
                       " WHERE name = 'broken'") == [("open", 1)]
    assert sql(pg_dsn, "SELECT status, attempts FROM jd_runs") == [("failed", 3)]
    assert sql(pg_dsn, "SELECT count(*) FROM jd_triggers") == [(0,)]
    assert sql(pg_dsn, "SELECT count(*) FROM jd_leases") == [(0,)]


class Hang:
    """The first call waits until cancelled; later calls return at once."""

    def __init__(self) -> None:
        self.calls = 0
        self.first_running = trio.Event()

    async def __call__(self, ctx: JobContext) -> None:
        self.calls += 1
        if self.calls == 1:
            self.first_running.set()
            await trio.sleep_forever()


async def test_a_node_whose_heartbeat_lapses_is_reaped(pg_dsn: str) -> None:
    """A node that stops heartbeating is reaped once its lease is over: its run is
    recorded interrupted (node_lost), its trigger runs on another node, and the lapsed
    node, fenced, stops its attempt (whose end is refused) and joins again."""
    hang = Hang()

    def setup(orch: Orchestrator) -> None:
        orch.register("job", hang, mode="triggered")

    # a: a 3 s lease whose heartbeat never comes in time; b: a 30 s lease.
    a = make_node(pg_dsn, "a", setup, lease_seconds=3, heartbeat_seconds=3600)
    b = make_node(pg_dsn, "b", setup)
    async with running(a):
        trigger_id = await a.trigger("job")
        await hang.first_running.wait()
        a_node = coordinator(a).node_id
        coordinator(a).capacity = 0  # when a joins again, it takes no more work
        shift_clock(pg_dsn, 5)
        async with running(b):
            b_node = coordinator(b).node_id
            await wait_until(lambda: hang.calls == 2)
            await wait_until(lambda: len(sql(pg_dsn, "SELECT 1 FROM jd_runs"
                                                     " WHERE status = 'succeeded'")) == 1)
            runs = sql(pg_dsn, "SELECT node_id, status, error FROM jd_runs"
                               " WHERE trigger_id = %s ORDER BY seq", trigger_id)
            assert runs == [(a_node, "interrupted", "interrupted: node_lost"),
                            (b_node, "succeeded", None)]
            if coordinator(a).fenced == 0:
                # a's next heartbeat (due every lease/3; called here) finds its row gone,
                # unless a claim of its own, in flight when the clock moved, found it first
                assert not await coordinator(a).heartbeat()
                await coordinator(a).on_fenced()
            await wait_until(lambda: a.snapshot().running == 0)
            assert sql(pg_dsn, "SELECT node_id, status, error FROM jd_runs"
                               " WHERE trigger_id = %s ORDER BY seq", trigger_id) == runs
            assert coordinator(a).fenced == 1
            assert coordinator(a).node_id not in (None, a_node)
            assert a_node not in [n for (n,) in sql(pg_dsn, "SELECT id FROM jd_nodes")]


async def test_a_write_with_a_stale_token_changes_nothing(pg_dsn: str) -> None:
    """Once a run's lease is reaped, its end is refused (LeaseLost) and nothing changes."""
    hang = Hang()

    def setup(orch: Orchestrator) -> None:
        orch.register("job", hang, mode="triggered")

    a = make_node(pg_dsn, "a", setup, lease_seconds=3, heartbeat_seconds=3600)
    async with running(a):
        await a.trigger("job")
        await hang.first_running.wait()
        (run,) = [w.run for w in a._engine.workers.values() if w.run is not None]
        coordinator(a).capacity = 0  # when a joins again, it takes no more work
        shift_clock(pg_dsn, 5)
        assert await coordinator(a).reap() == 1
        # The stale run's own rows, and what its end would have written: the node's
        # dispatcher may meanwhile rejoin and claim the re-queued trigger again (a new
        # run with a new token), which is not what this test looks at.
        queries = {
            "run": ("SELECT * FROM jd_runs WHERE id = %s", (run.record.id,)),
            "lease": ("SELECT * FROM jd_leases WHERE token = %s", (run.token,)),
            "dlq": ("SELECT * FROM jd_dlq WHERE run_id = %s", (run.record.id,)),
        }
        before = {k: sql(pg_dsn, q, *args) for k, (q, args) in queries.items()}
        assert before["lease"] == [] and before["run"][0] is not None
        done = run.record.finished(RunStatus.SUCCEEDED, ended_at=datetime.now(UTC),
                                   attempts=1, duration_s=0.1)
        with pytest.raises(LeaseLost):
            await coordinator(a).finish(run, done)
        with pytest.raises(LeaseLost):
            await coordinator(a).retry_wait(run, 1.0)
        assert {k: sql(pg_dsn, q, *args) for k, (q, args) in queries.items()} == before
        await coordinator(a).on_fenced()


async def test_ends_written_together_each_get_their_own_outcome(pg_dsn: str) -> None:
    """Run ends that come at once are written in batches (group commit), yet each is
    fenced by its own token and refused on its own: one whose lease is gone gets
    LeaseLost, one the database refuses gets StoreRejected, the others are recorded."""

    async def forever(ctx: JobContext) -> None:
        await trio.sleep_forever()

    def setup(orch: Orchestrator) -> None:
        for i in range(6):
            orch.register(f"h{i}", forever, mode="triggered")

    a = make_node(pg_dsn, "a", setup, max_concurrent=8)
    async with running(a):
        for i in range(6):
            await a.trigger(f"h{i}")
        engine = a._engine
        await wait_until(lambda: sum(w.run is not None for w in engine.workers.values()) == 6)
        runs = sorted((w.run for w in engine.workers.values() if w.run is not None),
                      key=lambda run: run.record.worker)
        sql(pg_dsn, "DELETE FROM jd_leases WHERE token = %s", runs[1].token)  # lost
        outcomes: dict[str, object] = {}

        async def end(run, error: str | None) -> None:  # type: ignore[no-untyped-def]
            done = run.record.finished(RunStatus.SUCCEEDED, ended_at=datetime.now(UTC),
                                       attempts=1, duration_s=0.1, error=error)
            try:
                await coordinator(a).finish(run, done)
                outcomes[run.record.worker] = "written"
            except (LeaseLost, StoreRejected) as exc:
                outcomes[run.record.worker] = type(exc).__name__

        async with trio.open_nursery() as nursery:
            for i, run in enumerate(runs):
                # a NUL is text PostgreSQL refuses: that end alone fails
                nursery.start_soon(end, run, "bad\x00text" if i == 3 else None)
        assert outcomes == {"h0": "written", "h1": "LeaseLost", "h2": "written",
                            "h3": "StoreRejected", "h4": "written", "h5": "written"}
        statuses = sql(pg_dsn, "SELECT worker, status FROM jd_runs ORDER BY worker")
        assert statuses == [("h0", "succeeded"), ("h1", "running"), ("h2", "succeeded"),
                            ("h3", "running"), ("h4", "succeeded"), ("h5", "succeeded")]


async def test_a_freed_slot_takes_the_next_pending_run_at_once(pg_dsn: str) -> None:
    """With one slot and work pending, each run starts as the one before it ends: the
    freed slot does not wait for the 1 s poll (the end's own NOTIFY may come before the
    slot is free)."""
    rec = Recorder()

    def setup(orch: Orchestrator) -> None:
        for i in range(8):
            orch.register(f"s{i}", rec.sleeper(0.05), mode="triggered")

    a = make_node(pg_dsn, "a", setup, capacity=1)
    async with running(a):
        for i in range(8):
            await a.trigger(f"s{i}")
        await wait_until(lambda: len(rec.spans) == 8, within=30)
    spans = sorted(rec.spans, key=lambda span: span[1])
    gaps = [start - end for (_, _, end), (_, start, _) in itertools.pairwise(spans)]
    assert max(gaps) < 0.6, gaps  # the poll would make one about 1 s


async def test_disable_on_one_node_holds_the_worker_on_every_node(pg_dsn: str) -> None:
    """A worker disabled through node a does not start on node b; enabled through b, it runs."""
    rec = Recorder()

    def setup(orch: Orchestrator) -> None:
        orch.register("job", rec.sleeper(0.0), mode="triggered")

    a = make_node(pg_dsn, "a", setup, capacity=0)
    b = make_node(pg_dsn, "b", setup)
    async with running(a, b):
        await a.disable("job")
        await a.trigger("job")
        await trio.sleep(1.5)  # b's NOTIFY and at least one poll come and go
        assert rec.started == []
        assert sql(pg_dsn, "SELECT state FROM jd_triggers") == [("pending",)]
        await b.enable("job")
        await wait_until(lambda: rec.started == ["job"])
    assert sql(pg_dsn, "SELECT enabled FROM jd_workers WHERE name = 'job'") == [(True,)]


async def test_a_runs_attempts_and_log_lines_are_kept_for_every_node(pg_dsn: str) -> None:
    """A run's attempts (error, traceback) and its log lines are stored with its end under
    its lease, and another node opens the run with them."""

    async def flaky(ctx: JobContext) -> None:
        ctx.log.info("attempt %d", ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")

    def setup(orch: Orchestrator) -> None:
        orch.register("flaky", flaky, mode="triggered", retry_backoff_seconds=0.05)

    a, b = make_node(pg_dsn, "a", setup), make_node(pg_dsn, "b", setup)
    async with running(a):
        await a.trigger("flaky")
        await wait_until(lambda: sql(pg_dsn, "SELECT status FROM jd_runs") == [("succeeded",)])
    ((run_id,),) = sql(pg_dsn, "SELECT id FROM jd_runs")
    async with running(b):
        detail = await b.run_detail(run_id)
    assert [(x.number, x.error) for x in detail.attempts] == [
        (1, "RuntimeError: first attempt fails"), (2, None)
    ]
    assert detail.attempts[0].traceback is not None
    assert [line.message for line in detail.logs] == ["attempt 1", "attempt 2"]


async def test_a_worker_claimed_again_before_its_last_end_came_back_keeps_its_run(
    pg_dsn: str,
) -> None:
    """A run's end frees its lease in the database before the node hears back; a claim
    that takes the worker again meanwhile keeps the new run as the worker's, and each
    run gives back its own slot (before: the old end cleared the new run and a slot
    leaked, so the node's capacity shrank for good)."""
    ran: list[str] = []

    async def job(ctx: JobContext) -> None:
        ran.append(ctx.run_id)

    a = make_node(pg_dsn, "a", lambda orch: orch.register("job", job, mode="triggered"))
    node = coordinator(a)
    real_finish = node.finish
    slow_once = [True]

    async def finish_slowly(*args: object, **kwargs: object) -> int | None:
        result = await real_finish(*args, **kwargs)  # type: ignore[arg-type]
        if slow_once.pop() if slow_once else False:
            # committed, lease freed: the next trigger is claimed before this returns
            await a.trigger("job")
            await wait_until(lambda: len(ran) == 2)
        return result

    node.finish = finish_slowly  # type: ignore[method-assign]
    async with running(a):
        await a.trigger("job")
        await wait_until(lambda: sql(
            pg_dsn, "SELECT count(*) FROM jd_runs WHERE status = 'succeeded'") == [(2,)])
        engine = a._engine
        await wait_until(lambda: engine.slots_used == 0)
        assert engine.workers["job"].run is None and len(ran) == 2


async def test_a_retry_due_when_its_claim_fails_is_resumed_at_the_next_look(
    pg_dsn: str,
) -> None:
    """A store error on the claim that would resume a due retry (a killed connection, a
    restarting server) leaves the retry to the next look (before: it was dropped from
    the ready set for good, and its lease kept the worker from ever running again)."""
    attempts: list[int] = []

    async def flaky(ctx: JobContext) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("fails once")

    a = make_node(pg_dsn, "a", lambda orch: orch.register(
        "job", flaky, mode="triggered", max_retries=1, retry_backoff_seconds=0.1))
    node = coordinator(a)
    real_claim = node.claim
    failed: list[int] = []

    async def claim_failing_once(ready, now, limit):  # type: ignore[no-untyped-def]
        if ready and not failed:
            failed.append(len(ready))
            raise StoreUnavailable("store: terminating connection due to administrator command")
        return await real_claim(ready, now, limit)

    node.claim = claim_failing_once  # type: ignore[method-assign]
    async with running(a):
        await a.trigger("job")
        await wait_until(
            lambda: sql(pg_dsn, "SELECT status FROM jd_runs") == [("succeeded",)], within=15
        )
    assert failed == [1] and attempts == [1, 2]
