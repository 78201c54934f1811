"""The peer of `bench cluster`'s no-op dispatch: Procrastinate 3.10 on the same PostgreSQL.

One worker with `concurrency` 10 drains `jobs` no-op jobs deferred in bulk
(`batch_defer_async`) beforehand; timed from the worker's start to its return (it is
run with `wait=False`: it stops once the queue is empty). Run in a process of its own
(asyncio, its own logging) by `bench.cluster`. Skipped where Procrastinate is not
installed (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

VERSION = "3.10"


def available() -> str | None:
    """None if Procrastinate can run here, else why not."""
    try:
        import procrastinate
    except ImportError as exc:
        return f"procrastinate is not installed ({exc}): pip install -e '.[bench]'"
    version = getattr(procrastinate, "__version__", "")
    if version and not version.startswith(VERSION):
        return f"procrastinate {version} is installed; the figures are for {VERSION}"
    return None


async def _noop() -> None:
    await asyncio.sleep(0)


async def _measure(dsn: str, jobs: int, concurrency: int) -> dict[str, Any]:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))
    task = app.task(name="noop")(_noop)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        for start in range(0, jobs, 1000):
            await task.batch_defer_async(*({} for _ in range(min(1000, jobs - start))))
        clock = time.perf_counter()
        await app.run_worker_async(concurrency=concurrency, wait=False,
                                   install_signal_handlers=False)
        wall = time.perf_counter() - clock
        async with app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
            cur = await conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
            )
            row = await cur.fetchone()
    done = int(row[0]) if row else 0
    if done != jobs:
        raise RuntimeError(f"procrastinate finished {done} of {jobs} jobs")
    return {"jobs_per_s": jobs / wall, "seconds": wall}


def run(dsn: str, jobs: int, concurrency: int, out: Any) -> None:
    """In a child process: measure, and put the figures (or the error's text) on `out`."""
    import logging

    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    try:
        out.put(asyncio.run(_measure(dsn, jobs, concurrency)))
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")
