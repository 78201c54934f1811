"""memory: Python heap bytes per registered worker and per pending trigger (tracemalloc).

Per worker: the heap growth of a running orchestrator with N scheduled workers (hourly,
nothing due; names included) minus that of one with none, divided by N.
Per pending trigger: M triggers spread over 100 triggered workers that are disabled, so
every trigger stays pending; the heap growth from triggering, divided by M (the store's
copy included: with the memory store the triggers live in the process too).
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc
from collections.abc import Sequence
from typing import Any

import trio

from jobdeck import Orchestrator, OrchestratorConfig

from ._harness import Measurement, Result, Target
from ._jobdeck import STORES, make_store, noop, running

NAME = "memory"
HELP = "bytes per registered worker and per pending trigger"
DEFAULT_REPEAT = 1
HOLDING_WORKERS = 100

TARGETS = (
    Target(NAME, "jobdeck", "bytes_per_worker", "<=", 2048, "<= 2 KiB per registered worker"),
    Target(NAME, "jobdeck", "bytes_per_pending_trigger", "<=", 1024,
           "<= 1 KiB per pending trigger"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, help="registered workers (default 10,000)")
    parser.add_argument("--pending", type=int, help="pending triggers (default 20,000)")
    parser.add_argument("--store", choices=STORES, default="memory")


def _heap() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


async def _running_footprint(workers: int, store_kind: str, settle: float) -> int:
    """Heap growth from creating, registering and running an orchestrator (while it runs)."""
    with make_store(store_kind) as store:
        before = _heap()
        orch = Orchestrator(OrchestratorConfig(), store=store)
        for i in range(workers):
            orch.register(f"hourly-{i}", noop, interval_seconds=3600, run_at_start=False)
        async with running(orch):
            # Settled: at full size a health round has looked at every worker.
            await trio.sleep(settle)
            grown = _heap() - before
    return grown


async def _pending_footprint(pending: int, store_kind: str) -> int:
    with make_store(store_kind) as store:
        orch = Orchestrator(OrchestratorConfig(), store=store)
        names = [f"held-{i}" for i in range(HOLDING_WORKERS)]
        for name in names:
            orch.register(name, noop, mode="triggered", enabled=False)
        async with running(orch):
            await trio.sleep(0.05)
            before = _heap()
            for i in range(pending):
                await orch.trigger(names[i % HOLDING_WORKERS])
            grown = _heap() - before
            if orch.snapshot().pending != pending:
                raise RuntimeError("triggers for disabled workers did not stay pending")
    return grown


async def _measure(
    workers: int, pending: int, store_kind: str, settle: float
) -> dict[str, Any]:
    await _running_footprint(0, store_kind, 0.0)  # warm-up: first-use caches are not per worker
    empty = await _running_footprint(0, store_kind, settle)
    full = await _running_footprint(workers, store_kind, settle)
    triggers = await _pending_footprint(pending, store_kind)
    return {
        "bytes_empty_orchestrator": empty,
        "bytes_per_worker": (full - empty) / workers,
        "bytes_per_pending_trigger": triggers / pending,
    }


def measure(args: argparse.Namespace) -> Sequence[Result]:
    workers = args.workers or (100 if args.quick else 10_000)
    pending = args.pending or (1000 if args.quick else 20_000)
    tracemalloc.start()
    try:
        # At full size, long enough for a health round (it sets per-worker fields).
        settle = 0.05 if args.quick else 1.2
        figures = trio.run(_measure, workers, pending, args.store, settle)
    finally:
        tracemalloc.stop()
    params = {"store": args.store, "workers": workers, "pending": pending}
    return [Measurement(NAME, "jobdeck", params, figures)]
