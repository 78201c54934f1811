"""The pure decision functions, tested without an event loop.

Schedules, backoff, the circuit breaker, eligibility and the "why" column, health, and
the checks over the graph of workers: each is a function of plain values and a time.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobdeck._circuit import CircuitEvent, CircuitState, circuit_transition
from jobdeck._eligibility import Lifecycle, World, dispatch_key, format_seconds, start_blocker
from jobdeck._eligibility import waiting_reason as _waiting_reason
from jobdeck._graph import dependency_order, graph_problems, symmetric_blocks
from jobdeck._health import Health, HealthReport, overall_health, worker_health
from jobdeck._lifecycle import RunEvent, RunPhase, RunState
from jobdeck._records import Circuit, RunRecord, Source, Trigger
from jobdeck._runtime import ActiveRun, Outcome, Phase, QueuedTrigger, WorkerRuntime
from jobdeck._schedule import (
    backoff_ceiling,
    backoff_delay,
    cron_period,
    next_cron_time,
    next_grid_time,
)
from jobdeck._spec import WorkerSpec

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PARIS = "Europe/Paris"


async def noop(ctx: object) -> None:
    """A worker function that is never called here."""


def worker(name: str, *, index: int = 0, **spec: Any) -> WorkerRuntime:
    """A worker's runtime state as the orchestrator would build it, idle."""
    return WorkerRuntime(
        spec=WorkerSpec(name=name, **spec), fn=noop, fn_ref="x", index=index, is_async=True
    )


def world(
    *workers: WorkerRuntime,
    slots_used: int = 0,
    max_slots: int = 5,
    paused: bool = False,
    lifecycle: Lifecycle = Lifecycle.RUNNING,
) -> World:
    """The orchestrator around `workers`, with blocks made symmetric as it does."""
    return World(
        workers={w.name: w for w in workers},
        blockers=symmetric_blocks(w.spec for w in workers),
        slots_used=slots_used,
        max_slots=max_slots,
        lifecycle=lifecycle,
        paused=paused,
    )


def trigger_pending(w: WorkerRuntime, queued_t: float = 0.0) -> WorkerRuntime:
    """`w` with one manual trigger waiting: it wants to start."""
    trigger = Trigger(worker=w.name, source=Source.MANUAL, accepted_at=T0)
    w.queue(QueuedTrigger(trigger=trigger, queued_t=queued_t))
    return w


def running(w: WorkerRuntime, *, attempt: int = 1) -> WorkerRuntime:
    """`w` with an attempt executing."""
    trigger = Trigger(worker=w.name, source=Source.MANUAL, accepted_at=T0)
    record = RunRecord(worker=w.name, trigger=trigger, started_at=T0)
    w.phase = Phase.RUNNING
    state = RunState(w.spec.max_retries + 1, phase=RunPhase.RUNNING, attempt=attempt)
    w.run = ActiveRun(record=record, token=1, state=state, attempt=attempt)
    return w


def retry_waiting(w: WorkerRuntime, *, failed_attempt: int, retry_at: float) -> WorkerRuntime:
    """`w` between attempts: `failed_attempt` failed, the next is due at `retry_at`."""
    running(w, attempt=failed_attempt)
    w.phase = Phase.RETRY_WAIT
    assert w.run is not None
    w.run.advance(RunEvent.FAILED, now=0.0, retry_delay=retry_at)
    return w


def opened(w: WorkerRuntime, *, failures: int, at: float = 0.0) -> WorkerRuntime:
    """`w` with its circuit open after `failures` failed runs."""
    w.breaker = CircuitState(Circuit.OPEN, failures, at)
    return w


def waiting_reason(w: WorkerRuntime, world: World, now: float = 0.0) -> str:
    return _waiting_reason(w, world, now)


# ---------------------------------------------------------------- next_grid_time


def test_grid_first_point_is_the_anchor_when_before_it() -> None:
    """Before the anchor, the next due time is the anchor itself."""
    assert next_grid_time(100.0, 10.0, 95.0) == 100.0


def test_grid_next_point_is_strictly_after() -> None:
    """Asked at a grid point, the next due time is the following one, not the same."""
    assert next_grid_time(100.0, 10.0, 100.0) == 110.0


def test_grid_keeps_fixed_rate_whatever_the_run_took() -> None:
    """A run that took 3s of a 10s period does not shift the grid."""
    assert next_grid_time(100.0, 10.0, 103.0) == 110.0


def test_grid_coalesces_many_missed_points_into_the_next_one() -> None:
    """An overrun past 37 grid points schedules one run at the next point, no burst."""
    assert next_grid_time(0.0, 10.0, 371.5) == 380.0


def test_grid_times_are_exact_multiples_of_the_interval() -> None:
    """Due times are `anchor + k * interval`, computed afresh, with no drift accumulated."""
    assert next_grid_time(0.5, 0.1, 1000.0) == 0.5 + 9996 * 0.1


@pytest.mark.parametrize(
    ("anchor", "interval", "k"),
    [(837865.2312255158, 524.5744145381439, 1), (98763.34465914771, 60.0, 7735),
     (987259.2010330129, 0.7, 5081), (0.0, 0.1, 3)],
)
def test_grid_never_returns_the_time_asked_at(anchor: float, interval: float, k: int) -> None:
    """At a grid point computed as `anchor + k * interval`, float rounding gives no repeat."""
    at = anchor + k * interval
    assert next_grid_time(anchor, interval, at) == anchor + (k + 1) * interval


def test_grid_never_skips_a_point() -> None:
    """Just before a grid point, that point is next, never the one after."""
    anchor, interval = 98763.34465914771, 60.0
    point = anchor + 7735 * interval
    assert next_grid_time(anchor, interval, point - 1e-6) == point


# ---------------------------------------------------------------- next_cron_time


def test_cron_fires_strictly_after() -> None:
    """`*/5` asked exactly at a fire time gives the next one, five minutes on."""
    fire = next_cron_time("*/5 * * * *", "UTC", T0)
    assert fire == T0 + timedelta(minutes=5)


def test_cron_reads_the_expression_in_its_timezone() -> None:
    """`0 9 * * *` in Paris fires at 09:00 Paris time, 08:00 UTC in winter."""
    fire = next_cron_time("0 9 * * *", PARIS, datetime(2026, 1, 10, 12, 0, tzinfo=UTC))
    assert fire.timestamp() == datetime(2026, 1, 11, 8, 0, tzinfo=UTC).timestamp()


def test_cron_result_is_timezone_aware() -> None:
    """The fire time carries its time zone, so it never mixes with naive wall times."""
    fire = next_cron_time("0 9 * * *", PARIS, T0)
    assert fire.utcoffset() == timedelta(hours=1)


def test_cron_keeps_local_time_across_spring_forward() -> None:
    """A daily 09:00 Paris job moves from 08:00 to 07:00 UTC when clocks go forward."""
    fire = next_cron_time("0 9 * * *", PARIS, datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    assert fire.timestamp() == datetime(2026, 3, 29, 7, 0, tzinfo=UTC).timestamp()


def test_cron_time_skipped_by_spring_forward_fires_once_after_the_jump() -> None:
    """02:30 does not exist in Paris on 29 March 2026: the job runs once, at 03:00."""
    fire = next_cron_time("30 2 * * *", PARIS, datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    assert fire.timestamp() == datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp()


def test_cron_daily_job_runs_once_when_clocks_go_back() -> None:
    """02:30 happens twice in Paris on 25 October 2026: a daily job runs at the first only."""
    first = next_cron_time("30 2 * * *", PARIS, datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    second = next_cron_time("30 2 * * *", PARIS, first)
    assert first.timestamp() == datetime(2026, 10, 25, 0, 30, tzinfo=UTC).timestamp()
    assert second.timestamp() == datetime(2026, 10, 26, 1, 30, tzinfo=UTC).timestamp()


def test_cron_hourly_job_runs_every_real_hour_when_clocks_go_back() -> None:
    """A wildcard-hour job fires in both passes of the repeated hour: every real hour."""
    t = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)
    fires = []
    for _ in range(4):
        t = next_cron_time("0 * * * *", PARIS, t)
        fires.append(t.timestamp())
    start = datetime(2026, 10, 25, 0, 0, tzinfo=UTC).timestamp()
    assert fires == [start + 3600 * i for i in range(4)]


def test_cron_period_is_real_seconds_across_clocks_going_back() -> None:
    """An hourly job's period is 3600s even between 02:00 CEST and 02:00 CET."""
    period = cron_period("0 * * * *", PARIS, datetime(2026, 10, 24, 23, 30, tzinfo=UTC))
    assert period == 3600.0


def test_cron_period_is_real_seconds_across_spring_forward() -> None:
    """An hourly job's period is 3600s between 01:00 CET and 03:00 CEST."""
    period = cron_period("0 * * * *", PARIS, datetime(2026, 3, 29, 0, 30, tzinfo=UTC))
    assert period == 3600.0


# ---------------------------------------------------------------- backoff


def test_backoff_ceiling_doubles_from_the_base() -> None:
    """After 1, 2, 3, 4 failed attempts the ceiling is 1, 2, 4, 8 times the base."""
    assert [backoff_ceiling(n, 1.0, 60.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]


def test_backoff_ceiling_is_capped() -> None:
    """The ceiling never exceeds `retry_backoff_max_seconds`."""
    assert backoff_ceiling(7, 1.0, 60.0) == 60.0


def test_backoff_ceiling_survives_huge_attempt_counts() -> None:
    """A continuous worker failing forever gets the cap, not an OverflowError."""
    assert backoff_ceiling(10**100, 1.0, 60.0) == 60.0


def test_backoff_with_zero_base_stays_zero_after_many_attempts() -> None:
    """A base of 0 ("retry at once") gives 0 however many attempts failed."""
    assert backoff_ceiling(10**6, 0.0, 60.0) == 0.0


def test_backoff_delay_is_full_jitter_within_the_ceiling() -> None:
    """With a seeded rng, every delay lies in [0, ceiling] and they spread over it."""
    rng = random.Random(7)
    delays = [backoff_delay(3, 1.0, 60.0, rng) for _ in range(1000)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert min(delays) < 0.5 and max(delays) > 3.5


# ---------------------------------------------------------------- circuit breaker


def fail(state: CircuitState, now: float = 0.0) -> CircuitState:
    return circuit_transition(state, CircuitEvent.RUN_FAILED, now=now, max_consecutive_failures=3)


def event(state: CircuitState, e: CircuitEvent, now: float = 0.0) -> CircuitState:
    return circuit_transition(state, e, now=now, max_consecutive_failures=3)


def test_circuit_stays_closed_below_the_threshold() -> None:
    """Two failed runs of a threshold of three leave the circuit closed, counting."""
    assert fail(fail(CircuitState())) == CircuitState(Circuit.CLOSED, 2, None)


def test_circuit_opens_at_the_threshold() -> None:
    """The third failed run in a row opens the circuit, noting when."""
    state = fail(fail(fail(CircuitState())), now=12.0)
    assert state == CircuitState(Circuit.OPEN, 3, 12.0)


def test_circuit_success_resets_the_count() -> None:
    """A success after failures closes the circuit with the count back at 0."""
    state = event(fail(fail(CircuitState())), CircuitEvent.RUN_SUCCEEDED)
    assert state == CircuitState()


def test_circuit_enable_closes_an_open_circuit() -> None:
    """A manual enable closes an open circuit and resets the count."""
    state = event(CircuitState(Circuit.OPEN, 3, 5.0), CircuitEvent.ENABLED)
    assert state == CircuitState()


def test_circuit_cooldown_turns_open_into_half_open() -> None:
    """Once the cooldown elapses an open circuit lets one trial run through."""
    state = event(CircuitState(Circuit.OPEN, 3, 5.0), CircuitEvent.COOLDOWN_ELAPSED)
    assert state.circuit is Circuit.HALF_OPEN


@pytest.mark.parametrize(
    "state", [CircuitState(), CircuitState(Circuit.CLOSED, 2), CircuitState(Circuit.HALF_OPEN, 3)]
)
def test_circuit_cooldown_changes_nothing_unless_open(state: CircuitState) -> None:
    """A stale cooldown for a circuit that is not open leaves it as it is."""
    assert event(state, CircuitEvent.COOLDOWN_ELAPSED) == state


def test_circuit_half_open_failure_reopens_with_a_new_opened_at() -> None:
    """The trial run failing re-opens the circuit from now, so the cooldown restarts."""
    state = fail(CircuitState(Circuit.HALF_OPEN, 3, None), now=99.0)
    assert state == CircuitState(Circuit.OPEN, 4, 99.0)


def test_circuit_half_open_success_closes() -> None:
    """The trial run succeeding closes the circuit with the count reset."""
    state = event(CircuitState(Circuit.HALF_OPEN, 3, None), CircuitEvent.RUN_SUCCEEDED)
    assert state == CircuitState()


# ---------------------------------------------------------------- format_seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42, "42s"), (41.2, "42s"), (59.5, "1m 00s"), (245, "4m 05s"),
     (7380, "2h 03m"), (-3, "0s")],
)
def test_format_seconds(seconds: float, text: str) -> None:
    """Seconds round up and read short: `42s`, `4m 05s`, `2h 03m`; never negative."""
    assert format_seconds(seconds) == text


# ---------------------------------------------------------------- why a worker waits


def test_reason_next_scheduled_run() -> None:
    """An idle scheduled worker says when it runs next."""
    w = worker("report")
    w.next_due = 142.0
    assert waiting_reason(w, world(w), now=100.0) == "next in 42s"


def test_reason_waiting_on_a_dependency_that_never_succeeded() -> None:
    """A wanted run of a worker whose dependency never succeeded waits on it."""
    fetch = worker("fetch-data")
    process = trigger_pending(worker("process", mode="triggered", depends_on=["fetch-data"]))
    assert start_blocker(process, world(fetch, process), 0.0) == "waiting on fetch-data"
    assert waiting_reason(process, world(fetch, process)) == "waiting on fetch-data"


def test_reason_idle_triggered_dependent_waits_on_its_dependency() -> None:
    """A triggered worker with no trigger yet names the dependency it waits for."""
    fetch = worker("fetch-data")
    process = worker("process", mode="triggered", depends_on=["fetch-data"])
    assert waiting_reason(process, world(fetch, process)) == "waiting on fetch-data"


def test_reason_blocked_by_a_worker_it_blocks() -> None:
    """A worker whose `blocks` names a running worker is blocked by it."""
    backup = running(worker("backup"))
    vacuum = trigger_pending(worker("vacuum", blocks=["backup"]))
    assert waiting_reason(vacuum, world(backup, vacuum)) == "blocked by backup"


def test_reason_blocked_by_a_worker_that_blocks_it() -> None:
    """Blocks are symmetric: a running worker whose `blocks` names W blocks W."""
    backup = running(worker("backup", blocks=["vacuum"]))
    vacuum = trigger_pending(worker("vacuum"))
    assert waiting_reason(vacuum, world(backup, vacuum)) == "blocked by backup"


def test_reason_not_blocked_by_an_idle_blocker() -> None:
    """A worker named in `blocks` that is not running blocks nothing."""
    backup = worker("backup", blocks=["vacuum"])
    vacuum = trigger_pending(worker("vacuum"))
    assert start_blocker(vacuum, world(backup, vacuum), 0.0) is None


def test_reason_queued_when_every_slot_is_busy() -> None:
    """A run that could start but finds no slot says how full the slots are."""
    w = trigger_pending(worker("a"))
    assert waiting_reason(w, world(w, slots_used=5, max_slots=5)) == "queued: 5/5 slots busy"


def test_reason_circuit_open() -> None:
    """A worker disabled by its circuit says after how many failures."""
    w = opened(worker("a"), failures=5)
    assert waiting_reason(w, world(w)) == "disabled: circuit open after 5 failures"


def test_reason_circuit_open_with_cooldown_says_when_the_trial_run_is() -> None:
    """With a cooldown, the open circuit's reason says when the trial run comes."""
    w = opened(worker("a", circuit_cooldown_seconds=60), failures=5, at=10.0)
    assert waiting_reason(w, world(w), now=40.0) == (
        "disabled: circuit open after 5 failures, trial run in 30s"
    )


def test_reason_disabled_by_operator() -> None:
    """A worker an operator disabled says so."""
    w = trigger_pending(worker("a"))
    w.enabled = False
    assert waiting_reason(w, world(w)) == "disabled"


def test_reason_paused() -> None:
    """While the orchestrator is paused a wanted run says `paused`."""
    w = trigger_pending(worker("a"))
    assert waiting_reason(w, world(w, paused=True)) == "paused"


def test_reason_stopping() -> None:
    """While the orchestrator stops, nothing starts and every idle worker says so."""
    w = trigger_pending(worker("a"))
    assert waiting_reason(w, world(w, lifecycle=Lifecycle.STOPPING)) == "stopping"


def test_reason_retrying() -> None:
    """Between attempts a worker says when and which attempt of how many comes next."""
    w = retry_waiting(worker("a", max_retries=3), failed_attempt=1, retry_at=104.0)
    assert waiting_reason(w, world(w), now=100.0) == "retrying in 4s (attempt 2/4)"


def test_reason_waiting_for_a_trigger() -> None:
    """An idle triggered worker with no dependencies waits for a trigger."""
    w = worker("a", mode="triggered")
    assert waiting_reason(w, world(w)) == "waiting for a trigger"


def test_reason_running_attempt() -> None:
    """A running worker says which attempt of how many it is on."""
    w = running(worker("a", max_retries=2), attempt=2)
    assert waiting_reason(w, world(w)) == "running attempt 2/3"


def test_start_allowed_when_nothing_stands_in_the_way() -> None:
    """A wanted run with a free slot and no dependencies or blockers may start."""
    w = trigger_pending(worker("a"))
    assert start_blocker(w, world(w), 0.0) is None


def test_a_running_worker_does_not_start_again() -> None:
    """A worker has at most one run at a time."""
    w = trigger_pending(running(worker("a")))
    assert start_blocker(w, world(w), 0.0) == "running"


# ---------------------------------------------------------------- the fresh-success rule


def dependent_pair(
    *, dep_success: int | None, last_start: int | None
) -> tuple[WorkerRuntime, WorkerRuntime, World]:
    """`process` depends on `fetch`; sequence marks of fetch's success and process' start."""
    fetch = worker("fetch")
    fetch.last_success_seq = dep_success
    process = trigger_pending(worker("process", mode="triggered", depends_on=["fetch"]))
    process.last_start_seq = last_start
    return fetch, process, world(fetch, process)


def test_first_run_needs_one_dependency_success() -> None:
    """For its first run a worker needs each dependency to have succeeded once."""
    _, process, w = dependent_pair(dep_success=3, last_start=None)
    assert start_blocker(process, w, 0.0) is None


def test_a_dependency_success_before_the_last_start_is_stale() -> None:
    """A dependency must have succeeded since the dependent's last run started."""
    _, process, w = dependent_pair(dep_success=9, last_start=10)
    assert start_blocker(process, w, 0.0) == "waiting on fetch"


def test_a_dependency_success_after_the_last_start_is_fresh() -> None:
    """A dependency success after the dependent's last start lets it run again."""
    _, process, w = dependent_pair(dep_success=11, last_start=10)
    assert start_blocker(process, w, 0.0) is None


def test_a_running_dependency_holds_its_dependents() -> None:
    """A dependency that is running again holds its dependents, fresh success or not."""
    fetch, process, w = dependent_pair(dep_success=11, last_start=10)
    running(fetch)
    assert start_blocker(process, w, 0.0) == "waiting on fetch"


def test_a_retry_does_not_need_fresh_dependencies() -> None:
    """A due retry goes ahead on dependencies checked when its run started."""
    _, process, w = dependent_pair(dep_success=9, last_start=10)
    retry_waiting(process, failed_attempt=1, retry_at=0.0)
    assert start_blocker(process, w, 0.0) is None


def test_a_retry_respects_blocks() -> None:
    """A due retry still waits while a worker it blocks is running."""
    backup = running(worker("backup"))
    vacuum = retry_waiting(worker("vacuum", blocks=["backup"]), failed_attempt=1, retry_at=0.0)
    assert start_blocker(vacuum, world(backup, vacuum), 0.0) == "blocked by backup"


def test_a_retry_respects_slots() -> None:
    """A due retry needs a slot like any other attempt."""
    w = retry_waiting(worker("a"), failed_attempt=1, retry_at=0.0)
    assert start_blocker(w, world(w, slots_used=2, max_slots=2), 0.0) == "queued: 2/2 slots busy"


# ---------------------------------------------------------------- dispatch order


def test_dispatch_priority_first() -> None:
    """A higher priority starts first whatever its due time or registration order."""
    low = worker("low", index=0, priority="low")
    critical = worker("critical", index=3, priority="critical")
    normal = worker("normal", index=1)
    keys = {w.name: dispatch_key(w, due) for w, due in ((low, 0.0), (critical, 9.0), (normal, 5.0))}
    assert sorted(keys, key=keys.__getitem__) == ["critical", "normal", "low"]


def test_dispatch_earliest_due_within_a_priority() -> None:
    """Among equal priorities the earliest due run starts first."""
    a, b = worker("a", index=0), worker("b", index=1)
    assert dispatch_key(b, 1.0) < dispatch_key(a, 2.0)


def test_dispatch_registration_order_breaks_ties() -> None:
    """Among equal priority and due time, registration order decides."""
    a, b = worker("a", index=0), worker("b", index=1)
    assert dispatch_key(a, 1.0) < dispatch_key(b, 1.0)


# ---------------------------------------------------------------- health


def test_health_ok() -> None:
    """A worker with nothing wrong is ok."""
    assert worker_health(worker("a"), 0.0) == HealthReport(Health.OK)


def test_health_degraded_by_a_recent_failure() -> None:
    """A failed run among the recent outcomes degrades a worker."""
    w = worker("a")
    w.outcomes.extend([Outcome.SUCCEEDED, Outcome.FAILED])
    assert worker_health(w, 0.0).health is Health.DEGRADED


def test_health_degraded_by_a_retried_success() -> None:
    """A run that needed a retry to succeed degrades a worker."""
    w = worker("a")
    w.outcomes.append(Outcome.RETRIED)
    assert worker_health(w, 0.0).health is Health.DEGRADED


def test_health_failing_at_half_the_threshold() -> None:
    """Consecutive failures at half the circuit threshold (rounded up) mean failing."""
    w = worker("a", max_consecutive_failures=5)
    w.breaker = CircuitState(Circuit.CLOSED, 3)
    assert worker_health(w, 0.0).health is Health.FAILING


def test_health_not_failing_below_half_the_threshold() -> None:
    """Two failures of a threshold of five are not yet failing."""
    w = worker("a", max_consecutive_failures=5)
    w.breaker = CircuitState(Circuit.CLOSED, 2)
    assert worker_health(w, 0.0).health is not Health.FAILING


def test_health_disabled_by_the_circuit() -> None:
    """An open circuit makes a worker disabled, with the failure count as the reason."""
    w = opened(worker("a"), failures=5)
    assert worker_health(w, 0.0) == HealthReport(
        Health.DISABLED, ("circuit open after 5 failures",)
    )


def test_health_disabled_by_the_operator() -> None:
    """A worker an operator disabled is disabled, by operator."""
    w = worker("a")
    w.enabled = False
    assert worker_health(w, 0.0) == HealthReport(Health.DISABLED, ("disabled by operator",))


def test_health_stuck() -> None:
    """A running worker flagged stuck is stuck, the worst state."""
    w = running(worker("a"))
    w.stuck = True
    w.breaker = CircuitState(Circuit.CLOSED, 4)
    assert worker_health(w, 0.0).health is Health.STUCK


def test_health_stalled_without_heartbeat() -> None:
    """A continuous worker silent for longer than `stall_seconds` is stalled."""
    w = running(worker("a", mode="continuous", stall_seconds=60))
    w.heartbeat_t = 100.0
    assert worker_health(w, 161.0).health is Health.STALLED


def test_health_not_stalled_within_stall_seconds() -> None:
    """A continuous worker that beat within `stall_seconds` is fine."""
    w = running(worker("a", mode="continuous", stall_seconds=60))
    w.heartbeat_t = 100.0
    assert worker_health(w, 160.0).health is Health.OK


def test_health_overdue_after_one_interval_late() -> None:
    """A scheduled run late by more than one interval is overdue."""
    w = worker("a", interval_seconds=60)
    w.next_due, w.period = 100.0, 60.0
    assert worker_health(w, 161.0).health is Health.OVERDUE


def test_health_not_overdue_within_one_interval() -> None:
    """A scheduled run late by less than one interval (a busy slot) is not overdue."""
    w = worker("a", interval_seconds=60)
    w.next_due, w.period = 100.0, 60.0
    assert worker_health(w, 159.0).health is Health.OK


def report(health: Health) -> HealthReport:
    return HealthReport(health, (health.value,))


def overall(*workers: tuple[str, HealthReport, bool], **conditions: Any) -> HealthReport:
    given = {"loop_lag_s": 0.0, "store_errors": 0, "events_dropped": 0, **conditions}
    return overall_health(workers, **given)


def test_overall_ok_when_all_is_well() -> None:
    """With healthy workers and no orchestrator trouble the whole is ok."""
    assert overall(("a", report(Health.OK), False)) == HealthReport(Health.OK)


def test_overall_worst_worker_wins() -> None:
    """Overall health is the worst worker's, naming the unhealthy workers."""
    result = overall(
        ("a", report(Health.DEGRADED), False),
        ("b", report(Health.STUCK), False),
        ("c", report(Health.FAILING), False),
    )
    assert result == HealthReport(Health.STUCK, ("a: degraded", "b: stuck", "c: failing"))


def test_overall_ignores_operator_disabled_workers() -> None:
    """A worker disabled on purpose does not make the service unhealthy."""
    assert overall(("a", report(Health.DISABLED), True)).health is Health.OK


def test_overall_counts_circuit_disabled_workers() -> None:
    """A worker disabled by its circuit does make the service unhealthy."""
    assert overall(("a", report(Health.DISABLED), False)).health is Health.DISABLED


def test_overall_degraded_by_loop_lag() -> None:
    """Event-loop lag over the limit degrades the service."""
    assert overall(loop_lag_s=0.8).health is Health.DEGRADED


def test_overall_ok_with_small_loop_lag() -> None:
    """A little event-loop lag is normal."""
    assert overall(loop_lag_s=0.1).health is Health.OK


def test_overall_degraded_by_dropped_events() -> None:
    """Events dropped by slow subscribers degrade the service."""
    assert overall(events_dropped=3).health is Health.DEGRADED


def test_overall_failing_on_store_errors() -> None:
    """Store errors make the service fail."""
    assert overall(store_errors=1).health is Health.FAILING


def test_overall_names_the_last_store_error() -> None:
    """The store-error reason says what the store last answered (disk full, locked)."""
    result = overall(store_errors=2, last_store_error="OSError: disk full")
    assert "store errors: 2 (last: OSError: disk full)" in result.reasons


def test_overall_store_errors_do_not_hide_a_worse_worker() -> None:
    """An orchestrator condition never lowers what a worker already made worse."""
    result = overall(("a", report(Health.STUCK), False), store_errors=1, loop_lag_s=2.0)
    assert result.health is Health.STUCK


def test_overall_degraded_while_a_nodes_listener_is_down() -> None:
    """A cluster node polling because its LISTEN connection is down is degraded, and
    says how often it polls."""
    result = overall(listener_down_poll_s=1.0)
    assert result == HealthReport(Health.DEGRADED, ("listener down: polling every 1s",))


@pytest.mark.parametrize(
    ("skew", "reasons"),
    [(None, ()), (0.4, ()), (-1.0, ()), (1.0, ()),
     (2.34, ("clock skew 2.3s (ahead of the database)",)),
     (-5.0, ("clock skew 5.0s (behind the database)",))],
)
def test_overall_degraded_by_clock_skew_over_a_second(
    skew: float | None, reasons: tuple[str, ...]
) -> None:
    """A node's clock more than 1 s from the database's degrades it, named with the
    skew and its side; up to 1 s (or not measured yet) is ok."""
    result = overall(clock_skew_s=skew)
    assert result == HealthReport(Health.DEGRADED if reasons else Health.OK, reasons)


@pytest.mark.parametrize(
    ("health", "serving"),
    [(Health.OK, True), (Health.DEGRADED, True), (Health.FAILING, False),
     (Health.DISABLED, False), (Health.OVERDUE, False), (Health.STALLED, False),
     (Health.STUCK, False)],
)
def test_health_serving(health: Health, serving: bool) -> None:
    """`/healthz` answers 200 for ok and degraded, 503 for everything else."""
    assert health.serving is serving


# ---------------------------------------------------------------- the graph of workers


def specs(*items: WorkerSpec) -> dict[str, WorkerSpec]:
    return {s.name: s for s in items}


def test_graph_without_problems() -> None:
    """A consistent graph has no problems."""
    graph = specs(
        WorkerSpec(name="fetch"),
        WorkerSpec(name="process", depends_on=["fetch"], blocks=["backup"]),
        WorkerSpec(name="backup"),
    )
    assert graph_problems(graph) == []


def test_graph_unknown_names() -> None:
    """Each unknown name in `depends_on` or `blocks` is one problem naming worker and key."""
    graph = specs(WorkerSpec(name="a", depends_on=["ghost"], blocks=["phantom"]))
    assert graph_problems(graph) == [
        "worker 'a': key 'depends_on': unknown worker 'ghost'",
        "worker 'a': key 'blocks': unknown worker 'phantom'",
    ]


def test_graph_cycle_reported_once_with_its_path() -> None:
    """A dependency cycle is one problem that spells the cycle out."""
    graph = specs(
        WorkerSpec(name="a", depends_on=["b"]),
        WorkerSpec(name="b", depends_on=["c"]),
        WorkerSpec(name="c", depends_on=["a"]),
    )
    assert graph_problems(graph) == [
        "worker 'a': key 'depends_on': dependency cycle a -> b -> c -> a"
    ]


def test_graph_two_separate_cycles_are_two_problems() -> None:
    """Two independent cycles are both reported."""
    graph = specs(
        WorkerSpec(name="a", depends_on=["b"]),
        WorkerSpec(name="b", depends_on=["a"]),
        WorkerSpec(name="c", depends_on=["d"]),
        WorkerSpec(name="d", depends_on=["c"]),
    )
    assert len(graph_problems(graph)) == 2


def test_graph_depends_on_a_worker_that_blocks_it() -> None:
    """Depending on a worker whose `blocks` names you can never run: a problem."""
    graph = specs(
        WorkerSpec(name="report", depends_on=["backup"]),
        WorkerSpec(name="backup", blocks=["report"]),
    )
    assert graph_problems(graph) == [
        "worker 'report': key 'depends_on': depends on 'backup', which blocks it"
        " (blocks are symmetric)"
    ]


def test_dependency_order_puts_dependencies_first() -> None:
    """Every dependency comes before its dependents; otherwise registration order."""
    graph = specs(
        WorkerSpec(name="report", depends_on=["process"]),
        WorkerSpec(name="other"),
        WorkerSpec(name="process", depends_on=["fetch"]),
        WorkerSpec(name="fetch"),
    )
    assert dependency_order(graph) == ["fetch", "process", "report", "other"]


def test_symmetric_blocks() -> None:
    """`a` blocking `b` means each may not run beside the other; others are left out."""
    blocks = symmetric_blocks(
        [WorkerSpec(name="a", blocks=["b"]), WorkerSpec(name="b"), WorkerSpec(name="c")]
    )
    assert blocks == {"a": frozenset({"b"}), "b": frozenset({"a"})}


def test_graph_checks_a_long_dependency_chain() -> None:
    """A chain of 1,500 dependencies is validated and ordered without recursion limits."""
    links = [WorkerSpec(name=f"w{i}", depends_on=[f"w{i + 1}"]) for i in range(1499)]
    chain = specs(*links, WorkerSpec(name="w1499"))
    assert graph_problems(chain) == []
    assert dependency_order(chain)[0] == "w1499"
