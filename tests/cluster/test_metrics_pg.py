"""`/metrics` of cluster nodes: what each node did under its own `node` label, and the
cluster's shared state under `scope="cluster"`, the same on every node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from prometheus_client.parser import text_string_to_metric_families

from jobdeck import JobContext, Orchestrator
from jobdeck._http_app import create_app
from jobdeck._metrics import Metrics
from tests.core.test_http import TOKEN, call

from .nodes import make_node
from .test_membership import Hang

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(app: Any) -> Samples:
    reply = await call(app, "GET", "/metrics")
    assert reply.status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(reply.body.decode())
        for s in family.samples
        if s.name.startswith("jobdeck_") and not s.name.endswith("_created")
    }


def of(samples: Samples, name: str, **labels: str) -> float:
    """The value of one sample; a cluster gauge's when no `node` is given."""
    if "node" not in labels:
        labels = {"scope": "cluster", **labels}
    return samples.get((name, frozenset(labels.items())), -1.0)


def cluster_scope(samples: Samples) -> Samples:
    return {k: v for k, v in samples.items() if ("scope", "cluster") in k[1]}


async def bad(ctx: JobContext) -> None:
    raise RuntimeError("bad")


def workers(hang: Hang) -> Any:
    def setup(orch: Orchestrator) -> None:
        orch.register("job", hang, mode="triggered")
        orch.register("bad", bad, mode="triggered", max_retries=0)

    return setup


async def test_each_node_labels_its_own_work_and_both_agree_on_the_cluster(
    pg_dsn: str,
) -> None:
    """Two nodes: a run accepted on a runs on b; a's and b's /metrics name themselves in
    `node`, count what each did (a accepted, b started and finished), and report the
    same `scope="cluster"` gauges (nodes, slots, leases, pending, DLQ, workers)."""
    hang = Hang()
    a = make_node(pg_dsn, "a", workers(hang), capacity=0)
    b = make_node(pg_dsn, "b", workers(hang))
    metrics_a, metrics_b = Metrics(a, process=False), Metrics(b, process=False)
    app_a = create_app(a, token=TOKEN, metrics=metrics_a)
    app_b = create_app(b, token=TOKEN, metrics=metrics_b)
    last: list[tuple[Samples, Samples]] = []

    async def agree_when(condition: Callable[[Samples], bool]) -> tuple[Samples, Samples]:
        """Scrape both nodes until their cluster gauges agree and meet `condition`."""
        with trio.fail_after(20):
            while True:
                sa, sb = await scrape(app_a), await scrape(app_b)
                last[:] = [(sa, sb)]
                shared = cluster_scope(sa)
                if shared and shared == cluster_scope(sb) and condition(shared):
                    return sa, sb
                await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        for task in (metrics_a.run, metrics_b.run, a.run, b.run):
            await nursery.start(task)
        try:
            await a.trigger("job")
            await hang.running.wait()
            # while b runs it: its slot, and the cluster's, on both nodes alike
            sa, sb = await agree_when(lambda s: of(s, "jobdeck_cluster_slots_used") == 1)
            assert of(sa, "jobdeck_cluster_leases") == 1
            assert of(sb, "jobdeck_running", node="b") == 1
            assert of(sa, "jobdeck_running", node="a") == 0
            assert of(sb, "jobdeck_worker_running", node="b", worker="job") == 1
            assert of(sa, "jobdeck_worker_running", node="a", worker="job") == 0
            hang.release.set()
            await b.trigger("bad")
            sa, sb = await agree_when(
                lambda s: of(s, "jobdeck_dlq_size") == 1
                and of(s, "jobdeck_cluster_slots_used") == 0
            )
        finally:
            a.stop(grace=0)
            b.stop(grace=0)
    for node, samples in (("a", sa), ("b", sb)):
        for name, labels in samples:
            keys = dict(labels)
            # every series is one node's (this one's) or the cluster's, never both
            assert ("node" in keys) != ("scope" in keys), name
            assert keys.get("node", node) == node, (name, keys)
    assert of(sb, "jobdeck_runs_total", node="b", worker="job", outcome="succeeded") == 1
    assert of(sa, "jobdeck_runs_total", node="a", worker="job", outcome="succeeded") == 0
    assert of(sb, "jobdeck_runs_total", node="b", worker="bad", outcome="failed") == 1
    assert of(sb, "jobdeck_runs_started_total", node="b", worker="job") == 1
    assert of(sa, "jobdeck_runs_started_total", node="a", worker="job") == 0
    assert of(sa, "jobdeck_triggers_accepted_total", node="a", worker="job") == 1
    assert of(sb, "jobdeck_triggers_accepted_total", node="b", worker="bad") == 1
    assert of(sb, "jobdeck_attempt_failures_total", node="b", worker="bad") == 1
    assert of(sb, "jobdeck_run_duration_seconds_count", node="b", worker="job") == 1
    assert of(sa, "jobdeck_node_capacity", node="a") == 0
    assert of(sa, "jobdeck_node_listener_up", node="a") == 1
    assert of(sa, "jobdeck_node_state", node="a", state="active") == 1
    assert of(sa, "jobdeck_health", node="a", health="ok") == 1
    shared = cluster_scope(sa)
    assert of(shared, "jobdeck_cluster_nodes", state="active") == 2
    assert of(shared, "jobdeck_max_concurrent_workers") == 5
    assert of(shared, "jobdeck_cluster_leases") == 0
    assert of(shared, "jobdeck_pending_triggers") == 0
    assert of(shared, "jobdeck_cluster_workers", state="enabled") == 2
    assert of(shared, "jobdeck_worker_consecutive_failures", worker="bad") == 1
    assert of(shared, "jobdeck_paused") == 0
