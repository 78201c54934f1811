"""The health monitor: event-loop lag, and each worker's health judged when it can change.

A watchdog task measures how late its own sleeps wake (the loop's lag) and, at each
tick, re-judges only the workers whose health can change with time alone; a run's end
and the rarer operator events judge theirs when they happen. The overall health is the
worst of the workers' and the orchestrator's own conditions (lag, store, dropped events;
in a cluster, the node's listener and its clock against the database's).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import trio

from . import _events as ev
from ._engine import Engine
from ._health import Health, is_stuck, overall_health, worker_health
from ._records import Circuit
from ._runtime import Phase, WorkerRuntime

#: Dropped events degrade health for this long after the last drop.
DROPS_REMEMBERED_S = 30.0


class Monitor:
    """Keeps every worker's health, and the orchestrator's, up to date."""

    def __init__(self, engine: Engine, ready: Iterable[str]) -> None:
        self._engine = engine
        #: the dispatcher's ready set: workers due but not started can turn overdue.
        self._ready = ready
        self.loop_lags: deque[float] = deque(maxlen=10)
        self._last_drop_count = 0
        self._last_drop_t = -math.inf

    async def run(self) -> None:
        """Measure event-loop lag (sleep overshoot) and re-judge health, every interval."""
        while True:
            # Read each time: a reload may change it.
            interval = self._engine.config.health_interval_seconds
            before = trio.current_time()
            await trio.sleep(interval)
            now = trio.current_time()
            self.loop_lags.append(max(0.0, now - before - interval))
            self.check(now)

    @property
    def loop_lag_s(self) -> float:
        return self.loop_lags[-1] if self.loop_lags else 0.0

    def refresh(self, w: WorkerRuntime, now: float) -> None:
        """Re-judge one worker's health; publish `health_changed` if it changed."""
        engine = self._engine
        report = worker_health(w, now, paused=engine.paused, late_from=engine.resumed_t)
        health = report.health
        if health != w.health:  # a StrEnum against its stored value
            engine.publish(
                ev.HealthChanged(
                    ts=engine.now(), worker=w.name, health=health.value,
                    previous=w.health, reasons=report.reasons,
                )
            )
            w.health = health.value
        w.health_reasons = report.reasons
        if health is Health.OK:
            engine.unhealthy.pop(w.name, None)
        else:
            by_operator = not w.enabled and w.circuit is not Circuit.OPEN
            engine.unhealthy[w.name] = (report, by_operator)

    def check(self, now: float) -> None:
        """Re-judge the workers whose health may have changed, then the overall health.

        Only three kinds of worker can change health without an event: those holding a
        slot (stuck, stalled), and those due but not started (overdue), which are all
        ready. A run's end is judged when it happens; the rarer events (enable, disable,
        a circuit going half-open) mark the worker in `health_watch`. So an orchestrator
        of 10,000 workers looks at few of them on each tick.
        """
        engine = self._engine
        stuck_after = engine.config.stuck_after_seconds
        candidates = engine.health_watch | set(self._ready) | engine.attempting
        engine.health_watch = set()
        for name in candidates:
            w = engine.workers.get(name)
            if w is None:  # removed by a reload
                continue
            if w.phase is Phase.RUNNING and w.run is not None and not w.stuck:
                w.stuck = is_stuck(w.run, now, stuck_after)
            self.refresh(w, now)
        dropped = engine.events.dropped
        if dropped != self._last_drop_count:
            self._last_drop_count = dropped
            self._last_drop_t = now
        recent_drops = dropped if now - self._last_drop_t < DROPS_REMEMBERED_S else 0
        store = engine.store_health
        node = engine.node_health
        overall = overall_health(
            ((name, report, op) for name, (report, op) in engine.unhealthy.items()),
            loop_lag_s=max(self.loop_lags, default=0.0),
            store_errors=store.failing,
            store_rejected=store.rejected,
            store_rows_skipped=store.skipped_rows,
            events_dropped=recent_drops,
            last_store_error=store.last_error,
            listener_down_poll_s=node.listener_down_poll_s,
            clock_skew_s=node.clock_skew_s,
        )
        if overall.health is not engine.health.health:
            engine.publish(
                ev.HealthChanged(
                    ts=engine.now(), worker=None, health=overall.health.value,
                    previous=engine.health.health.value, reasons=overall.reasons,
                )
            )
        engine.health = overall
