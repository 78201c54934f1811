"""dispatch: immediate no-op triggers through the public API until all have succeeded.

jobdeck: `jobs` triggers spread round-robin over `workers` triggered workers (one run at
a time per worker, `max_concurrent_workers = workers`), sent by `producers` concurrent
tasks each awaiting `orch.trigger` (acknowledged once stored: with SQLite, once
committed). Timed from the first trigger to the last `RunSucceeded` event.

Baselines in the same process: `raw_trio` starts `jobs` no-op tasks with
`nursery.start_soon`; `raw_trio_scoped` does the same with a `move_on_after` per task.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from functools import partial

import trio

from jobdeck import Orchestrator, OrchestratorConfig

from ._harness import Clocks, Measurement, Result, Skip, Target, ratio
from ._jobdeck import STORES, make_store, noop, running, sqlite_missing, trigger_burst

NAME = "dispatch"
HELP = "N immediate no-op triggers until all have succeeded, vs raw trio tasks"
DEFAULT_JOBS, QUICK_JOBS = 20_000, 200
DEFAULT_REPEAT = 5

TARGETS = (
    Target(NAME, "jobdeck", "ratio_vs_raw_trio_scoped", ">=", 0.5,
           "memory store: >= 0.5x raw trio with a scope per task", {"store": "memory"}),
    Target(NAME, "jobdeck", "jobs_per_s", ">=", 10_000,
           "SQLite, durable acknowledgement: >= 10,000 jobs/s", {"store": "sqlite"}),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", choices=STORES, default="memory")
    parser.add_argument("--jobs", type=int, help=f"triggers (default {DEFAULT_JOBS:,})")
    parser.add_argument("--workers", type=int, default=100,
                        help="triggered workers the jobs are spread over (default 100)")
    parser.add_argument("--producers", type=int, default=100,
                        help="concurrent tasks sending triggers (default 100)")


# ---------------------------------------------------------------------- the systems


async def raw_trio(jobs: int, *, scoped: bool) -> float:
    """Seconds to start and finish `jobs` no-op tasks in one nursery."""

    # Each job yields once, as a no-op async job does (and as the jobdeck no-op worker
    # does): this reproduces the reference figures (~83k and ~49k jobs/s here).
    async def job() -> None:
        await trio.lowlevel.checkpoint()

    async def scoped_job() -> None:
        with trio.move_on_after(60):
            await trio.lowlevel.checkpoint()

    clocks = Clocks().start()
    async with trio.open_nursery() as nursery:
        for _ in range(jobs):
            nursery.start_soon(scoped_job if scoped else job)
    return clocks.stop().wall


async def jobdeck(
    store_kind: str, jobs: int, workers: int, producers: int
) -> tuple[Clocks, dict[str, float]]:
    """Clocks for `jobs` triggers through jobdeck, and store figures (commits)."""
    with make_store(store_kind) as store:
        orch = Orchestrator(OrchestratorConfig(max_concurrent_workers=workers), store=store)
        names = [f"noop-{i}" for i in range(workers)]
        for name in names:
            orch.register(name, noop, mode="triggered", max_retries=0)
        extra: dict[str, float] = {}
        async with running(orch):
            commits_before = getattr(store, "commits", 0)
            clocks = await trigger_burst(orch, names, jobs, producers)
            if hasattr(store, "commits"):
                commits = store.commits - commits_before
                extra = {"commits": commits, "jobs_per_commit": jobs / max(commits, 1)}
        return clocks, extra


# ---------------------------------------------------------------------- one run


def measure(args: argparse.Namespace) -> Sequence[Result]:
    jobs = args.jobs or (QUICK_JOBS if args.quick else DEFAULT_JOBS)
    workers = min(args.workers, jobs)
    if args.store == "sqlite" and (why := sqlite_missing()):
        return [Skip(NAME, "jobdeck", why)]
    raw = trio.run(partial(raw_trio, jobs, scoped=False))
    scoped = trio.run(partial(raw_trio, jobs, scoped=True))
    clocks, extra = trio.run(jobdeck, args.store, jobs, workers, args.producers)
    rate = jobs / clocks.wall
    return [
        Measurement(NAME, "raw_trio", {"jobs": jobs}, {"jobs_per_s": jobs / raw}),
        Measurement(NAME, "raw_trio_scoped", {"jobs": jobs}, {
            "jobs_per_s": jobs / scoped, "ratio_vs_raw_trio": raw / scoped,
        }),
        Measurement(
            NAME, "jobdeck",
            {"store": args.store, "jobs": jobs, "workers": workers, "producers": args.producers},
            {
                "jobs_per_s": rate,
                "cpu_us_per_job": clocks.cpu / jobs * 1e6,
                "ratio_vs_raw_trio": ratio(rate, jobs / raw),
                "ratio_vs_raw_trio_scoped": ratio(rate, jobs / scoped),
                **extra,
            },
        ),
    ]
