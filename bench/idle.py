"""idle: CPU spent by an orchestrator whose N workers have nothing to do yet.

jobdeck: N scheduled workers with hour-long intervals (`run_at_start = False`), so no run
is due in the window; after a settling second, CPU % of one core (`time.process_time`
over wall time) while it waits. Baseline `trio_sleep`: a `trio.run` that only sleeps.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import trio

from jobdeck import Orchestrator, OrchestratorConfig

from ._harness import Clocks, Measurement, Result, Target
from ._jobdeck import make_store, noop, running

NAME = "idle"
HELP = "CPU %% of one core while N workers wait for long intervals"
DEFAULT_REPEAT = 1

TARGETS = (
    Target(NAME, "jobdeck", "cpu_pct", "<=", 1.0,
           "10,000 registered workers cost <= 1% of a core", {"workers": 10000}),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, help="scheduled workers (default 10,000)")
    parser.add_argument("--seconds", type=float, help="measured window (default 10)")
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory")


def _figures(clocks: Clocks) -> dict[str, Any]:
    return {"cpu_pct": clocks.cpu / clocks.wall * 100, "cpu_s": clocks.cpu}


async def trio_sleep(seconds: float, settle: float) -> dict[str, Any]:
    await trio.sleep(settle)
    clocks = Clocks().start()
    await trio.sleep(seconds)
    return _figures(clocks.stop())


async def jobdeck(workers: int, seconds: float, settle: float, store_kind: str) -> dict[str, Any]:
    with make_store(store_kind) as store:
        orch = Orchestrator(OrchestratorConfig(), store=store)
        for i in range(workers):
            orch.register(f"hourly-{i}", noop, interval_seconds=3600, run_at_start=False)
        async with running(orch):
            await trio.sleep(settle)
            clocks = Clocks().start()
            await trio.sleep(seconds)
            clocks.stop()
    return _figures(clocks)


def measure(args: argparse.Namespace) -> Sequence[Result]:
    workers = args.workers or (50 if args.quick else 10_000)
    seconds = args.seconds or (0.5 if args.quick else 10.0)
    settle = 0.1 if args.quick else 1.0
    base = trio.run(trio_sleep, seconds, settle)
    mine = trio.run(jobdeck, workers, seconds, settle, args.store)
    mine["cpu_pct_over_trio_sleep"] = mine["cpu_pct"] - base["cpu_pct"]
    return [
        Measurement(NAME, "trio_sleep", {"seconds": seconds}, base),
        Measurement(NAME, "jobdeck",
                    {"store": args.store, "workers": workers, "seconds": seconds}, mine),
    ]
