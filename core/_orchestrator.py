"""The orchestrator: one dispatcher task over a heap of due times, runs in a nursery."""

from __future__ import annotations

import heapq
import inspect
import itertools
import json
import math
import random
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import outcome
import trio

from . import _events as ev
from ._circuit import CircuitEvent, CircuitState, circuit_transition
from ._context import JobContext, _in_trio
from ._eligibility import Lifecycle, World, dispatch_key, start_blocker, waiting_reason
from ._errors import ConfigError, JobdeckError, NotRunning, UnknownWorker
from ._graph import graph_problems, symmetric_blocks
from ._health import Health, HealthReport, is_stuck, overall_health, worker_health
from ._records import (
    Circuit,
    DeadLetter,
    RunRecord,
    RunStatus,
    Source,
    StoredState,
    Trigger,
    WorkerState,
)
from ._runtime import ActiveRun, Outcome, Phase, QueuedTrigger, WorkerRuntime
from ._schedule import backoff_delay, cron_period, next_cron_time, next_grid_time
from ._snapshot import OrchestratorSnapshot, WorkerSnapshot
from ._spec import Mode, OrchestratorConfig, WorkerSpec
from ._store import DeadLetterDraft, MemoryStore, Store
from ._worklog import WorkerLog, ensure_level

if TYPE_CHECKING:
    from ._config import JobdeckConfig

WorkerFn = Callable[[JobContext], Any]

#: Control methods `request()` accepts.
CONTROL_ACTIONS = frozenset(
    {"trigger", "enable", "disable", "pause", "resume", "replay", "delete_dead_letter",
     "purge_dead_letters", "stop"}
)
REQUEST_QUEUE_SIZE = 1000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _only_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(trio.Cancelled)[1] is None
    return False


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    )


class Orchestrator:
    """Runs named workers on schedules, on demand or in a loop, and keeps them coordinated.

    Register workers, then run it in a nursery::

        orch = Orchestrator(OrchestratorConfig(max_concurrent_workers=3))
        orch.register("fetch", fetch, interval_seconds=60, priority="high")
        async with trio.open_nursery() as nursery:
            await nursery.start(orch.run)
            await orch.trigger("fetch", {"since": "yesterday"})
            ...
            orch.stop()

    Everything that reads state gets frozen snapshots (`snapshot()`); every change goes
    through the control methods (`trigger`, `enable`, `disable`, `pause`, `resume`,
    `replay`, `delete_dead_letter`, `purge_dead_letters`, `stop`).
    """

    def __init__(
        self,
        config: OrchestratorConfig | None = None,
        *,
        store: Store | None = None,
        now: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config if config is not None else OrchestratorConfig()
        self.store: Store = (
            store
            if store is not None
            else MemoryStore(history_per_worker=self.config.history_per_worker)
        )
        self.events = ev.EventBus()
        self._now = now
        self._rng = rng if rng is not None else random.Random()
        self._workers: dict[str, WorkerRuntime] = {}
        self._dependents: dict[str, list[str]] = {}
        self._blockers: dict[str, frozenset[str]] = {}
        self._lifecycle = Lifecycle.CREATED
        self._paused = False
        self._stop_requested = False
        self._grace: float | None = None
        self._skip_grace = False
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._slots_used = 0
        self._wanting: set[str] = set()
        self._changed = trio.Event()
        self._stopped = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._idle_runners: list[trio.lowlevel.Task] = []
        self._world_view: World | None = None
        #: workers holding a slot now (their health can turn stuck or stalled with time).
        self._attempting: set[str] = set()
        #: workers whose health an event may have changed since the monitor last looked.
        self._health_watch: set[str] = set()
        #: the last health report of every worker that is not ok.
        self._unhealthy: dict[str, tuple[HealthReport, bool]] = {}
        self._limiter: trio.CapacityLimiter | None = None
        self._logs: dict[str, deque[ev.LogRecordView]] = {}
        self.log_lines_dropped = 0
        self._pending_count = 0
        self._dlq_size = 0
        self._store_errors = 0
        self._last_store_error: str | None = None
        self._loop_lags: deque[float] = deque(maxlen=10)
        self._last_drop_count = 0
        self._last_drop_t = -math.inf
        self._health = HealthReport(Health.OK)
        self._started_t = 0.0
        self._started_at: datetime | None = None
        self._last_t = 0.0
        self._interrupted_count = 0
        #: The HTTP API's bound address, if one serves this orchestrator: set it before
        #: `run` and `orchestrator_started` carries it as `http`.
        self.http_address: str | None = None
        self._requests_send, self._requests = trio.open_memory_channel[
            tuple[str, Callable[..., Awaitable[Any]], tuple[Any, ...]]
        ](REQUEST_QUEUE_SIZE)
        ensure_level()

    # ------------------------------------------------------------------ registration

    @classmethod
    def from_config(
        cls,
        config: JobdeckConfig,
        *,
        store: Store | None = None,
        now: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
    ) -> Orchestrator:
        """An orchestrator with every worker of a loaded config registered."""
        orch = cls(config.orchestrator, store=store, now=now, rng=rng)
        for registration in config.workers:
            orch.add_worker(registration.spec, registration.fn, fn_ref=registration.fn_ref)
        return orch

    def register(self, name: str, fn: WorkerFn, **spec: Any) -> WorkerSpec:
        """Register `fn` as worker `name`; keyword arguments are WorkerSpec fields.

        Raises:
            ValueError: a spec value is invalid or the name is taken.
        """
        worker_spec = WorkerSpec(name=name, **spec)
        self.add_worker(worker_spec, fn)
        return worker_spec

    def worker(self, name: str | None = None, **spec: Any) -> Callable[[WorkerFn], WorkerFn]:
        """Decorator form of `register`; the name defaults to the function's, dashed."""

        def decorate(fn: WorkerFn) -> WorkerFn:
            self.register(name or fn.__name__.replace("_", "-"), fn, **spec)
            return fn

        return decorate

    def add_worker(self, spec: WorkerSpec, fn: WorkerFn, *, fn_ref: str | None = None) -> None:
        """Register a worker from a ready-made spec."""
        if self._lifecycle is not Lifecycle.CREATED:
            raise RuntimeError("workers must be registered before the orchestrator runs")
        if spec.name in self._workers:
            raise ValueError(f"worker {spec.name!r} is already registered")
        if not callable(fn):
            raise TypeError(f"worker {spec.name!r}: fn must be callable, got {fn!r}")
        from ._spec import worker_function_problem

        problem = worker_function_problem(fn)
        if problem is not None:
            raise TypeError(f"worker {spec.name!r}: fn {problem}")
        self._workers[spec.name] = WorkerRuntime(
            spec=spec,
            fn=fn,
            fn_ref=fn_ref or f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', fn)}",
            index=len(self._workers),
            is_async=_is_async(fn),
            enabled=spec.enabled,
        )

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until `stop()` and the graceful shutdown after it have finished.

        Use `await nursery.start(orch.run)`: it returns once the store is open, state is
        restored and the dispatcher is live.

        Raises:
            ConfigError: workers refer to unknown names or depend on each other in a cycle.
            StoreError: the store cannot be opened.
        """
        if self._lifecycle is not Lifecycle.CREATED:
            raise RuntimeError("an Orchestrator runs once; make a new one")
        specs = {name: w.spec for name, w in self._workers.items()}
        problems = graph_problems(specs)
        if problems:
            raise ConfigError(problems)
        self._blockers = symmetric_blocks(specs.values())
        self._dependents = {name: [] for name in specs}
        for spec in specs.values():
            for dep in spec.depends_on:
                self._dependents[dep].append(spec.name)
        self._limiter = trio.CapacityLimiter(self.config.max_concurrent_workers)
        stored = await self.store.open()
        self._started_t = self._last_t = trio.current_time()
        self._started_at = self._now()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            # Started first, so the log reads in order: what a crash left is recovered next.
            self._publish(
                ev.OrchestratorStarted(
                    ts=self._now(),
                    workers=len(self._workers),
                    max_concurrent_workers=self.config.max_concurrent_workers,
                    http=self.http_address,
                )
            )
            await self._restore(stored)
            self._lifecycle = Lifecycle.RUNNING
            self._health_watch.update(self._workers)
            for w in self._workers.values():
                self._init_schedule(w, self._started_t)
            nursery.start_soon(self._monitor)
            nursery.start_soon(self._serve_requests)
            if self._stop_requested:
                self._lifecycle = Lifecycle.STOPPING
            task_status.started()
            await self._dispatch_loop()
            await self._drain()
            nursery.cancel_scope.cancel()

    def stop(self, grace: float | None = None) -> None:
        """Stop gracefully: no new runs; in-flight attempts get `grace` seconds.

        A second call skips what is left of the grace (runs are still recorded
        `interrupted` and the store still flushed). Safe to call before `run`.
        """
        if self._lifecycle is Lifecycle.STOPPED:
            return
        if self._lifecycle is Lifecycle.STOPPING:
            self._skip_grace = True
            self._notify()
            return
        if grace is not None:
            self._grace = grace
        if self._lifecycle is Lifecycle.CREATED:
            self._stop_requested = True
            return
        self._lifecycle = Lifecycle.STOPPING
        self._notify()

    async def wait_stopped(self) -> None:
        """Return once shutdown has recorded everything and closed the store.

        Unlike `run` returning, this does not wait for workers that ignore cancellation.
        """
        await self._stopped.wait()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    # ------------------------------------------------------------------ control

    def _worker(self, name: str) -> WorkerRuntime:
        try:
            return self._workers[name]
        except KeyError:
            raise UnknownWorker(name) from None

    def _require_started(self) -> None:
        if self._lifecycle is Lifecycle.CREATED or self._lifecycle is Lifecycle.STOPPED:
            raise NotRunning(f"the orchestrator is {self._lifecycle.value}")

    async def trigger(self, name: str, payload: Any = None) -> str:
        """Ask for one run of worker `name`; returns the trigger id once it is stored.

        A trigger for a running or disabled worker is kept and runs later; one accepted
        while stopping is stored and runs after the next start.

        Raises:
            UnknownWorker: no worker has that name.
            ValueError: the payload is not JSON-serialisable.
            NotRunning: the orchestrator has not started or has stopped.
        """
        return await self._accept(self._worker(name), Source.MANUAL, payload)

    async def _accept(self, w: WorkerRuntime, source: Source, payload: Any) -> str:
        self._require_started()
        try:
            if payload is not None:
                json.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"payload for {w.name!r} is not JSON: {exc}") from None
        trigger = Trigger(worker=w.name, source=source, payload=payload, accepted_at=self._now())
        await trio.lowlevel.checkpoint()
        await self.store.add_trigger(trigger)
        self._queue(w, trigger)
        return trigger.id

    def _queue(self, w: WorkerRuntime, trigger: Trigger) -> None:
        w.queue(QueuedTrigger(trigger=trigger, queued_t=trio.current_time()))
        self._pending_count += 1
        self._publish(
            ev.TriggerAccepted(
                ts=trigger.accepted_at,
                worker=w.name,
                trigger_id=trigger.id,
                source=trigger.source.value,
                payload=trigger.payload,
            )
        )
        self._want(w)

    async def enable(self, name: str) -> None:
        """Enable a worker; closes an open circuit and resets its failure count."""
        w = self._worker(name)
        self._require_started()
        w.enabled = True
        w.breaker = circuit_transition(
            w.breaker, CircuitEvent.ENABLED, now=trio.current_time(),
            max_consecutive_failures=w.spec.max_consecutive_failures,
        )
        self._health_watch.add(name)
        await self._save_worker(w)
        self._publish(ev.WorkerEnabled(ts=self._now(), worker=name, reason="enabled by operator"))
        self._want(w)

    async def disable(self, name: str) -> None:
        """Disable a worker: it starts no run (triggers are kept) until enabled."""
        w = self._worker(name)
        self._require_started()
        w.enabled = False
        self._health_watch.add(name)
        await self._save_worker(w)
        self._publish(ev.WorkerDisabled(ts=self._now(), worker=name, reason="disabled by operator"))
        self._notify()

    def request(self, action: str, *args: Any) -> None:
        """Ask for a control action without awaiting it: for callers outside trio tasks.

        The dashboard runs on the same thread as trio (guest mode) but not inside a trio
        task, so it cannot await `trigger` or `enable`; it calls, for example,
        `orch.request("trigger", "fetch", {"day": 3})`. The action runs soon in a trio
        task; its failure is published as a `control_failed` event.

        Args:
            action: the name of a control method: trigger, enable, disable, pause,
                resume, replay, delete_dead_letter, purge_dead_letters.
            args: that method's arguments.

        Raises:
            ValueError: `action` is not a control method.
            trio.WouldBlock: too many requests are already waiting.
        """
        if action not in CONTROL_ACTIONS:
            raise ValueError(f"unknown control action {action!r}")
        method = getattr(self, action)
        self._requests_send.send_nowait((action, method, args))

    async def _serve_requests(self) -> None:
        async for action, method, args in self._requests:
            try:
                result = method(*args)
                if inspect.isawaitable(result):
                    await result
            except (JobdeckError, ValueError, LookupError) as exc:
                self._publish(ev.ControlFailed(ts=self._now(), action=action, error=str(exc)))

    def pause(self) -> None:
        """Start no new runs or retries until `resume()`; running attempts go on."""
        if not self._paused:
            self._paused = True
            self._publish(ev.OrchestratorPaused(ts=self._now()))
            self._notify()

    def resume(self) -> None:
        """Undo `pause()`."""
        if self._paused:
            self._paused = False
            self._publish(ev.OrchestratorResumed(ts=self._now()))
            self._wanting.update(self._workers)
            self._notify()

    @property
    def paused(self) -> bool:
        return self._paused

    async def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """DLQ entries, newest first."""
        return await self.store.dlq_list(limit)

    async def dead_letter(self, entry_id: int) -> DeadLetter:
        """One DLQ entry. Raises UnknownDeadLetter."""
        return await self.store.dlq_get(entry_id)

    async def replay(self, entry_id: int) -> str:
        """Move a DLQ entry back to pending: a new `replay` trigger with the same payload.

        Returns:
            The new trigger's id.

        Raises:
            UnknownDeadLetter: no entry with that id.
            UnknownWorker: the entry's worker is no longer registered.
        """
        self._require_started()
        entry = await self.store.dlq_get(entry_id)
        w = self._worker(entry.worker)
        trigger = Trigger(
            worker=w.name, source=Source.REPLAY, payload=entry.payload, accepted_at=self._now()
        )
        await self.store.dlq_replay(entry_id, trigger)
        self._dlq_size -= 1
        self._publish(
            ev.DeadLetterReplayed(
                ts=trigger.accepted_at, worker=w.name, dlq_id=entry_id, trigger_id=trigger.id
            )
        )
        self._queue(w, trigger)
        return trigger.id

    async def delete_dead_letter(self, entry_id: int) -> None:
        """Remove one DLQ entry. Raises UnknownDeadLetter."""
        await self.store.dlq_delete(entry_id)
        self._dlq_size -= 1
        self._publish(ev.DeadLetterDeleted(ts=self._now(), dlq_id=entry_id))

    async def purge_dead_letters(self) -> int:
        """Remove every DLQ entry; returns how many."""
        count = await self.store.dlq_purge()
        self._dlq_size = 0
        self._publish(ev.DeadLetterDeleted(ts=self._now(), count=count))
        return count

    async def history(self, worker: str | None = None, limit: int = 50) -> list[RunRecord]:
        """Recent runs, newest first, of one worker or all."""
        if worker is not None:
            self._worker(worker)
        return await self.store.runs(worker, limit)

    def logs(self, worker: str | None = None, limit: int = 200) -> list[ev.LogRecordView]:
        """The last log lines of one worker, or of all workers merged by time."""
        if worker is not None:
            self._worker(worker)
            return list(self._logs.get(worker, ()))[-limit:]
        merged = sorted(
            itertools.chain.from_iterable(self._logs.values()), key=lambda line: line.ts
        )
        return merged[-limit:]

    def pending_triggers(self, worker: str) -> list[Trigger]:
        """The triggers waiting for a worker's next runs, oldest first.

        Raises:
            UnknownWorker: no worker has that name.
        """
        return [queued.trigger for queued in self._worker(worker).pending]

    @property
    def worker_names(self) -> list[str]:
        return list(self._workers)

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> OrchestratorSnapshot:
        """The orchestrator and every worker, frozen, as of now."""
        now_t = self._trio_now()
        world = self._world()
        wall_now = self._now()
        workers = tuple(
            self._worker_snapshot(w, world, now_t, wall_now) for w in self._workers.values()
        )
        if self._lifecycle is Lifecycle.RUNNING and self._paused:
            state = "paused"
        else:
            state = self._lifecycle.value
        return OrchestratorSnapshot(
            state=state,
            health=self._health.health.value,
            health_reasons=self._health.reasons,
            running=self._slots_used,
            max_concurrent_workers=self.config.max_concurrent_workers,
            pending=self._pending_count,
            dlq_size=self._dlq_size,
            started_at=self._started_at,
            uptime_s=now_t - self._started_t if self._started_at else 0.0,
            loop_lag_s=self._loop_lags[-1] if self._loop_lags else 0.0,
            events_published=self.events.published,
            events_dropped=self.events.dropped,
            store_errors=self._store_errors,
            taken_at=wall_now,
            workers=workers,
        )

    def _trio_now(self) -> float:
        try:
            self._last_t = trio.current_time()
        except RuntimeError:
            pass  # outside trio (after run): time stands still
        return self._last_t

    def _wall(self, t: float | None, now_t: float, wall_now: datetime) -> datetime | None:
        if t is None or math.isinf(t):
            return None
        return wall_now + timedelta(seconds=t - now_t)

    def _worker_snapshot(
        self, w: WorkerRuntime, world: World, now_t: float, wall_now: datetime
    ) -> WorkerSnapshot:
        run = w.run
        if w.phase is Phase.RUNNING:
            state = "stuck" if w.stuck else "running"
        elif w.phase is Phase.RETRY_WAIT:
            state = "retrying"
        elif not w.may_run:
            state = "disabled"
        elif w.demand_since(now_t) is not None:
            state = "waiting"
        else:
            state = "idle"
        return WorkerSnapshot(
            name=w.name,
            spec=w.spec,
            fn=w.fn_ref,
            state=state,
            reason=waiting_reason(w, world, now_t),
            health=w.health,
            health_reasons=w.health_reasons,
            enabled=w.enabled,
            circuit=w.circuit.value,
            consecutive_failures=w.consecutive_failures,
            attempt=run.attempt if run is not None else None,
            max_attempts=w.spec.max_retries + 1,
            runs_ok=w.runs_ok,
            runs_failed=w.runs_failed,
            pending=len(w.pending),
            last_start=w.last_start,
            last_success=w.last_success,
            last_error=w.last_error,
            last_traceback=w.last_traceback,
            last_duration_s=w.last_duration_s,
            durations=tuple(w.durations),
            next_due=self._wall(w.next_due, now_t, wall_now)
            if w.spec.mode is Mode.SCHEDULED
            else None,
            running_since=self._wall(run.attempt_started_t, now_t, wall_now)
            if run is not None and w.phase is Phase.RUNNING
            else None,
            run_id=run.record.id if run is not None else None,
        )

    def _world(self) -> World:
        """The facts eligibility reads, brought up to date (one object, reused)."""
        world = self._world_view
        if world is None or world.blockers is not self._blockers:
            world = self._world_view = World(
                workers=self._workers,
                blockers=self._blockers,
                slots_used=0,
                max_slots=self.config.max_concurrent_workers,
            )
        world.slots_used = self._slots_used
        world.lifecycle = self._lifecycle
        world.paused = self._paused
        return world

    # ------------------------------------------------------------------ dispatcher

    def _notify(self) -> None:
        self._changed.set()

    def _change_event(self) -> trio.Event:
        """An event the next `_notify()` sets (a waiter takes it before it looks)."""
        if self._changed.is_set():
            self._changed = trio.Event()
        return self._changed

    def _want(self, w: WorkerRuntime) -> None:
        """`w` may want to run now: start it at once if nothing else is waiting."""
        if not self._wanting and self._lifecycle is Lifecycle.RUNNING:
            # Fast path: with no other worker waiting there is no order to respect, so
            # what the dispatcher would do on waking is start `w` if it is eligible.
            now = trio.current_time()
            if (
                not self._paused
                and self._slots_used < self.config.max_concurrent_workers
                and self._due(w, now) is not None
                and start_blocker(w, self._world(), now) is None
            ):
                self._start(w, now)
                return
        self._wanting.add(w.name)
        self._notify()

    def _wake_at(self, t: float, w: WorkerRuntime) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), w.name))
        self._notify()

    async def _dispatch_loop(self) -> None:
        while self._lifecycle is Lifecycle.RUNNING:
            changed = self._change_event()
            now = trio.current_time()
            self._wake_due(now)
            self._start_ready(now)
            if self._heap:
                with trio.move_on_at(self._heap[0][0]):
                    await changed.wait()
            else:
                await changed.wait()

    def _wake_due(self, now: float) -> None:
        """Pop every heap entry that is due: those workers may want to start now."""
        while self._heap and self._heap[0][0] <= now:
            _, _, name = heapq.heappop(self._heap)
            w = self._workers[name]
            self._wanting.add(name)
            cooldown = w.spec.circuit_cooldown_seconds
            opened = w.breaker.opened_at
            if w.circuit is Circuit.OPEN and cooldown and opened is not None:
                if opened + cooldown <= now:
                    self._half_open(w, now)

    def _start_ready(self, now: float) -> None:
        """Start every wanting worker that is eligible, best first, while slots last."""
        if self._paused or self._slots_used >= self.config.max_concurrent_workers:
            return
        candidates: list[tuple[tuple[int, float, int], WorkerRuntime]] = []
        for name in list(self._wanting):
            w = self._workers[name]
            due = self._due(w, now)
            if due is None:
                self._wanting.discard(name)
            else:
                candidates.append((dispatch_key(w, due), w))
        candidates.sort(key=lambda c: c[0])
        world = self._world()
        for _, w in candidates:
            if self._slots_used >= self.config.max_concurrent_workers:
                break
            world.slots_used = self._slots_used
            if start_blocker(w, world, now) is None:
                self._start(w, now)

    @staticmethod
    def _due(w: WorkerRuntime, now: float) -> float | None:
        if w.phase is Phase.RETRY_WAIT and w.run is not None:
            return w.run.retry_at if w.run.retry_at <= now else None
        return w.demand_since(now)

    def _start(self, w: WorkerRuntime, now: float) -> None:
        if w.phase is Phase.RETRY_WAIT and w.run is not None:
            run = w.run
            run.attempt += 1
        else:
            trigger = self._take_trigger(w, now)
            run = ActiveRun(
                record=RunRecord(worker=w.name, trigger=trigger, started_at=self._now())
            )
            w.run = run
            w.last_start_seq = next(self._seq)
            w.last_start = run.record.started_at
            if trigger.source is Source.SCHEDULE:
                self._advance_schedule(w, now)
        w.phase = Phase.RUNNING
        w.stuck = False
        self._slots_used += 1
        self._wanting.discard(w.name)
        self._attempting.add(w.name)
        run.attempt_started_t = now
        run.attempt_deadline_t = math.inf
        run.cancel_requested_t = None
        if self._idle_runners:
            trio.lowlevel.reschedule(self._idle_runners.pop(), outcome.Value((w, run)))
        else:
            assert self._nursery is not None
            self._nursery.start_soon(self._runner, w, run)

    async def _runner(self, w: WorkerRuntime, run: ActiveRun) -> None:
        """Run attempts one after another: handing an attempt to an idle runner is
        cheaper than spawning a task for each, and the pool only grows to the peak
        number of attempts running at once."""
        task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._idle_runners.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        while True:
            await self._run_attempt(w, run)
            self._idle_runners.append(task)
            w, run = await trio.lowlevel.wait_task_rescheduled(abort)

    def _take_trigger(self, w: WorkerRuntime, now: float) -> Trigger:
        schedule_due = (
            w.next_due
            if w.spec.mode is Mode.SCHEDULED and w.next_due is not None and w.next_due <= now
            else None
        )
        if w.pending and (schedule_due is None or w.pending[0].queued_t <= schedule_due):
            self._pending_count -= 1
            return w.take().trigger
        source = Source.SCHEDULE if schedule_due is not None else Source.CONTINUOUS
        return Trigger(worker=w.name, source=source, accepted_at=self._now())

    # ------------------------------------------------------------------ schedules

    def _init_schedule(self, w: WorkerRuntime, now: float) -> None:
        spec = w.spec
        if spec.mode is Mode.CONTINUOUS:
            w.idle_since = now
            self._wanting.add(w.name)
            return
        if w.pending:
            self._wanting.add(w.name)
        if spec.mode is not Mode.SCHEDULED:
            return
        if spec.cron is not None:
            self._schedule_cron(w, now)
            return
        w.period = spec.interval_seconds
        last_start_t = self._trio_time_of(w.last_start)
        if last_start_t is not None:
            # Continue the stored schedule; due times missed while down coalesce into one.
            grid = last_start_t + spec.interval_seconds
        elif spec.run_at_start:
            grid = now
        else:
            grid = now + spec.interval_seconds
        self._set_due(w, grid)

    def _trio_time_of(self, wall: datetime | None) -> float | None:
        """A stored wall time on trio's clock, through the pair of readings taken at start.

        (Reading the wall clock again for each conversion would shift every restored
        schedule by however long start-up has taken so far.)
        """
        if wall is None or self._started_at is None:
            return None
        return self._started_t + (wall - self._started_at).total_seconds()

    def _set_due(self, w: WorkerRuntime, grid: float) -> None:
        w.next_grid = grid
        jitter = w.spec.jitter_seconds
        w.next_due = grid + (self._rng.uniform(0, jitter) if jitter > 0 else 0.0)
        self._wake_at(w.next_due, w)

    def _schedule_cron(self, w: WorkerRuntime, now: float) -> None:
        spec = w.spec
        assert spec.cron is not None
        wall_now = self._now()
        fire = next_cron_time(spec.cron, spec.timezone, wall_now)
        w.period = cron_period(spec.cron, spec.timezone, wall_now)
        self._set_due(w, now + (fire - wall_now).total_seconds())

    def _advance_schedule(self, w: WorkerRuntime, started: float) -> None:
        if w.spec.cron is not None:
            self._schedule_cron(w, started)
        else:
            assert w.next_grid is not None
            self._set_due(w, next_grid_time(w.next_grid, w.spec.interval_seconds, started))

    def _half_open(self, w: WorkerRuntime, now: float) -> None:
        self._health_watch.add(w.name)
        w.breaker = circuit_transition(
            w.breaker, CircuitEvent.COOLDOWN_ELAPSED, now=now,
            max_consecutive_failures=w.spec.max_consecutive_failures,
        )
        self._save_soon(w)
        self._publish(
            ev.WorkerEnabled(
                ts=self._now(), worker=w.name, reason="circuit half-open: one trial run"
            )
        )

    # ------------------------------------------------------------------ attempts

    async def _run_attempt(self, w: WorkerRuntime, run: ActiveRun) -> None:
        if run.attempt == 1:
            await self._persist(self.store.start_run, run.record)
        trigger = run.trigger
        self._publish(
            ev.RunStarted(
                ts=self._now(), worker=w.name, run_id=run.record.id, trigger_id=trigger.id,
                source=trigger.source.value, attempt=run.attempt, payload=trigger.payload,
            )
        )
        start = trio.current_time()
        w.heartbeat_t = start
        timeout = w.spec.timeout_seconds
        run.attempt_started_t = start
        run.attempt_deadline_t = start + timeout if timeout > 0 else math.inf
        error: BaseException | None = None
        # One scope serves both ends: its deadline is the timeout, and shutdown cancels it
        # (recording that it did in `cancel_requested_t`).
        with trio.CancelScope(deadline=run.attempt_deadline_t) as scope:
            run.cancel_scope = scope
            if run.cancel_requested_t is not None:
                scope.cancel()
            try:
                await self._call(w, self._context(w, run))
            except BaseException as exc:
                if _only_cancellation(exc):
                    raise
                error = exc
        run.cancel_scope = None
        duration = trio.current_time() - start
        if run.abandoned:
            return
        if scope.cancelled_caught and run.cancel_requested_t is not None:
            await self._interrupted(w, run, duration, "shutdown")
        elif scope.cancelled_caught or (error is None and scope.cancel_called):
            # cancel_called alone: the attempt outlived its timeout without honouring the
            # cancellation (a shield, a thread) and returned late; it still timed out.
            await self._attempt_failed(w, run, duration, f"timed out after {timeout:g}s", "")
        elif error is not None:
            tb = "".join(traceback.format_exception(error))
            await self._attempt_failed(w, run, duration, _describe(error), tb)
        else:
            await self._succeeded(w, run, duration)

    def _context(self, w: WorkerRuntime, run: ActiveRun) -> JobContext:
        trigger = run.trigger

        def beat() -> None:
            w.heartbeat_t = trio.current_time()

        return JobContext(
            worker=w.name,
            run_id=run.record.id,
            trigger_id=trigger.id,
            source=trigger.source.value,
            attempt=run.attempt,
            payload=trigger.payload,
            params=w.spec.params,
            make_log=lambda: WorkerLog(w.name, run.record.id, _in_trio, self._record_log),
            orchestrator=self,
            on_heartbeat=beat,
        )

    async def _call(self, w: WorkerRuntime, ctx: JobContext) -> None:
        if w.is_async:
            await w.fn(ctx)
        else:
            # A thread cannot be interrupted: a sync worker past its timeout keeps its
            # slot until it returns, and the health monitor flags it stuck meanwhile.
            await trio.to_thread.run_sync(w.fn, ctx, limiter=self._limiter)

    async def _succeeded(self, w: WorkerRuntime, run: ActiveRun, duration: float) -> None:
        was_half_open = w.circuit is Circuit.HALF_OPEN
        if was_half_open or w.consecutive_failures:
            w.breaker = circuit_transition(
                w.breaker, CircuitEvent.RUN_SUCCEEDED, now=trio.current_time(),
                max_consecutive_failures=w.spec.max_consecutive_failures,
            )
        ended = self._now()
        w.last_success_seq = next(self._seq)
        w.last_success = ended
        w.runs_ok += 1
        w.record(outcome=Outcome.RETRIED if run.attempt > 1 else Outcome.SUCCEEDED)
        self._record_duration(w, duration)
        follow_ups = self._dependency_triggers(w, ended)
        record = run.record.finished(
            RunStatus.SUCCEEDED, ended_at=ended, attempts=run.attempt, duration_s=duration
        )
        await self._persist(
            self.store.finish_run, record, worker=self._state_of(w),
            triggers=tuple(t for _, t in follow_ups),
        )
        self._publish(
            ev.RunSucceeded(
                ts=ended, worker=w.name, run_id=record.id, trigger_id=record.trigger.id,
                source=record.trigger.source.value, attempt=run.attempt, duration_s=duration,
            )
        )
        if was_half_open:
            self._publish(
                ev.WorkerEnabled(
                    ts=ended, worker=w.name, reason="circuit closed: trial run succeeded"
                )
            )
        for dependent, trigger in follow_ups:
            self._queue(dependent, trigger)
        self._end_run(w)

    def _dependency_triggers(
        self, w: WorkerRuntime, now: datetime
    ) -> list[tuple[WorkerRuntime, Trigger]]:
        """Triggers for `triggered` dependents whose dependencies all freshly succeeded."""
        out = []
        for name in self._dependents.get(w.name, ()):
            dependent = self._workers[name]
            if dependent.spec.mode is not Mode.TRIGGERED:
                continue
            mark = dependent.dependency_mark
            if all(
                (seq := self._workers[dep].last_success_seq) is not None and seq > mark
                for dep in dependent.spec.depends_on
            ):
                dependent.dependency_mark = next(self._seq)
                out.append(
                    (dependent, Trigger(worker=name, source=Source.DEPENDENCY, accepted_at=now))
                )
        return out

    async def _attempt_failed(
        self, w: WorkerRuntime, run: ActiveRun, duration: float, error: str, tb: str
    ) -> None:
        total = w.spec.max_retries + 1
        retries_left = run.attempt < total
        will_retry = retries_left and self._lifecycle is Lifecycle.RUNNING
        run.last_error, run.last_traceback = error, tb
        w.last_error, w.last_traceback = error, tb
        self._record_duration(w, duration)
        delay = None
        if will_retry:
            delay = backoff_delay(
                run.attempt, w.spec.retry_backoff_seconds, w.spec.retry_backoff_max_seconds,
                self._rng,
            )
        self._publish(
            ev.AttemptFailed(
                ts=self._now(), worker=w.name, run_id=run.record.id,
                trigger_id=run.trigger.id, source=run.trigger.source.value,
                attempt=run.attempt, duration_s=duration, error=error, will_retry=will_retry,
                retry_in_s=delay,
            )
        )
        if delay is not None:
            run.retry_at = trio.current_time() + delay
            w.phase = Phase.RETRY_WAIT
            self._attempting.discard(w.name)
            self._slots_used -= 1
            self._wake_at(run.retry_at, w)
        elif retries_left:
            # Stopping: the retry would have run; the trigger goes back to pending instead.
            await self._interrupted(w, run, duration, "shutdown")
        else:
            await self._run_failed(w, run, duration, error, tb)

    async def _run_failed(
        self, w: WorkerRuntime, run: ActiveRun, duration: float, error: str, tb: str
    ) -> None:
        before = w.breaker
        w.breaker = circuit_transition(
            before, CircuitEvent.RUN_FAILED, now=trio.current_time(),
            max_consecutive_failures=w.spec.max_consecutive_failures,
        )
        w.runs_failed += 1
        w.record(outcome=Outcome.FAILED)
        ended = self._now()
        record = run.record.finished(
            RunStatus.FAILED, ended_at=ended, attempts=run.attempt, duration_s=duration,
            error=error,
        )
        dlq_id = await self._persist(
            self.store.finish_run, record, worker=self._state_of(w),
            dead_letter=DeadLetterDraft(error=error, traceback=tb),
        )
        self._dlq_size += 1
        source = record.trigger.source.value
        self._publish(
            ev.RunFailed(
                ts=ended, worker=w.name, run_id=record.id, trigger_id=record.trigger.id,
                source=source, attempt=run.attempt, duration_s=duration, error=error,
            )
        )
        self._publish(
            ev.DeadLettered(
                ts=ended, worker=w.name, run_id=record.id, trigger_id=record.trigger.id,
                source=source, attempt=run.attempt, dlq_id=dlq_id or 0, error=error,
                payload=record.trigger.payload,
            )
        )
        if w.circuit is Circuit.OPEN and before.circuit is not Circuit.OPEN:
            if before.circuit is Circuit.HALF_OPEN:
                reason = "circuit re-opened: trial run failed"
            else:
                reason = f"circuit open after {w.consecutive_failures} failures"
            self._publish(ev.WorkerDisabled(ts=ended, worker=w.name, reason=reason))
            cooldown = w.spec.circuit_cooldown_seconds
            if cooldown is not None and w.breaker.opened_at is not None:
                self._wake_at(w.breaker.opened_at + cooldown, w)
        backoff = 0.0
        if w.spec.mode is Mode.CONTINUOUS:
            # A failed iteration backs off like a retry, growing with the failed runs in
            # a row: a continuous worker that cannot work must not spin.
            backoff = backoff_delay(
                w.consecutive_failures, w.spec.retry_backoff_seconds,
                w.spec.retry_backoff_max_seconds, self._rng,
            )
        self._end_run(w, backoff=backoff)

    async def _interrupted(
        self, w: WorkerRuntime, run: ActiveRun, duration: float | None, reason: str
    ) -> None:
        ended = self._now()
        record = run.record.finished(
            RunStatus.INTERRUPTED, ended_at=ended, attempts=run.attempt, duration_s=duration,
            error=f"interrupted: {reason}",
        )
        requeue = record.trigger.source is not Source.CONTINUOUS
        self._interrupted_count += 1
        await self._persist(
            self.store.finish_run, record, worker=self._state_of(w), requeue=requeue
        )
        self._publish(
            ev.RunInterrupted(
                ts=ended, worker=w.name, run_id=record.id, trigger_id=record.trigger.id,
                source=record.trigger.source.value, attempt=run.attempt, reason=reason,
                duration_s=duration,
            )
        )
        self._end_run(w)

    def _end_run(self, w: WorkerRuntime, *, backoff: float = 0.0) -> None:
        self._attempting.discard(w.name)
        if w.phase is Phase.RUNNING:
            self._slots_used -= 1
        w.phase = Phase.IDLE
        w.run = None
        w.stuck = False
        now = trio.current_time()
        if w.spec.mode is Mode.CONTINUOUS:
            w.idle_since = now + backoff
            if backoff > 0:
                self._wake_at(w.idle_since, w)
        if w.demand_since(now) is not None:
            self._wanting.add(w.name)
        # A run's end is what changes most workers' health: judged here, one at a time,
        # rather than all at the monitor's next tick (a stall at thousands of runs/s).
        self._refresh_health(w, now)
        # A freed slot or a finished dependency matters only to workers that want to run
        # (or to a shutdown waiting for the last run): otherwise the dispatcher sleeps on.
        if self._wanting or self._lifecycle is not Lifecycle.RUNNING:
            self._notify()

    def _record_duration(self, w: WorkerRuntime, duration: float) -> None:
        w.last_duration_s = duration
        w.record(duration)

    def _state_of(self, w: WorkerRuntime) -> WorkerState:
        opened = w.breaker.opened_at
        return WorkerState(
            name=w.name,
            enabled=w.enabled,
            circuit=w.circuit,
            opened_at=None if opened is None else self._wall(opened, self._trio_now(), self._now()),
            consecutive_failures=w.consecutive_failures,
            last_start=w.last_start,
            last_success=w.last_success,
            last_error=w.last_error,
        )

    # ------------------------------------------------------------------ store

    async def _persist(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a store method, retrying with backoff while the store fails.

        A failing store (disk full, locked) degrades health and is retried; the
        in-memory state is kept meanwhile, so nothing is lost and nothing crashes.
        """
        delay = 0.5
        while True:
            try:
                result = await method(*args, **kwargs)
            except Exception as exc:
                self._store_errors += 1
                self._last_store_error = _describe(exc)
                await trio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                self._store_errors = 0
                return result

    async def _save_worker(self, w: WorkerRuntime) -> None:
        await self._persist(self.store.save_worker, self._state_of(w))

    def _save_soon(self, w: WorkerRuntime) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._save_worker, w)

    async def _restore(self, stored: StoredState) -> None:
        """Bring back worker state and pending triggers; runs left running crashed."""
        now = trio.current_time()
        for name, state in stored.workers.items():
            w = self._workers.get(name)
            if w is None:
                continue
            w.enabled = state.enabled
            w.breaker = CircuitState(
                state.circuit,
                state.consecutive_failures,
                self._trio_time_of(state.opened_at),
            )
            if w.circuit is Circuit.OPEN and w.spec.circuit_cooldown_seconds:
                opened = w.breaker.opened_at if w.breaker.opened_at is not None else now
                self._wake_at(opened + w.spec.circuit_cooldown_seconds, w)
            w.last_start, w.last_success, w.last_error = (
                state.last_start, state.last_success, state.last_error,
            )
        self._seed_sequence()
        self._dlq_size = stored.dlq_size
        queued = {t.id for t in stored.pending}
        for trigger in stored.pending:
            w = self._workers.get(trigger.worker)
            if w is not None:
                w.queue(QueuedTrigger(trigger=trigger, queued_t=now))
                self._pending_count += 1
        for run in stored.unfinished_runs:
            await self._recover_crashed(run, queued, now)

    async def _recover_crashed(self, run: RunRecord, queued: set[str], now: float) -> None:
        ended = self._now()
        record = run.finished(
            RunStatus.INTERRUPTED, ended_at=ended, attempts=run.attempts,
            duration_s=run.duration_s,
            error="interrupted: the process ended while it was running",
        )
        w = self._workers.get(run.worker)
        requeue = run.trigger.source is not Source.CONTINUOUS
        state = self._state_of(w) if w is not None else WorkerState(name=run.worker)
        await self._persist(self.store.finish_run, record, worker=state, requeue=requeue)
        self._publish(
            ev.RunInterrupted(
                ts=ended, worker=run.worker, run_id=run.id, trigger_id=run.trigger.id,
                source=run.trigger.source.value, attempt=run.attempts, reason="crash",
            )
        )
        if w is not None and requeue and run.trigger.id not in queued:
            w.queue(QueuedTrigger(trigger=run.trigger, queued_t=now), first=True)
            self._pending_count += 1

    def _seed_sequence(self) -> None:
        """Order restored starts and successes so the fresh-success rule survives restarts."""
        marks: list[tuple[datetime, int, WorkerRuntime]] = []
        for w in self._workers.values():
            if w.last_start is not None:
                marks.append((w.last_start, 0, w))
            if w.last_success is not None:
                marks.append((w.last_success, 1, w))
        for _, kind, w in sorted(marks, key=lambda m: (m[0], m[1])):
            if kind == 0:
                w.last_start_seq = next(self._seq)
            else:
                w.last_success_seq = next(self._seq)

    # ------------------------------------------------------------------ shutdown

    async def _drain(self) -> None:
        grace = self._grace if self._grace is not None else self.config.shutdown_grace_seconds
        in_flight = [w for w in self._workers.values() if w.in_flight]
        self._publish(
            ev.OrchestratorStopping(ts=self._now(), in_flight=len(in_flight), grace_s=grace)
        )
        for w in in_flight:
            if w.phase is Phase.RETRY_WAIT and w.run is not None:
                await self._interrupted(w, w.run, None, "shutdown")
        await self._wait_for(
            lambda: self._slots_used == 0 or self._skip_grace, trio.current_time() + grace
        )
        cancelled_at = trio.current_time()
        for w in self._workers.values():
            if w.phase is Phase.RUNNING and w.run is not None:
                w.run.cancel_requested_t = cancelled_at
                if w.run.cancel_scope is not None:
                    w.run.cancel_scope.cancel()
        await self._wait_for(
            lambda: self._slots_used == 0, cancelled_at + self.config.stuck_after_seconds
        )
        stuck = [w for w in self._workers.values() if w.phase is Phase.RUNNING]
        for w in stuck:
            assert w.run is not None
            w.stuck = True
            w.run.abandoned = True
            await self._interrupted(w, w.run, None, "stuck")
        try:
            await self.store.close()
        except Exception as exc:
            self._store_errors += 1
            self._last_store_error = _describe(exc)
        self._lifecycle = Lifecycle.STOPPED
        self._publish(
            ev.OrchestratorStopped(
                ts=self._now(), interrupted=self._interrupted_count, stuck=len(stuck)
            )
        )
        self.events.close()
        self._stopped.set()

    async def _wait_for(self, done: Callable[[], bool], deadline: float) -> None:
        with trio.move_on_at(deadline):
            while not done():
                await self._change_event().wait()

    # ------------------------------------------------------------------ monitor

    async def _monitor(self) -> None:
        """Measure event-loop lag (sleep overshoot) and re-evaluate health."""
        interval = self.config.health_interval_seconds
        while True:
            before = trio.current_time()
            await trio.sleep(interval)
            now = trio.current_time()
            self._loop_lags.append(max(0.0, now - before - interval))
            self._check_health(now)

    def _refresh_health(self, w: WorkerRuntime, now: float) -> None:
        """Re-evaluate one worker's health; publish `health_changed` if it changed."""
        report = worker_health(w, now)
        if report.health.value != w.health:
            self._publish(
                ev.HealthChanged(
                    ts=self._now(), worker=w.name, health=report.health.value,
                    previous=w.health, reasons=report.reasons,
                )
            )
            w.health = report.health.value
        w.health_reasons = report.reasons
        if report.health is Health.OK:
            self._unhealthy.pop(w.name, None)
        else:
            by_operator = not w.enabled and w.circuit is not Circuit.OPEN
            self._unhealthy[w.name] = (report, by_operator)

    def _check_health(self, now: float) -> None:
        """Re-evaluate the workers whose health may have changed, then the overall health.

        Only three kinds of worker can change health without an event: those holding a
        slot (stuck, stalled), and those due but not started (overdue), which are all in
        `_wanting`. A run's end is judged when it happens (`_end_run`); the rarer events
        (enable, disable, a circuit going half-open) mark the worker in `_health_watch`.
        So an orchestrator of 10,000 workers looks at few of them on each tick.
        """
        stuck_after = self.config.stuck_after_seconds
        candidates = self._health_watch | self._wanting | self._attempting
        self._health_watch = set()
        for name in candidates:
            w = self._workers[name]
            if w.phase is Phase.RUNNING and w.run is not None and not w.stuck:
                w.stuck = is_stuck(w.run, now, stuck_after)
            self._refresh_health(w, now)
        if self.events.dropped != self._last_drop_count:
            self._last_drop_count = self.events.dropped
            self._last_drop_t = now
        recent_drops = self.events.dropped if now - self._last_drop_t < 30 else 0
        overall = overall_health(
            ((name, report, op) for name, (report, op) in self._unhealthy.items()),
            loop_lag_s=max(self._loop_lags, default=0.0),
            store_errors=self._store_errors,
            events_dropped=recent_drops,
            last_store_error=self._last_store_error,
        )
        if overall.health is not self._health.health:
            self._publish(
                ev.HealthChanged(
                    ts=self._now(), worker=None, health=overall.health.value,
                    previous=self._health.health.value, reasons=overall.reasons,
                )
            )
        self._health = overall

    # ------------------------------------------------------------------ events & logs

    def _publish(self, event: ev.Event) -> None:
        self.events.publish(event)

    def _record_log(self, worker: str, run_id: str | None, level: str, message: str) -> None:
        line = ev.LogRecordView(
            ts=self._now(), worker=worker, run_id=run_id, level=level, message=message
        )
        buffer = self._logs.get(worker)
        if buffer is None:
            buffer = self._logs[worker] = deque(maxlen=self.config.log_lines_per_worker)
        if len(buffer) == buffer.maxlen:
            self.log_lines_dropped += 1
        buffer.append(line)
        self._publish(
            ev.LogLine(ts=line.ts, worker=worker, run_id=run_id, level=level, message=message)
        )

    def subscribe(self, max_buffer: int = 1024) -> Any:
        """Context manager: a bounded `Subscription` to every event from now on."""
        return self.events.subscribe(max_buffer)
