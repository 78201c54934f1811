"""Prometheus metrics, parsed back with prometheus-client's own parser, in virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from jobdeck import JobContext, Orchestrator
from jobdeck._metrics import Metrics
from tests.core.conftest import make_orchestrator


async def ok(ctx: JobContext) -> None:
    await trio.sleep(2)


async def bad(ctx: JobContext) -> None:
    await trio.sleep(0.5)
    raise RuntimeError("bad")


async def slow(ctx: JobContext) -> None:
    await trio.sleep(3600)


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition text, by (name, labels)."""
    text, _ = metrics.render()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def make() -> Orchestrator:
    orch = make_orchestrator()
    orch.register("ok", ok, mode="triggered")
    orch.register("bad", bad, mode="triggered", max_retries=1, retry_backoff_seconds=1)
    orch.register("slow", slow, mode="triggered", timeout_seconds=7200)
    return orch


@asynccontextmanager
async def counting(orch: Orchestrator) -> AsyncIterator[Metrics]:
    metrics = Metrics(orch, process=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(metrics.run)
        await nursery.start(orch.run)
        try:
            yield metrics
        finally:
            orch.stop(grace=0)


async def wait_until(orch: Orchestrator, predicate: Callable[[], bool]) -> None:
    """Wait until `predicate()` holds, looking again after each event of `orch`."""
    with trio.fail_after(3600), orch.subscribe() as events:
        while not predicate():
            await events.receive.receive()


async def test_every_series_exists_at_zero_before_any_run(autojump_clock: Any) -> None:
    """Run counters and histograms exist at 0 for every worker from the start."""
    async with counting(make()) as metrics:
        found = samples(metrics)
    for worker in ("ok", "bad", "slow"):
        for outcome in ("succeeded", "failed", "interrupted"):
            assert value(found, "jobdeck_runs_total", worker=worker, outcome=outcome) == 0
        assert value(found, "jobdeck_run_duration_seconds_count", worker=worker) == 0
        assert value(found, "jobdeck_attempt_failures_total", worker=worker) == 0


async def test_runs_by_outcome_and_durations_match_known_runs(autojump_clock: Any) -> None:
    """3 successes and 2 failed runs (2 attempts each) show as counted, timed runs."""
    orch = make()
    async with counting(orch) as metrics:
        for _ in range(3):
            await orch.trigger("ok")
        for _ in range(2):
            await orch.trigger("bad")
        await wait_until(
            orch,
            lambda: orch.snapshot().worker("ok").runs_ok == 3
            and orch.snapshot().worker("bad").runs_failed == 2,
        )
        await trio.testing.wait_all_tasks_blocked()  # the metrics task has seen the events
        found = samples(metrics)
    assert value(found, "jobdeck_runs_total", worker="ok", outcome="succeeded") == 3
    assert value(found, "jobdeck_runs_total", worker="ok", outcome="failed") == 0
    assert value(found, "jobdeck_runs_total", worker="bad", outcome="failed") == 2
    assert value(found, "jobdeck_attempt_failures_total", worker="bad") == 4
    assert value(found, "jobdeck_run_duration_seconds_count", worker="ok") == 3
    assert value(found, "jobdeck_run_duration_seconds_sum", worker="ok") == 6.0
    # Each 2 s run lands in the 2.5 s bucket and above, none below.
    assert value(found, "jobdeck_run_duration_seconds_bucket", worker="ok", le="1.0") == 0
    assert value(found, "jobdeck_run_duration_seconds_bucket", worker="ok", le="2.5") == 3
    assert value(found, "jobdeck_run_duration_seconds_count", worker="bad") == 2
    assert value(found, "jobdeck_dlq_size") == 2
    assert value(found, "jobdeck_worker_consecutive_failures", worker="bad") == 2
    assert value(found, "jobdeck_worker_consecutive_failures", worker="ok") == 0
    assert value(found, "jobdeck_worker_last_success_timestamp_seconds", worker="ok") > 0
    assert ("jobdeck_worker_last_success_timestamp_seconds",
            frozenset({("worker", "bad")})) not in found


async def test_interrupted_runs_are_counted(autojump_clock: Any) -> None:
    """A run cancelled by shutdown counts as `interrupted`, not as a failure."""
    orch = make()
    async with counting(orch) as metrics:
        await orch.trigger("slow")
        await wait_until(orch, lambda: orch.snapshot().running == 1)
    await orch.wait_stopped()
    found = samples(metrics)
    assert value(found, "jobdeck_runs_total", worker="slow", outcome="interrupted") == 1
    assert value(found, "jobdeck_runs_total", worker="slow", outcome="failed") == 0


async def test_levels_are_read_from_the_snapshot_at_scrape_time(autojump_clock: Any) -> None:
    """Running, enabled, pending and health are whatever the orchestrator says now."""
    orch = make()
    async with counting(orch) as metrics:
        await orch.disable("ok")
        await orch.trigger("ok")
        await orch.trigger("ok")
        await orch.trigger("slow")
        await wait_until(orch, lambda: orch.snapshot().running == 1)
        await trio.sleep(1.5 * orch.config.health_interval_seconds)  # a health check ran
        found = samples(metrics)
        orch.pause()
        paused = samples(metrics)
    assert value(found, "jobdeck_running") == 1
    assert value(found, "jobdeck_max_concurrent_workers") == 5
    assert value(found, "jobdeck_worker_running", worker="slow") == 1
    assert value(found, "jobdeck_worker_running", worker="ok") == 0
    assert value(found, "jobdeck_worker_enabled", worker="ok") == 0
    assert value(found, "jobdeck_worker_enabled", worker="slow") == 1
    assert value(found, "jobdeck_worker_pending_triggers", worker="ok") == 2
    assert value(found, "jobdeck_pending_triggers") == 2
    assert value(found, "jobdeck_health", health="ok") == 1
    assert value(found, "jobdeck_health", health="failing") == 0
    assert value(found, "jobdeck_worker_health", worker="ok", health="disabled") == 1
    assert value(found, "jobdeck_events_dropped_total") == 0
    assert value(found, "jobdeck_events_published_total") > 0
    assert value(found, "jobdeck_loop_lag_seconds") >= 0
    assert (value(found, "jobdeck_paused"), value(paused, "jobdeck_paused")) == (0, 1)


async def test_an_open_circuit_counts_as_not_enabled(autojump_clock: Any) -> None:
    """`jobdeck_worker_enabled` is 0 once a worker's circuit opens, though still enabled."""
    orch = make_orchestrator()
    orch.register("bad", bad, mode="triggered", max_retries=0, max_consecutive_failures=2)
    async with counting(orch) as metrics:
        for _ in range(2):
            await orch.trigger("bad")
        await wait_until(orch, lambda: orch.snapshot().worker("bad").circuit == "open")
        found = samples(metrics)
        snap = orch.snapshot().worker("bad")
    assert (snap.enabled, snap.may_run) == (True, False)
    assert value(found, "jobdeck_worker_enabled", worker="bad") == 0


async def test_openmetrics_when_asked(autojump_clock: Any) -> None:
    """A scraper that accepts OpenMetrics gets it; others get the text format."""
    async with counting(make()) as metrics:
        om_body, om_type = metrics.render("application/openmetrics-text; version=1.0.0")
        _, text_type = metrics.render(None)
    assert om_type.startswith("application/openmetrics-text")
    assert om_body.endswith(b"# EOF\n")
    assert text_type.startswith("text/plain")


def test_process_metrics_are_included() -> None:
    """By default the registry also has the standard process_* metrics."""
    metrics = Metrics(make())
    names = {f.name for f in text_string_to_metric_families(metrics.render()[0].decode())}
    assert "process_resident_memory_bytes" in names
