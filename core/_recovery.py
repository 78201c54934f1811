"""Start-up: bring back what the store kept, and end what a crash left running.

Worker state (enabled, circuit, last start and success) and pending triggers come back
as they were. Runs the store still holds as `running` were cut off by a crash (one
process owns the store, and it has only just opened it): each is recorded
`interrupted` (reason `crash`) and its trigger goes back to the front of its queue.
"""

from __future__ import annotations

from datetime import datetime

import attrs
import trio

from . import _events as ev
from ._circuit import CircuitState
from ._dispatcher import Dispatcher
from ._engine import Engine, ParkedWorker
from ._persist import WriteRefused, persist
from ._records import (
    Circuit,
    RunRecord,
    RunStatus,
    Source,
    StoredState,
    Trigger,
    WorkerState,
)
from ._runtime import QueuedTrigger, WorkerRuntime


async def restore(engine: Engine, dispatcher: Dispatcher, stored: StoredState) -> None:
    """Bring back worker state and pending triggers; runs left running crashed."""
    now = trio.current_time()
    parked: dict[str, tuple[WorkerState | None, list[Trigger]]] = {}
    for name, state in stored.workers.items():
        w = engine.workers.get(name)
        if w is None:
            parked[name] = (state, [])
        else:
            restore_worker(engine, dispatcher, w, state, now)
    if stored.quarantined:
        engine.store_health.skipped_rows = len(stored.quarantined)
        engine.publish(ev.StoreRowsSkipped(ts=engine.now(), rows=stored.quarantined))
    _seed_sequence(engine)
    engine.dlq_size = stored.dlq_size
    queued = {t.id for t in stored.pending}
    for trigger in stored.pending:
        w = engine.workers.get(trigger.worker)
        if w is not None:
            w.queue(QueuedTrigger(trigger=trigger, queued_t=now))
            engine.pending_count += 1
        else:
            parked.setdefault(trigger.worker, (None, []))[1].append(trigger)
    engine.parked = {
        name: ParkedWorker(state=state, triggers=tuple(triggers))
        for name, (state, triggers) in parked.items()
    }
    for run in stored.unfinished_runs:
        await _recover_crashed(engine, run, queued, now)


def restore_worker(
    engine: Engine, dispatcher: Dispatcher, w: WorkerRuntime, state: WorkerState, now: float
) -> None:
    """Give `w` the runtime state the store kept: it wins over the config's `enabled`."""
    w.enabled = state.enabled
    w.breaker = CircuitState(
        state.circuit,
        state.consecutive_failures,
        engine.trio_time_of(state.opened_at),
    )
    if w.circuit is Circuit.OPEN and w.spec.circuit_cooldown_seconds:
        opened = w.breaker.opened_at if w.breaker.opened_at is not None else now
        dispatcher.wake_at(opened + w.spec.circuit_cooldown_seconds, w)
    w.last_start, w.last_success, w.last_error = (
        state.last_start, state.last_success, state.last_error,
    )


async def _recover_crashed(engine: Engine, run: RunRecord, queued: set[str], now: float) -> None:
    ended = engine.now()
    record = run.finished(
        RunStatus.INTERRUPTED, ended_at=ended, attempts=run.attempts,
        duration_s=run.duration_s,
        error="interrupted: the process ended while it was running",
    )
    w = engine.workers.get(run.worker)
    requeue = run.trigger.source is not Source.CONTINUOUS
    state = engine.worker_state(w) if w is not None else WorkerState(name=run.worker)
    try:
        await persist(engine, engine.store.finish_run, record, worker=state, requeue=requeue)
    except WriteRefused:
        pass  # counted in the store's health; the run is still re-queued below
    engine.publish(
        ev.RunInterrupted(
            ts=ended, worker=run.worker, run_id=run.id, trigger_id=run.trigger.id,
            source=run.trigger.source.value, attempt=run.attempts, reason="crash",
        )
    )
    if not requeue or run.trigger.id in queued:
        return
    if w is not None:
        w.queue(QueuedTrigger(trigger=run.trigger, queued_t=now), first=True)
        engine.pending_count += 1
    else:
        parked = engine.parked.get(run.worker, ParkedWorker())
        engine.parked[run.worker] = attrs.evolve(
            parked, triggers=(run.trigger, *parked.triggers)
        )


def _seed_sequence(engine: Engine) -> None:
    """Order restored starts and successes so the fresh-success rule survives restarts."""
    marks: list[tuple[datetime, int, WorkerRuntime]] = []
    for w in engine.workers.values():
        if w.last_start is not None:
            marks.append((w.last_start, 0, w))
        if w.last_success is not None:
            marks.append((w.last_success, 1, w))
    for _, kind, w in sorted(marks, key=lambda m: (m[0], m[1])):
        if kind == 0:
            w.last_start_seq = next(engine.seq)
        else:
            w.last_success_seq = next(engine.seq)
