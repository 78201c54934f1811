"""`Orchestrator`: the engine's public face: registration, run and stop, control and reads.

The work is done below it, one concern per module: `_engine` (the shared state),
`_dispatcher` (the heap of due times, starting the best ready run first),
`_coordinator_local` (what may start), `_outcomes` (where each attempt leads, and where a
run ends), `_runs` (one attempt), `_recovery` (start-up), `_shutdown` (the graceful stop),
`_monitor` (health) and `_control` (operations and queued commands).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from . import _events as ev
from ._control import COMMANDS, Control, request_stop
from ._coordinator_local import LocalCoordinator
from ._dispatcher import Dispatcher
from ._eligibility import Lifecycle
from ._engine import DispatchObserver, Engine
from ._errors import ConfigError
from ._graph import graph_problems, symmetric_blocks
from ._monitor import Monitor
from ._outcomes import Outcomes
from ._records import DeadLetter, RunDetail, RunRecord, Source, Trigger
from ._recovery import restore
from ._reload import ReloadResult, apply_reload, reload_file
from ._runs import is_async
from ._runtime import WorkerRuntime
from ._shutdown import drain
from ._snapshot import OrchestratorSnapshot, take_snapshot
from ._spec import OrchestratorConfig, WorkerSpec, seconds_problem, worker_function_problem
from ._store import Coordinator, Store
from ._store_memory import MemoryStore
from ._worklog import ensure_level

if TYPE_CHECKING:
    from ._config import JobdeckConfig
    from ._context import JobContext

WorkerFn = Callable[["JobContext"], Any]

#: Control actions `request()` accepts.
CONTROL_ACTIONS = frozenset(COMMANDS)


def _utc_now() -> datetime:
    return datetime.now(UTC)


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
    `replay`, `delete_dead_letter`, `purge_dead_letters`, `stop`). An `observer`
    (`DispatchObserver`) is told every dispatch decision: `jobdeck plan` explains delays
    with one.
    """

    def __init__(
        self,
        config: OrchestratorConfig | None = None,
        *,
        store: Store | None = None,
        now: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
        observer: DispatchObserver | None = None,
    ) -> None:
        self.config = config if config is not None else OrchestratorConfig()
        self.store: Store = (
            store
            if store is not None
            else MemoryStore(history_per_worker=self.config.history_per_worker)
        )
        engine = self._engine = Engine(
            self.config, self.store, now=now, rng=rng if rng is not None else random.Random()
        )
        engine.observer = observer
        self.events = engine.events
        # A store that decides admission in its own database (PostgreSQL: a cluster)
        # brings its coordinator and dispatcher; otherwise this process decides alone.
        cluster = getattr(self.store, "cluster", None)
        coordinator: Coordinator
        if cluster is not None:
            coordinator, self._dispatcher = cluster(engine)
        else:
            coordinator = LocalCoordinator(engine)
            self._dispatcher = Dispatcher(engine, coordinator)
        self._coordinator = coordinator
        self._clustered = cluster is not None
        self._monitor = Monitor(engine, self._dispatcher.ready)
        self._control = Control(engine, coordinator, self._dispatcher)
        self._outcomes = Outcomes(
            engine, coordinator, self._dispatcher, self._monitor, self._control.trigger
        )
        self._dispatcher.execute = self._outcomes.execute
        #: The config file the workers came from (`from_config`), which a reload
        #: reads again; None when they were registered in Python.
        self.config_path: Path | None = None
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
        orch.config_path = config.path
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
        workers = self._engine.workers
        if self._engine.lifecycle is not Lifecycle.CREATED:
            raise RuntimeError("workers must be registered before the orchestrator runs")
        if spec.name in workers:
            raise ValueError(f"worker {spec.name!r} is already registered")
        if not callable(fn):
            raise TypeError(f"worker {spec.name!r}: fn must be callable, got {fn!r}")
        problem = worker_function_problem(fn)
        if problem is not None:
            raise TypeError(f"worker {spec.name!r}: fn {problem}")
        workers[spec.name] = WorkerRuntime(
            spec=spec,
            fn=fn,
            fn_ref=fn_ref or f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', fn)}",
            index=len(workers),
            is_async=is_async(fn),
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
        engine = self._engine
        if engine.lifecycle is not Lifecycle.CREATED:
            raise RuntimeError("an Orchestrator runs once; make a new one")
        specs = {name: w.spec for name, w in engine.workers.items()}
        problems = graph_problems(specs)
        if problems:
            raise ConfigError(problems)
        engine.blockers = symmetric_blocks(specs.values())
        engine.dependents = {name: [] for name in specs}
        for spec in specs.values():
            for dep in spec.depends_on:
                engine.dependents[dep].append(spec.name)
        engine.thread_limiter = trio.CapacityLimiter(self.config.max_concurrent_workers)
        stored = await self.store.open()
        engine.started_t = trio.current_time()
        engine.trio_now()
        engine.started_at = engine.now()
        async with trio.open_nursery() as nursery:
            engine.nursery = nursery
            # Started first, so the log reads in order: what a crash left is recovered next.
            engine.publish(
                ev.OrchestratorStarted(
                    ts=engine.now(),
                    workers=len(engine.workers),
                    max_concurrent_workers=self.config.max_concurrent_workers,
                    http=engine.http_address,
                )
            )
            await restore(engine, self._dispatcher, stored)
            engine.lifecycle = Lifecycle.RUNNING
            engine.health_watch.update(engine.workers)
            for w in engine.workers.values():
                self._dispatcher.init_schedule(w, engine.started_t)
            nursery.start_soon(self._monitor.run)
            nursery.start_soon(self._control.serve)
            if engine.stop_requested:
                engine.lifecycle = Lifecycle.STOPPING
            task_status.started()
            await self._dispatcher.run(nursery)
            await drain(engine, self._outcomes)
            nursery.cancel_scope.cancel()

    def stop(self, grace: float | None = None) -> None:
        """Stop gracefully: no new runs; in-flight attempts get `grace` seconds.

        A second call skips what is left of the grace (runs are still recorded
        `interrupted` and the store still flushed). Safe to call before `run`.

        Raises:
            ValueError: `grace` is not a duration `shutdown_grace_seconds` accepts.
        """
        if grace is not None:
            problem = seconds_problem(grace, zero=True)
            if problem is not None:
                raise ValueError(f"stop: grace {problem}")
        request_stop(self._engine, grace)

    async def wait_stopped(self) -> None:
        """Return once shutdown has recorded everything and closed the store.

        Unlike `run` returning, this does not wait for workers that ignore cancellation.
        """
        await self._engine.stopped.wait()

    @property
    def stopped(self) -> bool:
        return self._engine.stopped.is_set()

    @property
    def http_address(self) -> str | None:
        """The HTTP API's bound address, if one serves this orchestrator: set it before
        `run` and `orchestrator_started` carries it as `http`."""
        return self._engine.http_address

    @http_address.setter
    def http_address(self, address: str | None) -> None:
        self._engine.http_address = address

    # ------------------------------------------------------------------ control

    async def trigger(self, name: str, payload: Any = None) -> str:
        """Ask for one run of worker `name`; returns the trigger id once it is stored.

        A trigger for a running or disabled worker is kept and runs later; one accepted
        while stopping is stored and runs after the next start.

        Raises:
            UnknownWorker: no worker has that name.
            ValueError: the payload is not JSON-serialisable.
            NotRunning: the orchestrator has not started or has stopped.
        """
        control = self._control  # `control.trigger`, without its frame
        return await control.accept(control.worker(name), Source.MANUAL, payload)

    async def enable(self, name: str) -> None:
        """Enable a worker; closes an open circuit and resets its failure count."""
        await self._control.enable(name)

    async def disable(self, name: str) -> None:
        """Disable a worker: it starts no run (triggers are kept) until enabled."""
        await self._control.disable(name)

    def pause(self) -> None:
        """Start no new runs or retries until `resume()`; running attempts go on."""
        self._control.pause()

    def resume(self) -> None:
        """Undo `pause()`."""
        self._control.resume()

    @property
    def paused(self) -> bool:
        return self._engine.paused

    async def replay(self, entry_id: int) -> str:
        """Move a DLQ entry back to pending: a new `replay` trigger with the same payload.

        Returns:
            The new trigger's id.

        Raises:
            UnknownDeadLetter: no entry with that id.
            UnknownWorker: the entry's worker is no longer registered.
        """
        return await self._control.replay(entry_id)

    async def delete_dead_letter(self, entry_id: int) -> None:
        """Remove one DLQ entry. Raises UnknownDeadLetter."""
        await self._control.delete_dead_letter(entry_id)

    async def purge_dead_letters(self) -> int:
        """Remove every DLQ entry; returns how many."""
        return await self._control.purge_dead_letters()

    def request(self, action: str, *args: Any) -> None:
        """Ask for a control action without awaiting it: for callers outside trio tasks.

        The dashboard runs on the same thread as trio (guest mode) but not inside a trio
        task, so it cannot await `trigger` or `enable`; it calls, for example,
        `orch.request("trigger", "fetch", {"day": 3})`. The action runs soon in a trio
        task; its failure is published as a `control_failed` event.

        Args:
            action: the name of a control method: trigger, enable, disable, pause,
                resume, replay, delete_dead_letter, purge_dead_letters, stop.
            args: that method's arguments.

        Raises:
            ValueError: `action` is not a control method.
            TypeError: the arguments do not fit it.
            trio.WouldBlock: too many requests are already waiting.
        """
        command = COMMANDS.get(action)
        if command is None:
            raise ValueError(f"unknown control action {action!r}")
        self._control.submit(command(*args))

    # ------------------------------------------------------------------ reload

    def reload(self, config: JobdeckConfig) -> ReloadResult:
        """Apply a newly loaded config to the running orchestrator, whole or not at all.

        Added workers start; removed workers start no new run, finish the one in flight
        and go (their pending triggers stay stored and come back with them); changed
        workers take their new spec at their next run. `[orchestrator]` keys apply at
        once, except `store` (it needs a restart). Runtime state (enabled, circuit) wins
        over the file, as at a restart. A `config_reloaded` event says what changed.

        Raises:
            ConfigError: the workers refer to each other wrongly; nothing was changed.
            NotRunning: the orchestrator is not running.
        """
        self._refuse_reload_in_a_cluster()
        result = apply_reload(self._engine, self._dispatcher, config)
        self.config = self._engine.config
        return result

    def _refuse_reload_in_a_cluster(self) -> None:
        # The cluster's database admits runs of workers by name from every node's
        # config; adding and removing them on one node is not worked out yet.
        if self._clustered:
            problem = "reload is not supported in cluster mode yet: restart the node instead"
            self._engine.publish(ev.ConfigReloadFailed(ts=self._engine.now(), problems=(problem,)))
            raise ConfigError([problem])

    def reload_file(self, path: str | os.PathLike[str] | None = None) -> ReloadResult:
        """Read the config file again (`path`, else `config_path`) and `reload` it.

        Imports a newly named module; modules already imported are not read again
        (code changes need a restart).

        Raises:
            ConfigError: the file has problems (the messages of `jobdeck check`), or no
                file is known; nothing was changed.
            NotRunning: the orchestrator is not running.
        """
        where = path if path is not None else self.config_path
        if where is None:
            raise ConfigError(["no config file to reload: the workers were registered in Python"])
        self._refuse_reload_in_a_cluster()
        result = reload_file(self._engine, self._dispatcher, where)
        self.config = self._engine.config
        return result

    # ------------------------------------------------------------------ reads

    async def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """DLQ entries, newest first."""
        return await self.store.dlq_list(limit)

    async def dead_letter(self, entry_id: int) -> DeadLetter:
        """One DLQ entry. Raises UnknownDeadLetter."""
        return await self.store.dlq_get(entry_id)

    async def history(self, worker: str | None = None, limit: int = 50) -> list[RunRecord]:
        """Recent runs, newest first, of one worker or all."""
        if worker is not None:
            self._control.worker(worker)
        return await self.store.runs(worker, limit)

    async def run_detail(self, run_id: str) -> RunDetail:
        """One run opened: its record, every attempt (error, traceback) and its log lines.

        A run still going is read from memory (its attempts so far); any other from the
        store, as long as the history keeps it.

        Raises:
            UnknownRun: no run with that id is going or kept.
        """
        await trio.lowlevel.checkpoint()
        for w in self._engine.workers.values():
            run = w.run
            if run is not None and run.record.id == run_id:
                return RunDetail.of(run.record, run.detail())
        return await self.store.run_detail(run_id)

    def logs(self, worker: str | None = None, limit: int = 200) -> list[ev.LogRecordView]:
        """The last log lines of one worker, or of all workers merged by time."""
        if worker is not None:
            self._control.worker(worker)
        return self._engine.logs.lines(worker, limit)

    @property
    def log_lines_dropped(self) -> int:
        """Worker log lines pushed out of the per-worker ring buffers."""
        return self._engine.logs.dropped

    def pending_triggers(self, worker: str) -> list[Trigger]:
        """The triggers waiting for a worker's next runs, oldest first.

        Raises:
            UnknownWorker: no worker has that name.
        """
        w = self._control.worker(worker)
        view = self._engine.cluster
        if view is not None:
            # cluster mode: the database's, as last read (the oldest few); read from
            # the next refresh on for as long as someone keeps asking
            view.asked[worker] = self._engine.trio_now()
            return list(view.pending_triggers.get(worker, ()))
        return [queued.trigger for queued in w.pending]

    @property
    def cluster(self) -> Any:
        """In cluster mode this node's `PgCoordinator` (the cluster's reads and the
        drain), else None."""
        return None if isinstance(self._coordinator, LocalCoordinator) else self._coordinator

    async def cluster_status(self) -> dict[str, Any]:
        """The cluster's nodes and slots, read now (what `GET /cluster` answers).

        Raises:
            LookupError: not in cluster mode.
            StoreError: the database could not be read.
        """
        from ._pg_view import cluster_status

        return await cluster_status(self._cluster_coordinator())

    async def cluster_leases(self) -> list[dict[str, Any]]:
        """Every live lease of the cluster, read now (what `GET /cluster/leases` answers).

        Raises:
            LookupError: not in cluster mode.
            StoreError: the database could not be read.
        """
        from ._pg_view import cluster_leases

        return await cluster_leases(self._cluster_coordinator())

    async def set_node_state(self, name: str, state: str) -> bool:
        """Drain (`draining`) or undrain (`active`) cluster node `name`; False if no node
        has that name.

        Raises:
            LookupError: not in cluster mode.
            ValueError: `state` is neither.
        """
        from ._pg_view import set_node_state

        if state not in ("draining", "active"):
            raise ValueError(f"a node is drained or active, not {state!r}")
        return bool(await set_node_state(self._cluster_coordinator(), name, state))

    def _cluster_coordinator(self) -> Any:
        coordinator = self.cluster
        if coordinator is None:
            raise LookupError("not a cluster: this jobdeck runs alone on its own store")
        return coordinator

    @property
    def worker_names(self) -> list[str]:
        return list(self._engine.workers)

    def snapshot(self) -> OrchestratorSnapshot:
        """The orchestrator and every worker, frozen, as of now."""
        return take_snapshot(self._engine, self._monitor.loop_lag_s)

    def subscribe(self, max_buffer: int = 1024) -> Any:
        """Context manager: a bounded `Subscription` to every event from now on."""
        return self.events.subscribe(max_buffer)
