"""Frozen snapshots of orchestrator and worker state, for the TUI, logs, API and metrics,
and how they are taken from the engine."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from ._eligibility import Lifecycle, World, format_seconds, waiting_reason
from ._engine import Engine
from ._health import Health
from ._records import Circuit
from ._runtime import Phase, WorkerRuntime
from ._spec import Mode, WorkerSpec


class WorkerStatus(enum.StrEnum):
    """The one word that says what a worker is doing now."""

    RUNNING = "running"
    #: cancelled (timeout or shutdown) and has not returned: its slot stays taken.
    STUCK = "stuck"
    #: between attempts, holding no slot.
    RETRYING = "retrying"
    #: disabled by an operator.
    DISABLED = "disabled"
    #: enabled, but its circuit opened after failed runs: none start until it is reset
    #: (or, with a cooldown, until its trial run).
    CIRCUIT_OPEN = "circuit_open"
    #: wants to run and cannot yet (the reason says why).
    WAITING = "waiting"
    IDLE = "idle"


class OrchestratorState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"


@attrs.frozen(kw_only=True)
class WorkerSnapshot:
    """One worker as it is at one moment."""

    name: str
    spec: WorkerSpec
    fn: str
    state: WorkerStatus
    #: why it is not running, in words ("next in 42s", "blocked by backup"...).
    reason: str
    health: Health
    health_reasons: tuple[str, ...]
    enabled: bool
    circuit: Circuit
    #: enabled by the operator and the circuit lets runs through (the one rule, here).
    may_run: bool
    consecutive_failures: int
    attempt: int | None
    max_attempts: int
    runs_ok: int
    runs_failed: int
    pending: int
    last_start: datetime | None
    last_success: datetime | None
    last_error: str | None
    last_traceback: str | None
    last_duration_s: float | None
    durations: tuple[float, ...]
    next_due: datetime | None
    running_since: datetime | None
    run_id: str | None
    #: cluster mode: the node running it (this one or another), else None.
    node: str | None = None
    #: the token of its live lease, if it has one (local runs have tokens too).
    lease_token: int | None = None
    #: cluster mode: seconds until the holding node's lease runs out, as last read.
    lease_expires_s: float | None = None

    @property
    def mode(self) -> str:
        return self.spec.mode.value

    @property
    def priority(self) -> str:
        return self.spec.priority.label


@attrs.frozen(kw_only=True)
class ClusterSnapshot:
    """Cluster mode: the cluster as this node last read it (at most a second old)."""

    #: this node's name.
    node: str
    #: the database, for people: `pg://host/db` (never the password).
    store: str
    #: nodes registered in the cluster.
    nodes: int
    #: runs in flight over the cluster, and the cluster's `max_concurrent_workers`.
    slots_used: int
    slots_max: int
    #: runs in flight on this node, and its `capacity`.
    node_used: int
    node_capacity: int
    #: this node: `active`, `draining` (an operator drained it) or `fenced` (it could
    #: not heartbeat: it claims nothing until it can).
    node_state: str
    #: whether the listener is connected: wake-ups come at once, not with the poll.
    listener_ok: bool
    #: seconds since the view was last read (about 1 normally; more: the database
    #: does not answer, and the rest is that old).
    read_age_s: float = 0.0


@attrs.frozen(kw_only=True)
class OrchestratorSnapshot:
    """The orchestrator and every worker, at one moment."""

    state: OrchestratorState
    health: Health
    health_reasons: tuple[str, ...]
    running: int
    max_concurrent_workers: int
    pending: int
    dlq_size: int
    started_at: datetime | None
    uptime_s: float
    loop_lag_s: float
    events_published: int
    events_dropped: int
    store_errors: int
    #: worker log lines that fell out of the per-worker ring buffers.
    log_lines_dropped: int
    #: while stopping: seconds of shutdown grace left (0 once it is over), else None.
    grace_left_s: float | None
    taken_at: datetime
    workers: tuple[WorkerSnapshot, ...]
    #: cluster mode: the cluster as last read; None in local mode.
    cluster: ClusterSnapshot | None = None

    def worker(self, name: str) -> WorkerSnapshot:
        for w in self.workers:
            if w.name == name:
                return w
        raise KeyError(name)


def take_snapshot(engine: Engine, loop_lag_s: float) -> OrchestratorSnapshot:
    """The orchestrator and every worker, frozen, as of now."""
    now_t = engine.trio_now()
    world = engine.world()
    wall_now = engine.now()
    workers = tuple(
        _worker_snapshot(engine, w, world, now_t, wall_now) for w in engine.workers.values()
    )
    if engine.lifecycle is Lifecycle.RUNNING and engine.paused:
        state = OrchestratorState.PAUSED
    else:
        state = OrchestratorState(engine.lifecycle.value)
    grace_left = None
    if engine.skip_grace:
        grace_left = 0.0
    elif engine.stopping_t is not None:
        grace_left = max(0.0, engine.stopping_t + engine.grace_s() - now_t)
    elif engine.lifecycle is Lifecycle.STOPPING:
        grace_left = engine.grace_s()  # stop() asked; the drain starts at the next step
    return OrchestratorSnapshot(
        state=state,
        health=engine.health.health,
        health_reasons=engine.health.reasons,
        running=engine.slots_used,
        max_concurrent_workers=engine.config.max_concurrent_workers,
        pending=engine.pending_count,
        dlq_size=engine.dlq_size,
        started_at=engine.started_at,
        uptime_s=now_t - engine.started_t if engine.started_at else 0.0,
        loop_lag_s=loop_lag_s,
        events_published=engine.events.published,
        events_dropped=engine.events.dropped,
        store_errors=engine.store_health.errors,
        log_lines_dropped=engine.logs.dropped,
        grace_left_s=grace_left,
        taken_at=wall_now,
        workers=workers,
        cluster=_cluster_snapshot(engine),
    )


def _cluster_snapshot(engine: Engine) -> ClusterSnapshot | None:
    view = engine.cluster
    if view is None:
        return None
    figures = view.figures
    nodes = slots_used = slots_max = 0
    if figures is not None:
        nodes = figures.nodes_active + figures.nodes_draining
        slots_used, slots_max = figures.slots_used, figures.slots_max
    return ClusterSnapshot(
        node=view.node, store=view.store, nodes=nodes,
        # the others' as last read, this node's as of now
        slots_used=max(0, slots_used - view.own_used + engine.slots_used),
        slots_max=slots_max, node_used=engine.slots_used, node_capacity=view.capacity,
        node_state=view.node_state, listener_ok=view.listener_ok,
        read_age_s=max(0.0, engine.trio_now() - view.refreshed_t),
    )


def _worker_snapshot(
    engine: Engine, w: WorkerRuntime, world: World, now_t: float, wall_now: datetime
) -> WorkerSnapshot:
    run = w.run
    if w.phase is Phase.RUNNING:
        state = WorkerStatus.STUCK if w.stuck else WorkerStatus.RUNNING
    elif w.phase is Phase.RETRY_WAIT:
        state = WorkerStatus.RETRYING
    elif not w.enabled:
        state = WorkerStatus.DISABLED
    elif w.circuit is Circuit.OPEN:
        state = WorkerStatus.CIRCUIT_OPEN
    elif w.demand_since(now_t) is not None:
        state = WorkerStatus.WAITING
    else:
        state = WorkerStatus.IDLE
    reason = waiting_reason(w, world, now_t)
    pending = len(w.pending)
    node = lease_expires = None
    token = run.token if run is not None else None
    view = engine.cluster
    if view is not None:
        # cluster mode: what the database said at the last refresh (no query here)
        pending = view.pending.get(w.name, 0)
        lease = view.leases.get(w.name)
        if run is not None:
            node = view.node
            if view.own_expires_t is not None:
                lease_expires = view.own_expires_t - now_t
        elif lease is not None and lease.node != view.node:
            node, token, lease_expires = lease.node, lease.token, lease.expires_t - now_t
            if lease.phase == "running":
                state, reason = WorkerStatus.RUNNING, f"running on {lease.node}"
            else:
                state, reason = WorkerStatus.RETRYING, f"retrying on {lease.node}"
        elif state is WorkerStatus.WAITING and reason == "starting" and (
            view.node_state != "active"
        ):
            # free slots here, but this node claims nothing: another node may take it
            reason = f"queued: this node is {view.node_state}"
        elif pending and state is WorkerStatus.IDLE:
            state = WorkerStatus.WAITING
            lost = view.lost.get(w.name)
            if world.paused:
                reason = "paused"
            elif lost is not None:
                reason = f"requeued: {lost[0]} lost {format_seconds(now_t - lost[1])} ago"
            else:
                reason = f"queued: {pending} pending"
    wall = engine.wall
    return WorkerSnapshot(
        name=w.name,
        spec=w.spec,
        fn=w.fn_ref,
        state=state,
        reason=reason,
        health=Health(w.health),
        health_reasons=w.health_reasons,
        enabled=w.enabled,
        circuit=w.circuit,
        may_run=w.may_run,
        consecutive_failures=w.consecutive_failures,
        attempt=run.attempt if run is not None else None,
        max_attempts=w.spec.max_retries + 1,
        runs_ok=w.runs_ok,
        runs_failed=w.runs_failed,
        pending=pending,
        last_start=w.last_start,
        last_success=w.last_success,
        last_error=w.last_error,
        last_traceback=w.last_traceback,
        last_duration_s=w.last_duration_s,
        durations=tuple(w.durations),
        next_due=wall(w.next_due, now_t, wall_now) if w.spec.mode is Mode.SCHEDULED else None,
        running_since=wall(run.attempt_started_t, now_t, wall_now)
        if run is not None and w.phase is Phase.RUNNING
        else None,
        run_id=run.record.id if run is not None else None,
        node=node,
        lease_token=token,
        lease_expires_s=lease_expires,
    )
