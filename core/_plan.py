"""`jobdeck plan`: what a config will do, found by running it on a virtual clock.

The real orchestrator (dispatcher, eligibility, schedules, the in-memory store) runs on
virtual time (`_VirtualClock`, an autojumping clock like trio's `MockClock`), with a
stand-in for each worker that takes the worker's expected time and succeeds: nothing of
the user's code is imported or run. A
`DispatchObserver` sees every due worker each time the dispatcher judges it, and charges
the time until the next judgement to the reason it saw (the dispatcher is event-driven:
a reason can only change when it looks again). That is what each delay was spent on.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import trio

from ._config import JobdeckConfig
from ._graph import dependency_order
from ._orchestrator import Orchestrator
from ._records import Source, WorkerState
from ._runtime import WorkerRuntime
from ._schedule import cron_period, next_cron_time
from ._spec import Mode, WorkerSpec
from ._store_memory import MemoryStore

#: What a worker's run is taken to last when neither the config nor history says.
DEFAULT_EXPECTED_S = 1.0

#: What a delay can be spent on (the JSON `waits` keys).
WAIT_KINDS = ("blocked", "slots", "dependency", "self", "paused")

#: How much later than due each worker's runs end, per place in the config order (see
#: `_StandIns`): a microsecond, the wall clock's resolution (a cron schedule set at a
#: run's end then lands on its exact fire time), far below a delay anyone reads.
END_STEP_S = 1e-6

#: Runs listed in the timeline.
TIMELINE_RUNS = 12

#: The wait charged to a run whose due time came while its own last run still ran (the
#: dispatcher does not judge a worker in flight: that gap is the only one it leaves).
_OWN_RUN = "its own previous run"

#: `start_blocker`'s reasons, by how they begin: the kind of wait, and how to say it
#: (None: the reason itself, naming the partner or dependency).
_REASONS: tuple[tuple[str, str, str | None], ...] = (
    ("blocked by ", "blocked", None),
    ("queued: ", "slots", "slots busy"),
    ("waiting on ", "dependency", None),
    ("running", "self", _OWN_RUN),
    ("paused", "paused", "paused"),
)


@attrs.frozen
class Expected:
    """How long a worker's runs are taken to last, and where that figure came from."""

    seconds: float
    #: `config` (`expected_seconds`), `history` (median of the store's runs), `default`.
    source: str


@attrs.frozen(kw_only=True)
class History:
    """What a store knows: each worker's state to restart from, its median run time."""

    workers: Mapping[str, WorkerState] = attrs.field(factory=dict)
    median_seconds: Mapping[str, float] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class WorkerPlan:
    """One worker over the window."""

    name: str
    mode: Mode
    #: false when it never runs: disabled in the config, or in the store's state.
    may_run: bool
    expected: Expected
    timeout_seconds: float
    runs: int
    #: due times of a schedule passed while it was still late, merged into a later run.
    coalesced: int
    max_delay_s: float
    median_delay_s: float
    #: seconds of delay spent on each kind of wait (`WAIT_KINDS`), over the window.
    waits: Mapping[str, float]
    #: the same, by what was waited on ("blocked by backup"), the longest first.
    causes: tuple[tuple[str, float], ...]
    #: what "late" is judged against: the schedule's interval, or for a triggered worker
    #: the interval of the schedules that feed it; None for neither.
    period_s: float | None
    #: runs that started more than one period after they were due.
    late_runs: int
    #: the delay so far of a run still waiting when the window ends (0 if none).
    waiting_at_end_s: float
    #: triggers still queued at the end.
    queued_at_end: int

    @property
    def times_out(self) -> bool:
        """Its expected run is longer than its timeout: every attempt would time out."""
        return 0 < self.timeout_seconds < self.expected.seconds

    @property
    def late_at_end(self) -> bool:
        return self.period_s is not None and self.waiting_at_end_s > self.period_s

    @property
    def falls_behind(self) -> bool:
        """It does not keep up: its runs would time out, a due time was coalesced, or
        a run started (or still waits) more than one period late."""
        if self.times_out:
            return True
        return self.may_run and bool(self.coalesced or self.late_runs or self.late_at_end)


@attrs.frozen(kw_only=True)
class SlotUsage:
    """How many of the `max_concurrent_workers` slots runs held over the window."""

    #: the slots there are, and the most held at once.
    limit: int
    peak: int
    #: held on average: over the window, and within each of `len(profile)` equal parts.
    mean_busy: float
    profile: tuple[float, ...]


@attrs.frozen(kw_only=True)
class PlannedStart:
    """One run of the timeline."""

    at_s: float
    worker: str
    delay_s: float
    #: what it waited on last, if it waited.
    cause: str | None
    expected_s: float


@attrs.frozen(kw_only=True)
class PlanResult:
    """What a config did over the window: each worker, the slots, the first runs."""

    window_s: float
    #: the wall time the window starts at.
    start: datetime
    #: whether the start was given (`--from`): times are then shown as wall times, not
    #: as offsets from the start.
    start_given: bool = False
    workers: tuple[WorkerPlan, ...]
    slots: SlotUsage
    first_runs: tuple[PlannedStart, ...]

    @property
    def behind(self) -> tuple[WorkerPlan, ...]:
        return tuple(w for w in self.workers if w.falls_behind)


def expected_duration(spec: WorkerSpec, history: History | None) -> Expected:
    """The config's `expected_seconds`, else the store's median, else the default."""
    if spec.expected_seconds is not None:
        return Expected(spec.expected_seconds, "config")
    median = None if history is None else history.median_seconds.get(spec.name)
    if median is not None and median > 0:
        return Expected(median, "history")
    return Expected(DEFAULT_EXPECTED_S, "default")


def plan(
    config: JobdeckConfig,
    *,
    window_s: float,
    start: datetime | None = None,
    history: History | None = None,
) -> PlanResult:
    """Run `config` for `window_s` virtual seconds from `start` and say what happened.

    Args:
        config: a loaded config (its functions need not be imported).
        window_s: how long to run it for.
        start: the wall time the window starts at (aware); None: this minute, and
            times are reported as offsets from it.
        history: a store's state and run times: the run restarts from it.
    """
    specs = [r.spec for r in config.workers]
    expected = [expected_duration(spec, history) for spec in specs]
    # From the minute: cron fires on whole minutes, and plans made within one agree.
    wall_start = start if start is not None else datetime.now(UTC).replace(second=0, microsecond=0)
    clock = _VirtualClock()
    simulation = _Simulation(config, expected, wall_start, window_s, history)
    trio.run(simulation.run, clock=clock)
    return simulation.result(start_given=start is not None)


class _VirtualClock(trio.abc.Clock):
    """Virtual time that jumps to the next deadline as soon as no task can run.

    What `trio.testing.MockClock(autojump_threshold=0)` does, one loop iteration sooner:
    trio asks a clock how long to sleep only when no task can run, and this one answers
    by moving to the deadline (MockClock answers "a long while", lets the loop find
    itself idle, then jumps). A plan then takes about 2.9 turns of trio's loop per run
    instead of 4.5. Like MockClock it suits only a run with no threads and no real I/O,
    as a plan's is.
    """

    def __init__(self) -> None:
        self._now = 0.0

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return self._now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        if deadline == math.inf:
            return math.inf  # nothing will ever wake: let trio say so
        self._now = max(self._now, deadline)
        return 0.0


class _Tally:
    """What the observer keeps about one worker."""

    __slots__ = ("cause", "causes", "coalesced", "delays", "due", "since")

    def __init__(self) -> None:
        self.delays: list[float] = []
        #: seconds waited, by what was waited on.
        self.causes: dict[str, float] = {}
        #: the due time of the run waiting now, or None.
        self.due: float | None = None
        #: what it was waiting on at the last judgement (None: nothing we count).
        self.cause: str | None = None
        self.since = 0.0
        self.coalesced = 0


class PlanObserver:
    """Charges each due worker's wait to what the dispatcher said it was waiting on."""

    def __init__(
        self, expected: Sequence[Expected], wall: Callable[[float], datetime], t0: float
    ) -> None:
        self._tallies = [_Tally() for _ in expected]
        self._expected = expected
        self._wall = wall
        #: the window's start: a schedule restored from a store may have been due before
        #: it (missed while jobdeck was down); its delay counts from here.
        self.t0 = t0
        #: reason text -> how it is said in the plan (None: not a wait the plan counts).
        self._labels: dict[str, str | None] = {}
        self.first_runs: list[PlannedStart] = []

    def waiting(self, w: WorkerRuntime, due: float, reason: str, now: float) -> None:
        if w.run is not None:
            return  # a retry waits: part of a run already counted
        t = self._tallies[w.index]
        if t.due is None:
            t.due = due = max(due, self.t0)
            if now > due:
                _charge(t, _OWN_RUN, now - due)
        elif t.cause is not None:
            _charge(t, t.cause, now - t.since)
        try:
            t.cause = self._labels[reason]
        except KeyError:
            t.cause = self._labels[reason] = _label(reason)
        t.since = now

    def started(self, w: WorkerRuntime, due: float, now: float) -> None:
        t = self._tallies[w.index]
        due = max(due, self.t0)
        run = w.run
        if run is not None and run.attempt > 1:
            return  # a retry: part of a run already counted
        cause = t.cause
        if t.due is None:
            cause = _OWN_RUN if now > due else None
            if cause is not None:
                _charge(t, cause, now - due)
        elif cause is not None:
            _charge(t, cause, now - t.since)
        t.due = None
        t.cause = None
        # To the millisecond: runs end a few microseconds after their tick (`_StandIns`).
        delay = round(now - due, 3)
        t.delays.append(delay)
        served = w.next_grid
        if run is not None and run.trigger.source is Source.SCHEDULE and served is not None:
            t.coalesced += self._missed(w.spec, served, now)
        if len(self.first_runs) < TIMELINE_RUNS:
            self.first_runs.append(
                PlannedStart(
                    at_s=now, worker=w.name, delay_s=delay, cause=cause if delay >= 0.5 else None,
                    expected_s=self._expected[w.index].seconds,
                )
            )

    def close(self, end: float) -> list[float]:
        """End the window at `end`: charge the waits still open. Returns how long each
        worker's run waiting at the end has waited (0: none waits)."""
        waiting = []
        for t in self._tallies:
            if t.due is None:
                waiting.append(0.0)
                continue
            if t.cause is not None:
                _charge(t, t.cause, end - t.since)
            waiting.append(end - t.due)
        return waiting

    def tally(self, index: int) -> _Tally:
        return self._tallies[index]

    def _missed(self, spec: WorkerSpec, served: float, now: float) -> int:
        """Schedule times after `served`, up to a run serving it starting `now`: the
        dispatcher coalesces them into this run (`_advance_schedule`). Times before the
        window (a schedule restored from a store) were missed while down: not counted."""
        if spec.cron is None:
            interval = spec.interval_seconds
            if now - served < interval:
                return 0
            count = math.floor((now - served) / interval)
            if served < self.t0:
                count -= min(count, math.ceil((self.t0 - served) / interval) - 1)
            return count
        if now - served < 1.0:  # cron fires at least a second apart
            return 0
        # The wall time the dispatcher reads at this start: it schedules strictly after it.
        started = self._wall(now)
        fire = next_cron_time(spec.cron, spec.timezone, self._wall(max(served, self.t0)))
        count = 0
        while fire <= started:
            count += 1
            fire = next_cron_time(spec.cron, spec.timezone, fire)
        return count


def _charge(t: _Tally, cause: str, seconds: float) -> None:
    if seconds > 0:
        t.causes[cause] = t.causes.get(cause, 0.0) + seconds


def _label(reason: str) -> str | None:
    for prefix, _, said in _REASONS:
        if reason.startswith(prefix):
            return reason if said is None else said
    return None  # disabled, circuit open, stopping: not a wait of a healthy config


def _kind(label: str) -> str:
    if label == _OWN_RUN:
        return "self"
    for prefix, kind, said in _REASONS:
        if label == said or (said is None and label.startswith(prefix)):
            return kind
    raise AssertionError(label)


class _StandIns:
    """The workers' stand-ins: each takes its worker's expected time and succeeds.

    trio wakes timers due at one instant in no fixed order, and what a run's end sets
    off (a freed slot, a dependent triggered) can depend on which end comes first. So
    no two ends share an instant: a run ends on the tick its duration reaches (ticks
    of at most a millisecond: a chain of runs does not drift), then one step late per
    place of its worker in the config. Whatever is due at a tick is judged first, then
    the runs ending at it end in config order, each settled before the next.
    """

    def __init__(self, workers: int) -> None:
        # Every worker's step fits in a quarter tick: a run that starts late by it still
        # ends on the tick its duration reaches.
        self._step = min(END_STEP_S, 0.25 / (workers + 1))
        #: ticks per second (a millisecond's at most).
        room = 0.25 / (max(workers, 1) * self._step)
        self._ticks = 10 ** max(0, min(3, math.floor(math.log10(room))))
        #: the last moment of a window that ends at a tick: before what is due at it.
        self.before_tick = self._step / 2
        #: (start, end) of every attempt: the slots in use.
        self.busy: list[tuple[float, float]] = []

    def stand_in(self, index: int, seconds: float) -> Callable[[Any], Awaitable[None]]:
        """Worker `index`'s stand-in: a function that takes `seconds` and succeeds."""
        busy, ticks = self.busy, self._ticks
        late = (index + 1) * self._step

        async def stand_in(_: Any) -> None:
            start = trio.current_time()
            end = round((start + seconds) * ticks) / ticks + late
            try:
                await trio.sleep_until(max(end, start + seconds / 2))
            finally:
                busy.append((start, trio.current_time()))

        return stand_in


@attrs.define
class _Simulation:
    """One plan: the orchestrator run on a virtual clock, and what was seen of it."""

    config: JobdeckConfig
    expected: Sequence[Expected]
    wall_start: datetime
    window_s: float
    history: History | None
    stand_ins: _StandIns = attrs.field(init=False)
    observer: PlanObserver = attrs.field(init=False)
    #: trio time at the window's start.
    t0: float = attrs.field(init=False, default=0.0)
    #: the wall clock's last reading, and the trio time it was taken at.
    last_wall: datetime | None = attrs.field(init=False, default=None)
    last_t: float = attrs.field(init=False, default=0.0)
    #: at the window's end, by worker: how long its waiting run has waited, whether it
    #: may run (the store can say no), how many triggers it has queued.
    waiting: list[float] = attrs.field(init=False, factory=list)
    may_run: dict[str, bool] = attrs.field(init=False, factory=dict)
    queued: dict[str, int] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self.stand_ins = _StandIns(len(self.expected))
        self.observer = PlanObserver(self.expected, self._wall, 0.0)

    def _wall(self, t: float) -> datetime:
        return self.wall_start + timedelta(seconds=t - self.t0)

    def _now(self) -> datetime:
        """The wall clock the orchestrator reads: the virtual one (asked for a few times
        per run, mostly at one instant: the last answer is kept)."""
        try:
            t = trio.current_time()
        except RuntimeError:
            t = self.last_t
        if t != self.last_t or self.last_wall is None:
            self.last_t, self.last_wall = t, self._wall(t)
        return self.last_wall

    async def run(self) -> None:
        orchestrator = attrs.evolve(
            self.config.orchestrator,
            store=None,
            # Health judges, it does not decide: no need to wake every second to judge it.
            health_interval_seconds=self.window_s + 1,
        )
        # The plan reads no run history back: one run kept per worker is enough.
        store = MemoryStore(history_per_worker=1)
        if self.history is not None:
            for state in self.history.workers.values():
                await store.save_worker(state)
        self.t0 = self.observer.t0 = trio.current_time()
        orch = Orchestrator(
            orchestrator, store=store, now=self._now, rng=random.Random(0),
            observer=self.observer,
        )
        for index, registration in enumerate(self.config.workers):
            stand_in = self.stand_ins.stand_in(index, self.expected[index].seconds)
            orch.add_worker(registration.spec, stand_in, fn_ref=registration.fn_ref)
        async with trio.open_nursery() as nursery:
            await nursery.start(orch.run)
            end = self.t0 + self.window_s
            # The window holds what starts before `end`.
            await trio.sleep_until(end - self.stand_ins.before_tick)
            self.waiting = self.observer.close(end)
            for snap in orch.snapshot().workers:
                self.may_run[snap.name] = snap.may_run
                self.queued[snap.name] = snap.pending
            nursery.cancel_scope.cancel()

    def result(self, *, start_given: bool) -> PlanResult:
        specs = [r.spec for r in self.config.workers]
        periods = _periods(specs, self.wall_start)
        workers = tuple(
            self._worker_plan(index, spec, periods[spec.name])
            for index, spec in enumerate(specs)
        )
        return PlanResult(
            window_s=self.window_s,
            start=self.wall_start,
            start_given=start_given,
            workers=workers,
            slots=_slot_usage(
                self.stand_ins.busy, self.config.orchestrator.max_concurrent_workers,
                self.t0, self.window_s,
            ),
            first_runs=tuple(
                attrs.evolve(run, at_s=run.at_s - self.t0) for run in self.observer.first_runs
            ),
        )

    def _worker_plan(self, index: int, spec: WorkerSpec, period: float | None) -> WorkerPlan:
        t = self.observer.tally(index)
        delays = t.delays
        waits = dict.fromkeys(WAIT_KINDS, 0.0)
        for label, seconds in t.causes.items():
            waits[_kind(label)] += seconds
        return WorkerPlan(
            name=spec.name,
            mode=spec.mode,
            may_run=self.may_run.get(spec.name, spec.enabled),
            expected=self.expected[index],
            timeout_seconds=spec.timeout_seconds,
            runs=len(delays),
            coalesced=t.coalesced,
            max_delay_s=max(delays, default=0.0),
            median_delay_s=statistics.median(delays) if delays else 0.0,
            waits=waits,
            causes=tuple(sorted(t.causes.items(), key=lambda c: -c[1])),
            period_s=period,
            late_runs=0 if period is None else sum(1 for d in delays if d > period),
            waiting_at_end_s=self.waiting[index],
            queued_at_end=self.queued.get(spec.name, 0),
        )


def _periods(specs: Sequence[WorkerSpec], start: datetime) -> dict[str, float | None]:
    """What "one interval late" means for each worker: its schedule's interval, or for a
    triggered worker the longest interval among the schedules feeding it."""
    by_name = {spec.name: spec for spec in specs}
    periods: dict[str, float | None] = {}
    for name in dependency_order(by_name):
        spec = by_name[name]
        if spec.mode is Mode.SCHEDULED:
            periods[name] = (
                spec.interval_seconds
                if spec.cron is None
                else cron_period(spec.cron, spec.timezone, start)
            )
        elif spec.mode is Mode.TRIGGERED and spec.depends_on:
            fed = [p for d in spec.depends_on if (p := periods.get(d)) is not None]
            periods[name] = max(fed) if fed else None
        else:
            periods[name] = None
    return periods


#: Parts of the window the slot profile is drawn in.
PROFILE_PARTS = 48


def _slot_usage(
    busy: Sequence[tuple[float, float]], limit: int, t0: float, window_s: float
) -> SlotUsage:
    """Peak and mean of the slots in use, and the mean within each part of the window,
    from every attempt's span."""
    end = t0 + window_s
    part_s = window_s / PROFILE_PARTS
    in_parts = [0.0] * PROFILE_PARTS
    changes: list[tuple[float, int]] = []
    total = 0.0
    for start, stop in busy:
        if start >= end:
            continue
        stop = min(stop, end)
        total += stop - start
        changes.append((start, 1))
        changes.append((stop, -1))
        # Spread the span over the parts it covers.
        part = int((start - t0) / part_s)
        while start < stop and part < PROFILE_PARTS:
            part_end = min(stop, t0 + (part + 1) * part_s)
            in_parts[part] += part_end - start
            start = part_end
            part += 1
    # Ends first at one instant: a slot handed from one run to the next is one slot.
    changes.sort()
    level = peak = 0
    for _, change in changes:
        level += change
        peak = max(peak, level)
    return SlotUsage(
        limit=limit, peak=peak, mean_busy=total / window_s,
        profile=tuple(busy_s / part_s for busy_s in in_parts),
    )
