"""cluster: SCALE.md's goals G6-G11, with N cluster nodes (each its own process) on one PostgreSQL.

Without `--dsn` (or `JOBDECK_BENCH_PG`) the benchmark starts its own throwaway server
(`tests.pgserver`: initdb/pg_ctl, Unix socket, fsync off, pg_stat_statements loaded)
and makes a fresh database per goal; with one, it empties that database (DROP SCHEMA
public CASCADE) before each goal, and skips G10 (it restarts the server). Times across
processes are on the machine's monotonic clock, or the database's wall clock against
`time.time()` (the same machine).

- G6 failover: a node holding runs (1 h sleepers) is SIGKILLed, or SIGSTOPped past its
  (short) lease, at a random moment of its heartbeat period; per run, the time until
  another node started it again (`jd_runs`).
- G7: node A (capacity 0) accepts a trigger (`orch.trigger`); node B, idle, starts it:
  from before A's call to the worker's first line on B, p50/p99.
- G8: `jobs` pending no-op triggers stored in one transaction while 1, 2, 3 nodes are up
  and idle, timed from the commit until the database holds `jobs` succeeded runs; the
  peer (Procrastinate, one worker, concurrency 10) in the same rounds, interleaved.
- G9: 1 s sleepers, capacity 50 per node, 1/2/4 nodes: runs/s against N x one node's.
- G10: a PostgreSQL restart (`pg_ctl restart -m fast`) while 2 nodes run 0.5 s sleepers
  with more pending: interrupted runs, duplicated triggers, seconds from the server being
  up again to the next run started.
- G11: 3 idle nodes over a window: statements per second per node
  (pg_stat_statements, BEGIN/COMMIT left out) and transactions (pg_stat_database).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs
import trio

from . import peer_procrastinate
from ._harness import Measurement, Reporter, Result, Skip, Target, median, percentile

NAME = "cluster"
HELP = "SCALE.md G6-G11: failover, latency, throughput, restart, idle load of cluster nodes"
DEFAULT_REPEAT = 1
DEFAULT_JOBS, QUICK_JOBS = 6_000, 300
#: in this order: G6 waits for the server to be up a lease long (before that, nobody is
#: reaped: it might just have restarted), and G10 restarts it.
GOALS = ("g8", "g7", "g9", "g11", "g6", "g10")


def _t(goal: str, figure: str, op: str, limit: float, label: str, system: str = "jobdeck",
       **where: Any) -> Target:
    return Target(NAME, system, figure, op, limit, label, {"goal": goal, **where})


TARGETS = (
    _t("G6", "failover_p99_s", "<=", 1.5, "G6 SIGKILL failover p99 <= 1.5 s", fault="SIGKILL"),
    _t("G6", "failover_p99_over_lease_s", "<=", 1.0, "G6 SIGSTOP failover p99 <= lease + 1 s",
       fault="SIGSTOP"),
    _t("G7", "p50_ms", "<=", 5, "G7 trigger on A -> start on B p50 <= 5 ms"),
    _t("G7", "p99_ms", "<=", 25, "G7 trigger on A -> start on B p99 <= 25 ms"),
    _t("G8", "runs_per_s", ">=", 1_500, "G8 3 nodes, no-op runs >= 1,500 runs/s", nodes=3),
    _t("G8", "ratio_to_procrastinate", ">=", 2.5,
       "G8 3 nodes >= 2.5 x Procrastinate (1 worker, concurrency 10)", nodes=3),
    _t("G9", "ratio_to_n_x_one", ">=", 0.9, "G9 2 nodes >= 0.9 x 2 x one node", nodes=2),
    _t("G9", "ratio_to_n_x_one", ">=", 0.9, "G9 4 nodes >= 0.9 x 4 x one node", nodes=4),
    _t("G10", "interrupted", "<=", 0, "G10 restart: 0 interrupted runs"),
    _t("G10", "duplicates", "<=", 0, "G10 restart: 0 duplicated triggers"),
    _t("G10", "resume_s", "<=", 5, "G10 restart: resumed <= 5 s"),
    _t("G11", "statements_per_s_per_node", "<=", 3, "G11 idle <= 3 statements/s per node"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", default=os.environ.get("JOBDECK_BENCH_PG"),
                        help="a database to use (emptied!) instead of a throwaway server;"
                             " default $JOBDECK_BENCH_PG")
    parser.add_argument("--goals", default=",".join(GOALS),
                        help=f"which goals to measure (default {','.join(GOALS)})")
    parser.add_argument("--jobs", type=int, help=f"G8 triggers (default {DEFAULT_JOBS:,})")
    parser.add_argument("--rounds", type=int,
                        help="G8 rounds, jobdeck and the peer interleaved (default 3)")
    parser.add_argument("--workers", type=int, default=60,
                        help="G8 triggered no-op workers the jobs are spread over (default 60)")
    parser.add_argument("--capacity", type=int, default=20,
                        help="G8 runs each node holds at once (default 20)")


# ---------------------------------------------------------------------- the node process

#: In a node process: where the probe worker reports (G7).
_EVENTS: Any = None


async def _noop(ctx: Any) -> None:
    await trio.lowlevel.checkpoint()


async def _sleep(ctx: Any) -> None:
    await trio.sleep(float(ctx.payload["s"]))


async def _probe(ctx: Any) -> None:
    _EVENTS.put(time.monotonic() - float(ctx.payload["t0"]))


_FUNCTIONS: dict[str, Callable[[Any], Any]] = {"noop": _noop, "sleep": _sleep, "probe": _probe}


@attrs.frozen
class NodeSpec:
    """What one node process runs: its store, capacity, lease and triggered workers."""

    dsn: str
    name: str
    capacity: int
    #: (name prefix, how many, function name): workers `prefix-0` ... `prefix-(n-1)`.
    workers: tuple[tuple[str, int, str], ...]
    lease_s: float = 30.0
    max_concurrent: int = 500


def _node(spec: NodeSpec, ready: Any, stop: Any, events: Any, commands: Any) -> None:
    """One node: joins, says it is ready, runs until `stop` is set (or it is killed).

    `commands` (if any) are worker names to trigger here, each with the monotonic time
    before the call as its payload's `t0`; `events` is where probes report.
    """
    global _EVENTS
    _EVENTS = events
    from jobdeck import Orchestrator, OrchestratorConfig
    from jobdeck._pg_store import PgStore

    commands_scope = trio.CancelScope()

    async def serve_commands(orch: Orchestrator) -> None:
        with commands_scope:
            while True:
                name = await trio.to_thread.run_sync(commands.get, abandon_on_cancel=True)
                await orch.trigger(name, {"t0": time.monotonic()})

    async def main() -> None:
        orch = Orchestrator(
            OrchestratorConfig(max_concurrent_workers=spec.max_concurrent,
                               shutdown_grace_seconds=0),
            store=PgStore(spec.dsn, node_name=spec.name, capacity=spec.capacity,
                          lease_seconds=spec.lease_s),
        )
        for prefix, count, fn in spec.workers:
            for i in range(count):
                orch.register(f"{prefix}-{i}", _FUNCTIONS[fn], mode="triggered",
                              max_retries=0)
        async with trio.open_nursery() as nursery:
            await nursery.start(orch.run)
            if commands is not None:
                nursery.start_soon(serve_commands, orch)
            ready.set()
            # a multiprocessing Event, set by the parent process: waited on in a thread
            await trio.to_thread.run_sync(stop.wait)
            commands_scope.cancel()
            orch.stop(grace=0)

    trio.run(main)


class Nodes:
    """Node processes started by the parent; stopped (or killed) at the end."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self.events = self._ctx.Queue()
        #: each node's process and stop event (one each: a node killed while waiting on
        #: a shared event would leave it unusable, its waiter count never going down)
        self.procs: dict[str, tuple[Any, Any]] = {}

    def start(self, *specs: NodeSpec, commands: Any = None) -> None:
        """Start the nodes and wait until each has joined the cluster."""
        readies = []
        for spec in specs:
            ready, stop = self._ctx.Event(), self._ctx.Event()
            proc = self._ctx.Process(
                target=_node, args=(spec, ready, stop, self.events, commands), daemon=True,
            )
            proc.start()
            self.procs[spec.name] = proc, stop
            readies.append((spec.name, ready))
        for name, ready in readies:
            if not ready.wait(120):
                raise RuntimeError(f"node {name} did not start within 120 s")
        # Up means listening too: a node whose listener is not connected yet would miss
        # the first NOTIFY and wait for its 1 s poll (the listener takes the node's
        # advisory lock once it LISTENs).
        for spec in specs:
            _wait(lambda spec=spec: bool(_sql(
                spec.dsn, "SELECT 1 FROM jd_nodes WHERE name = %s AND lock_held", spec.name
            )), 60, f"node {spec.name} listening")

    def queue(self) -> Any:
        return self._ctx.Queue()

    def signal(self, name: str, sig: int) -> None:
        os.kill(self.procs[name][0].pid, sig)

    def kill(self, name: str) -> None:
        proc, _ = self.procs.pop(name)
        proc.kill()
        proc.join(30)

    def close(self) -> None:
        for _, stop in self.procs.values():
            stop.set()
        for proc, _ in self.procs.values():
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        self.procs.clear()


@contextmanager
def nodes() -> Iterator[Nodes]:
    group = Nodes()
    try:
        yield group
    finally:
        group.close()


# ---------------------------------------------------------------------- the database


class Databases:
    """A fresh database per goal: made on the benchmark's own server, or `--dsn` emptied."""

    def __init__(self, dsn: str | None, server: Any) -> None:
        self.dsn = dsn
        self.server = server
        self._count = 0

    @classmethod
    def open(cls, dsn: str | None) -> Databases:
        """On `dsn`, or on a throwaway server started now (raises `NoServer` if none can be)."""
        if dsn is not None:
            return cls(dsn, None)
        from tests.pgserver import start_server

        try:
            return cls(None, start_server(["shared_preload_libraries=pg_stat_statements"]))
        except RuntimeError:
            return cls(None, start_server())  # no pg_stat_statements: G11 counts xacts

    def close(self) -> None:
        for conn in _CONNECTIONS.values():
            conn.close()
        _CONNECTIONS.clear()
        if self.server is not None:
            self.server.stop()

    def fresh(self) -> str:
        if self.server is None:
            assert self.dsn is not None
            _sql(self.dsn, "DROP SCHEMA public CASCADE")
            _sql(self.dsn, "CREATE SCHEMA public")
            return self.dsn
        self._count += 1
        name = f"bench_{self._count}"
        _sql(self.server.dsn(), f"CREATE DATABASE {name}")
        return str(self.server.dsn(name))


#: One connection per database for the benchmark's own queries (a new one for each of
#: the 20 ms polls would cost the server a backend start each time).
_CONNECTIONS: dict[str, Any] = {}


def _sql(dsn: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of one query (autocommit), on the benchmark's connection to `dsn`."""
    import psycopg

    for attempt in range(2):
        conn = _CONNECTIONS.get(dsn)
        if conn is None:
            conn = _CONNECTIONS[dsn] = psycopg.connect(dsn, autocommit=True)
        try:
            cur = conn.execute(query, args or None)
            return cur.fetchall() if cur.description else []
        except psycopg.OperationalError:
            del _CONNECTIONS[dsn]  # the server restarted (G10): connect again, once
            conn.close()
            if attempt:
                raise
    raise AssertionError("unreachable")


def _one(dsn: str, query: str, *args: Any) -> Any:
    return _sql(dsn, query, *args)[0][0]


def _insert_triggers(dsn: str, workers: Sequence[str], jobs: int, payload: str | None,
                     prefix: str = "b") -> None:
    """`jobs` manual triggers over `workers` round-robin, in one transaction, announced."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO jd_triggers (id, worker, source, payload, accepted_at, ready_at)"
            " SELECT %s || g, (%s::text[])[1 + g %% %s], 'manual', %s::json, jd_now(),"
            " jd_now() FROM generate_series(0, %s - 1) g",
            (prefix, list(workers), len(workers), payload, jobs),
        )
        conn.execute("SELECT pg_notify('jobdeck', '')")


def _wait(check: Callable[[], bool], within: float, what: str, interval: float = 0.02) -> None:
    deadline = time.perf_counter() + within
    while not check():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{what}: not within {within:g} s")
        time.sleep(interval)


def _succeeded(dsn: str) -> int:
    return int(_one(dsn, "SELECT count(*) FROM jd_runs WHERE status = 'succeeded'"))


# ---------------------------------------------------------------------- G8 and the peer


def _throughput(dsn: str, count: int, jobs: int, workers: int, capacity: int) -> float:
    """No-op runs/s through `count` nodes: from the commit of `jobs` triggers to the last."""
    names = tuple(f"noop-{i}" for i in range(workers))
    with nodes() as group:
        group.start(*(NodeSpec(dsn, f"n{i}", capacity, (("noop", workers, "noop"),))
                      for i in range(count)))
        _insert_triggers(dsn, names, jobs, None)
        start = time.perf_counter()
        _wait(lambda: _succeeded(dsn) >= jobs, 300, f"{jobs} no-op runs")
        return jobs / (time.perf_counter() - start)


def _procrastinate(dsn: str, jobs: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=peer_procrastinate.run, args=(dsn, jobs, 10, out), daemon=True)
    proc.start()
    try:
        result = out.get(timeout=300)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    if isinstance(result, str):
        raise RuntimeError(f"procrastinate: {result}")
    return dict(result)


def _g8(args: argparse.Namespace, dbs: Databases) -> list[Result]:
    jobs = args.jobs or (QUICK_JOBS if args.quick else DEFAULT_JOBS)
    rounds = args.rounds or (1 if args.quick else 3)
    counts = (3,) if args.quick else (1, 2, 3)
    peer_skip = peer_procrastinate.available()
    rates: dict[int, list[float]] = {n: [] for n in counts}
    peer: list[float] = []
    for _ in range(rounds):
        for n in counts:
            rates[n].append(_throughput(dbs.fresh(), n, jobs, args.workers, args.capacity))
            if n == 3 and peer_skip is None:
                peer.append(_procrastinate(dbs.fresh(), jobs)["jobs_per_s"])
    results: list[Result] = []
    base = {"goal": "G8", "jobs": jobs, "workers": args.workers, "capacity": args.capacity,
            "rounds": rounds}
    for n in counts:
        figures: dict[str, Any] = {"runs_per_s": median(rates[n])}
        if n == 3 and peer:
            figures["ratio_to_procrastinate"] = median(
                a / b for a, b in zip(rates[n], peer, strict=True)
            )
        results.append(Measurement(NAME, "jobdeck", {**base, "nodes": n}, figures))
    if peer_skip is not None:
        results.append(Skip(NAME, "procrastinate", peer_skip))
    elif peer:
        results.append(Measurement(
            NAME, "procrastinate", {"goal": "G8", "jobs": jobs, "rounds": rounds,
                                    "concurrency": 10},
            {"runs_per_s": median(peer)},
        ))
    return results


# ---------------------------------------------------------------------- G6


def _failover_round(dsn: str, group: Nodes, survivors: Sequence[str], victim: NodeSpec,
                    workers: Sequence[str], fault: str, pause: float) -> list[float]:
    """Seconds from the fault to each of the victim's runs started on another node."""
    group.start(victim)
    # only the victim admits the new runs: the survivors drain meanwhile
    _sql(dsn, "UPDATE jd_nodes SET state = 'draining' WHERE name = ANY(%s)", list(survivors))
    _insert_triggers(dsn, workers, len(workers), '{"s": 3600}', prefix=f"{victim.name}-")
    held = ("SELECT l.trigger_id, n.id FROM jd_leases l JOIN jd_nodes n ON n.id = l.node_id"
            " WHERE n.name = %s")
    _wait(lambda: len(_sql(dsn, held, victim.name)) == len(workers), 60,
          f"{victim.name} holding its runs")
    rows = _sql(dsn, held, victim.name)
    triggers, victim_id = [r[0] for r in rows], rows[0][1]
    _sql(dsn, "UPDATE jd_nodes SET state = 'active' WHERE name = ANY(%s)", list(survivors))
    # the fault comes at a random moment of the victim's heartbeat period and of the
    # others' 1 s poll (the hint waits for a heartbeat older than 1 s)
    time.sleep(random.uniform(0, pause))
    at = time.time()
    group.signal(victim.name, signal.SIGKILL if fault == "SIGKILL" else signal.SIGSTOP)
    restarted = ("SELECT extract(epoch FROM started_at)::float8 FROM jd_runs"
                 " WHERE trigger_id = ANY(%s) AND node_id <> %s")
    _wait(lambda: len(_sql(dsn, restarted, triggers, victim_id)) == len(triggers),
          victim.lease_s + 60, f"{fault}: {victim.name}'s runs started elsewhere")
    group.kill(victim.name)
    return [started - at for (started,) in _sql(dsn, restarted, triggers, victim_id)]


def _g6(args: argparse.Namespace, dbs: Databases) -> list[Result]:
    dsn = dbs.fresh()
    kills, stops = (1, 1) if args.quick else (8, 3)
    stop_lease = 2.0 if args.quick else 5.0
    per_round = 4
    count = (kills + stops) * per_round
    hold = (("hold", count, "sleep"),)
    names = [f"hold-{i}" for i in range(count)]
    survivors = ("s0", "s1")
    samples: dict[str, list[float]] = {"SIGKILL": [], "SIGSTOP": []}
    kill_lease = 10.0 if args.quick else 30.0
    up = "SELECT extract(epoch FROM jd_now() - jd_server_started())::float8"
    with nodes() as group:
        group.start(*(NodeSpec(dsn, name, 100, hold) for name in survivors))
        # for a lease after the server started nobody is reaped (it may have restarted)
        _wait(lambda: _one(dsn, up) > kill_lease + 1, kill_lease + 60,
              "the server up for a lease", 0.2)
        for r in range(kills + stops):
            fault = "SIGKILL" if r < kills else "SIGSTOP"
            victim = NodeSpec(dsn, f"v{r}", per_round, hold,
                              lease_s=kill_lease if fault == "SIGKILL" else stop_lease)
            samples[fault] += _failover_round(
                dsn, group, survivors, victim, names[r * per_round:(r + 1) * per_round], fault,
                1.0 if args.quick else victim.lease_s / 3,
            )
    results: list[Result] = []
    for fault, values in samples.items():
        values.sort()
        lease = kill_lease if fault == "SIGKILL" else stop_lease
        figures: dict[str, Any] = {
            "failover_p50_s": percentile(values, 50), "failover_p99_s": percentile(values, 99),
            "failover_max_s": values[-1],
        }
        if fault == "SIGSTOP":
            figures["failover_p99_over_lease_s"] = figures["failover_p99_s"] - lease
        results.append(Measurement(
            NAME, "jobdeck",
            {"goal": "G6", "fault": fault, "lease_s": lease,
             "faults": kills if fault == "SIGKILL" else stops, "runs": len(values)},
            figures,
        ))
    return results


# ---------------------------------------------------------------------- G7


def _g7(args: argparse.Namespace, dbs: Databases) -> list[Result]:
    dsn = dbs.fresh()
    samples = 30 if args.quick else 300
    probes = (("probe", 10, "probe"),)
    with nodes() as group:
        commands = group.queue()
        group.start(NodeSpec(dsn, "b", 10, probes))
        group.start(NodeSpec(dsn, "a", 0, probes), commands=commands)
        time.sleep(0.5)  # both idle: B waits on its listener
        latencies = []
        for i in range(samples):
            commands.put(f"probe-{i % 10}")
            latencies.append(group.events.get(timeout=30) * 1e3)
            time.sleep(0.03)
    latencies.sort()
    return [Measurement(
        NAME, "jobdeck", {"goal": "G7", "samples": samples},
        {"p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
         "max_ms": latencies[-1]},
    )]


# ---------------------------------------------------------------------- G9


def _g9(args: argparse.Namespace, dbs: Databases) -> list[Result]:
    counts = (1, 2) if args.quick else (1, 2, 4)
    seconds = 2 if args.quick else 6
    sleepers = tuple(f"sleep-{i}" for i in range(50 * max(counts)))
    rates: dict[int, float] = {}
    for n in counts:
        dsn = dbs.fresh()
        jobs = 50 * n * seconds
        with nodes() as group:
            group.start(*(NodeSpec(dsn, f"n{i}", 50, (("sleep", len(sleepers), "sleep"),))
                          for i in range(n)))
            _insert_triggers(dsn, sleepers[:50 * n], jobs, '{"s": 1}')
            start = time.perf_counter()
            _wait(lambda jobs=jobs, dsn=dsn: _succeeded(dsn) >= jobs, 120,
                  f"{jobs} sleepers", 0.05)
            rates[n] = jobs / (time.perf_counter() - start)
    return [
        Measurement(
            NAME, "jobdeck", {"goal": "G9", "nodes": n, "capacity": 50, "jobs": 50 * n * seconds},
            {"runs_per_s": rates[n], "of_ideal": rates[n] / (50 * n),
             "ratio_to_n_x_one": rates[n] / (n * rates[1])},
        )
        for n in counts
    ]


# ---------------------------------------------------------------------- G10


def _g10(args: argparse.Namespace, dbs: Databases) -> list[Result]:
    if dbs.server is None:
        return [Skip(NAME, "jobdeck", "G10 restarts the server: only without --dsn")]
    dsn = dbs.fresh()
    jobs = 80
    sleepers = tuple(f"sleep-{i}" for i in range(40))
    with nodes() as group:
        group.start(*(NodeSpec(dsn, f"n{i}", 10, (("sleep", 40, "sleep"),)) for i in range(2)))
        _insert_triggers(dsn, sleepers, jobs, '{"s": 0.5}')
        _wait(lambda: _succeeded(dsn) >= 10, 60, "the first runs")
        started = time.perf_counter()
        dbs.server.restart()
        restart_s = time.perf_counter() - started
        up = time.time()
        after = "SELECT count(*) FROM jd_runs WHERE started_at > to_timestamp(%s)"
        _wait(lambda: _one(dsn, after, up) > 0, 60, "a run started after the restart")
        resumed = time.time() - up
        _wait(lambda: _succeeded(dsn) >= jobs, 120, f"{jobs} runs after the restart", 0.05)
        done_s = time.time() - up
        interrupted = _one(dsn, "SELECT count(*) FROM jd_runs WHERE status = 'interrupted'")
        duplicates = _one(dsn, "SELECT count(*) FROM (SELECT trigger_id FROM jd_runs"
                               " GROUP BY trigger_id HAVING count(*) > 1) d")
        succeeded = _succeeded(dsn)
    return [Measurement(
        NAME, "jobdeck", {"goal": "G10", "nodes": 2, "jobs": jobs, "lease_s": 30.0},
        {"restart_s": restart_s, "resume_s": resumed, "all_done_s": done_s,
         "interrupted": int(interrupted), "duplicates": int(duplicates),
         "succeeded": succeeded},
    )]


# ---------------------------------------------------------------------- G11


def _g11(args: argparse.Namespace, dbs: Databases) -> list[Result]:
    dsn = dbs.fresh()
    window = 5.0 if args.quick else 20.0
    count = 3
    try:
        _sql(dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        _sql(dsn, "SELECT pg_stat_statements_reset()")
        statements = True
    except Exception:
        statements = False  # not loaded (an external server): transactions only
    ours = ("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d"
            " ON d.oid = s.dbid WHERE d.datname = current_database()"
            " AND s.query !~* '^\\s*(BEGIN|COMMIT|ROLLBACK)' AND s.query !~ 'pg_stat'")
    xacts = ("SELECT xact_commit + xact_rollback FROM pg_stat_database"
             " WHERE datname = current_database()")
    with nodes() as group:
        group.start(*(NodeSpec(dsn, f"n{i}", 20, (("noop", 60, "noop"),))
                      for i in range(count)))
        time.sleep(3)  # joined and settled
        if statements:
            _sql(dsn, "SELECT pg_stat_statements_reset()")
        x0 = _one(dsn, xacts)
        t0 = time.perf_counter()
        time.sleep(window)
        calls = _one(dsn, ours) if statements else None
        wall = time.perf_counter() - t0
        x1 = _one(dsn, xacts)
    figures: dict[str, Any] = {"xacts_per_s_per_node": (x1 - x0 - 2) / wall / count}
    if calls is not None:
        figures["statements_per_s_per_node"] = float(calls) / wall / count
    return [Measurement(NAME, "jobdeck", {"goal": "G11", "nodes": count, "window_s": window},
                        figures)]


# ---------------------------------------------------------------------- all of it

_MEASURES = {"g6": _g6, "g7": _g7, "g8": _g8, "g9": _g9, "g10": _g10, "g11": _g11}


def run(args: argparse.Namespace, reporter: Reporter) -> None:
    """Measure, then print each goal's results (and targets, at full size) on their own."""
    results = measure(args)
    groups: dict[str, list[Result]] = {}
    for r in results:
        goal = r.params.get("goal", "") if isinstance(r, Measurement) else ""
        groups.setdefault(str(goal), []).append(r)
    for goal, group in groups.items():
        title = f"{NAME} {goal}".strip()
        reporter.report(title, group, () if args.quick else TARGETS)


def measure(args: argparse.Namespace) -> Sequence[Result]:
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        return [Skip(NAME, "jobdeck", f"psycopg is not installed ({exc})")]
    goals = [g.strip().lower() for g in args.goals.split(",") if g.strip()]
    unknown = [g for g in goals if g not in _MEASURES]
    if unknown:
        raise ValueError(f"unknown goals {unknown}: choose from {', '.join(GOALS)}")
    from tests.pgserver import NoServer

    try:
        dbs = Databases.open(args.dsn)
    except NoServer as exc:
        return [Skip(NAME, "jobdeck", f"no --dsn and {exc}")]
    results: list[Result] = []
    # stopped by a signal (a time limit): the finally blocks still stop the nodes and server
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        for goal in goals:
            try:
                results.extend(_MEASURES[goal](args, dbs))
            except Exception as exc:
                # one goal's failure is reported; the others are still measured
                traceback.print_exc()
                results.append(Skip(NAME, "jobdeck", f"{goal.upper()} failed: {exc}"))
    finally:
        dbs.close()
        signal.signal(signal.SIGTERM, previous)
    return results


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
