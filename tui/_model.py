"""What the dashboard knows about its orchestrator: the model every screen reads.

The latest snapshot, the dead letters and runs read last, what has changed since (the
dirty flags) and whether a stop has begun. It reads the core (snapshots: sync; dead
letters and history: async, through the bridge) and never draws: the screens show it,
the app decides when it is read again, the controller acts on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from typing import Any

import attrs

from jobdeck import (
    ControlFailed,
    DeadLetter,
    DeadLetterDeleted,
    DeadLettered,
    DeadLetterReplayed,
    Event,
    JobdeckError,
    LogRecordView,
    Orchestrator,
    OrchestratorSnapshot,
    OrchestratorStopped,
    RunDetail,
    RunFailed,
    RunInterrupted,
    RunRecord,
    RunStarted,
    RunSucceeded,
    Trigger,
    TriggerAccepted,
    WorkerSnapshot,
)

from ._bridge import CoreBridge, CoreNotRunning

#: Dead letters and history runs read per reload, and runs read for a worker's detail.
DLQ_LIMIT = 500
HISTORY_LIMIT = 200
WORKER_RUNS_LIMIT = 20
#: Seconds between two history reloads while runs keep ending.
HISTORY_MIN_INTERVAL = 1.0
#: Seconds between two reads of the cluster's nodes and leases while the Nodes tab shows.
NODES_READ_INTERVAL = 1.0

#: Events that end (or start) a run: the history and a detail screen's runs are stale.
RUN_EVENTS = (RunStarted, RunSucceeded, RunFailed, RunInterrupted)
#: Events that change the dead-letter queue.
DLQ_EVENTS = (DeadLettered, DeadLetterReplayed, DeadLetterDeleted)
#: Events that answer a person in the flash line (or end the app).
NOTABLE_EVENTS = (ControlFailed, DeadLetterDeleted, OrchestratorStopped)
#: Events that carry a trigger's payload.
PAYLOAD_EVENTS = (TriggerAccepted, RunStarted)


@attrs.frozen
class EventBatch:
    """Events taken from the bridge at once, and the kinds among them.

    A burst brings thousands of events: what a kind of event means is looked for only
    when that kind is present.
    """

    events: Sequence[Event]
    kinds: frozenset[type]

    def has(self, wanted: tuple[type, ...]) -> bool:
        """Whether an event of one of the `wanted` classes is in the batch."""
        return any(issubclass(kind, wanted) for kind in self.kinds)

    def of(self, wanted: tuple[type, ...]) -> list[Event]:
        """The events of the `wanted` classes, in order."""
        if not self.has(wanted):
            return []
        return [event for event in self.events if isinstance(event, wanted)]

    def ran(self, worker: str) -> bool:
        """Whether a run of `worker` started or ended in the batch."""
        return any(event.worker == worker for event in self.of(RUN_EVENTS))  # type: ignore[attr-defined]


class DeckModel:
    """The dashboard's state, apart from what is selected on a screen.

    Args:
        orch: the orchestrator shown.
        bridge: the guest run of `orch`; reads that need trio go through it.
        clock: wall clock for the times worked out here (DLQ, history); tables of
            workers use the snapshot's own `taken_at`.
        tz: time zone for clock times shown; None is the machine's.
        monotonic: the clock history reloads are spaced with.
    """

    def __init__(
        self,
        orch: Orchestrator,
        bridge: CoreBridge,
        *,
        clock: Callable[[], datetime],
        tz: tzinfo | None,
        monotonic: Callable[[], float],
    ) -> None:
        self.orch = orch
        self.bridge = bridge
        self.clock = clock
        self.tz = tz
        self._monotonic = monotonic
        #: The latest snapshot; None until the first is read.
        self.snapshot: OrchestratorSnapshot | None = None
        self._workers_by_name: dict[str, WorkerSnapshot] = {}
        self.dead_letters: list[DeadLetter] = []
        self.runs: list[RunRecord] = []
        #: Something changed since the last snapshot was read.
        self.dirty = True
        #: A stop has begun (q, a signal): no more control actions.
        self.stopping = False
        #: A second stop skipped what was left of the grace.
        self.forced = False
        self._dlq_dirty = True
        self._dlq_loading = False
        self._history_dirty = True
        self._history_loading = False
        self._last_history_load = -float("inf")
        #: The latest payload seen (events) per worker, for the trigger dialog.
        self.last_payloads: dict[str, Any] = {}
        #: Cluster mode, Nodes tab: the nodes and leases read last (as `GET /cluster`
        #: and `GET /cluster/leases` list them), and why the last read failed.
        self.cluster_nodes: list[dict[str, Any]] = []
        self.cluster_leases: list[dict[str, Any]] = []
        self.cluster_error: str | None = None
        #: Whether the nodes have been read once.
        self.cluster_read = False
        self._nodes_loading = False
        self._last_nodes_read = -float("inf")

    # ------------------------------------------------------------------ snapshot

    def read_snapshot(self) -> OrchestratorSnapshot:
        """Read a new snapshot of the orchestrator; it is the latest from now on."""
        snapshot = self.orch.snapshot()
        self.snapshot = snapshot
        self._workers_by_name = {worker.name: worker for worker in snapshot.workers}
        self.dirty = False
        return snapshot

    def worker(self, name: str) -> WorkerSnapshot | None:
        """Worker `name` as of the latest snapshot (None if unknown)."""
        return self._workers_by_name.get(name)

    @property
    def may_control(self) -> bool:
        """Whether control actions can be sent: the core runs and no stop has begun."""
        return self.bridge.running and not self.stopping

    def pending_triggers(self, worker: str) -> Sequence[Trigger]:
        """Triggers waiting for `worker`'s next runs, oldest first."""
        try:
            return self.orch.pending_triggers(worker)
        except LookupError:
            return []

    def logs(self, scope: str | None, limit: int) -> Sequence[LogRecordView]:
        """The last `limit` log lines of worker `scope` (None: of every worker)."""
        return self.orch.logs(scope, limit)

    # ------------------------------------------------------------------ events

    def note(self, events: Sequence[Event]) -> EventBatch:
        """Mark what `events` make stale; the views show it at the next refresh.

        Work per event is one `type()` call; only the kinds present are looked at further.
        """
        batch = EventBatch(events, frozenset(map(type, events)))
        if batch.has(RUN_EVENTS):
            self._history_dirty = True
        if batch.has(DLQ_EVENTS):
            self._dlq_dirty = True
        for event in batch.of(PAYLOAD_EVENTS):
            payload = event.payload  # type: ignore[attr-defined]
            if payload is not None:
                self.last_payloads[event.worker] = payload  # type: ignore[attr-defined]
        self.dirty = True
        return batch

    def dead_letters_changed(self) -> None:
        """The dead-letter queue was changed from here: read it again when shown."""
        self._dlq_dirty = True

    # ------------------------------------------------------------------ reads

    def start_dead_letters_read(self) -> bool:
        """Whether the dead letters should be read again now; True counts the read begun."""
        if not self._dlq_dirty or self._dlq_loading:
            return False
        self._dlq_dirty = False
        self._dlq_loading = True
        return True

    def start_history_read(self) -> bool:
        """Whether the history should be read again now (at most once a
        `HISTORY_MIN_INTERVAL`); True counts the read begun."""
        if (
            not self._history_dirty
            or self._history_loading
            or self._monotonic() - self._last_history_load < HISTORY_MIN_INTERVAL
        ):
            return False
        self._history_dirty = False
        self._history_loading = True
        self._last_history_load = self._monotonic()
        return True

    def start_nodes_read(self) -> bool:
        """Whether the cluster's nodes should be read again now (at most once a
        `NODES_READ_INTERVAL`); True counts the read begun."""
        if self._nodes_loading or (
            self._monotonic() - self._last_nodes_read < NODES_READ_INTERVAL
        ):
            return False
        self._nodes_loading = True
        self._last_nodes_read = self._monotonic()
        return True

    def nodes_changed(self) -> None:
        """A node was drained or undrained from here: read the nodes at the next chance."""
        self._last_nodes_read = -float("inf")

    async def read_nodes(self) -> bool:
        """Read the cluster's nodes and leases (after `start_nodes_read`); False if the
        core has ended meanwhile. A failed read keeps what was read before and says why
        in `cluster_error`."""
        try:
            nodes, leases = await self.bridge.read(_read_cluster, self.orch)
        except CoreNotRunning:
            return False
        except (JobdeckError, LookupError, OSError) as exc:
            self.cluster_error = str(exc) or type(exc).__name__
            return True
        finally:
            self._nodes_loading = False
        self.cluster_nodes, self.cluster_leases = nodes, leases
        self.cluster_error = None
        self.cluster_read = True
        return True

    async def set_node_state(self, name: str, state: str) -> str | None:
        """Drain (`draining`) or undrain (`active`) node `name`; None when done, else why
        not."""
        try:
            found = await self.bridge.read(self.orch.set_node_state, name, state)
        except CoreNotRunning:
            return "jobdeck is not taking requests right now"
        except (JobdeckError, LookupError, OSError, ValueError) as exc:
            return str(exc) or type(exc).__name__
        self.nodes_changed()
        return None if found else f"no node named {name!r} in the cluster"

    async def read_dead_letters(self) -> bool:
        """Read the dead letters (after `start_dead_letters_read`); False if the core has
        ended meanwhile."""
        try:
            self.dead_letters = await self.bridge.read(self.orch.dead_letters, DLQ_LIMIT)
        except CoreNotRunning:
            return False
        finally:
            self._dlq_loading = False
        return True

    async def read_history(self) -> bool:
        """Read the latest runs (after `start_history_read`); False if the core has ended
        meanwhile."""
        try:
            self.runs = await self.bridge.read(self.orch.history, None, HISTORY_LIMIT)
        except CoreNotRunning:
            return False
        finally:
            self._history_loading = False
        return True

    async def read_run(self, run_id: str) -> RunDetail | None:
        """One run with its attempts and log lines; None if the core has ended or no
        longer keeps it."""
        try:
            return await self.bridge.read(self.orch.run_detail, run_id)
        except (CoreNotRunning, LookupError):
            return None

    async def read_worker_runs(self, worker: str) -> Sequence[RunRecord] | None:
        """The latest runs of `worker`, newest first; None if the core has ended (or no
        longer knows the worker)."""
        try:
            return await self.bridge.read(self.orch.history, worker, WORKER_RUNS_LIMIT)
        except (CoreNotRunning, LookupError):
            return None

    async def payload_for(self, worker: str) -> tuple[Any, str]:
        """What the trigger dialog offers for `worker`, and where it comes from: the
        latest payload seen for it (events, then its stored runs), else its spec's
        `example_payload`, else `{}`."""
        if worker in self.last_payloads:
            return self.last_payloads[worker], "its last payload"
        for run in await self.read_worker_runs(worker) or ():
            if run.trigger.payload is not None:
                return run.trigger.payload, "its last run's payload"
        known = self.worker(worker)
        if known is not None and known.spec.example_payload is not None:
            return known.spec.example_payload, "the example_payload of its spec"
        return {}, ""


async def _read_cluster(orch: Orchestrator) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The cluster's nodes and its leases, in one trip to the core."""
    status = await orch.cluster_status()
    leases = await orch.cluster_leases()
    return list(status["nodes"]), list(leases)
