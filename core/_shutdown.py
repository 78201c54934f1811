"""Graceful shutdown: no new runs, the grace for runs in flight, then record the rest.

Every step has a time limit, so a worker that ignores cancellation or a store that
fails every write cannot hang the exit:
1. runs waiting to retry are interrupted at once (their triggers stay pending);
2. running attempts get the grace (`shutdown_grace_seconds`, or `stop(grace)`; a second
   `stop()` skips what is left of it);
3. what still runs is cancelled, and gets `stuck_after_seconds` to return;
4. what has still not returned is given up on: recorded `interrupted` (reason `stuck`),
   its slot left taken, honestly;
5. the store is flushed and closed.
Store writes during shutdown are retried at most until the grace ends (`_persist`).
"""

from __future__ import annotations

import trio

from . import _events as ev
from ._eligibility import Lifecycle
from ._engine import Engine
from ._errors import describe
from ._outcomes import Outcomes
from ._runtime import Phase

#: Closing the store (flushing what is queued) may take this long after the grace.
CLOSE_LIMIT_S = 5.0


async def drain(engine: Engine, outcomes: Outcomes) -> None:
    """Run the shutdown steps, then mark the orchestrator stopped."""
    grace = engine.grace_s()
    engine.stopping_t = trio.current_time()
    workers = engine.workers.values()
    in_flight = [w for w in workers if w.in_flight]
    engine.publish(
        ev.OrchestratorStopping(ts=engine.now(), in_flight=len(in_flight), grace_s=grace)
    )
    for w in in_flight:
        if w.phase is Phase.RETRY_WAIT and w.run is not None:
            await outcomes.interrupt(w, w.run, "shutdown")
    await engine.wait_for(
        lambda: engine.slots_used == 0 or engine.skip_grace, engine.stopping_t + grace
    )
    cancelled_at = trio.current_time()
    for w in workers:
        if w.phase is Phase.RUNNING and w.run is not None:
            w.run.cancel_requested_t = cancelled_at
            if w.run.cancel_scope is not None:
                w.run.cancel_scope.cancel()
    await engine.wait_for(
        lambda: engine.slots_used == 0, cancelled_at + engine.config.stuck_after_seconds
    )
    stuck = [w for w in workers if w.phase is Phase.RUNNING]
    for w in stuck:
        assert w.run is not None
        w.stuck = True
        w.run.abandoned = True
        await outcomes.interrupt(w, w.run, "stuck")
    with trio.move_on_after(CLOSE_LIMIT_S) as closing:
        try:
            await engine.store.close()
        except Exception as exc:
            engine.store_health.rejected += 1
            engine.store_health.last_error = describe(exc)
    if closing.cancelled_caught:
        engine.store_health.rejected += 1
        engine.store_health.last_error = f"closing the store took over {CLOSE_LIMIT_S:g}s"
    engine.lifecycle = Lifecycle.STOPPED
    health = engine.store_health
    engine.publish(
        ev.OrchestratorStopped(
            ts=engine.now(), interrupted=engine.interrupted_count, stuck=len(stuck),
            store_error=health.last_error if health.errors else None,
        )
    )
    engine.events.close()
    engine.stopped.set()
