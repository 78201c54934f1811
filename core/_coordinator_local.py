"""`LocalCoordinator`: what may start, decided in memory by the one process that owns its store.

With SQLite or `:memory:`, one process owns the store (the store's lock makes sure), so
the in-memory view of every worker is the truth: admission is the eligibility rules
(`_eligibility.start_blocker`) applied to it, best first, and the store journals each
decision. Leases still carry fencing tokens, so the engine's write path is the same as
a cluster's, where a lease can be taken away.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Sequence

from ._eligibility import start_blocker
from ._engine import Engine
from ._errors import LeaseLost
from ._lifecycle import RunEvent
from ._records import RunRecord, Source, Trigger
from ._runtime import ActiveRun, Phase, WorkerRuntime
from ._spec import Mode
from ._store import DeadLetterDraft, WorkerChange


class LocalCoordinator:
    """Admits runs from the engine's in-memory state and journals them in its store."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._tokens = itertools.count(1)
        #: worker -> the token of its live lease (running or waiting to retry).
        self._leases: dict[str, int] = {}
        #: worker -> the token of its last run whose end was written (good for writing
        #: that end again, should the store fail, while the worker holds no newer lease).
        self._ending: dict[str, int] = {}

    # ------------------------------------------------------------------ admission

    async def claim(
        self, ready: Sequence[WorkerRuntime], now: float, limit: int
    ) -> list[ActiveRun]:
        return self.claim_now(ready, now, limit)

    def claim_now(
        self, ready: Sequence[WorkerRuntime], now: float, limit: int
    ) -> list[ActiveRun]:
        """Admit the ready workers that may start, in the order given, while slots last.

        Decided in memory, so at once. Each admission is applied before the next
        candidate is judged (the worker holds its slot and counts as running): two
        workers that block each other are never admitted together.
        """
        engine = self._engine
        world = engine.world()
        admitted: list[ActiveRun] = []
        for w in ready:
            if len(admitted) >= limit:
                break
            world.slots_used = engine.slots_used
            if start_blocker(w, world, now) is None:
                admitted.append(self.admit(w, now))
        return admitted

    def admit_now(self, w: WorkerRuntime, now: float) -> ActiveRun | None:
        """Admit `w` if it may start now (it is the only ready worker)."""
        if start_blocker(w, self._engine.world(), now) is None:
            return self.admit(w, now)
        return None

    def admit(self, w: WorkerRuntime, now: float) -> ActiveRun:
        """Start `w`'s next attempt: a retry that is due, or a new run of its next trigger."""
        engine = self._engine
        run = w.run
        if w.phase is Phase.RETRY_WAIT and run is not None:
            run.advance(RunEvent.STARTED, now=now)
            run.attempt_started_t = now
            run.attempt_deadline_t = float("inf")
            run.cancel_requested_t = None
        else:
            name = w.name
            trigger = self._take_trigger(w, now)
            started_at = engine.now()
            token = next(self._tokens)
            run = ActiveRun(
                record=RunRecord(worker=name, trigger=trigger, started_at=started_at),
                token=token,
                state=w.first_states.get(requeue := trigger.source is not Source.CONTINUOUS)
                or w.first_attempt_state(requeue),
                attempt=1,
                attempt_started_t=now,
            )
            self._leases[name] = token
            w.run = run
            w.last_start_seq = next(engine.seq)
            w.last_start = started_at
        # The STARTED transition's effect: a slot, taken here so the next candidate of
        # this claim is judged against it.
        w.phase = Phase.RUNNING
        w.stuck = False
        engine.slots_used += 1
        run.holds_slot = True
        engine.attempting.add(w.name)
        return run

    def _take_trigger(self, w: WorkerRuntime, now: float) -> Trigger:
        """The trigger w's new run serves: the oldest of its queue and its due schedule."""
        engine = self._engine
        schedule_due = (
            w.next_due
            if w.spec.mode is Mode.SCHEDULED and w.next_due is not None and w.next_due <= now
            else None
        )
        if w.pending and (schedule_due is None or w.pending[0].queued_t <= schedule_due):
            engine.pending_count -= 1
            return w.take().trigger
        source = Source.SCHEDULE if schedule_due is not None else Source.CONTINUOUS
        return Trigger(worker=w.name, source=source, accepted_at=engine.now())

    # ------------------------------------------------------------------ records

    def started(self, run: ActiveRun) -> Awaitable[None]:
        """Record the run's start: the store's own write, awaited by the caller (a plain
        function, not a coroutine: one frame less on every run's path)."""
        record = run.record
        if self._leases.get(record.worker) != run.token:
            raise LeaseLost(record.worker, run.token)
        return self._engine.store.start_run(record)

    def finish(
        self,
        run: ActiveRun,
        record: RunRecord,
        *,
        requeue: bool = False,
        dead_letter: DeadLetterDraft | None = None,
        triggers: Sequence[Trigger] = (),
    ) -> Awaitable[int | None]:
        """Release the run's lease and return the store's write of its end.

        A plain function returning the store's own coroutine (one frame less on every
        run's path). The released token stays good for writing this end again, should
        the store fail and the write be retried, until the worker's next lease.
        """
        name = record.worker
        token = run.token
        if self._leases.get(name) == token:
            del self._leases[name]
            self._ending[name] = token
        elif name in self._leases or self._ending.get(name) != token:
            # A newer lease of the worker, or a token that never ended here.
            raise LeaseLost(name, token)
        # One process owns the store: the in-memory row, already changed by the
        # outcome, is the truth, and the journal takes it whole.
        engine = self._engine
        worker = engine.worker_state(engine.workers[name])
        return engine.store.finish_run(
            record, worker=worker, requeue=requeue, dead_letter=dead_letter, triggers=triggers,
            detail=run.detail(),
        )

    async def change_worker(self, name: str, change: WorkerChange) -> None:
        # Applied in memory already (one process owns the store): journal the row.
        engine = self._engine
        w = engine.workers.get(name)
        if w is None:
            return  # removed by a reload meanwhile: its state is parked, as it was then
        await engine.store.save_worker(engine.worker_state(w))

    def holds(self, worker: str) -> int | None:
        """The token of `worker`'s live lease, if it has one."""
        return self._leases.get(worker)
