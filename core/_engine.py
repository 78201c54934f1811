"""The engine's shared state, made explicit: what every piece of the engine reads.

`Engine` holds the registered workers, the lifecycle, slots and counters, the event bus,
the clocks, and the one "something changed" signal the dispatcher and shutdown wait on.
It sits below every piece that uses it (dispatcher, run outcomes, monitor, shutdown,
control): they are handed the engine, and none of them calls back up into the
`Orchestrator` facade.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import attrs
import trio

from . import _events as ev
from ._cluster_view import ClusterView
from ._eligibility import Lifecycle, World
from ._health import Health, HealthReport
from ._records import Trigger, WorkerState
from ._runtime import WorkerRuntime
from ._spec import OrchestratorConfig
from ._store import Store
from ._worklog import WorkerLogs


class DispatchObserver(Protocol):
    """Sees each dispatch decision (`jobdeck plan` uses one to explain delays).

    Called by the (local) dispatcher each time it judges the workers that want to
    start, once per such worker, after admission and before the admitted runs start;
    and for a worker `offer` starts at once.
    """

    def started(self, w: WorkerRuntime, due: float, now: float) -> None:
        """`w`, due since `due`, was admitted at `now` (its schedule not yet advanced)."""

    def waiting(self, w: WorkerRuntime, due: float, reason: str, now: float) -> None:
        """`w`, due since `due`, may not start at `now`, for `reason` (`start_blocker`'s)."""


class StoreHealth:
    """Store failures as health sees them: transient ones in a row, permanent ones in all."""

    def __init__(self) -> None:
        #: transient failures since the last write that succeeded (health: failing).
        self.failing = 0
        #: writes the store refused for good (recorded and dropped; health: degraded).
        self.rejected = 0
        #: damaged rows the store skipped when it was opened (health: degraded).
        self.skipped_rows = 0
        self.last_error: str | None = None

    @property
    def errors(self) -> int:
        """Every store failure health should show: the transient ones in a row, and the
        refused writes (which never clear by themselves)."""
        return self.failing + self.rejected


class NodeHealth:
    """A cluster node's own conditions as health sees them (its membership keeps them up
    to date; in local mode they stay as made: nothing to say)."""

    def __init__(self) -> None:
        #: seconds between polls while the LISTEN connection is down, else None (up, or
        #: not tried yet).
        self.listener_down_poll_s: float | None = None
        #: this node's clock minus the database's (`jd_now()`), at the last heartbeat.
        self.clock_skew_s: float | None = None


@attrs.frozen(kw_only=True)
class ParkedWorker:
    """What the store keeps of a worker the config does not name (removed by a reload,
    or stored by an earlier config): it comes back with the worker.

    Nothing changes it meanwhile: no run starts and no trigger is accepted for a worker
    that is not registered, so what the store held at start (or at removal) still holds.
    """

    state: WorkerState | None = None
    #: its pending triggers, oldest first (still stored, as pending).
    triggers: tuple[Trigger, ...] = ()


class Engine:
    """The state shared by the engine's pieces; the facade owns one.

    Only the engine's own modules mutate it, on the trio thread; readers outside get
    frozen snapshots.
    """

    def __init__(
        self,
        config: OrchestratorConfig,
        store: Store,
        *,
        now: Callable[[], datetime],
        rng: random.Random,
    ) -> None:
        self.config = config
        self.store = store
        self.events = ev.EventBus()
        #: publish an event to every subscriber (the bus's own method: no extra call).
        self.publish = self.events.publish
        #: the wall clock, for timestamps only; scheduling uses trio's clock.
        self.now = now
        self.rng = rng
        self.workers: dict[str, WorkerRuntime] = {}
        #: stored workers the config does not name, kept to come back with a reload.
        self.parked: dict[str, ParkedWorker] = {}
        #: name -> the workers that name it in `depends_on`.
        self.dependents: dict[str, list[str]] = {}
        #: name -> every worker it may not run beside (symmetric `blocks`).
        self.blockers: dict[str, frozenset[str]] = {}
        self.lifecycle = Lifecycle.CREATED
        self.paused = False
        #: trio time of the last resume: lateness counts from it (a pause is intended).
        self.resumed_t = -math.inf
        #: stop() came before run(): stop as soon as started.
        self.stop_requested = False
        #: the grace `stop(grace)` asked for, overriding the config's.
        self.grace: float | None = None
        #: a second stop(): what is left of the grace is skipped.
        self.skip_grace = False
        #: trio time shutdown began (the grace counts from it), once it has.
        self.stopping_t: float | None = None
        #: orders starts and successes across workers (the fresh-success rule).
        self.seq = itertools.count()
        self.slots_used = 0
        #: workers holding a slot now (their health can turn stuck or stalled with time).
        self.attempting: set[str] = set()
        #: workers whose health an event may have changed since the monitor last looked.
        self.health_watch: set[str] = set()
        #: the last health report of every worker that is not ok, and whether an operator
        #: disabled it on purpose.
        self.unhealthy: dict[str, tuple[HealthReport, bool]] = {}
        self.health = HealthReport(Health.OK)
        self.store_health = StoreHealth()
        self.node_health = NodeHealth()
        self.logs = WorkerLogs(config.log_lines_per_worker)
        self.pending_count = 0
        self.dlq_size = 0
        self.interrupted_count = 0
        self.started_t = 0.0
        self.started_at: datetime | None = None
        self._last_t = 0.0
        self._changed = trio.Event()
        self.stopped = trio.Event()
        self.nursery: trio.Nursery | None = None
        #: threads for plain `def` workers: as many as there are slots.
        self.thread_limiter: trio.CapacityLimiter | None = None
        self._world: World | None = None
        #: The HTTP API's bound address, if one serves this orchestrator.
        self.http_address: str | None = None
        #: Told why each due worker waits (`jobdeck plan`); None costs nothing.
        self.observer: DispatchObserver | None = None
        #: In cluster mode, what this node last read of the cluster (its snapshots show
        #: it); None in local mode.
        self.cluster: ClusterView | None = None

    # ------------------------------------------------------------------ signals

    def notify(self) -> None:
        """Something changed that the dispatcher (or a shutdown step) may be waiting on."""
        self._changed.set()

    def change_event(self) -> trio.Event:
        """An event the next `notify()` sets (a waiter takes it before it looks)."""
        if self._changed.is_set():
            self._changed = trio.Event()
        return self._changed

    async def wait_for(self, done: Callable[[], bool], deadline: float) -> None:
        """Wait until `done()` holds (checked at each change) or trio time reaches `deadline`."""
        with trio.move_on_at(deadline):
            while not done():
                await self.change_event().wait()

    @property
    def running(self) -> bool:
        return self.lifecycle is Lifecycle.RUNNING

    def grace_s(self) -> float:
        """The shutdown grace: `stop(grace)`'s, else the config's."""
        return self.grace if self.grace is not None else self.config.shutdown_grace_seconds

    # ------------------------------------------------------------------ clocks

    def trio_now(self) -> float:
        """trio's clock, or the last reading once trio has ended (time stands still)."""
        try:
            self._last_t = trio.current_time()
        except RuntimeError:
            pass
        return self._last_t

    @staticmethod
    def wall(t: float | None, now_t: float, wall_now: datetime) -> datetime | None:
        """A trio time as a wall time, through a pair of readings taken together."""
        if t is None or math.isinf(t):
            return None
        return wall_now + timedelta(seconds=t - now_t)

    def trio_time_of(self, wall: datetime | None) -> float | None:
        """A stored wall time on trio's clock, through the pair of readings taken at start.

        (Reading the wall clock again for each conversion would shift every restored
        schedule by however long start-up has taken so far.)
        """
        if wall is None or self.started_at is None:
            return None
        return self.started_t + (wall - self.started_at).total_seconds()

    # ------------------------------------------------------------------ reads

    def worker_state(self, w: WorkerRuntime) -> WorkerState:
        """A worker's runtime state as the store keeps it."""
        opened = w.breaker.opened_at
        return WorkerState(
            name=w.name,
            enabled=w.enabled,
            circuit=w.circuit,
            opened_at=None if opened is None else self.wall(opened, self.trio_now(), self.now()),
            consecutive_failures=w.consecutive_failures,
            last_start=w.last_start,
            last_success=w.last_success,
            last_error=w.last_error,
        )

    def forget_world(self) -> None:
        """The config changed (a reload): eligibility's facts are made again when next read."""
        self._world = None

    def world(self) -> World:
        """The facts eligibility reads, brought up to date (one object, reused)."""
        world = self._world
        if world is None or world.blockers is not self.blockers:
            world = self._world = World(
                workers=self.workers,
                blockers=self.blockers,
                slots_used=0,
                max_slots=self.config.max_concurrent_workers,
            )
        world.slots_used = self.slots_used
        world.lifecycle = self.lifecycle
        world.paused = self.paused
        return world
