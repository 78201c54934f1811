"""Health of each worker and of the orchestrator: pure functions of state and time."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable

import attrs

from ._eligibility import format_seconds
from ._records import Circuit
from ._runtime import ActiveRun, Outcome, Phase, WorkerRuntime
from ._spec import Mode


class Health(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILING = "failing"
    DISABLED = "disabled"
    OVERDUE = "overdue"
    STALLED = "stalled"
    STUCK = "stuck"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def serving(self) -> bool:
        """Whether `/healthz` answers 200: ok and degraded serve, the rest do not."""
        return self.severity <= 1


_SEVERITY = {
    Health.OK: 0,
    Health.DEGRADED: 1,
    Health.OVERDUE: 2,
    Health.FAILING: 2,
    Health.STALLED: 2,
    Health.DISABLED: 2,
    Health.STUCK: 3,
}

#: Loop lag above this degrades the orchestrator's health.
LAG_DEGRADED_S = 0.5
#: A cluster node's clock further than this from the database's degrades its health.
CLOCK_SKEW_DEGRADED_S = 1.0


@attrs.frozen
class HealthReport:
    health: Health
    reasons: tuple[str, ...] = ()


#: The report of a worker with nothing wrong (one object: reports are immutable).
HEALTHY = HealthReport(Health.OK)


def is_stuck(run: ActiveRun, now: float, stuck_after: float) -> bool:
    """A running attempt that was cancelled (timeout or shutdown) and has not returned."""
    cancelled_at = run.cancel_requested_t
    if cancelled_at is None and run.attempt_deadline_t != math.inf:
        cancelled_at = run.attempt_deadline_t
    return cancelled_at is not None and now >= cancelled_at + stuck_after


def worker_health(
    w: WorkerRuntime, now: float, *, paused: bool = False, late_from: float = -math.inf
) -> HealthReport:
    """One worker's health (DESIGN.md "Health monitor"), worst condition first.

    Args:
        w: the worker.
        now: trio time.
        paused: the orchestrator is paused: an intended pause makes nothing overdue.
        late_from: when the orchestrator last resumed: lateness counts from then, not
            from a due time that passed while it was paused.
    """
    spec = w.spec
    breaker = w.breaker
    if w.stuck and w.phase is Phase.RUNNING:
        return HealthReport(Health.STUCK, ("did not return after being cancelled",))
    if breaker.circuit is Circuit.OPEN:
        return HealthReport(
            Health.DISABLED, (f"circuit open after {breaker.consecutive_failures} failures",)
        )
    if not w.enabled:
        return HealthReport(Health.DISABLED, ("disabled by operator",))
    if (
        spec.mode is Mode.CONTINUOUS
        and w.phase is Phase.RUNNING
        and w.heartbeat_t is not None
        and now - w.heartbeat_t > spec.stall_seconds
    ):
        silent = format_seconds(now - w.heartbeat_t)
        return HealthReport(Health.STALLED, (f"no heartbeat for {silent}",))
    if (
        not paused
        and spec.mode is Mode.SCHEDULED
        and w.next_due is not None
        and w.period > 0
        and now - max(w.next_due, late_from) > w.period
    ):
        late = format_seconds(now - max(w.next_due, late_from))
        return HealthReport(Health.OVERDUE, (f"scheduled run late by {late}",))
    threshold = spec.max_consecutive_failures
    failures = breaker.consecutive_failures
    if failures >= math.ceil(threshold / 2):
        return HealthReport(
            Health.FAILING,
            (f"{failures} failed runs in a row (circuit opens at {threshold})",),
        )
    # Judged at every run's end: counted in C (`list.count`), not in a generator.
    outcomes = w.outcomes
    failed = outcomes.count(Outcome.FAILED)
    retried = outcomes.count(Outcome.RETRIED)
    if failed or retried:
        parts = []
        if failed:
            parts.append(f"{failed} failed")
        if retried:
            parts.append(f"{retried} retried")
        return HealthReport(
            Health.DEGRADED, (f"{' and '.join(parts)} of the last {len(outcomes)} runs",)
        )
    return HEALTHY


def overall_health(
    workers: Iterable[tuple[str, HealthReport, bool]],
    *,
    loop_lag_s: float,
    store_errors: int,
    events_dropped: int,
    last_store_error: str | None = None,
    store_rejected: int = 0,
    store_rows_skipped: int = 0,
    listener_down_poll_s: float | None = None,
    clock_skew_s: float | None = None,
) -> HealthReport:
    """The worst of every worker's health and the orchestrator's own conditions.

    Args:
        workers: (name, health, disabled_by_operator) per worker. A worker an operator
            disabled on purpose does not make the service unhealthy.
        loop_lag_s: the watchdog's recent event-loop lag.
        store_errors: transient store errors since the last successful write (failing).
        events_dropped: events lost by slow subscribers since the last look.
        last_store_error: the latest store error, named in the reason.
        store_rejected: writes the store refused for good since start (degraded: what
            they held is lost, and an operator should look, but the store works).
        store_rows_skipped: damaged rows the store skipped at open (degraded).
        listener_down_poll_s: a cluster node whose LISTEN connection is down: the
            seconds between the polls it falls back to (degraded: work is seen late).
        clock_skew_s: a cluster node's clock minus the database's (degraded beyond
            `CLOCK_SKEW_DEGRADED_S`: its timestamps and the database's disagree).
    """
    worst = Health.OK
    reasons: list[str] = []
    for name, report, by_operator in workers:
        if by_operator or report.health is Health.OK:
            continue
        # Disabled yet not by an operator (those were skipped above): its circuit is open.
        word = "circuit open" if report.health is Health.DISABLED else report.health.value
        reasons.append(f"{name}: {word}")
        if report.health.severity > worst.severity:
            worst = report.health
    if loop_lag_s > LAG_DEGRADED_S:
        reasons.append(f"event loop lag {loop_lag_s:.2f}s")
        worst = max(worst, Health.DEGRADED, key=lambda h: h.severity)
    if events_dropped:
        reasons.append(f"{events_dropped} events dropped by slow subscribers")
        worst = max(worst, Health.DEGRADED, key=lambda h: h.severity)
    latest = f" (last: {last_store_error})" if last_store_error else ""
    if store_errors:
        reasons.append(f"store errors: {store_errors}{latest}")
        worst = max(worst, Health.FAILING, key=lambda h: h.severity)
    if store_rejected:
        reasons.append(
            f"store refused {store_rejected} write{'s' if store_rejected != 1 else ''}"
            + ("" if store_errors else latest)
        )
        worst = max(worst, Health.DEGRADED, key=lambda h: h.severity)
    if store_rows_skipped:
        reasons.append(f"{store_rows_skipped} damaged store rows skipped at start")
        worst = max(worst, Health.DEGRADED, key=lambda h: h.severity)
    if listener_down_poll_s is not None:
        reasons.append(f"listener down: polling every {listener_down_poll_s:g}s")
        worst = max(worst, Health.DEGRADED, key=lambda h: h.severity)
    if clock_skew_s is not None and abs(clock_skew_s) > CLOCK_SKEW_DEGRADED_S:
        side = "ahead of" if clock_skew_s > 0 else "behind"
        reasons.append(f"clock skew {abs(clock_skew_s):.1f}s ({side} the database)")
        worst = max(worst, Health.DEGRADED, key=lambda h: h.severity)
    return HealthReport(worst, tuple(reasons))
