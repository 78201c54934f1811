"""cluster: no-op runs through N cluster nodes on one PostgreSQL, each node its own process.

`jobs` pending triggers (spread over `workers` triggered no-op workers) are stored in one
transaction while every node is up and idle; the nodes claim, run and finish them.
Timed from the commit to the moment the database holds `jobs` succeeded runs (counted
every 20 ms on a connection of its own). Needs a database the benchmark may empty:
`--dsn` or `JOBDECK_BENCH_PG` (libpq string or postgresql:// URL); skipped otherwise.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from collections.abc import Sequence
from typing import Any

import trio

from ._harness import Measurement, Result, Skip, Target

NAME = "cluster"
HELP = "no-op runs/s through N cluster nodes (processes) on one PostgreSQL"
DEFAULT_JOBS, QUICK_JOBS = 6_000, 300
DEFAULT_REPEAT = 3

TARGETS = (
    Target(NAME, "jobdeck", "runs_per_s", ">=", 1_500,
           "3 nodes, no-op runs: >= 1,500 runs/s (SCALE.md G8)", {"nodes": 3}),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", default=os.environ.get("JOBDECK_BENCH_PG"),
                        help="the database (emptied!); default $JOBDECK_BENCH_PG")
    parser.add_argument("--nodes", type=int, default=3, help="node processes (default 3)")
    parser.add_argument("--jobs", type=int, help=f"triggers (default {DEFAULT_JOBS:,})")
    parser.add_argument("--workers", type=int, default=60,
                        help="triggered no-op workers the jobs are spread over (default 60)")
    parser.add_argument("--capacity", type=int, default=20,
                        help="runs each node holds at once (default 20)")


async def _noop(ctx: Any) -> None:
    await trio.lowlevel.checkpoint()


def _node(dsn: str, name: str, workers: int, capacity: int, ready: Any, stop: Any) -> None:
    """One node: joins, says it is ready, runs until `stop` is set."""
    from jobdeck import Orchestrator, OrchestratorConfig
    from jobdeck._pg_store import PgStore

    async def main() -> None:
        orch = Orchestrator(
            OrchestratorConfig(max_concurrent_workers=workers, shutdown_grace_seconds=5),
            store=PgStore(dsn, node_name=name, capacity=capacity),
        )
        for i in range(workers):
            orch.register(f"noop-{i}", _noop, mode="triggered", max_retries=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(orch.run)
            ready.set()
            # a multiprocessing Event, set by the parent process: waited on in a thread
            await trio.to_thread.run_sync(stop.wait)
            orch.stop()

    trio.run(main)


def _reset(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def measure(args: argparse.Namespace) -> Sequence[Result]:
    if not args.dsn:
        return [Skip(NAME, "jobdeck", "no database: pass --dsn or set JOBDECK_BENCH_PG")]
    try:
        import psycopg
    except ImportError as exc:
        return [Skip(NAME, "jobdeck", f"psycopg is not installed ({exc})")]
    jobs = args.jobs or (QUICK_JOBS if args.quick else DEFAULT_JOBS)
    _reset(args.dsn)
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    readies = [ctx.Event() for _ in range(args.nodes)]
    procs = [
        ctx.Process(target=_node, args=(args.dsn, f"n{i}", args.workers, args.capacity,
                                         readies[i], stop))
        for i in range(args.nodes)
    ]
    for proc in procs:
        proc.start()
    try:
        for ready in readies:
            if not ready.wait(60):
                raise RuntimeError("a node did not start within 60 s")
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO jd_triggers (id, worker, source, accepted_at, ready_at)"
                    " SELECT 'b' || g, 'noop-' || (g %% %s), 'manual', jd_now(), jd_now()"
                    " FROM generate_series(1, %s) g", (args.workers, jobs),
                )
                conn.execute("SELECT pg_notify('jobdeck', '')")
            start = time.perf_counter()
            deadline = start + 300
            while True:
                row = conn.execute("SELECT count(*) FROM jd_runs WHERE status = 'succeeded'"
                                   ).fetchone()
                if row is not None and row[0] >= jobs:
                    break
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"only {row} of {jobs} runs succeeded in 300 s")
                time.sleep(0.02)
            wall = time.perf_counter() - start
            runs = conn.execute("SELECT count(*) FROM jd_runs").fetchone()
    finally:
        stop.set()
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    return [Measurement(
        NAME, "jobdeck",
        {"nodes": args.nodes, "jobs": jobs, "workers": args.workers,
         "capacity": args.capacity},
        {"runs_per_s": jobs / wall, "seconds": wall,
         "runs_recorded": runs[0] if runs else 0},
    )]
