"""shutdown: time from `stop()` to a finished shutdown with N short runs in flight.

jobdeck: N triggered workers (one slot each) run once each; run i sleeps
`run_s * (0.5 + 0.5 * i / N)`, so the longest lasts `run_s`. Once every run has started,
`orch.stop()` (grace far longer than any run) and `await orch.wait_stopped()`: every run
finishes, is recorded, and the store is closed. `overhead_ms` is the time from the end
of the last run to the end of the shutdown: what the orchestrator adds.
Baseline `raw_trio`: the same sleeps as tasks in a nursery; time until the nursery exits.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import trio

from jobdeck import Orchestrator, OrchestratorConfig, RunStarted

from ._harness import Measurement, Result, Skip, Target, ratio
from ._jobdeck import STORES, count_events, make_store, sqlite_missing

NAME = "shutdown"
HELP = "time from stop() to exit with N short runs in flight"
DEFAULT_REPEAT = 3

TARGETS = (
    Target(NAME, "jobdeck", "overhead_ms", "<=", 100.0,
           "1,000 short runs in flight: exit within the longest run + 100 ms",
           {"inflight": 1000}),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inflight", type=int, help="runs in flight at stop (default 1,000)")
    parser.add_argument("--run-seconds", type=float, dest="run_s",
                        help="duration of the longest run (default 0.5)")
    parser.add_argument("--store", choices=STORES, default="memory")


def _durations(inflight: int, run_s: float) -> list[float]:
    return [run_s * (0.5 + 0.5 * (i + 1) / inflight) for i in range(inflight)]


def _figures(stop_t: float, last_end: float, exit_t: float) -> dict[str, Any]:
    return {
        "stop_to_exit_ms": (exit_t - stop_t) * 1e3,
        "longest_remaining_ms": (last_end - stop_t) * 1e3,
        "overhead_ms": (exit_t - last_end) * 1e3,
    }


async def raw_trio(durations: list[float]) -> dict[str, Any]:
    ends: list[float] = []
    started = 0
    all_started = trio.Event()

    async def job(seconds: float) -> None:
        nonlocal started
        started += 1
        if started == len(durations):
            all_started.set()
        await trio.sleep(seconds)
        ends.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for seconds in durations:
            nursery.start_soon(job, seconds)
        await all_started.wait()
        stop_t = trio.current_time()
    return _figures(stop_t, max(ends), trio.current_time())


async def jobdeck(durations: list[float], store_kind: str) -> dict[str, Any]:
    inflight = len(durations)
    ends: list[float] = []

    def job_of(seconds: float) -> Any:
        async def job(ctx: Any) -> None:
            await trio.sleep(seconds)
            ends.append(trio.current_time())

        return job

    with make_store(store_kind) as store:
        orch = Orchestrator(
            OrchestratorConfig(max_concurrent_workers=inflight, shutdown_grace_seconds=60),
            store=store,
        )
        names = [f"short-{i}" for i in range(inflight)]
        for name, seconds in zip(names, durations, strict=True):
            orch.register(name, job_of(seconds), mode="triggered", max_retries=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(orch.run)
            with orch.subscribe(4 * inflight + 100) as sub:
                for name in names:
                    await orch.trigger(name)
                await count_events(sub, RunStarted, inflight)
            stop_t = trio.current_time()
            orch.stop()
            await orch.wait_stopped()
            exit_t = trio.current_time()
            interrupted = orch.snapshot()
    if len(ends) != inflight:
        raise RuntimeError(f"only {len(ends)} of {inflight} runs finished")
    figures = _figures(stop_t, max(ends), exit_t)
    figures["interrupted"] = sum(w.runs_ok == 0 for w in interrupted.workers)
    return figures


def measure(args: argparse.Namespace) -> Sequence[Result]:
    inflight = args.inflight or (20 if args.quick else 1000)
    run_s = args.run_s or (0.1 if args.quick else 0.5)
    if args.store == "sqlite" and (why := sqlite_missing()):
        return [Skip(NAME, "jobdeck", why)]
    durations = _durations(inflight, run_s)
    base = trio.run(raw_trio, durations)
    mine = trio.run(jobdeck, durations, args.store)
    mine["ratio_vs_raw_trio"] = ratio(mine["stop_to_exit_ms"], base["stop_to_exit_ms"])
    params = {"inflight": inflight, "run_s": run_s}
    return [
        Measurement(NAME, "raw_trio", params, base),
        Measurement(NAME, "jobdeck", {"store": args.store, **params}, mine),
    ]
