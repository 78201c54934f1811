"""The demo's worker functions: simulated data jobs that exercise every jobdeck feature.

Nothing here touches the network or the disk: each worker sleeps for a while (sending
heartbeats), makes up plausible numbers with `random` and logs what it "did". Durations,
sizes and failure knobs come from the worker's `params` table in `demo.toml`, with the
defaults below. Workers are `async def fn(ctx)` on trio, except `cleanup`, a plain
`def` that the orchestrator runs in a thread.

How each worker is wired up (schedule, retries, timeouts, dependencies, blocks) is
described at the top of `demo.toml`.
"""

from __future__ import annotations

import errno
import random
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from jobdeck import JobContext

#: How often the simulated-work helpers send a heartbeat.
HEARTBEAT_SECONDS = 0.5


# --- helpers ---------------------------------------------------------------------------


def _param(ctx: JobContext, key: str, default: Any) -> Any:
    """A value from the worker's `params` table, or `default` when it is not set."""
    return ctx.params.get(key, default)


def _seconds(ctx: JobContext, key: str, default: float) -> float:
    """A duration (in seconds) from `params`, or `default`."""
    return float(ctx.params.get(key, default))


async def _work(ctx: JobContext, seconds: float) -> None:
    """Simulate `seconds` of async work, with a heartbeat every `HEARTBEAT_SECONDS`."""
    deadline = trio.current_time() + seconds
    while (left := deadline - trio.current_time()) > 0:
        await trio.sleep(min(HEARTBEAT_SECONDS, left))
        ctx.heartbeat()


def _work_sync(ctx: JobContext, seconds: float) -> None:
    """Simulate `seconds` of blocking work (for sync workers, which run in a thread)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(HEARTBEAT_SECONDS, left))
        ctx.heartbeat()


def _around(n: int, spread: float = 0.1) -> int:
    """`n` give or take `spread` (a fraction), so repeated runs report different numbers."""
    return max(0, round(n * random.uniform(1 - spread, 1 + spread)))


# --- the fetch → process pipeline and housekeeping --------------------------------------


async def fetch_data(ctx: JobContext) -> None:
    """Fetch a batch of rows from an upstream API."""
    url = _param(ctx, "url", "https://api.example.com/v1/orders")
    await _work(ctx, _seconds(ctx, "duration_seconds", 1.5))
    ctx.log.info("fetched %d rows from %s", _around(int(_param(ctx, "rows", 500))), url)


async def process_data(ctx: JobContext) -> None:
    """Process the rows fetch-data brought in: aggregate them and flag anomalies."""
    rows = _around(int(_param(ctx, "rows", 500)))
    partitions = int(_param(ctx, "partitions", 4))
    ctx.log.info("processing %d rows in %d partitions", rows, partitions)
    await _work(ctx, _seconds(ctx, "duration_seconds", 3.0))
    anomalies = sum(random.random() < 0.005 for _ in range(rows))
    ctx.log.info(
        "processed %d rows: mean order value %.2f EUR, %d anomalies flagged",
        rows,
        random.uniform(35, 55),
        anomalies,
    )


def cleanup(ctx: JobContext) -> None:
    """Delete stale temporary files (a plain `def`: it runs in a worker thread)."""
    directory = _param(ctx, "directory", "/var/tmp/jobdeck-demo")
    max_age_days = int(_param(ctx, "max_age_days", 7))
    _work_sync(ctx, _seconds(ctx, "duration_seconds", 1.0))
    files = random.randint(0, 60)
    ctx.log.info(
        "removed %d files older than %d days from %s, freed %.1f MB",
        files,
        max_age_days,
        directory,
        files * random.uniform(0.1, 0.8),
    )


# --- failure handling: retries, the circuit breaker, timeouts ---------------------------


async def flaky_api(ctx: JobContext) -> None:
    """Call a flaky upstream: the first attempt(s) get a 503, a retry gets through."""
    url = _param(ctx, "url", "https://rates.example.com/v2/latest")
    fail_attempts = int(_param(ctx, "fail_attempts", 1))
    failure_rate = float(_param(ctx, "failure_rate", 0.0))
    await _work(ctx, _seconds(ctx, "duration_seconds", 0.5))
    if ctx.attempt <= fail_attempts or random.random() < failure_rate:
        ctx.log.warning("attempt %d: %s answered 503 Service Unavailable", ctx.attempt, url)
        raise ConnectionError(f"upstream returned 503 Service Unavailable: GET {url}")
    ctx.log.info("attempt %d: fetched %d exchange rates from %s", ctx.attempt, _around(160), url)


async def broken_export(ctx: JobContext) -> None:
    """Export to a share it may not write to: always fails, so its circuit opens."""
    path = _param(ctx, "path", "/mnt/exports/daily-orders.csv")
    rows = _around(2500, spread=0.3)
    ctx.log.info("exporting %d rows to %s", rows, path)
    await _work(ctx, _seconds(ctx, "duration_seconds", 0.3))
    raise PermissionError(errno.EACCES, "Permission denied", path)


async def slow_report(ctx: JobContext) -> None:
    """Build a report whose queries take longer than its timeout allows."""
    duration = _seconds(ctx, "duration_seconds", 5.0)
    ctx.log.info("building the quarterly report (about %.0fs of queries)", duration)
    await _work(ctx, duration)
    ctx.log.info("quarterly report ready: %d pages", _around(40))


# --- a continuous worker ----------------------------------------------------------------


async def stream_consumer(ctx: JobContext) -> None:
    """Consume one batch from a message stream (one iteration of a continuous worker)."""
    topic = _param(ctx, "topic", "orders.events")
    batch_seconds = _seconds(ctx, "batch_seconds", 2.0)
    per_poll = int(_param(ctx, "messages_per_poll", 40))
    failure_rate = float(_param(ctx, "failure_rate", 0.0))
    consumed = 0
    deadline = trio.current_time() + batch_seconds
    while (left := deadline - trio.current_time()) > 0:
        await trio.sleep(min(HEARTBEAT_SECONDS, left))
        consumed += random.randint(0, per_poll)
        ctx.heartbeat()
    if random.random() < failure_rate:
        raise ConnectionResetError(f"broker closed the connection while reading {topic}")
    ctx.log.info(
        "consumed %d messages from %s in %.1fs (consumer lag %d)",
        consumed,
        topic,
        batch_seconds,
        random.randint(0, 250),
    )


# --- handing work to another worker -----------------------------------------------------


async def send_report(ctx: JobContext) -> None:
    """Send the report named in the payload to its recipient (triggered on demand)."""
    payload = ctx.payload
    recipient = payload.get("recipient") if isinstance(payload, dict) else None
    if not isinstance(recipient, str) or not recipient:
        raise ValueError(
            "send-report needs a payload with a 'recipient', e.g. "
            f'{{"recipient": "ops@example.com", "report": "daily summary"}}; got {payload!r}'
        )
    report = payload.get("report", "daily summary")
    await _work(ctx, _seconds(ctx, "duration_seconds", 0.5))
    ctx.log.info("sent %r to %s (trigger source: %s)", report, recipient, ctx.source)


async def report_scheduler(ctx: JobContext) -> None:
    """Pick a report and a recipient and hand the sending to send-report."""
    target = _param(ctx, "target", "send-report")
    recipients = _param(ctx, "recipients", ["ops@example.com"])
    reports = _param(ctx, "reports", ["daily summary"])
    payload = {
        "recipient": random.choice(recipients),
        "report": random.choice(reports),
        "requested_by": ctx.run_id,
    }
    trigger_id = await ctx.trigger(target, payload)
    ctx.log.info(
        "asked %s to send %r to %s (trigger %s)",
        target,
        payload["report"],
        payload["recipient"],
        trigger_id,
    )


# --- mutual exclusion: backup blocks compact --------------------------------------------


async def backup(ctx: JobContext) -> None:
    """Snapshot the database to object storage (never while compact runs)."""
    bucket = _param(ctx, "bucket", "s3://demo-backups")
    snapshot = f"{bucket}/db-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar.zst"
    ctx.log.info("backing up to %s", snapshot)
    await _work(ctx, _seconds(ctx, "duration_seconds", 4.0))
    ctx.log.info(
        "backed up %d tables (%.1f MB) to %s", _around(24), random.uniform(80, 140), snapshot
    )


async def compact(ctx: JobContext) -> None:
    """Merge small storage segments into large ones (never while backup runs)."""
    await _work(ctx, _seconds(ctx, "duration_seconds", 3.0))
    segments = random.randint(4, 40)
    ctx.log.info(
        "compacted %d segments into %d, reclaimed %.1f MB",
        segments,
        max(1, segments // 8),
        segments * random.uniform(1.5, 6.0),
    )


# --- a triggered chain: ingest → transform → publish ------------------------------------


async def ingest(ctx: JobContext) -> None:
    """Load newly landed event files (the start of the ingest → transform → publish chain)."""
    source = _param(ctx, "source", "s3://demo-landing/events/")
    files = random.randint(1, 12)
    await _work(ctx, _seconds(ctx, "duration_seconds", 2.0))
    ctx.log.info("ingested %d events from %d files in %s", _around(files * 900), files, source)


async def transform(ctx: JobContext) -> None:
    """Clean and enrich what ingest loaded (runs when ingest has freshly succeeded)."""
    records = _around(5000, spread=0.5)
    await _work(ctx, _seconds(ctx, "duration_seconds", 1.5))
    rejected = random.randint(0, records // 100)
    ctx.log.info(
        "transformed %d records, rejected %d malformed (trigger source: %s)",
        records - rejected,
        rejected,
        ctx.source,
    )


async def publish(ctx: JobContext) -> None:
    """Publish the transformed records (runs when transform has freshly succeeded)."""
    table = _param(ctx, "table", "analytics.events")
    await _work(ctx, _seconds(ctx, "duration_seconds", 1.0))
    ctx.log.info("published %d records to %s", _around(5000, spread=0.5), table)
