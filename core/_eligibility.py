"""When a worker may start, and in words why it is not running: pure functions."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping

import attrs

from ._records import Circuit
from ._runtime import Phase, WorkerRuntime
from ._spec import Mode


class Lifecycle(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@attrs.define(kw_only=True)
class World:
    """What eligibility needs to know beyond the worker itself."""

    workers: Mapping[str, WorkerRuntime]
    #: every worker's symmetric set of workers it may not run beside.
    blockers: Mapping[str, frozenset[str]]
    slots_used: int
    max_slots: int
    lifecycle: Lifecycle = Lifecycle.RUNNING
    paused: bool = False


def format_seconds(seconds: float) -> str:
    """`42s`, `4m 05s`, `2h 03m`: short, for reasons shown in a table cell."""
    seconds = max(0, math.ceil(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def _disabled_reason(w: WorkerRuntime, now: float) -> str | None:
    if not w.enabled:
        return "disabled"
    if w.circuit is Circuit.OPEN:
        reason = f"disabled: circuit open after {w.consecutive_failures} failures"
        cooldown = w.spec.circuit_cooldown_seconds
        opened = w.breaker.opened_at
        if cooldown is not None and opened is not None:
            reason += f", trial run in {format_seconds(opened + cooldown - now)}"
        return reason
    return None


def _dependency_wait(w: WorkerRuntime, world: World) -> str | None:
    for name in w.spec.depends_on:
        dep = world.workers[name]
        if dep.in_flight:
            return f"waiting on {name}"
        if dep.last_success_seq is None:
            return f"waiting on {name}"
        if w.last_start_seq is not None and dep.last_success_seq < w.last_start_seq:
            return f"waiting on {name}"
    return None


def start_blocker(w: WorkerRuntime, world: World, now: float) -> str | None:
    """Why `w`'s next attempt cannot start now (DESIGN.md "Eligibility"), or None.

    Assumes `w` wants to start (a pending trigger, a due time, or a retry that is due).
    A retry needs a slot and no blocker running, but not fresh dependencies: those
    were checked when the run started.
    """
    if world.lifecycle is not Lifecycle.RUNNING:
        return world.lifecycle.value
    disabled = _disabled_reason(w, now)
    if disabled is not None:
        return disabled
    if world.paused:
        return "paused"
    if w.phase is Phase.RUNNING:
        return "running"
    if w.phase is Phase.IDLE:
        waiting = _dependency_wait(w, world)
        if waiting is not None:
            return waiting
    for name in sorted(world.blockers.get(w.name, ())):
        if world.workers[name].phase is Phase.RUNNING:
            return f"blocked by {name}"
    if world.slots_used >= world.max_slots:
        return f"queued: {world.slots_used}/{world.max_slots} slots busy"
    return None


def waiting_reason(w: WorkerRuntime, world: World, now: float) -> str:
    """What a person should read in the "why" column for this worker, now."""
    run = w.run
    if w.phase is Phase.RUNNING and run is not None:
        if w.stuck:
            return "stuck: did not return after being cancelled"
        return f"running attempt {run.attempt}/{w.spec.max_retries + 1}"
    if world.lifecycle is not Lifecycle.RUNNING:
        return world.lifecycle.value
    disabled = _disabled_reason(w, now)
    if disabled is not None:
        return disabled
    if w.phase is Phase.RETRY_WAIT and run is not None and run.retry_at > now:
        total = w.spec.max_retries + 1
        return (
            f"retrying in {format_seconds(run.retry_at - now)}"
            f" (attempt {run.attempt + 1}/{total})"
        )
    if world.paused:
        return "paused"
    if w.phase is Phase.IDLE and w.demand_since(now) is None:
        return _idle_reason(w, world, now)
    reason = start_blocker(w, world, now) or "starting"
    if w.circuit is Circuit.HALF_OPEN:
        reason += " (circuit half-open: trial run)"
    return reason


def _idle_reason(w: WorkerRuntime, world: World, now: float) -> str:
    if w.spec.mode is Mode.SCHEDULED and w.next_due is not None:
        return f"next in {format_seconds(w.next_due - now)}"
    if w.spec.mode is Mode.TRIGGERED and w.spec.depends_on:
        return _dependency_wait(w, world) or "waiting for a trigger"
    if w.spec.mode is Mode.TRIGGERED:
        return "waiting for a trigger"
    if w.spec.mode is Mode.CONTINUOUS and w.idle_since > now:
        return f"backing off: next in {format_seconds(w.idle_since - now)}"
    return "starting"


def dispatch_key(w: WorkerRuntime, due: float) -> tuple[int, float, int]:
    """Sort key among eligible runs: priority high first, then earliest due, then order."""
    return (-int(w.spec.priority), due, w.index)
