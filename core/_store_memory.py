"""`MemoryStore`: a Store that keeps everything in memory (tests, `--store :memory:`)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ._errors import UnknownDeadLetter, UnknownRun
from ._records import (
    Circuit,
    DeadLetter,
    RunDetail,
    RunDetailDraft,
    RunRecord,
    RunStatus,
    Source,
    StoredState,
    Trigger,
    WorkerState,
)
from ._store import DeadLetterDraft

_PackedRun = tuple[Any, ...]


def _pack(run: RunRecord) -> _PackedRun:
    """A run as a tuple of atoms (strings, numbers, datetimes), which the GC untracks."""
    t = run.trigger
    payload = None if t.payload is None else json.dumps(t.payload)
    return (
        run.id, run.worker, t.id, t.source.value, payload, t.accepted_at,
        run.status.value, run.started_at, run.ended_at, run.attempts, run.duration_s,
        run.error,
    )


def _unpack(packed: _PackedRun) -> RunRecord:
    (run_id, worker, trigger_id, source, payload, accepted_at, status, started_at,
     ended_at, attempts, duration_s, error) = packed
    trigger = Trigger(
        id=trigger_id, worker=worker, source=Source(source),
        payload=None if payload is None else json.loads(payload), accepted_at=accepted_at,
    )
    return RunRecord(
        id=run_id, worker=worker, trigger=trigger, status=RunStatus(status),
        started_at=started_at, ended_at=ended_at, attempts=attempts, duration_s=duration_s,
        error=error,
    )


def _pack_worker(state: WorkerState) -> tuple[Any, ...]:
    return (
        state.enabled, state.circuit.value, state.opened_at, state.consecutive_failures,
        state.last_start, state.last_success, state.last_error,
    )


def _unpack_worker(name: str, packed: tuple[Any, ...]) -> WorkerState:
    enabled, circuit, opened_at, failures, last_start, last_success, last_error = packed
    return WorkerState(
        name=name, enabled=enabled, circuit=Circuit(circuit), opened_at=opened_at,
        consecutive_failures=failures, last_start=last_start, last_success=last_success,
        last_error=last_error,
    )


def _started_at(kept: _PackedRun | RunRecord) -> datetime:
    return kept.started_at if isinstance(kept, RunRecord) else kept[7]


class MemoryStore:
    """A Store that keeps everything in memory (tests, `--store :memory:`).

    An instance survives an orchestrator: giving the same instance to a second
    orchestrator is how tests simulate a restart. Its methods complete without yielding
    (nothing to wait for); the orchestrator's public methods are still checkpoints.
    """

    def __init__(self, *, history_per_worker: int = 200) -> None:
        self.history_per_worker = history_per_worker
        #: worker states packed into plain tuples, like finished runs.
        self._workers: dict[str, tuple[Any, ...]] = {}
        self._pending: dict[str, Trigger] = {}
        #: finished runs packed into plain tuples (the garbage collector need not walk
        #: history); running ones as they are.
        self._runs: dict[str, _PackedRun | RunRecord] = {}
        self._history: dict[str, deque[str]] = {}
        #: what runs' ends stored besides their records, kept as long as the runs.
        self._details: dict[str, RunDetailDraft] = {}
        self._dlq: dict[int, DeadLetter] = {}
        self._next_dlq_id = 1
        self.closed = False

    async def open(self) -> StoredState:
        self.closed = False
        return StoredState(
            workers={name: _unpack_worker(name, t) for name, t in self._workers.items()},
            pending=tuple(self._pending.values()),
            unfinished_runs=tuple(
                r for r in self._runs.values()
                if isinstance(r, RunRecord) and r.status is RunStatus.RUNNING
            ),
            dlq_size=len(self._dlq),
        )

    async def close(self) -> None:
        self.closed = True

    async def add_trigger(self, trigger: Trigger) -> None:
        self._pending[trigger.id] = trigger

    async def start_run(self, run: RunRecord) -> None:
        self._put_run(run, run)

    async def finish_run(
        self,
        run: RunRecord,
        *,
        worker: WorkerState,
        requeue: bool = False,
        dead_letter: DeadLetterDraft | None = None,
        triggers: Sequence[Trigger] = (),
        detail: RunDetailDraft | None = None,
    ) -> int | None:
        self._put_run(run, _pack(run))
        if detail is not None and run.id in self._runs:
            self._details[run.id] = detail
        for trigger in triggers:
            self._pending[trigger.id] = trigger
        if requeue:
            self._pending.setdefault(run.trigger.id, run.trigger)
        else:
            self._pending.pop(run.trigger.id, None)
        self._workers[worker.name] = _pack_worker(worker)
        if dead_letter is None:
            return None
        entry_id = self._next_dlq_id
        self._next_dlq_id += 1
        self._dlq[entry_id] = dead_letter.with_id(entry_id, run)
        return entry_id

    def _put_run(self, run: RunRecord, kept: _PackedRun | RunRecord) -> None:
        history = self._history.setdefault(run.worker, deque())
        if run.id not in self._runs:
            history.append(run.id)
        self._runs[run.id] = kept
        while len(history) > self.history_per_worker:
            oldest = history.popleft()
            del self._runs[oldest]
            self._details.pop(oldest, None)

    async def save_worker(self, state: WorkerState) -> None:
        self._workers[state.name] = _pack_worker(state)

    async def runs(self, worker: str | None = None, limit: int = 50) -> list[RunRecord]:
        if worker is None:
            found = list(self._runs.values())
        else:
            found = [self._runs[i] for i in self._history.get(worker, ())]
        found.sort(key=_started_at, reverse=True)
        return [r if isinstance(r, RunRecord) else _unpack(r) for r in found[:limit]]

    async def run_detail(self, run_id: str) -> RunDetail:
        kept = self._runs.get(run_id)
        if kept is None:
            raise UnknownRun(run_id)
        record = kept if isinstance(kept, RunRecord) else _unpack(kept)
        return RunDetail.of(record, self._details.get(run_id))

    async def dlq_list(self, limit: int | None = None) -> list[DeadLetter]:
        entries = sorted(self._dlq.values(), key=lambda e: e.id, reverse=True)
        return entries if limit is None else entries[:limit]

    async def dlq_get(self, entry_id: int) -> DeadLetter:
        try:
            return self._dlq[entry_id]
        except KeyError:
            raise UnknownDeadLetter(entry_id) from None

    async def dlq_replay(self, entry_id: int, trigger: Trigger) -> None:
        if entry_id not in self._dlq:
            raise UnknownDeadLetter(entry_id)
        del self._dlq[entry_id]
        self._pending[trigger.id] = trigger

    async def dlq_delete(self, entry_id: int) -> None:
        if self._dlq.pop(entry_id, None) is None:
            raise UnknownDeadLetter(entry_id)

    async def dlq_purge(self) -> int:
        count = len(self._dlq)
        self._dlq.clear()
        return count
