"""lateness: how late scheduled runs start, with N workers on staggered phases.

jobdeck: N scheduled no-op workers with `interval_seconds = period`. Their phases are
spread evenly over one period the way a long-running deployment's are after a restart:
the store is seeded with each worker's last start, from which the schedule continues.
The orchestrator's wall clock follows trio's clock exactly, so worker i's due times
are the known grid `base + i * period / N + k * period`; each run records
`trio.current_time()` as it begins and its lateness is that minus its due time.
Due times missed entirely (a run later than a whole period) are counted as `missed`.

Baseline `trio_sleep`: N tasks each `trio.sleep_until` the same grid: trio's own timer
overshoot. CPU seconds per 1,000 runs from `time.process_time` over the window.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import attrs
import trio

from jobdeck import MemoryStore, Orchestrator, OrchestratorConfig, WorkerState

from ._harness import Clocks, GcPauses, Measurement, Result, Target, percentile, ratio
from ._jobdeck import EPOCH, running, trio_wall_clock

NAME = "lateness"
HELP = "start time minus due time of N scheduled workers on staggered phases"
DEFAULT_REPEAT = 1

TARGETS = (
    Target(NAME, "jobdeck", "p99_ms", "<=", 2.0,
           "p99 <= 2 ms at 1,000 workers, 1 s periods", {"workers": 1000, "period_s": 1.0}),
    Target(NAME, "jobdeck", "p99_ms", "<=", 20.0,
           "p99 <= 20 ms at 10,000 workers, 1 s periods", {"workers": 10000, "period_s": 1.0}),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, help="scheduled workers (default 1,000)")
    parser.add_argument("--period", type=float, help="interval_seconds (default 1)")
    parser.add_argument("--seconds", type=float, help="measured window (default 10)")
    parser.add_argument("--slots", type=int,
                        help="max_concurrent_workers (default: one per worker)")
    parser.add_argument("--gc", choices=("on", "freeze"), default="freeze",
                        help="freeze (default, what the jobdeck command does once started):"
                        " gc.freeze() after start-up, so full collections skip the"
                        " long-lived objects; on: the collector untouched")


@attrs.define
class Grid:
    """The due times of N periodic jobs, and how late each run was.

    Worker i is first due at `firsts[i]` (evenly staggered over one period unless told
    otherwise), then every period after, `rounds` times.
    """

    base: float
    period: float
    workers: int
    rounds: int
    firsts: list[float] = attrs.field(factory=list)
    #: per worker: how many of its due times have passed (served or missed).
    passed: list[int] = attrs.field(factory=list)
    lateness: list[float] = attrs.field(factory=list)
    missed: int = 0

    def __attrs_post_init__(self) -> None:
        self.firsts = [self.base + i * self.period / self.workers for i in range(self.workers)]
        self.passed = [0] * self.workers

    def next_due(self, i: int) -> float:
        return self.firsts[i] + self.passed[i] * self.period

    def record(self, i: int, t: float) -> bool:
        """Worker i started at t; returns whether its next due time is still in the window."""
        if self.passed[i] >= self.rounds:
            return False
        late = t - self.next_due(i)
        self.lateness.append(late)
        # As in jobdeck, due times a late run overran collapse into the next grid point.
        skipped = max(0, math.floor(late / self.period))
        self.missed += skipped
        self.passed[i] += skipped + 1
        return self.passed[i] < self.rounds

    @property
    def end(self) -> float:
        """When the last due time of the window has passed."""
        return max(self.firsts) + self.rounds * self.period


def _figures(grid: Grid, clocks: Clocks, gc_pauses: GcPauses) -> dict[str, Any]:
    late = sorted(grid.lateness)
    runs = len(late)
    return {
        "runs": runs,
        "missed": grid.missed,
        "p50_ms": percentile(late, 50) * 1e3,
        "p99_ms": percentile(late, 99) * 1e3,
        "max_ms": (late[-1] if late else math.nan) * 1e3,
        "cpu_s_per_1000_runs": clocks.cpu / runs * 1000 if runs else math.nan,
        "cpu_pct": clocks.cpu / clocks.wall * 100,
        **gc_pauses.figures(),
    }


def _warmup(workers: int) -> float:
    """Time to start everything before the first due time, growing with N."""
    return 0.3 + workers * 60e-6


async def trio_sleep(
    workers: int, period: float, seconds: float, freeze: bool
) -> dict[str, Any]:
    base = trio.current_time() + _warmup(workers)
    grid = Grid(base, period, workers, max(1, round(seconds / period)))

    async def job(i: int) -> None:
        while True:
            await trio.sleep_until(grid.next_due(i))
            if not grid.record(i, trio.current_time()):
                return

    async with trio.open_nursery() as nursery:
        for i in range(workers):
            nursery.start_soon(job, i)
        await trio.sleep_until(base)
        with GcPauses(freeze=freeze) as gc_pauses:
            clocks = Clocks().start()
            await trio.sleep_until(grid.end + min(period, 0.5))
            clocks.stop()
    return _figures(grid, clocks, gc_pauses)


async def jobdeck(
    workers: int, period: float, seconds: float, slots: int, freeze: bool
) -> dict[str, Any]:
    store = MemoryStore()
    orch = Orchestrator(
        OrchestratorConfig(max_concurrent_workers=slots), store=store, now=trio_wall_clock
    )
    base = trio.current_time() + _warmup(workers)
    grid = Grid(base, period, workers, max(1, round(seconds / period)))

    def job_of(i: int) -> Callable[[Any], Any]:
        async def job(ctx: Any) -> None:
            grid.record(i, trio.current_time())

        return job

    for i in range(workers):
        name = f"tick-{i}"
        orch.register(name, job_of(i), interval_seconds=period, max_retries=0)
        # The schedule continues one period after the stored last start.
        last_start = EPOCH + timedelta(seconds=grid.firsts[i] - period)
        await store.save_worker(WorkerState(name=name, last_start=last_start))
    async with running(orch):
        # Lateness is measured against the due times jobdeck itself set (its wall clock
        # follows trio's, so a snapshot's `next_due` converts back exactly); how far
        # those are from the stored schedule is `due_shift_max_ms`.
        shift = 0.0
        for i, worker in enumerate(orch.snapshot().workers):
            assert worker.next_due is not None
            due = (worker.next_due - EPOCH).total_seconds()
            shift = max(shift, abs(due - grid.firsts[i]))
            grid.firsts[i] = due
        await trio.sleep_until(base)
        with GcPauses(freeze=freeze) as gc_pauses:
            clocks = Clocks().start()
            await trio.sleep_until(grid.end + min(period, 0.5))
            clocks.stop()
    return {**_figures(grid, clocks, gc_pauses), "due_shift_max_ms": shift * 1e3}


def measure(args: argparse.Namespace) -> Sequence[Result]:
    quick = args.quick
    workers = args.workers or (20 if quick else 1000)
    period = args.period or (0.1 if quick else 1.0)
    seconds = args.seconds or (0.5 if quick else 10.0)
    slots = args.slots or workers
    params = {"workers": workers, "period_s": period, "seconds": seconds, "gc": args.gc}
    freeze = args.gc == "freeze"
    base = trio.run(trio_sleep, workers, period, seconds, freeze)
    mine = trio.run(jobdeck, workers, period, seconds, slots, freeze)
    mine["ratio_p99_vs_trio_sleep"] = ratio(mine["p99_ms"], base["p99_ms"])
    mine["ratio_cpu_vs_trio_sleep"] = ratio(
        mine["cpu_s_per_1000_runs"], base["cpu_s_per_1000_runs"]
    )
    return [
        Measurement(NAME, "trio_sleep", params, base),
        Measurement(NAME, "jobdeck", {**params, "slots": slots}, mine),
    ]
