"""Prometheus metrics of a cluster node: what it did, and the cluster's shared state.

Every node of a cluster is scraped, so each series says which kind it is:
- `node="<name>"` on what this node did or holds itself: its runs by outcome, durations,
  failed attempts, runs and retries it started, its slots in use and capacity, its
  loop lag, store errors, events and log lines dropped, its health and its membership
  (state, listener, clock skew). Summed over nodes they give the cluster's totals;
- `scope="cluster"` on the cluster's shared state, which every node reports alike: live
  nodes, cluster slots used and their limit, live leases, pending triggers, the DLQ,
  the pause, and each worker's enabled state, consecutive failures and pending count.
  Take one node's value (`max by (...)`), never their sum.

The shared figures come from the node's cached view of the cluster, read at most once a
second on its wake-ups (`_pg_view.refresh`, in the statement its poll runs anyway), so a
scrape costs no query; they show once that view was first read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from ._health import Health
from ._orchestrator import Orchestrator
from ._records import Circuit
from ._snapshot import OrchestratorSnapshot, OrchestratorState, WorkerStatus

#: The `scope` label of series that are the cluster's, not one node's.
CLUSTER = "cluster"


class ClusterSnapshotCollector:
    """Reads one snapshot (and the cluster view) per scrape of a cluster node.

    Args:
        orch: the node's orchestrator.
        node: the node's name (its `node` label).
        interrupted: interrupted runs by worker, counted elsewhere (from events).
    """

    def __init__(self, orch: Orchestrator, node: str, interrupted: Mapping[str, int]) -> None:
        self._orch = orch
        self._node = node
        self._interrupted = interrupted
        self._created = time.time()

    def collect(self) -> Iterator[Metric]:
        snap = self._orch.snapshot()
        yield from self._node_metrics(snap)
        yield from self._cluster_metrics(snap)

    # ------------------------------------------------------------------ this node

    def _node_metrics(self, snap: OrchestratorSnapshot) -> Iterator[Metric]:
        node = self._node
        membership = self._orch.cluster

        def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, documentation, labels=["node"])
            family.add_metric([node], float(value))
            return family

        def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, documentation, labels=["node"])
            family.add_metric([node], value, created=self._created)
            return family

        yield gauge("jobdeck_running", "Runs this node holds a slot for now.", snap.running)
        yield gauge("jobdeck_node_capacity", "Runs this node may hold at once.",
                    membership.capacity)
        state = GaugeMetricFamily(
            "jobdeck_node_state",
            "1 for this node's state: active, draining (an operator drained it) or"
            " self_fenced (no heartbeat got through in time).",
            labels=["node", "state"],
        )
        current = ("self_fenced" if membership.self_fenced
                   else "draining" if membership.draining else "active")
        for name in ("active", "draining", "self_fenced"):
            state.add_metric([node, name], name == current)
        yield state
        yield gauge("jobdeck_node_listener_up",
                    "1 while this node's LISTEN connection is up (0: it polls every second).",
                    membership.listener_up)
        skew = membership.clock_skew_s
        if skew is not None:
            yield gauge("jobdeck_node_clock_skew_seconds",
                        "This node's clock minus the database's, at its last heartbeat.", skew)
        yield gauge("jobdeck_loop_lag_seconds", "Event-loop lag measured by the watchdog.",
                    snap.loop_lag_s)
        yield gauge("jobdeck_store_errors", "Store errors since the last successful write.",
                    snap.store_errors)
        yield gauge("jobdeck_uptime_seconds", "Seconds since this node started.", snap.uptime_s)
        yield counter("jobdeck_events_published", "Events published by this node.",
                      snap.events_published)
        yield counter("jobdeck_events_dropped",
                      "Events lost because a subscriber's buffer was full.", snap.events_dropped)
        yield counter("jobdeck_log_lines_dropped",
                      "Worker log lines that fell out of the per-worker ring buffers.",
                      snap.log_lines_dropped)
        health = GaugeMetricFamily(
            "jobdeck_health",
            "This node's overall health: 1 for the current state, 0 for the others.",
            labels=["node", "health"],
        )
        for h in Health:
            health.add_metric([node, h.value], h is snap.health)
        yield health

        runs = CounterMetricFamily(
            "jobdeck_runs",
            "Runs this node finished, by worker and outcome (succeeded, failed: sent to the"
            " DLQ, interrupted: cancelled by shutdown, or lost with a node this one reaped).",
            labels=["node", "worker", "outcome"],
        )
        running = GaugeMetricFamily(
            "jobdeck_worker_running", "1 while this node runs the worker.",
            labels=["node", "worker"],
        )
        last_success = GaugeMetricFamily(
            "jobdeck_worker_last_success_timestamp_seconds",
            "Unix time of the worker's last successful run that this node knows of.",
            labels=["node", "worker"],
        )
        worker_health = GaugeMetricFamily(
            "jobdeck_worker_health", "1, labelled with the worker's health as this node judges it.",
            labels=["node", "worker", "health"],
        )
        interrupted = dict(self._interrupted)
        for w in snap.workers:
            for outcome, count in (
                ("succeeded", w.runs_ok),
                ("failed", w.runs_failed),
                ("interrupted", interrupted.pop(w.name, 0)),
            ):
                runs.add_metric([node, w.name, outcome], count, created=self._created)
            here = w.node == node and w.state in (WorkerStatus.RUNNING, WorkerStatus.STUCK)
            running.add_metric([node, w.name], here)
            if w.last_success is not None:
                last_success.add_metric([node, w.name], w.last_success.timestamp())
            worker_health.add_metric([node, w.name, w.health], 1)
        for name, count in interrupted.items():
            runs.add_metric([node, name, "interrupted"], count, created=self._created)
        yield from (runs, running, last_success, worker_health)

    # ------------------------------------------------------------------ the cluster

    def _cluster_metrics(self, snap: OrchestratorSnapshot) -> Iterator[Metric]:
        figures = self._orch.cluster.figures
        if figures is None:
            return  # not read yet: nothing rather than zeros another node would contradict

        def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, documentation, labels=["scope"])
            family.add_metric([CLUSTER], float(value))
            return family

        nodes = GaugeMetricFamily(
            "jobdeck_cluster_nodes", "Live nodes of the cluster, by state.",
            labels=["scope", "state"],
        )
        nodes.add_metric([CLUSTER, "active"], figures.nodes_active)
        nodes.add_metric([CLUSTER, "draining"], figures.nodes_draining)
        yield nodes
        yield gauge("jobdeck_cluster_slots_used", "Runs holding a cluster slot.",
                    figures.slots_used)
        yield gauge("jobdeck_max_concurrent_workers", "Cluster slots for runs.",
                    figures.slots_max)
        yield gauge("jobdeck_cluster_leases", "Live leases (running or waiting to retry).",
                    figures.leases)
        yield gauge("jobdeck_pending_triggers", "Triggers waiting to run, cluster-wide.",
                    snap.pending)
        yield gauge("jobdeck_dlq_size", "Entries in the cluster's dead-letter queue.",
                    figures.dlq_size)
        yield gauge("jobdeck_paused", "1 while the cluster is paused by an operator.",
                    snap.state is OrchestratorState.PAUSED)
        workers = GaugeMetricFamily(
            "jobdeck_cluster_workers",
            "Workers by shared state: enabled, disabled (by an operator), circuit_open.",
            labels=["scope", "state"],
        )
        enabled = _worker_gauge("jobdeck_worker_enabled",
                                "1 if enabled (0: disabled or circuit open).")
        failures = _worker_gauge("jobdeck_worker_consecutive_failures",
                                 "Failed runs in a row (opens the circuit).")
        pending = _worker_gauge("jobdeck_worker_pending_triggers",
                                "Triggers waiting for this worker, cluster-wide.")
        counts = {"enabled": 0, "disabled": 0, "circuit_open": 0}
        for w in snap.workers:
            if not w.enabled:
                counts["disabled"] += 1
            elif w.circuit is Circuit.OPEN:
                counts["circuit_open"] += 1
            else:
                counts["enabled"] += 1
            enabled.add_metric([CLUSTER, w.name], w.may_run)
            failures.add_metric([CLUSTER, w.name], w.consecutive_failures)
            pending.add_metric([CLUSTER, w.name], w.pending)
        for state, count in counts.items():
            workers.add_metric([CLUSTER, state], count)
        yield from (workers, enabled, failures, pending)


def _worker_gauge(name: str, documentation: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=["scope", "worker"])
