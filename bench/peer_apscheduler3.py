"""The dispatch benchmark on APScheduler 3.11: AsyncIOScheduler, memory job store.

Imported by `python -m bench peers` when APScheduler 3 is installed beside jobdeck (the
`bench` extra), else run as a script in `bench/.peers/apscheduler-3`'s interpreter:
standalone, it imports nothing of jobdeck. As a script it prints one JSON object:
{"jobs", "jobs_per_s", "cpu_us_per_job"}.

`jobs` immediate no-op jobs (`add_job(noop)`: a date trigger of now, no misfire limit)
added by `producers` coroutines that yield to the loop after each `add_job`, as jobdeck's
producers await each trigger; timed from the first `add_job` to the last
`EVENT_JOB_EXECUTED`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler


async def noop() -> None:
    pass


async def _dispatch(jobs: int, producers: int) -> dict[str, float]:
    finished = 0
    problems = 0
    all_done = asyncio.Event()

    def on_event(event: Any) -> None:
        nonlocal finished, problems
        finished += 1
        problems += event.code != EVENT_JOB_EXECUTED
        if finished == jobs:
            all_done.set()

    scheduler = AsyncIOScheduler(job_defaults={"misfire_grace_time": None})
    scheduler.add_listener(on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    scheduler.start()

    async def produce(first: int) -> None:
        for _ in range(first, jobs, producers):
            scheduler.add_job(noop)
            await asyncio.sleep(0)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(produce(first) for first in range(min(producers, jobs))))
    await all_done.wait()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    scheduler.shutdown(wait=False)
    await asyncio.sleep(0)
    if problems:
        raise RuntimeError(f"{problems} APScheduler jobs failed or were missed")
    return {"jobs": jobs, "jobs_per_s": jobs / wall, "cpu_us_per_job": cpu / jobs * 1e6}


def dispatch(jobs: int, producers: int = 100) -> dict[str, float]:
    """Run the benchmark in a fresh asyncio loop; the figures as a dict."""
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    return asyncio.run(_dispatch(jobs, producers))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--producers", type=int, default=100)
    args = parser.parse_args()
    print(json.dumps(dispatch(args.jobs, args.producers)), flush=True)


if __name__ == "__main__":
    main()
