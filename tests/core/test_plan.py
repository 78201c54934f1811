"""`jobdeck plan`: the real orchestrator on a virtual clock, with stand-in workers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from jobdeck import Orchestrator, OrchestratorConfig, parse_config
from jobdeck._plan import (
    History,
    PlanObserver,
    PlanResult,
    WorkerPlan,
    expected_duration,
    plan,
)
from jobdeck._spec import WorkerSpec
from tests.core.conftest import virtual_wall_clock

DAY = 86_400.0
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

#: Long enough for every run these tests expect (the default, 60 s, would time them out).
ROOMY_TIMEOUT = {"timeout_seconds": 3600}


def plan_of(
    workers: dict[str, dict[str, Any]],
    *,
    slots: int = 5,
    window_s: float = DAY,
    start: datetime | None = START,
) -> PlanResult:
    """Plan workers given as their config keys; `fn` names a module that does not exist
    (nothing is imported)."""
    data = {
        "orchestrator": {"max_concurrent_workers": slots},
        "workers": {name: {"fn": "no_such.jobs:run", **keys} for name, keys in workers.items()},
    }
    return plan(parse_config(data, import_functions=False), window_s=window_s, start=start)


def every(interval: float, takes: float, **keys: Any) -> dict[str, Any]:
    """A scheduled worker's keys: every `interval` seconds, runs of `takes` seconds."""
    return {"interval_seconds": interval, "expected_seconds": takes, **ROOMY_TIMEOUT, **keys}


def worker(result: PlanResult, name: str) -> WorkerPlan:
    return next(w for w in result.workers if w.name == name)


def delays_of(result: PlanResult, name: str) -> list[float]:
    return [run.delay_s for run in result.first_runs if run.worker == name]


def test_colliding_blocks_pair_falls_behind() -> None:
    """Two long jobs that block each other on a short interval keep each other late."""
    result = plan_of({
        "backup": every(600, 420, blocks=["compact"]),
        "compact": every(600, 420),
    })
    compact = worker(result, "compact")
    assert compact.falls_behind
    assert compact.waits["blocked"] > 0
    assert compact.causes[0][0] == "blocked by backup"
    assert compact.coalesced > 0 or compact.late_runs > 0
    assert result.behind


def test_chain_longer_than_its_interval_falls_behind() -> None:
    """A triggered step slower than the schedule feeding it piles up triggers."""
    result = plan_of({
        "fetch": every(600, 240),
        "process": {"mode": "triggered", "depends_on": ["fetch"], "expected_seconds": 720,
                    **ROOMY_TIMEOUT},
    })
    fetch, process = worker(result, "fetch"), worker(result, "process")
    assert not fetch.falls_behind
    assert process.falls_behind
    assert process.period_s == 600
    assert process.late_runs > 0
    assert process.queued_at_end > 1
    assert process.waits["self"] > 0


def test_scheduled_chain_waits_on_its_dependency_and_coalesces() -> None:
    """A scheduled worker that depends on another and outlasts the interval coalesces."""
    result = plan_of({
        "extract": every(600, 240),
        "load": every(600, 720, depends_on=["extract"]),
    })
    load = worker(result, "load")
    assert load.waits["dependency"] > 0
    assert ("waiting on extract", load.waits["dependency"]) in load.causes
    assert load.coalesced > 0
    assert load.falls_behind


def test_roomy_config_has_no_delays() -> None:
    """Enough slots and no conflicts: every run starts when due, nobody falls behind."""
    result = plan_of({
        "fetch": every(300, 30),
        "report": {"mode": "triggered", "depends_on": ["fetch"], "expected_seconds": 10},
        "cleanup": {"cron": "0 * * * *", "expected_seconds": 60},
    })
    assert [w.runs for w in result.workers] == [288, 288, 23]  # cron: from 10:00 on
    for w in result.workers:
        assert w.max_delay_s == 0, w
        assert sum(w.waits.values()) < 0.001, w
        assert not w.falls_behind
    assert result.slots.peak == 2
    assert not result.behind


def test_priorities_decide_who_waits() -> None:
    """With one slot, the high-priority worker starts on time and the low one waits."""
    result = plan_of(
        {"sweep": every(600, 60, priority="low"), "bill": every(600, 60, priority="high")},
        slots=1,
    )
    sweep, bill = worker(result, "sweep"), worker(result, "bill")
    assert bill.max_delay_s == 0
    assert sweep.median_delay_s == 60
    assert round(sweep.waits["slots"]) == 60 * sweep.runs
    assert sweep.causes[0][0] == "slots busy"
    assert not sweep.falls_behind
    assert [run.worker for run in result.first_runs[:2]] == ["bill", "sweep"]


def test_own_overrun_is_charged_to_itself() -> None:
    """A run longer than its interval: the next due time waits on the run before it."""
    result = plan_of({"slow": every(600, 900)}, window_s=3600)
    slow = worker(result, "slow")
    assert slow.causes[0][0] == "its own previous run"
    assert slow.waits["self"] > 0
    # Starts at 0, 900 (serving 600), 1800 (serving 1200: 1800 coalesced), 2700 (2400).
    assert slow.runs == 4
    assert slow.coalesced == 1
    assert sorted(delays_of(result, "slow")) == [0, 300, 300, 600]
    assert slow.falls_behind


def test_hourly_cron_across_the_spring_dst_change() -> None:
    """An hourly Berlin cron fires every real hour across 02:00 -> 03:00 on 29 March."""
    result = plan_of(
        {"hourly": {"cron": "0 * * * *", "timezone": "Europe/Berlin"}},
        window_s=4 * 3600, start=datetime.fromisoformat("2026-03-29T00:30+01:00"),
    )
    hourly = worker(result, "hourly")
    assert hourly.runs == 4
    assert [run.at_s for run in result.first_runs] == [1800, 5400, 9000, 12600]
    assert not hourly.falls_behind


def test_daily_cron_in_the_skipped_hour_runs_once() -> None:
    """A daily 02:30 Berlin cron runs once on the night that has no 02:30."""
    result = plan_of(
        {"nightly": {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}},
        window_s=3 * DAY, start=datetime.fromisoformat("2026-03-28T12:00+01:00"),
    )
    nightly = worker(result, "nightly")
    assert nightly.runs == 3
    assert nightly.coalesced == 0
    assert not nightly.falls_behind
    fired = [result.start.astimezone(UTC) + timedelta(seconds=r.at_s) for r in result.first_runs]
    assert [t.isoformat() for t in fired] == [
        "2026-03-29T01:00:00+00:00",  # 03:00 CEST, just after the jump
        "2026-03-30T00:30:00+00:00",
        "2026-03-31T00:30:00+00:00",
    ]


def test_expected_run_longer_than_timeout_falls_behind() -> None:
    """Runs that would time out every time are said so, and count as falling behind."""
    result = plan_of({"export": {"interval_seconds": 3600, "expected_seconds": 90}})
    export = worker(result, "export")
    assert export.times_out
    assert export.falls_behind


def test_a_config_without_workers_plans_to_nothing() -> None:
    """No workers: no runs, no slot used, nobody behind."""
    result = plan_of({})
    assert result.workers == ()
    assert (result.slots.peak, result.slots.mean_busy) == (0, 0)
    assert not result.behind


def test_disabled_worker_never_runs_and_does_not_fall_behind() -> None:
    """A worker disabled in the config has no runs and no warning."""
    off = worker(plan_of({"off": every(60, 1, enabled=False)}), "off")
    assert off.runs == 0
    assert not off.may_run
    assert not off.falls_behind


def test_plans_of_one_config_agree() -> None:
    """Two plans of one config, jitter and cron included, give the same result."""
    workers = {
        f"w{i}": every(300 * (1 + i % 3), 20 + 7 * i, jitter_seconds=30,
                       priority=("low", "normal", "high")[i % 3])
        for i in range(8)
    }
    workers["cron"] = {"cron": "*/10 * * * *", "expected_seconds": 45, "blocks": ["w1"]}
    assert plan_of(workers, slots=2) == plan_of(workers, slots=2)


def test_expected_duration_comes_from_config_history_or_default() -> None:
    """`expected_seconds` wins, then the store's median, then 1 s; the source is named."""
    history = History(median_seconds={"a": 12.5, "b": 3.0})
    assert expected_duration(WorkerSpec(name="a", expected_seconds=7), history).source == "config"
    from_store = expected_duration(WorkerSpec(name="b"), history)
    assert (from_store.seconds, from_store.source) == (3.0, "history")
    fallback = expected_duration(WorkerSpec(name="c"), history)
    assert (fallback.seconds, fallback.source) == (1.0, "default")


async def test_paused_time_is_charged_to_the_pause(autojump_clock: trio.testing.MockClock) -> None:
    """The observer charges a due worker's wait during a pause to `paused`."""
    spec = WorkerSpec(name="w", interval_seconds=600, expected_seconds=1)
    observer = PlanObserver([expected_duration(spec, None)], lambda t: START, 0.0)
    orch = Orchestrator(
        OrchestratorConfig(), now=virtual_wall_clock, rng=random.Random(0), observer=observer
    )

    async def quick(_: object) -> None:
        await trio.sleep(1)

    orch.add_worker(spec, quick)
    orch.pause()
    async with trio.open_nursery() as nursery:
        await nursery.start(orch.run)
        await trio.sleep(60)
        orch.resume()
        await trio.sleep(10)
        orch.stop(grace=0)
    tally = observer.tally(0)
    assert tally.delays == [60]
    assert tally.causes == {"paused": 60}
