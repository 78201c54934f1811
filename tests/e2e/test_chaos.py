"""Chaos: SIGKILL the real jobdeck again and again; no acknowledged trigger is lost."""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from .chaos_workers import numbers_in

pytestmark = pytest.mark.e2e

TOTAL = 1000
CONSUMERS = 4
MAX_CONCURRENT = CONSUMERS + 1  # the producer holds a slot too
KILLS = 12
BATCH = 10
SEED = 20260101


def chaos_config(folder: Path) -> Path:
    params = f'dir = "{folder}"'
    consumers = "\n".join(
        f"""
[workers.consume-{i}]
fn = "tests.e2e.chaos_workers:consume"
mode = "triggered"
params = {{ {params}, work_seconds = 0.02 }}
"""
        for i in range(CONSUMERS)
    )
    path = folder / "chaos.toml"
    path.write_text(
        f"""
[orchestrator]
max_concurrent_workers = {MAX_CONCURRENT}
shutdown_grace_seconds = 10

[workers.produce]
fn = "tests.e2e.chaos_workers:produce"
mode = "continuous"
timeout_seconds = 0

[workers.produce.params]
{params}
total = {TOTAL}
batch = {BATCH}
consumers = {CONSUMERS}
pause_seconds = 0.04
{consumers}
"""
    )
    return path


def started(events: list[dict]) -> bool:
    return any(e["event"] == "orchestrator_started" for e in events)


def test_sigkill_loses_no_acknowledged_trigger(start_jobdeck, tmp_path: Path) -> None:
    """After repeated SIGKILLs every acknowledged number is processed; duplicates are bounded."""
    rng = random.Random(SEED)
    config = chaos_config(tmp_path)
    store = tmp_path / "chaos.db"
    args = ("--no-ui", "--log-format", "json", "--config", str(config), "--store", str(store))
    began = time.monotonic()
    progress = []
    for _ in range(KILLS):
        proc = start_jobdeck(*args)
        if rng.random() < 0.25:
            # Now and then, kill it while it starts up or recovers the last crash.
            time.sleep(rng.uniform(0.1, 0.8))
        else:
            proc.wait_for(started, timeout=20)
            time.sleep(rng.uniform(0.05, 1.0))
        proc.kill()
        assert proc.proc.returncode == -signal.SIGKILL
        progress.append(len(numbers_in(tmp_path / "processed.txt")))

    # Let the last run finish: every number handed over, every handed-over one processed.
    final = start_jobdeck(*args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (tmp_path / "produced").exists() and not pending_triggers(store):
            break
        assert final.proc.poll() is None, final.stderr()
        time.sleep(0.1)
    final.signal(signal.SIGTERM)
    assert final.wait(timeout=30) == 0, final.stderr()
    elapsed = time.monotonic() - began

    acked = numbers_in(tmp_path / "acked.txt")
    processed = Counter(numbers_in(tmp_path / "processed.txt"))
    assert len(acked) == len(set(acked)), "a number was handed over twice"
    # A kill between a trigger's commit and its acknowledgement costs the producer that
    # acknowledgement (the trigger is stored and runs all the same): at most one batch.
    assert len(acked) >= TOTAL - KILLS * BATCH
    lost = sorted(set(acked) - set(processed))
    assert lost == [], f"acknowledged but never processed: {lost[:20]}"
    duplicates = sum(count - 1 for count in processed.values())
    assert duplicates <= KILLS * MAX_CONCURRENT, f"{duplicates} duplicates after {KILLS} kills"
    # The kills landed while there was work to lose, not after it was all done.
    assert progress[KILLS // 2] < TOTAL, f"work finished too early to test anything: {progress}"
    assert pending_triggers(store) == 0
    with closing(sqlite3.connect(store)) as conn:
        assert conn.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone() == (0,)
    print(
        f"chaos: {KILLS} kills, {len(acked)} acknowledged, {len(processed)} processed, "
        f"{duplicates} duplicate runs, {elapsed:.1f}s, processed after each kill: {progress}"
    )


def pending_triggers(store: Path) -> int:
    """Triggers stored and not yet run to an end (read beside the running process: WAL)."""
    with closing(sqlite3.connect(store, timeout=10)) as conn:
        (count,) = conn.execute("SELECT count(*) FROM pending").fetchone()
    return int(count)
