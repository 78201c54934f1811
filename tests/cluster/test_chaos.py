"""Chaos: three real headless nodes on one PostgreSQL, under faults, then judged.

Three `python -m jobdeck --no-ui` processes (a 3 s lease) share one throwaway server
of their own (this test restarts it). Their workers (`chaos_workers.work`) record every
attempt in a witness table: 1 s schedules, a `blocks` pair, a `depends_on` chain, and a
triggered worker fed by HTTP triggers sent to any node (their ids kept). One node (n3)
reaches PostgreSQL through a loopback proxy that can blackhole it.

Faults, one after the other, each waited out on conditions: SIGKILL a node holding a
lease and start it again; SIGSTOP one for 1.5 x the lease, then SIGCONT; blackhole n3
for 1.5 x the lease; `pg_terminate_backend` a node's connections; restart PostgreSQL.
Then every node is stopped with SIGTERM (each must exit 0), and the database and the
witness table are judged (SCALE.md's goals):
- G1: no occurrence `(worker, due_at)` with two triggers or two successes;
- G2: no overlap of a worker, or of the `blocks` pair, between live holders; a stale
  holder (its node reaped under it) overlaps only until it could learn it (resumed, or
  reaped while running) plus the heartbeat interval, and its result is refused;
- G3: no outcome recorded for a node after it was reaped, none for a refused write
  (`lease_lost`), and tokens grow with each worker's starts;
- G4: never more running than `max_concurrent_workers` (leases sampled, witness swept);
- G5: every acknowledged HTTP trigger succeeded, is dead-lettered, or still pending;
- G6: a SIGKILLed node reaped within 1.5 s, a frozen or cut-off one within lease + 1 s
  (each with slack for a loaded machine);
- G10: the server restart (shorter than the lease) reaps nobody and interrupts nothing;
- no node loses count of its slots, strands a retry, or takes over its grace to stop;
and every fault left its event in the JSON logs (node_lost, self_fenced, lease_lost;
database_lost then database_back for killed backends and the restart, whose trace in
the database is checked too: the node connected again and worked on). The failover
times seen are printed (`pytest -s`).

`JOBDECK_CHAOS_SECONDS=600` makes it a long run: after the fixed sequence, random
faults on random nodes until that many seconds have passed.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from .chaos import BlackholeProxy, Node, node_config, sql, ts, wait_for
from .chaos_workers import WITNESS_TABLE
from .conftest import ROLE, ROLE_PASSWORD, PgServer, throwaway_server

LEASE = 3.0
HEARTBEAT = LEASE / 3
MAX_CONCURRENT = 3
GRACE_S = 5.0
#: Slack for a loaded 2-core machine on top of what the design promises.
LOAD_MARGIN_S = 1.5
#: Bound on every wait for something the cluster should do.
WITHIN = 45.0
LONG_S = float(os.environ.get("JOBDECK_CHAOS_SECONDS", "0") or 0)

FN = 'fn = "tests.cluster.chaos_workers:work"'
WORKERS = f"""
[workers.tick]
{FN}
interval_seconds = 1
params = {{ seconds = 0.5 }}

[workers.bx]
{FN}
interval_seconds = 1
blocks = ["by"]
params = {{ seconds = 0.6 }}

[workers.by]
{FN}
interval_seconds = 1
params = {{ seconds = 0.6 }}

[workers.ch1]
{FN}
interval_seconds = 2
params = {{ seconds = 0.3 }}

[workers.ch2]
{FN}
mode = "triggered"
depends_on = ["ch1"]
params = {{ seconds = 0.3 }}

[workers.ch3]
{FN}
mode = "triggered"
depends_on = ["ch2"]
params = {{ seconds = 0.3 }}

[workers.hook]
{FN}
mode = "triggered"
max_retries = 1
retry_backoff_seconds = 0.2
max_consecutive_failures = 100000
params = {{ seconds = 0.2 }}
"""
#: Workers that must never run at the same time as each other (besides themselves).
BLOCKS = {("bx", "by")}


@attrs.define
class Fault:
    kind: str
    node: str
    start: float
    #: when the node could act again (SIGCONT, healed); `start` for the others.
    end: float
    #: measurements, printed at the end.
    seen: dict[str, float] = attrs.field(factory=dict)


class Chaos:
    """The running cluster, its faults, and what was sent to it."""

    def __init__(self, server: PgServer, folder: Path) -> None:
        self.server = server
        self.dsn = server.dsn("chaos")
        sql(server.dsn(), f"CREATE DATABASE chaos OWNER {ROLE}")
        sql(self.dsn, WITNESS_TABLE)
        self.proxy = BlackholeProxy(("127.0.0.1", server.port))
        self.nodes: dict[str, Node] = {}
        for name in ("n1", "n2", "n3"):
            port = self.proxy.port if name == "n3" else server.port
            url = (f"postgresql://{ROLE}:{ROLE_PASSWORD}@127.0.0.1:{port}/chaos"
                   f"?application_name=chaos-{name}")
            self.nodes[name] = Node(name, folder, url, self.dsn,
                                    node_config(name, lease=LEASE, witness_workers=WORKERS))
        self.faults: list[Fault] = []
        #: (trigger id, node it was sent to) of every acknowledged HTTP trigger.
        self.acked: list[tuple[str, str]] = []
        self.away: set[str] = set()  # nodes not to send triggers to just now
        self.most_running = 0
        #: how long a stale holder ran on past when it could have learnt it (judged).
        self.stale_overlap_s = 0.0
        #: (worker, token) of retry waits long overdue when the sending stopped.
        self.stranded: list[tuple[Any, ...]] = []
        #: (node, when, slots it counts as used, workers it shows running) that disagree.
        self.slot_counts: list[tuple[str, float, int, list[str]]] = []
        self._miscounts: dict[str, int] = {}
        self._stop = threading.Event()
        self._feeder = threading.Thread(target=self._feed, daemon=True, name="chaos-feed")
        self.kill_times: dict[int, float] = {}  # pid of a SIGKILLed node -> when

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        for node in self.nodes.values():
            node.start()
        for node in self.nodes.values():
            node.wait_started(within=90)
        self._feeder.start()

    def _feed(self) -> None:
        """Send a `hook` trigger to a node in turn every 0.3 s (every tenth one fails
        for good: dead-lettered), and sample the cluster's running leases."""
        i = 0
        while not self._stop.is_set():
            live = [n for n in self.nodes.values() if n.name not in self.away and n.port]
            if live:
                node = live[i % len(live)]
                trigger_id = node.trigger("hook", {"i": i, "fail": i % 10 == 9})
                if trigger_id is not None:
                    self.acked.append((trigger_id, node.name))
                i += 1
            for node in live:
                self._count_slots(node)
            try:
                running = sql(self.dsn, "SELECT count(*) FROM jd_leases WHERE phase = 'running'")
                self.most_running = max(self.most_running, int(running[0][0]))
            except Exception:
                pass  # the server is restarting
            self._stop.wait(0.3)

    def _count_slots(self, node: Node) -> None:
        """Compare the slots a node counts as used with the runs it shows running: a
        node that disagrees three looks in a row has lost count (a leaked slot shrinks
        its capacity for good)."""
        status = node.status()
        if status is None:
            return
        mine = [w["name"] for w in status["workers"]
                if w["state"] == "running" and w["node"] in (None, node.name)]
        if status["running"] == len(mine):
            self._miscounts[node.name] = 0
            return
        self._miscounts[node.name] = seen = self._miscounts.get(node.name, 0) + 1
        if seen >= 3:
            self.slot_counts.append((node.name, time.time(), status["running"], mine))

    def stop_feeding(self) -> None:
        self._stop.set()
        self._feeder.join(30)

    def close(self) -> None:
        self._stop.set()
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.signal(signal.SIGCONT)
                node.proc.kill()
                node.proc.wait(30)
        self.proxy.close()

    # ------------------------------------------------------------------ looking

    def holding(self, name: str) -> list[tuple[Any, ...]]:
        """The running leases node `name` holds: (worker, trigger id, run id)."""
        return sql(self.dsn, "SELECT l.worker, l.trigger_id, l.run_id FROM jd_leases l"
                   " JOIN jd_nodes n ON n.id = l.node_id"
                   " WHERE n.name = %s AND l.phase = 'running'", name)

    def wait_holding(self, name: str) -> tuple[Any, ...]:
        return wait_for(f"{name} to hold a lease", lambda: self.holding(name), WITHIN,
                        interval=0.01)[0]

    def events(self, kind: str, *, node: str | None = None,
               by_others_of: str | None = None) -> list[dict[str, Any]]:
        """Events of `kind` in the logs of node `node` (or all; or all but one)."""
        out = []
        for name, n in self.nodes.items():
            if (node is not None and name != node) or name == by_others_of:
                continue
            out += [e for e in n.events() if e["event"] == kind]
        return out

    def node_lost(self, name: str, after: float) -> dict[str, Any]:
        """The first `node_lost` of node `name` published after `after` (waited for)."""
        def found() -> dict[str, Any] | None:
            seen = [e for e in self.events("node_lost", by_others_of=name)
                    if e["node"] == name and ts(e) >= after]
            return min(seen, key=ts) if seen else None

        return wait_for(f"node_lost of {name}", found, WITHIN)

    def wait_joined(self, name: str) -> None:
        """Until node `name` is a live member again (its lock held, heartbeating)."""
        wait_for(f"{name} to be a member again", lambda: sql(
            self.dsn, "SELECT 1 FROM jd_nodes WHERE name = %s AND lock_held"
            " AND expires_at > jd_now()", name), WITHIN)

    def wait_worked(self, name: str, after: float) -> None:
        """Until node `name` finished an attempt that started after `after`."""
        wait_for(f"{name} to work", lambda: sql(
            self.dsn, "SELECT 1 FROM chaos_witness WHERE node = %s AND start_t > %s"
            " AND outcome IS NOT NULL", name, after), WITHIN)

    def warm_up(self) -> None:
        """Until every node has worked: the faults then hit a cluster in its stride."""
        for name in self.nodes:
            self.wait_worked(name, 0)

    def wait_progress(self, after: float) -> float:
        """Until an attempt started after `after` (the cluster works); when it did."""
        rows = wait_for("an attempt to start", lambda: sql(
            self.dsn, "SELECT min(start_t) FROM chaos_witness WHERE start_t > %s"
            " HAVING count(*) > 0", after), WITHIN)
        return float(rows[0][0])

    # ------------------------------------------------------------------ faults

    def sigkill(self, name: str) -> None:
        """SIGKILL a node that holds a lease; see its run requeued elsewhere; restart it."""
        node = self.nodes[name]
        worker, trigger_id, run_id = self.wait_holding(name)
        assert node.proc is not None
        pid = node.proc.pid
        self.away.add(name)
        t0 = time.time()
        node.kill()
        self.kill_times[pid] = t0
        fault = Fault("sigkill", name, t0, t0)
        lost = self.node_lost(name, t0)
        fault.seen["node_lost_s"] = ts(lost) - t0
        again = wait_for(f"{worker}'s trigger to start elsewhere", lambda: sql(
            self.dsn, "SELECT min(started_at) FROM jd_runs WHERE trigger_id = %s AND id <> %s"
            " HAVING count(*) > 0", trigger_id, run_id), WITHIN)
        fault.seen["requeued_started_s"] = again[0][0].timestamp() - t0
        self.faults.append(fault)
        node.start()
        node.wait_started(within=90)
        self.away.discard(name)
        self.wait_worked(name, time.time())

    def sigstop(self, name: str) -> None:
        """SIGSTOP a node holding a lease for 1.5 x the lease, then SIGCONT: reaped
        meanwhile, it finds itself fenced when it wakes and joins again."""
        node = self.nodes[name]
        self.wait_holding(name)
        self.away.add(name)
        t0 = time.time()
        node.signal(signal.SIGSTOP)
        time.sleep(1.5 * LEASE)  # the fault itself: frozen for this long
        t1 = time.time()
        node.signal(signal.SIGCONT)
        fault = Fault("sigstop", name, t0, t1)
        lost = self.node_lost(name, t0)
        fault.seen["node_lost_s"] = ts(lost) - t0
        fenced = wait_for(f"{name} to say self_fenced", lambda: [
            e for e in self.events("self_fenced", node=name) if ts(e) >= t1], WITHIN)
        fault.seen["self_fenced_after_cont_s"] = ts(fenced[0]) - t1
        self.faults.append(fault)
        self.wait_joined(name)
        self.away.discard(name)
        self.wait_worked(name, time.time())

    def blackhole(self, name: str = "n3") -> None:
        """Blackhole a node's PostgreSQL traffic for 1.5 x the lease: it fences itself
        before it is reaped, and joins again once the traffic flows."""
        self.wait_holding(name)
        self.away.add(name)
        t0 = time.time()
        self.proxy.blackhole()
        fenced = wait_for(f"{name} to say self_fenced", lambda: [
            e for e in self.events("self_fenced", node=name) if ts(e) >= t0], WITHIN)
        lost = self.node_lost(name, t0)
        time.sleep(max(0.0, t0 + 1.5 * LEASE - time.time()))
        t1 = time.time()
        self.proxy.heal()
        fault = Fault("partition", name, t0, t1)
        fault.seen["self_fenced_s"] = ts(fenced[0]) - t0
        fault.seen["node_lost_s"] = ts(lost) - t0
        self.faults.append(fault)
        self.wait_joined(name)
        self.away.discard(name)
        self.wait_worked(name, time.time())

    def terminate_backends(self, name: str) -> None:
        """`pg_terminate_backend` every connection of a node: it reconnects and goes on."""
        t0 = time.time()
        killed = sql(self.server.dsn("chaos"), "SELECT count(pg_terminate_backend(pid))"
                     " FROM pg_stat_activity WHERE application_name = %s", f"chaos-{name}")
        fault = Fault("terminate_backend", name, t0, t0)
        fault.seen["connections"] = float(killed[0][0])
        self.faults.append(fault)
        wait_for(f"{name} to connect again", lambda: sql(
            self.server.dsn("chaos"), "SELECT 1 FROM pg_stat_activity"
            " WHERE application_name = %s AND backend_start > to_timestamp(%s)",
            f"chaos-{name}", t0), WITHIN)
        self.wait_joined(name)
        self.said_database_lost_and_back(name, t0)
        self.wait_worked(name, time.time())
        fault.seen["worked_again_s"] = time.time() - t0

    def said_database_lost_and_back(self, name: str, t0: float) -> None:
        """Node `name` logged `database_lost`, then `database_back`, after `t0`."""
        for kind in ("database_lost", "database_back"):
            def said(kind: str = kind) -> list[dict[str, Any]]:
                return [e for e in self.events(kind, node=name) if ts(e) >= t0]

            wait_for(f"{name} to say {kind}", said, WITHIN)

    def restart_server(self) -> None:
        """Restart PostgreSQL (shorter than the lease): nobody is reaped for it."""
        t0 = time.time()
        self.server.restart()
        t1 = time.time()
        fault = Fault("pg_restart", "-", t0, t1)
        fault.seen["down_s"] = t1 - t0
        fault.seen["resumed_s"] = self.wait_progress(t1) - t1
        for name in self.nodes:
            self.wait_joined(name)
            self.said_database_lost_and_back(name, t0)
        self.faults.append(fault)
        # G10: a restart shorter than the lease reaps nobody and interrupts nothing
        time.sleep(max(0.0, t1 + LEASE + 1 - time.time()))  # past the window it could
        lost = [e for e in self.events("node_lost") if t0 <= ts(e) <= t1 + LEASE + 1]
        fault.seen["node_lost"] = float(len(lost))
        interrupted = sql(self.dsn, "SELECT count(*) FROM jd_runs WHERE status = 'interrupted'"
                          " AND ended_at BETWEEN to_timestamp(%s) AND to_timestamp(%s)",
                          t0, t1 + LEASE + 1)
        fault.seen["interrupted"] = float(interrupted[0][0])

    # ------------------------------------------------------------------ ending

    def settle(self) -> None:
        """Stop sending; give the acknowledged triggers a bounded while to be done."""
        self.stop_feeding()
        ids = [t for t, _ in self.acked]

        def done() -> bool:
            return not sql(self.dsn, "SELECT 1 FROM jd_triggers WHERE id = ANY(%s)", ids)

        try:
            wait_for("acknowledged triggers to be done", done, 20)
        except AssertionError:
            pass  # still pending is allowed (G5); judged below
        # a retry long overdue is stranded: its lease keeps its worker from running
        self.stranded = sql(self.dsn, "SELECT worker, token FROM jd_leases"
                            " WHERE phase = 'retry_wait' AND retry_at < jd_now() - interval '5 s'")

    def stop_all(self) -> None:
        """SIGTERM every node at once; each exit code kept."""
        for node in self.nodes.values():
            node.signal(signal.SIGTERM)
        for node in self.nodes.values():
            node.wait_exit(within=60)


# ---------------------------------------------------------------------- judging


@attrs.frozen
class Attempt:
    """One witness row: an attempt as the worker saw it."""

    id: int
    worker: str
    run_id: str
    trigger_id: str
    token: int
    node: str
    pid: int
    start: float
    end: float
    #: its run was recorded interrupted because its node was reaped (`node_lost`).
    stale: bool
    #: when it was reaped (the run's end in the database), for a stale one.
    reaped_t: float | None


def attempts(chaos: Chaos) -> list[Attempt]:
    rows = sql(chaos.dsn, "SELECT w.id, w.worker, w.run_id, w.trigger_id, w.token, w.node,"
               " w.pid, w.start_t, w.end_t, r.status, r.error, r.ended_at"
               " FROM chaos_witness w LEFT JOIN jd_runs r ON r.id = w.run_id ORDER BY w.id")
    out = []
    for (id_, worker, run_id, trigger_id, token, node, pid, start, end, status, error,
         ended) in rows:
        stale = status == "interrupted" and "node_lost" in (error or "")
        if end is None:
            # SIGKILLed mid-attempt: it ended when its process did
            end = chaos.kill_times.get(pid)
        assert end is not None, f"attempt {id_} of {worker} on {node} never ended"
        out.append(Attempt(id_, worker, run_id, trigger_id, token, node, pid, start, end,
                           stale, ended.timestamp() if stale else None))
    return out


def could_learn_t(chaos: Chaos, a: Attempt) -> float:
    """When a stale attempt's node could first learn it was reaped: the reap itself,
    or, if it was frozen or cut off then, when it came back."""
    assert a.reaped_t is not None
    t = a.reaped_t
    for f in chaos.faults:
        if f.node == a.node and f.kind in ("sigstop", "partition") and f.start <= t <= f.end:
            t = f.end
    return t


def judge(chaos: Chaos) -> list[str]:
    """Every broken guarantee, one line each (empty: all held)."""
    problems: list[str] = []
    dsn = chaos.dsn
    # G1: one trigger and at most one success per occurrence.
    for worker, due, triggers, successes in sql(
        dsn, "SELECT worker, due_at, count(DISTINCT trigger_id),"
        " count(*) FILTER (WHERE status = 'succeeded') FROM jd_runs WHERE source = 'schedule'"
        " GROUP BY worker, due_at HAVING count(DISTINCT trigger_id) > 1"
        " OR count(*) FILTER (WHERE status = 'succeeded') > 1",
    ):
        problems.append(f"G1: {worker} at {due}: {triggers} triggers, {successes} successes")
    for worker, due, triggers in sql(
        dsn, "SELECT worker, due_at, count(DISTINCT trigger_id) FROM chaos_witness"
        " WHERE due_at IS NOT NULL GROUP BY worker, due_at HAVING count(DISTINCT trigger_id) > 1"
    ):
        problems.append(f"G1: the witness saw {worker} at {due} run for {triggers} triggers")

    seen = attempts(chaos)
    # G2: no overlap between live holders of a worker or a blocks pair.
    groups: dict[str, list[Attempt]] = defaultdict(list)
    for a in seen:
        groups[a.worker].append(a)
    for x, y in BLOCKS:
        groups[f"{x}|{y}"] = groups[x] + groups[y]
    worst_stale = 0.0
    for group, rows in groups.items():
        rows = sorted(rows, key=lambda a: a.start)
        for i, a in enumerate(rows):
            for b in rows[i + 1:]:
                if b.start >= a.end:
                    break
                if a.run_id == b.run_id:
                    continue
                if not (a.stale or b.stale):
                    problems.append(
                        f"G2: {group}: live holders overlap: {a.node} token {a.token}"
                        f" [{a.start:.3f}, {a.end:.3f}] and {b.node} token {b.token}"
                        f" [{b.start:.3f}, {b.end:.3f}]"
                    )
                    continue
                stale, live = (a, b) if a.stale else (b, a)
                excess = stale.end - max(could_learn_t(chaos, stale), live.start)
                worst_stale = max(worst_stale, excess)
                if excess > HEARTBEAT + 0.1 + LOAD_MARGIN_S:
                    problems.append(
                        f"G2: {group}: stale holder {stale.node} token {stale.token} ran"
                        f" {excess:.3f}s past when it could learn it was reaped"
                    )
    chaos.stale_overlap_s = worst_stale

    # G3: nothing recorded for a node after it was reaped, nor for a refused write.
    for e in chaos.events("node_lost"):
        for run_id, status, ended in sql(
            dsn, "SELECT id, status, ended_at FROM jd_runs WHERE node_id = %s"
            " AND status IN ('succeeded', 'failed') AND ended_at > %s::timestamptz",
            e["node_id"], e["ts"],
        ):
            problems.append(f"G3: run {run_id} of reaped node {e['node']} recorded {status}"
                            f" at {ended}, after it was reaped at {e['ts']}")
    for e in chaos.events("lease_lost"):
        row = sql(dsn, "SELECT status FROM jd_runs WHERE id = %s", e["run_id"])
        if row and row[0][0] in ("succeeded", "failed"):
            problems.append(f"G3: run {e['run_id']} refused (lease_lost) yet recorded"
                            f" {row[0][0]}")
    for (worker,) in sql(
        dsn, "SELECT worker FROM (SELECT worker, started_at, lag(started_at) OVER"
        " (PARTITION BY worker ORDER BY token) AS before FROM jd_runs) x"
        " WHERE started_at < before GROUP BY worker"
    ):
        problems.append(f"G3: {worker}: a later token started before an earlier one")

    # G4: never more running than max_concurrent_workers.
    if chaos.most_running > MAX_CONCURRENT:
        problems.append(f"G4: {chaos.most_running} running leases seen at once")
    edges = sorted([(a.start, 1) for a in seen if not a.stale]
                   + [(a.end, -1) for a in seen if not a.stale])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    if most > MAX_CONCURRENT:
        problems.append(f"G4: the witness saw {most} live attempts at once")

    # G6: failover within its bound (a crash: the fast hint; else the lease), with slack.
    bounds = {"sigkill": 1.5, "sigstop": LEASE + 1, "partition": LEASE + 1}
    for f in chaos.faults:
        bound = bounds.get(f.kind)
        if bound is not None and f.seen["node_lost_s"] > bound + LOAD_MARGIN_S:
            problems.append(f"G6: {f.kind} of {f.node} reaped after {f.seen['node_lost_s']:.2f}s"
                            f" (bound {bound:g}s + {LOAD_MARGIN_S:g}s slack)")
    # G10: a server restart shorter than the lease reaps nobody, interrupts nothing.
    for f in chaos.faults:
        if f.kind == "pg_restart" and f.seen["down_s"] < 0.5 * LEASE and (
            f.seen["node_lost"] or f.seen["interrupted"]
        ):
            problems.append(f"G10: a {f.seen['down_s']:.2f}s restart: {f.seen['node_lost']:g}"
                            f" nodes lost, {f.seen['interrupted']:g} runs interrupted")
    for worker, token in chaos.stranded:
        problems.append(f"retry: {worker}'s retry (token {token}) stranded, long overdue")
    for name, when, counted, shown in chaos.slot_counts:
        problems.append(f"slots: {name} counted {counted} used at {when:.3f} while running"
                        f" {shown}, three looks in a row")
    for name, process in chaos.nodes.items():
        events = process.events(-1)
        stopping = [ts(e) for e in events if e["event"] == "orchestrator_stopping"]
        stopped = [ts(e) for e in events if e["event"] == "orchestrator_stopped"]
        if stopping and stopped and stopped[-1] - stopping[-1] > GRACE_S:
            problems.append(f"stop: {name} took {stopped[-1] - stopping[-1]:.1f}s to stop,"
                            f" more than its {GRACE_S:g}s grace for runs of under a second")

    # G5: every acknowledged trigger succeeded, is dead-lettered, or still pending.
    resolved = _resolved(dsn, [t for t, _ in chaos.acked])
    for trigger_id, sent_to in chaos.acked:
        if trigger_id not in resolved:
            problems.append(f"G5: trigger {trigger_id} (sent to {sent_to}) was lost")
    return problems


def _resolved(dsn: str, ids: list[str]) -> dict[str, str]:
    """Each trigger of `ids` that succeeded, is in the DLQ, or still waits: where."""
    rows = sql(
        dsn, "SELECT id, 'pending' FROM jd_triggers WHERE id = ANY(%s) AND state = 'pending'"
        " UNION ALL SELECT trigger_id, 'dlq' FROM jd_dlq WHERE trigger_id = ANY(%s)"
        " UNION ALL SELECT trigger_id, 'succeeded' FROM jd_runs WHERE trigger_id = ANY(%s)"
        " AND status = 'succeeded'", ids, ids, ids,
    )
    return {trigger_id: where for trigger_id, where in rows}


def report(chaos: Chaos, wall_s: float) -> str:
    runs = sql(chaos.dsn, "SELECT status, count(*) FROM jd_runs GROUP BY status ORDER BY 1")
    resolved = _resolved(chaos.dsn, [t for t, _ in chaos.acked])
    where: dict[str, int] = defaultdict(int)
    for trigger_id, _ in chaos.acked:
        where[resolved.get(trigger_id, "lost")] += 1
    lines = [f"chaos: {wall_s:.1f}s, {len(chaos.faults)} faults, runs {dict(runs)},"
             f" HTTP triggers acknowledged {len(chaos.acked)} {dict(where)},"
             f" most running leases {chaos.most_running},"
             f" worst stale-holder overlap"
             f" {chaos.stale_overlap_s:.3f}s"]
    for f in chaos.faults:
        seen = ", ".join(f"{k} {v:.3f}" for k, v in f.seen.items())
        lines.append(f"  {f.kind:<18} {f.node:<3} {seen}")
    return "\n".join(lines)


def test_three_nodes_under_faults_keep_every_promise(tmp_path: Path) -> None:
    """SIGKILL, SIGSTOP, a blackholed connection, killed backends and a server restart:
    no duplicate occurrence, no overlap between live holders, no stale outcome, the
    slot limit kept, no acknowledged trigger lost; each fault logged; clean exits."""
    started = time.monotonic()
    with throwaway_server() as server:
        chaos = Chaos(server, tmp_path)
        try:
            chaos.start()
            chaos.warm_up()
            chaos.sigkill("n1")
            chaos.sigstop("n2")
            chaos.blackhole("n3")
            chaos.terminate_backends("n1")
            chaos.restart_server()
            if LONG_S:
                rng = random.Random()
                faults: list[Callable[[], None]] = [
                    lambda: chaos.sigkill(rng.choice(list(chaos.nodes))),
                    lambda: chaos.sigstop(rng.choice(list(chaos.nodes))),
                    chaos.blackhole,
                    lambda: chaos.terminate_backends(rng.choice(list(chaos.nodes))),
                    chaos.restart_server,
                ]
                while time.monotonic() - started < LONG_S:
                    rng.choice(faults)()
            chaos.wait_progress(time.time())
            chaos.settle()
            chaos.stop_all()
            problems = judge(chaos)
            sent = tmp_path / "triggers.txt"
            sent.write_text("".join(f"{t} {n}\n" for t, n in chaos.acked))
            print("\n" + report(chaos, time.monotonic() - started))
            print(f"  acknowledged trigger ids (and the node each was sent to): {sent}")
        finally:
            chaos.close()
    assert problems == []
    for name, node in chaos.nodes.items():
        assert node.exits[-1] == 0, f"{name} exited {node.exits[-1]}: {node.stderr()[-2000:]}"
