"""Prometheus metrics for one orchestrator, in its own registry.

Two sources, each used for what it is good at:

- a collector that reads `orch.snapshot()` at scrape time for everything the engine
  counts or holds itself: levels (running, enabled, consecutive failures, pending
  triggers, DLQ size, loop lag, health) and totals (succeeded and failed runs, events
  and log lines dropped). Always exact, nothing to keep in sync, and nothing lost when
  a flood of log lines fills an event subscriber's buffer;
- counters and a histogram fed by an event subscriber for what only events carry:
  interrupted runs, run durations and failed attempts, each per worker.

The subscriber's buffer is large and its work tiny, but a worker that logs thousands of
lines at once can still fill it: what it misses shows in `jobdeck_events_dropped_total`,
and the runs counted from the snapshot stay right.

A cluster node (`_metrics_cluster`) labels what it did itself with `node` and the
cluster's shared state with `scope="cluster"`; a node alone keeps the labels above.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

import trio
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from ._events import (
    AttemptFailed,
    Event,
    LeaseLost,
    NodeLost,
    OccurrenceCoalesced,
    RunFailed,
    RunInterrupted,
    RunStarted,
    RunSucceeded,
    SelfFenced,
    TriggerAccepted,
)
from ._health import Health
from ._orchestrator import Orchestrator
from ._snapshot import OrchestratorState, WorkerStatus

#: Upper bounds of the run-duration histogram, in seconds: jobs take from
#: milliseconds to an hour.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
OUTCOMES = ("succeeded", "failed", "interrupted")
#: Events the metrics subscriber may queue before it loses any.
EVENT_BUFFER = 10_000


class Metrics:
    """The Prometheus registry of one orchestrator.

    Run `await nursery.start(metrics.run)` before the orchestrator starts so that no
    duration, failed attempt or interruption is missed; `render()` gives the exposition
    text at scrape time.

    Args:
        orch: the orchestrator to measure.
        process: include the standard `process_*` metrics.
        event_buffer: events the subscriber may queue before it loses any.
    """

    def __init__(
        self, orch: Orchestrator, *, process: bool = True, event_buffer: int = EVENT_BUFFER
    ) -> None:
        self.registry = CollectorRegistry()
        cluster = orch.cluster
        #: a cluster node's name: the `node` label of what this node did (else none).
        self.node: str | None = None if cluster is None else cluster.node_name
        node = () if self.node is None else (self.node,)
        by_worker = [*(["node"] if node else []), "worker"]
        self.durations = Histogram(
            "jobdeck_run_duration_seconds",
            "Duration of succeeded and failed runs (all attempts and retry waits).",
            by_worker,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.attempt_failures = Counter(
            "jobdeck_attempt_failures",
            "Failed attempts, including those that were retried.",
            by_worker,
            registry=self.registry,
        )
        self._node_labels = node
        self._cluster_counters: ClusterCounters | None = None
        # Interrupted runs by worker: the one outcome the snapshot does not count.
        self._interrupted: dict[str, int] = {}
        if self.node is not None:
            from ._metrics_cluster import ClusterSnapshotCollector

            self._cluster_counters = ClusterCounters(self.registry, self.node)
            self.registry.register(
                ClusterSnapshotCollector(orch, self.node, self._interrupted)
            )
        else:
            self.registry.register(SnapshotCollector(orch, self._interrupted))
        for name in orch.worker_names:
            # Every series exists from the start at 0, so rate() and absent() behave.
            self.durations.labels(*node, name)
            self.attempt_failures.labels(*node, name)
            if self._cluster_counters is not None:
                self._cluster_counters.add_worker(name)
        if process:
            ProcessCollector(registry=self.registry)
        self._orch = orch
        self._event_buffer = event_buffer

    def observe(self, event: Event) -> None:
        """Count one event (those that are not about runs are ignored)."""
        node = self._node_labels
        if isinstance(event, RunSucceeded | RunFailed):
            self.durations.labels(*node, event.worker).observe(event.duration_s)
        elif isinstance(event, RunInterrupted):
            self._interrupted[event.worker] = self._interrupted.get(event.worker, 0) + 1
        elif isinstance(event, AttemptFailed):
            self.attempt_failures.labels(*node, event.worker).inc()
        elif self._cluster_counters is not None:
            self._cluster_counters.observe(event)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Count events until the orchestrator closes its event bus (after it stopped)."""
        with self._orch.subscribe(self._event_buffer) as events:
            task_status.started()
            async for event in events:
                self.observe(event)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition text and its content type, in the format `accept` prefers."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class ClusterCounters:
    """What a cluster node counts from its events alone, labelled with its name: runs
    and retries it started, triggers it accepted, and its membership's incidents."""

    def __init__(self, registry: CollectorRegistry, node: str) -> None:
        self._node = node

        def counter(name: str, documentation: str, *labels: str) -> Counter:
            return Counter(name, documentation, ["node", *labels], registry=registry)

        self.started = counter(
            "jobdeck_runs_started", "Runs this node started (first attempts).", "worker"
        )
        self.retries = counter(
            "jobdeck_attempt_retries", "Retry attempts this node started.", "worker"
        )
        self.accepted = counter(
            "jobdeck_triggers_accepted",
            "Triggers this node stored (API, manual, schedule occurrences it won).", "worker",
        )
        self.coalesced = counter(
            "jobdeck_occurrences_coalesced",
            "Schedule occurrences this node folded into a pending one or found missed.",
            "worker",
        )
        self.lease_lost = counter(
            "jobdeck_lease_lost", "Run writes refused: the run's lease was no longer this node's."
        )
        self.self_fenced = counter(
            "jobdeck_self_fenced",
            "Times this node cancelled its own attempts (no heartbeat in time, or reaped).",
        )
        self.reaped = counter(
            "jobdeck_nodes_reaped", "Peers this node found gone and reaped (node_lost)."
        )
        for plain in (self.lease_lost, self.self_fenced, self.reaped):
            plain.labels(node)

    def add_worker(self, name: str) -> None:
        for family in (self.started, self.retries, self.accepted, self.coalesced):
            family.labels(self._node, name)

    def observe(self, event: Event) -> None:
        node = self._node
        if isinstance(event, RunStarted):
            (self.started if event.attempt == 1 else self.retries).labels(
                node, event.worker).inc()
        elif isinstance(event, TriggerAccepted):
            self.accepted.labels(node, event.worker).inc()
        elif isinstance(event, OccurrenceCoalesced):
            self.coalesced.labels(node, event.worker).inc(event.count)
        elif isinstance(event, LeaseLost):
            self.lease_lost.labels(node).inc()
        elif isinstance(event, SelfFenced):
            self.self_fenced.labels(node).inc()
        elif isinstance(event, NodeLost):
            self.reaped.labels(node).inc()


class SnapshotCollector:
    """Reads one orchestrator snapshot per scrape and turns it into metric families.

    Args:
        orch: the orchestrator to read.
        interrupted: interrupted runs by worker, counted elsewhere (from events).
    """

    def __init__(self, orch: Orchestrator, interrupted: Mapping[str, int]) -> None:
        self._orch = orch
        self._interrupted = interrupted
        # Like a prometheus_client Counter's `_created`: when counting began.
        self._created = time.time()

    def collect(self) -> Iterator[Metric]:
        snap = self._orch.snapshot()
        yield _gauge("jobdeck_running", "Runs holding a slot now.", snap.running)
        yield _gauge(
            "jobdeck_max_concurrent_workers", "Slots for runs.", snap.max_concurrent_workers
        )
        yield _gauge("jobdeck_pending_triggers", "Triggers waiting to run.", snap.pending)
        yield _gauge("jobdeck_dlq_size", "Entries in the dead-letter queue.", snap.dlq_size)
        yield _gauge(
            "jobdeck_loop_lag_seconds", "Event-loop lag measured by the watchdog.", snap.loop_lag_s
        )
        yield _gauge(
            "jobdeck_store_errors", "Store errors since the last successful write.",
            snap.store_errors,
        )
        yield _gauge("jobdeck_paused", "1 while paused by an operator.",
                     snap.state is OrchestratorState.PAUSED)
        yield _gauge("jobdeck_uptime_seconds", "Seconds since the orchestrator started.",
                     snap.uptime_s)
        yield _counter("jobdeck_events_published", "Events published by the core.",
                       snap.events_published)
        yield _counter(
            "jobdeck_events_dropped", "Events lost because a subscriber's buffer was full.",
            snap.events_dropped,
        )
        yield _counter(
            "jobdeck_log_lines_dropped",
            "Worker log lines that fell out of the per-worker ring buffers.",
            snap.log_lines_dropped,
        )
        health = GaugeMetricFamily(
            "jobdeck_health",
            "Overall health: 1 for the current state, 0 for the others.",
            labels=["health"],
        )
        for state in Health:
            health.add_metric([state.value], state is snap.health)
        yield health

        runs = CounterMetricFamily(
            "jobdeck_runs",
            "Finished runs by worker and outcome (succeeded, failed: sent to the DLQ, "
            "interrupted: cancelled by shutdown or a crash).",
            labels=["worker", "outcome"],
        )
        running = _worker_gauge("jobdeck_worker_running", "1 while the worker has a run going.")
        enabled = _worker_gauge(
            "jobdeck_worker_enabled", "1 if enabled (0: disabled or circuit open)."
        )
        failures = _worker_gauge(
            "jobdeck_worker_consecutive_failures", "Failed runs in a row (opens the circuit)."
        )
        pending = _worker_gauge(
            "jobdeck_worker_pending_triggers", "Triggers waiting for this worker."
        )
        last_success = _worker_gauge(
            "jobdeck_worker_last_success_timestamp_seconds",
            "Unix time of the worker's last successful run.",
        )
        worker_health = GaugeMetricFamily(
            "jobdeck_worker_health",
            "1, labelled with the worker's current health.",
            labels=["worker", "health"],
        )
        interrupted = dict(self._interrupted)
        for w in snap.workers:
            for outcome, count in (
                ("succeeded", w.runs_ok),
                ("failed", w.runs_failed),
                ("interrupted", interrupted.pop(w.name, 0)),
            ):
                runs.add_metric([w.name, outcome], count, created=self._created)
            running.add_metric([w.name], w.state in (WorkerStatus.RUNNING, WorkerStatus.STUCK))
            enabled.add_metric([w.name], w.may_run)
            failures.add_metric([w.name], w.consecutive_failures)
            pending.add_metric([w.name], w.pending)
            if w.last_success is not None:
                last_success.add_metric([w.name], w.last_success.timestamp())
            worker_health.add_metric([w.name, w.health], 1)
        for name, count in interrupted.items():
            # Runs of a worker no longer in the config, found interrupted after a crash.
            runs.add_metric([name, "interrupted"], count, created=self._created)
        yield from (runs, running, enabled, failures, pending, last_success, worker_health)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def _worker_gauge(name: str, documentation: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=["worker"])
