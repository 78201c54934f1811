"""The dispatch benchmark on APScheduler 4.0.0a6 on trio, memory data store.

Run by `python -m bench peers` in the interpreter of `bench/.peers/apscheduler-4` (it
cannot share a virtualenv with APScheduler 3): standalone, it imports nothing of jobdeck.
Prints one JSON object: {"jobs", "api", "jobs_per_s", "cpu_us_per_job"}.

`jobs` immediate no-op jobs (`add_job`, no schedule) sent by `producers` concurrent
tasks, at most `tasks` jobs running at once; timed from the first `add_job` to the
last `JobReleased` event. Two ways to add them (`--api`):

* `task-id`, the same shape as jobdeck's benchmark: `tasks` tasks configured up front
  (one running job each, as a jobdeck worker has one run at a time), jobs spread
  round-robin over them with `add_job(task_id)`: APScheduler 4's fast path;
* `function`: `add_job(noop)`, the documented usage, with one task configured for any
  number of running jobs; each call resolves the function to its task again.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

import anyio
import trio
from apscheduler import AsyncScheduler, JobReleased


async def noop() -> None:
    pass


async def dispatch(jobs: int, tasks: int, producers: int, api: str) -> dict[str, Any]:
    released = 0
    all_released = trio.Event()

    def on_released(event: JobReleased) -> None:
        nonlocal released
        released += 1
        if released == jobs:
            all_released.set()

    async with AsyncScheduler(max_concurrent_jobs=tasks) as scheduler:
        targets: list[Any]
        if api == "task-id":
            targets = [f"noop-{i}" for i in range(tasks)]
            for task_id in targets:
                await scheduler.configure_task(task_id, func=noop, max_running_jobs=1)
        else:
            await scheduler.configure_task(noop, max_running_jobs=None)
            targets = [noop]
        scheduler.subscribe(on_released, {JobReleased})
        await scheduler.start_in_background()

        async def produce(first: int) -> None:
            for i in range(first, jobs, producers):
                await scheduler.add_job(targets[i % len(targets)])

        wall, cpu = time.perf_counter(), time.process_time()
        async with anyio.create_task_group() as group:
            for first in range(min(producers, jobs)):
                group.start_soon(produce, first)
        await all_released.wait()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await scheduler.stop()
    return {"jobs": jobs, "api": api, "jobs_per_s": jobs / wall,
            "cpu_us_per_job": cpu / jobs * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--producers", type=int, default=100)
    parser.add_argument("--api", choices=("task-id", "function"), default="task-id")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    result = trio.run(dispatch, args.jobs, args.tasks, args.producers, args.api)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
