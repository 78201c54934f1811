"""plan: `jobdeck plan` of a day of N workers: seconds of wall time to simulate it.

A generated config in groups of ten: six workers on 5 to 60 minute intervals, one on a
cron, two triggered by a scheduled one (a chain), one that blocks another; priorities
mixed, runs of 2 to 40 s, one slot per 16 workers. About 160 runs per worker per day.
The plan runs the real orchestrator on a virtual clock; the figure is the wall time of
`jobdeck.plan` (the whole simulation, no output), its CPU time, and runs per second.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from typing import Any

from jobdeck import parse_config
from jobdeck._plan import plan

from ._harness import Clocks, Measurement, Result, Target

NAME = "plan"
HELP = "wall time of `jobdeck plan` over a day of N generated workers"
DEFAULT_REPEAT = 3
DAY_S = 86_400.0

TARGETS = (
    Target(NAME, "jobdeck", "wall_s", "<=", 2.0,
           "24 h of 100 workers planned in <= 2 s", {"workers": 100}),
    Target(NAME, "jobdeck", "wall_s", "<=", 20.0,
           "24 h of 1,000 workers planned in <= 20 s", {"workers": 1000}),
)

INTERVALS = (300, 300, 600, 600, 900, 1800)
PRIORITIES = ("low", "normal", "normal", "high")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, help="workers (default 1,000; --quick 20)")
    parser.add_argument("--hours", type=float, default=24.0, help="window (default 24)")


def generated_config(workers: int) -> dict[str, Any]:
    """A config of `workers` workers in groups of ten (see the module's doc)."""
    rng = random.Random(workers)
    table: dict[str, dict[str, Any]] = {}
    for i in range(workers):
        group, role = divmod(i, 10)
        head = f"w{group * 10}"
        worker: dict[str, Any] = {
            "fn": "generated.workers:run",
            "expected_seconds": rng.choice((2, 5, 10, 20, 40)),
            "priority": rng.choice(PRIORITIES),
        }
        if role < 6:
            interval = rng.choice(INTERVALS)
            worker.update(interval_seconds=interval, jitter_seconds=interval / 2)
        elif role == 6:
            worker["cron"] = "*/15 * * * *"
        elif role in (7, 8):
            worker.update(mode="triggered", depends_on=[head if role == 7 else f"w{i - 1}"])
        else:
            worker.update(interval_seconds=600, blocks=[f"w{group * 10 + 1}"])
        table[f"w{i}"] = worker
    slots = max(2, workers // 10)
    return {"orchestrator": {"max_concurrent_workers": slots}, "workers": table}


def measure(args: argparse.Namespace) -> Sequence[Result]:
    workers = args.workers or (20 if args.quick else 1000)
    window = (1.0 if args.quick else args.hours) * 3600
    config = parse_config(generated_config(workers), import_functions=False)
    clocks = Clocks().start()
    result = plan(config, window_s=window)
    clocks.stop()
    runs = sum(w.runs for w in result.workers)
    return [
        Measurement(NAME, "jobdeck", {"workers": workers, "hours": window / 3600}, {
            "wall_s": clocks.wall,
            # CPU of this process: what the plan costs on a machine shared with others.
            "cpu_s": clocks.cpu,
            "runs": runs,
            "runs_per_s": runs / clocks.wall,
            "behind": len(result.behind),
            "slots_peak": result.slots.peak,
        }),
    ]
