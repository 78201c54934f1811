"""`ClusterDispatcher`: the dispatcher of a node in a cluster, where the database decides.

The same loop as `Dispatcher` (a heap of due times, woken by changes), but what to start
is the cluster's pending work, not this node's memory. On each wake (a NOTIFY, the
once-a-second poll, a due time, a local change) it:
1. advances the schedules that came due through the coordinator's compare-and-set
   (whichever node wins stores the occurrence's trigger; every node re-arms its timer
   at the database's next due time);
2. claims up to this node's free capacity, even when nothing here is ready (the work
   may have been accepted on another node), resuming its own retries whose wait is over;
3. hands each admitted run to the runner pool.
Triggers accepted here are stored by the store and announced; they are not queued in
memory, since any node may run them.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import trio

from . import _events as ev
from ._dispatcher import Dispatcher
from ._engine import Engine
from ._errors import LeaseLost, NodeFenced, StoreError, describe
from ._outcomes import lease_lost
from ._persist import WriteRefused, persist
from ._pg_coordinator import PgCoordinator
from ._pg_membership import POLL_S
from ._pg_schema import CLAIM_BATCH
from ._pg_view import REFRESH_S, refresh
from ._records import Trigger
from ._runner_pool import RunnerPool
from ._runtime import ActiveRun, Phase, WorkerRuntime
from ._schedule import cron_period
from ._spec import Mode


class ClusterDispatcher(Dispatcher):
    """Starts what the cluster's coordinator admits for this node."""

    def __init__(
        self,
        engine: Engine,
        coordinator: PgCoordinator,
    ) -> None:
        super().__init__(engine, coordinator)
        self._cluster = coordinator
        coordinator.dispatcher_ready = self.ready
        #: workers whose retry wait is being recorded: not resumed before it is.
        self._recording: set[str] = set()

    # ------------------------------------------------------------------ wanting

    def offer(self, w: WorkerRuntime) -> None:
        self.want(w)

    def queue(self, w: WorkerRuntime, trigger: Trigger) -> None:
        """A trigger stored for `w`: announce it and look for work (on any node)."""
        engine = self._engine
        engine.publish(
            ev.TriggerAccepted(
                ts=trigger.accepted_at, worker=w.name, trigger_id=trigger.id,
                source=trigger.source.value, payload=trigger.payload,
            )
        )
        engine.notify()

    def retry_later(self, w: WorkerRuntime, run: ActiveRun) -> None:
        """Record the lease's retry wait (it frees a cluster slot), then wake when due."""
        super().retry_later(w, run)
        self._recording.add(w.name)
        assert self._engine.nursery is not None
        self._engine.nursery.start_soon(self._record_retry_wait, w, run)

    async def _record_retry_wait(self, w: WorkerRuntime, run: ActiveRun) -> None:
        try:
            await persist(
                self._engine, self._cluster.retry_wait, run,
                max(0.0, run.retry_at - trio.current_time()),
            )
        except WriteRefused:
            pass  # counted; the lease stays `running` until the retry resumes it
        except LeaseLost:
            lease_lost(self._engine, run)
            if w.run is run and w.phase is Phase.RETRY_WAIT:
                w.phase, w.run = Phase.IDLE, None
                self._engine.attempting.discard(w.name)
        finally:
            self._recording.discard(w.name)
            self.want(w)

    # ------------------------------------------------------------------ schedules

    def init_schedule(self, w: WorkerRuntime, now: float) -> None:
        """A scheduled worker's cursor is the database's: look at it at once."""
        spec = w.spec
        if spec.mode is not Mode.SCHEDULED:
            super().init_schedule(w, now)
            return
        if spec.cron is not None:
            w.period = cron_period(spec.cron, spec.timezone, self._engine.now())
        else:
            w.period = spec.interval_seconds
        w.next_grid = w.next_due = now
        heapq.heappush(self._heap, (now, next(self._order), w.name))

    async def _advance(self, due: list[WorkerRuntime]) -> None:
        nexts, db_now = await self._cluster.advance_schedules(due)
        now = trio.current_time()
        for w in due:
            nxt = nexts.get(w.name)
            if nxt is not None:
                w.next_grid = w.next_due = t = now + (nxt - db_now).total_seconds()
                heapq.heappush(self._heap, (t, next(self._order), w.name))

    # ------------------------------------------------------------------ the loop

    async def run(self, nursery: trio.Nursery) -> None:
        """Dispatch until the orchestrator stops running; heartbeats and wake-ups beside."""
        engine = self._engine
        assert self.execute is not None
        self._pool = RunnerPool(nursery, self.execute)
        nursery.start_soon(self._cluster.serve)
        while engine.running:
            changed = engine.change_event()
            now = trio.current_time()
            self._wake_due(now)
            await self._dispatch(now)
            if self._heap:
                with trio.move_on_at(self._heap[0][0]):
                    await changed.wait()
            else:
                await changed.wait()

    async def _dispatch(self, now: float) -> None:
        engine = self._engine
        health = engine.store_health
        node_id = self._cluster.node_id
        try:
            workers = engine.workers
            due = [
                w for name in self.ready
                if (w := workers[name]).spec.mode is Mode.SCHEDULED
                and w.next_due is not None and w.next_due <= now
            ]
            if due:
                await self._advance(due)
            cluster = self._cluster
            if not cluster.self_fenced:
                await self._claim(now)
                if trio.current_time() - cluster.last_reap_t >= POLL_S:
                    await cluster.reap()  # the sweep, when this node claims nothing
            view = engine.cluster
            if view is None or trio.current_time() - view.refreshed_t >= REFRESH_S:
                await refresh(cluster)
        except NodeFenced:
            await self._cluster.on_fenced(node_id)
        except StoreError as exc:
            # The poll looks again within a second; health shows the failure meanwhile.
            health.failing += 1
            health.last_error = describe(exc)
        else:
            if health.failing:
                health.failing = 0

    async def _claim(self, now: float) -> None:
        engine = self._engine
        workers = engine.workers
        retries = [
            w for name in self.ready
            if (w := workers[name]).phase is Phase.RETRY_WAIT and w.run is not None
            and w.run.retry_at <= now and name not in self._recording
        ]
        self.ready.clear()
        resume: Sequence[WorkerRuntime] = retries
        try:
            while True:
                free = self._cluster.capacity - engine.slots_used
                if engine.paused or free <= 0 or not engine.running:
                    break
                admitted = await self._cluster.claim(resume, now, free)
                for run in admitted:
                    w = workers[run.record.worker]
                    self.ready.discard(w.name)
                    assert self._pool is not None
                    self._pool.submit(w, run)
                # A full batch: more may be pending (nothing else would wake this node
                # for them before a run ends or the poll), so claim again while there is
                # room.
                if len(admitted) < min(free, CLAIM_BATCH):
                    break
                resume, now = (), trio.current_time()
        finally:
            # retries still waiting (no slot, a blocker running, the claim failed) are
            # looked at again: nothing else would wake them, and each one's lease keeps
            # its worker from running anywhere
            self.ready.update(w.name for w in retries if w.phase is Phase.RETRY_WAIT)
