"""The dispatcher: one task over a heap of due times, starting the best ready run first.

Event-driven, never polling: the task sleeps until the earliest due time (a schedule, a
retry, a circuit's cooldown) or until something changes (a trigger arrives, a run ends,
a worker is enabled). On waking it marks what became due as ready, sorts the ready
workers (priority, then due time, then config order), asks the coordinator to admit them
while slots last, and hands each admitted run to the runner pool.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Awaitable, Callable, Sequence

import trio

from . import _events as ev
from ._circuit import CircuitEvent, circuit_transition
from ._eligibility import dispatch_key, start_blocker
from ._engine import DispatchObserver, Engine
from ._persist import change_worker
from ._records import Circuit, Source, Trigger
from ._runner_pool import RunnerPool
from ._runtime import ActiveRun, Phase, QueuedTrigger, WorkerRuntime
from ._schedule import cron_period, next_cron_time, next_grid_time
from ._spec import Mode
from ._store import Coordinator, WorkerChange

#: A ready worker with its dispatch key (`dispatch_key`: priority, due time, order).
_Candidate = tuple[tuple[int, float, int], WorkerRuntime]


class Dispatcher:
    """Decides when to look for runs to start, and starts them."""

    def __init__(
        self,
        engine: Engine,
        coordinator: Coordinator,
    ) -> None:
        self._engine = engine
        self._coordinator = coordinator
        #: what a runner does with an admitted run (`Outcomes.execute`): set by the
        #: facade, which builds the outcomes on top of this dispatcher.
        self.execute: Callable[[WorkerRuntime, ActiveRun], Awaitable[None]] | None = None
        self._heap: list[tuple[float, int, str]] = []
        self._order = itertools.count()
        #: workers that may want to start now (checked, and dropped, when looked at).
        self.ready: set[str] = set()
        self._pool: RunnerPool[WorkerRuntime, ActiveRun] | None = None

    # ------------------------------------------------------------------ wanting

    def want(self, w: WorkerRuntime) -> None:
        """`w` may want to start now: look at it at the next dispatch."""
        self.ready.add(w.name)
        self._engine.notify()

    def offer(self, w: WorkerRuntime) -> None:
        """`w` may want to start now: start it at once if nothing else is waiting.

        With no other worker ready there is no order to respect, so what the dispatcher
        would do on waking is start `w` if it may: doing it here, when the coordinator
        can decide at once (`admit_now`), saves waking it.
        """
        engine = self._engine
        if (
            not self.ready
            and engine.running
            and not engine.paused
            and engine.slots_used < engine.config.max_concurrent_workers
        ):
            now = trio.current_time()
            due = _due(w, now)
            if due is not None:
                run = self._coordinator.admit_now(w, now)
                if run is not None:
                    if engine.observer is not None:
                        engine.observer.started(w, due, now)
                    self._start(w, run, now)
                    return
        self.ready.add(w.name)  # `want`, inline: the path of every trigger
        engine.notify()

    def queue(self, w: WorkerRuntime, trigger: Trigger) -> None:
        """Queue an accepted (stored) trigger for `w`, and start it if it may start now."""
        engine = self._engine
        w.queue(QueuedTrigger(trigger=trigger, queued_t=trio.current_time()))
        engine.pending_count += 1
        engine.publish(
            ev.TriggerAccepted(
                ts=trigger.accepted_at,
                worker=w.name,
                trigger_id=trigger.id,
                source=trigger.source.value,
                payload=trigger.payload,
            )
        )
        self.offer(w)

    def wake_at(self, t: float, w: WorkerRuntime) -> None:
        heapq.heappush(self._heap, (t, next(self._order), w.name))
        self._engine.notify()

    def retry_later(self, w: WorkerRuntime, run: ActiveRun) -> None:
        """`w`'s run waits to retry: look at it again when its next attempt is due.

        (A cluster's dispatcher also records the wait, which frees a cluster slot.)
        """
        self.wake_at(run.retry_at, w)

    # ------------------------------------------------------------------ the loop

    async def run(self, nursery: trio.Nursery) -> None:
        """Dispatch until the orchestrator stops running."""
        engine = self._engine
        assert self.execute is not None
        self._pool = RunnerPool(nursery, self.execute)
        while engine.running:
            changed = engine.change_event()
            now = trio.current_time()
            self._wake_due(now)
            await self._start_ready(now)
            if self._heap:
                with trio.move_on_at(self._heap[0][0]):
                    await changed.wait()
            else:
                await changed.wait()

    def _wake_due(self, now: float) -> None:
        """Pop every heap entry that is due: those workers may want to start now."""
        heap = self._heap
        workers = self._engine.workers
        while heap and heap[0][0] <= now:
            _, _, name = heapq.heappop(heap)
            w = workers.get(name)
            if w is None:  # removed by a reload since
                continue
            self.ready.add(name)
            cooldown = w.spec.circuit_cooldown_seconds
            opened = w.breaker.opened_at
            if w.circuit is Circuit.OPEN and cooldown and opened is not None:
                if opened + cooldown <= now:
                    self._half_open(w, now)

    async def _start_ready(self, now: float) -> None:
        """Start every ready worker that may start, best first, while slots last."""
        engine = self._engine
        free = engine.config.max_concurrent_workers - engine.slots_used
        if engine.paused or free <= 0:
            if engine.observer is not None:
                _observe(engine.observer, engine, self._candidates(now), (), now)
            return
        candidates = self._candidates(now)
        if not candidates:
            return
        ready = [w for _, w in candidates]
        # A coordinator that decides in memory answers at once (no coroutine per wake).
        admitted = self._coordinator.claim_now(ready, now, free)
        if admitted is None:
            admitted = await self._coordinator.claim(ready, now, free)
        if engine.observer is not None:
            _observe(engine.observer, engine, candidates, admitted, now)
        workers = engine.workers
        for run in admitted:
            self._start(workers[run.record.worker], run, now)

    def _candidates(self, now: float) -> list[_Candidate]:
        """The ready workers that want to start now, best first (the rest leave `ready`)."""
        candidates: list[_Candidate] = []
        workers = self._engine.workers
        for name in list(self.ready):
            w = workers[name]
            due = _due(w, now)
            if due is None:
                self.ready.discard(name)
            else:
                candidates.append((dispatch_key(w, due), w))
        candidates.sort(key=lambda c: c[0])
        return candidates

    def _start(self, w: WorkerRuntime, run: ActiveRun, now: float) -> None:
        self.ready.discard(w.name)
        if run.attempt == 1 and run.record.trigger.source is Source.SCHEDULE:
            self._advance_schedule(w, now)
        assert self._pool is not None
        self._pool.submit(w, run)

    # ------------------------------------------------------------------ schedules

    def init_schedule(self, w: WorkerRuntime, now: float) -> None:
        """Set `w`'s first due time at start: continue a stored schedule, or begin one."""
        spec = w.spec
        if spec.mode is Mode.CONTINUOUS:
            w.idle_since = now
            self.ready.add(w.name)
            return
        if w.pending:
            self.ready.add(w.name)
        if spec.mode is not Mode.SCHEDULED:
            return
        if spec.cron is not None:
            self._schedule_cron(w, now)
            return
        w.period = spec.interval_seconds
        last_start_t = self._engine.trio_time_of(w.last_start)
        if last_start_t is not None:
            # Continue the stored schedule; due times missed while down coalesce into one.
            grid = last_start_t + spec.interval_seconds
        elif spec.run_at_start:
            grid = now
        else:
            grid = now + spec.interval_seconds
        self._set_due(w, grid)

    def _set_due(self, w: WorkerRuntime, grid: float) -> None:
        w.next_grid = grid
        jitter = w.spec.jitter_seconds
        w.next_due = grid + (self._engine.rng.uniform(0, jitter) if jitter > 0 else 0.0)
        self.wake_at(w.next_due, w)

    def _schedule_cron(self, w: WorkerRuntime, now: float) -> None:
        spec = w.spec
        assert spec.cron is not None
        wall_now = self._engine.now()
        fire = next_cron_time(spec.cron, spec.timezone, wall_now)
        w.period = cron_period(spec.cron, spec.timezone, wall_now)
        self._set_due(w, now + (fire - wall_now).total_seconds())

    def _advance_schedule(self, w: WorkerRuntime, started: float) -> None:
        """A scheduled run started: the next due time is the next one after its start
        (every due time it overran coalesces into it)."""
        if w.spec.cron is not None:
            self._schedule_cron(w, started)
        else:
            assert w.next_grid is not None
            self._set_due(w, next_grid_time(w.next_grid, w.spec.interval_seconds, started))

    def _half_open(self, w: WorkerRuntime, now: float) -> None:
        engine = self._engine
        engine.health_watch.add(w.name)
        w.breaker = circuit_transition(
            w.breaker, CircuitEvent.COOLDOWN_ELAPSED, now=now,
            max_consecutive_failures=w.spec.max_consecutive_failures,
        )
        assert engine.nursery is not None
        engine.nursery.start_soon(
            change_worker, engine, self._coordinator, w, WorkerChange.HALF_OPEN
        )
        engine.publish(
            ev.WorkerEnabled(
                ts=engine.now(), worker=w.name, reason="circuit half-open: one trial run"
            )
        )


def _observe(
    observer: DispatchObserver,
    engine: Engine,
    candidates: list[_Candidate],
    admitted: Sequence[ActiveRun],
    now: float,
) -> None:
    """Tell the observer which candidates start, and why each of the others waits."""
    world = engine.world()
    starting = {run.record.worker for run in admitted}
    for (_, due, _), w in candidates:
        if w.name in starting:
            observer.started(w, due, now)
        else:
            observer.waiting(w, due, start_blocker(w, world, now) or "starting", now)


def _due(w: WorkerRuntime, now: float) -> float | None:
    """When `w` started wanting to start (its due time), or None if it does not now."""
    if w.phase is Phase.RETRY_WAIT and w.run is not None:
        return w.run.retry_at if w.run.retry_at <= now else None
    return w.demand_since(now)
