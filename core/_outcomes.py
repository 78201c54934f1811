"""Where a run goes after each attempt, and where it ends.

`execute` is what a runner task does with an admitted run: record its start, run the
attempt (`_runs.run_attempt`), and hand how it ended to the lifecycle
(`_lifecycle.run_transition`), whose effects are applied here: slots, the record of the
run's end, retries, the DLQ, the circuit, dependents chained, events, health.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import trio

from . import _events as ev
from ._circuit import CircuitEvent, circuit_transition
from ._context import TriggerFn
from ._dispatcher import Dispatcher
from ._engine import Engine
from ._errors import LeaseLost
from ._lifecycle import Effect, Effects, RunEvent, run_transition
from ._monitor import Monitor
from ._persist import WriteRefused, persist_after, wrote
from ._records import Attempt, Circuit, RunRecord, RunStatus, Source, Trigger
from ._reload import settle_after_run
from ._runs import AttemptEnd, run_attempt
from ._runtime import ActiveRun, Outcome, Phase, WorkerRuntime
from ._schedule import backoff_delay
from ._spec import Mode
from ._store import Coordinator, DeadLetterDraft


class Outcomes:
    """Runs admitted runs, and applies what the lifecycle decides when an attempt ends."""

    def __init__(
        self,
        engine: Engine,
        coordinator: Coordinator,
        dispatcher: Dispatcher,
        monitor: Monitor,
        trigger: TriggerFn,
    ) -> None:
        self._engine = engine
        self._coordinator = coordinator
        self._dispatcher = dispatcher
        self._monitor = monitor
        self._trigger = trigger

    async def execute(self, w: WorkerRuntime, run: ActiveRun) -> None:
        """Run the current attempt of an admitted run, then apply how it ended."""
        engine = self._engine
        if run.attempt == 1:
            # The store write every run makes, tried here first (one coroutine frame
            # less on the hot path); `persist_after` takes over only if it fails.
            started = self._coordinator.started
            try:
                await started(run)
            except LeaseLost:
                self._lost(w, run)
                return
            except Exception as exc:
                try:
                    await persist_after(engine, exc, started, run)
                except WriteRefused:
                    pass  # counted in the store's health; the run goes on
                except LeaseLost:
                    self._lost(w, run)
                    return
            else:
                if engine.store_health.failing:
                    wrote(engine)
        trigger = run.record.trigger
        engine.publish(
            ev.RunStarted(
                ts=engine.now(), worker=w.name, run_id=run.record.id, trigger_id=trigger.id,
                source=trigger.source.value, attempt=run.attempt, payload=trigger.payload,
            )
        )
        end = await run_attempt(engine, w, run, self._trigger)
        if end is None:
            return
        # How the attempt ended, through the lifecycle (here, not in a method of its
        # own: each coroutine frame on a run's path costs at every store write).
        event = end.event
        if event is RunEvent.INTERRUPTED:
            await self.interrupt(w, run, run.cancel_reason, end.duration)
            return
        w.last_duration_s = end.duration
        w.record(end.duration)
        now = run.attempt_started_t + end.duration  # when it ended, without a clock read
        if event is RunEvent.SUCCEEDED:
            # The run's attempt number and retry time stay as they are: no `advance`.
            run.state, effects = run_transition(run.state, event, now=now)
            await self._succeeded(w, run, end, effects)
            return
        # FAILED or TIMED_OUT
        w.last_error, w.last_traceback = end.error, end.traceback
        self._attempt_ended(run, end.duration, end.error, end.traceback)
        delay = None
        if run.attempt < run.state.max_attempts and engine.running:
            spec = w.spec
            delay = backoff_delay(
                run.attempt, spec.retry_backoff_seconds, spec.retry_backoff_max_seconds,
                engine.rng,
            )
        engine.publish(
            ev.AttemptFailed(
                ts=engine.now(), worker=w.name, run_id=run.record.id,
                trigger_id=run.trigger.id, source=run.trigger.source.value,
                attempt=run.attempt, duration_s=end.duration, error=end.error,
                will_retry=delay is not None, retry_in_s=delay,
            )
        )
        effects = run.advance(event, now=now, retry_delay=delay)
        if Effect.WAIT_RETRY in effects:
            w.phase = Phase.RETRY_WAIT
            engine.attempting.discard(w.name)
            engine.slots_used -= 1
            run.holds_slot = False
            self._dispatcher.retry_later(w, run)
        elif run.state.status is RunStatus.INTERRUPTED:
            await self._record_interrupted(w, run, effects, end.duration, "shutdown")
        else:
            await self._failed(w, run, end, effects)

    async def interrupt(
        self, w: WorkerRuntime, run: ActiveRun, reason: str, duration: float | None = None
    ) -> None:
        """End a running or retry-waiting run as interrupted (shutdown, stuck)."""
        effects = run.advance(RunEvent.INTERRUPTED, now=trio.current_time())
        await self._record_interrupted(w, run, effects, duration, reason)

    # ------------------------------------------------------------------ the ends

    async def _succeeded(
        self, w: WorkerRuntime, run: ActiveRun, end: AttemptEnd, effects: Effects
    ) -> None:
        engine = self._engine
        was_half_open = w.circuit is Circuit.HALF_OPEN
        if was_half_open or w.consecutive_failures:
            w.breaker = circuit_transition(
                w.breaker, CircuitEvent.RUN_SUCCEEDED, now=trio.current_time(),
                max_consecutive_failures=w.spec.max_consecutive_failures,
            )
        ended = engine.now()
        if run.attempts:
            # Retried: the attempts before it are kept, so this one is too.
            self._attempt_ended(run, end.duration, ended=ended)
        w.last_success_seq = next(engine.seq)
        w.last_success = ended
        w.runs_ok += 1
        w.record(outcome=Outcome.RETRIED if run.attempt > 1 else Outcome.SUCCEEDED)
        follow_ups = (
            self._dependency_triggers(w, ended) if engine.dependents.get(w.name) else None
        )
        record = run.record.finished(
            RunStatus.SUCCEEDED, ended_at=ended, attempts=run.attempt, duration_s=end.duration
        )
        chained = tuple([t for _, t in follow_ups]) if follow_ups else ()
        kept, _ = await self._finish(w, run, record, triggers=chained)
        if not kept:
            return
        engine.publish(
            ev.RunSucceeded(
                ts=ended, worker=w.name, run_id=record.id, trigger_id=record.trigger.id,
                source=record.trigger.source.value, attempt=run.attempt,
                duration_s=end.duration,
            )
        )
        if was_half_open:
            engine.publish(
                ev.WorkerEnabled(
                    ts=ended, worker=w.name, reason="circuit closed: trial run succeeded"
                )
            )
        if follow_ups:
            for dependent, trigger in follow_ups:
                self._dispatcher.queue(dependent, trigger)
        self._end_run(w, run)

    async def _failed(
        self, w: WorkerRuntime, run: ActiveRun, end: AttemptEnd, effects: Effects
    ) -> None:
        engine = self._engine
        before = w.breaker
        w.breaker = circuit_transition(
            before, CircuitEvent.RUN_FAILED, now=trio.current_time(),
            max_consecutive_failures=w.spec.max_consecutive_failures,
        )
        w.runs_failed += 1
        w.record(outcome=Outcome.FAILED)
        ended = engine.now()
        record = run.record.finished(
            RunStatus.FAILED, ended_at=ended, attempts=run.attempt, duration_s=end.duration,
            error=end.error,
        )
        kept, dlq_id = await self._finish(
            w, run, record,
            dead_letter=DeadLetterDraft(error=end.error, traceback=end.traceback),
        )
        if not kept:
            return
        if dlq_id is not None:
            engine.dlq_size += 1
        source = record.trigger.source.value
        engine.publish(
            ev.RunFailed(
                ts=ended, worker=w.name, run_id=record.id, trigger_id=record.trigger.id,
                source=source, attempt=run.attempt, duration_s=end.duration, error=end.error,
            )
        )
        engine.publish(
            ev.DeadLettered(
                ts=ended, worker=w.name, run_id=record.id, trigger_id=record.trigger.id,
                source=source, attempt=run.attempt, dlq_id=dlq_id or 0, error=end.error,
                payload=record.trigger.payload,
            )
        )
        if w.circuit is Circuit.OPEN and before.circuit is not Circuit.OPEN:
            if before.circuit is Circuit.HALF_OPEN:
                reason = "circuit re-opened: trial run failed"
            else:
                reason = f"circuit open after {w.consecutive_failures} failures"
            engine.publish(ev.WorkerDisabled(ts=ended, worker=w.name, reason=reason))
            cooldown = w.spec.circuit_cooldown_seconds
            if cooldown is not None and w.breaker.opened_at is not None:
                self._dispatcher.wake_at(w.breaker.opened_at + cooldown, w)
        backoff = 0.0
        if Effect.BACK_OFF in effects:
            # A failed iteration backs off like a retry, growing with the failed runs in
            # a row: a continuous worker that cannot work must not spin.
            backoff = backoff_delay(
                w.consecutive_failures, w.spec.retry_backoff_seconds,
                w.spec.retry_backoff_max_seconds, engine.rng,
            )
        self._end_run(w, run, backoff=backoff)

    async def _record_interrupted(
        self,
        w: WorkerRuntime,
        run: ActiveRun,
        effects: Effects,
        duration: float | None,
        reason: str,
    ) -> None:
        engine = self._engine
        ended = engine.now()
        if not run.attempts or run.attempts[-1].number != run.attempt:
            # Cut off while its attempt ran (not while it waited to retry).
            self._attempt_ended(run, duration, f"interrupted: {reason}", ended=ended)
        record = run.record.finished(
            RunStatus.INTERRUPTED, ended_at=ended, attempts=run.attempt, duration_s=duration,
            error=f"interrupted: {reason}",
        )
        engine.interrupted_count += 1
        kept, _ = await self._finish(w, run, record, requeue=Effect.REQUEUE in effects)
        if not kept:
            return
        engine.publish(
            ev.RunInterrupted(
                ts=ended, worker=w.name, run_id=record.id, trigger_id=record.trigger.id,
                source=record.trigger.source.value, attempt=run.attempt, reason=reason,
                duration_s=duration,
            )
        )
        self._end_run(w, run)

    async def _finish(
        self,
        w: WorkerRuntime,
        run: ActiveRun,
        record: RunRecord,
        *,
        requeue: bool = False,
        dead_letter: DeadLetterDraft | None = None,
        triggers: Sequence[Trigger] = (),
    ) -> tuple[bool, int | None]:
        """Record the run's end through the coordinator, under its lease.

        Returns:
            (False, None) if the lease was lost: the outcome is not ours to record or
            announce. Else (True, the new DLQ entry's id or None); a write the store
            refused is counted in its health, and the run ends all the same.
        """
        finish = self._coordinator.finish
        try:
            entry_id = await finish(
                run, record, requeue=requeue, dead_letter=dead_letter, triggers=triggers
            )
        except LeaseLost:
            self._lost(w, run)
            return False, None
        except Exception as exc:
            try:
                entry_id = await persist_after(
                    self._engine, exc, finish, run, record,
                    requeue=requeue, dead_letter=dead_letter, triggers=triggers,
                )
            except WriteRefused:
                return True, None
            except LeaseLost:
                self._lost(w, run)
                return False, None
        else:
            if self._engine.store_health.failing:
                wrote(self._engine)
        return True, entry_id

    def _lost(self, w: WorkerRuntime, run: ActiveRun) -> None:
        """The run's lease was taken away: its outcome is not ours to record."""
        lease_lost(self._engine, run)
        self._end_run(w, run)

    # ------------------------------------------------------------------ helpers

    def _attempt_ended(
        self,
        run: ActiveRun,
        duration: float | None,
        error: str | None = None,
        traceback: str | None = None,
        *,
        ended: datetime | None = None,
    ) -> None:
        """Keep the current attempt of `run`, stored with the run's end."""
        if not isinstance(run.attempts, list):
            run.attempts = []
        run.attempts.append(
            Attempt(
                number=run.attempt,
                started_at=run.attempt_started_at or run.record.started_at,
                ended_at=ended or self._engine.now(), duration_s=duration,
                error=error or None, traceback=traceback or None,
            )
        )

    def _end_run(self, w: WorkerRuntime, run: ActiveRun, *, backoff: float = 0.0) -> None:
        engine = self._engine
        if run.holds_slot:
            run.holds_slot = False
            engine.slots_used -= 1
        if w.run is not run:
            # Not the worker's run any more: dropped by self-fencing, or, in a cluster, a
            # claim took the worker again between this end's commit (which freed the
            # lease) and its return here. The worker's state is the newer run's.
            engine.notify()
            return
        engine.attempting.discard(w.name)
        w.phase = Phase.IDLE
        w.run = None
        w.stuck = False
        if (w.retiring or w.replacement is not None) and not settle_after_run(
            engine, self._dispatcher, w
        ):
            return  # removed by a reload: gone now that its run has ended
        now = trio.current_time()
        if w.spec.mode is Mode.CONTINUOUS:
            w.idle_since = now + backoff
            if backoff > 0:
                self._dispatcher.wake_at(w.idle_since, w)
        ready = self._dispatcher.ready
        if w.demand_since(now) is not None:
            ready.add(w.name)
        # A run's end is what changes most workers' health: judged here, one at a time,
        # rather than all at the monitor's next tick (a stall at thousands of runs/s).
        self._monitor.refresh(w, now)
        # A freed slot or a finished dependency matters only to workers that want to run
        # (or to a shutdown waiting for the last run): otherwise the dispatcher sleeps on.
        if ready or not engine.running:
            engine.notify()

    def _dependency_triggers(
        self, w: WorkerRuntime, now: datetime
    ) -> list[tuple[WorkerRuntime, Trigger]]:
        """Triggers for `triggered` dependents whose dependencies all freshly succeeded."""
        engine = self._engine
        workers = engine.workers
        out = []
        for name in engine.dependents.get(w.name, ()):
            dependent = workers[name]
            if dependent.spec.mode is not Mode.TRIGGERED:
                continue
            mark = dependent.dependency_mark
            if all(
                (seq := workers[dep].last_success_seq) is not None and seq > mark
                for dep in dependent.spec.depends_on
            ):
                dependent.dependency_mark = next(engine.seq)
                out.append(
                    (dependent, Trigger(worker=name, source=Source.DEPENDENCY, accepted_at=now))
                )
        return out


def lease_lost(engine: Engine, run: ActiveRun) -> None:
    """Say that a write about `run` was refused: its lease (token) no longer holds it."""
    engine.publish(
        ev.LeaseLost(ts=engine.now(), worker=run.record.worker, run_id=run.record.id,
                     token=run.token)
    )
