"""The real jobdeck on a SQLite store: owning it, refusing bad ones, shutdown, `dlq`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio

from jobdeck import DeadLetterDraft, RunRecord, RunStatus, Source, SQLiteStore, Trigger, WorkerState
from jobdeck._sqlite_store import default_store_path

from .conftest import REPO, jobdeck_command, run_jobdeck

pytestmark = pytest.mark.e2e


def names(events: list[dict]) -> list[str]:
    return [e["event"] for e in events]


def has(name: str, **fields: object):
    """A `wait_for` predicate: an event `name` with these fields has been written."""

    def found(events: list[dict]) -> bool:
        return any(
            e["event"] == name and all(e.get(k) == v for k, v in fields.items()) for e in events
        )

    return found


def idle_config(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.toml"
    path.write_text(
        """
[workers.idle]
fn = "tests.e2e.headless_workers:quick"
mode = "triggered"
"""
    )
    return path


def record_config(tmp_path: Path, *, seconds: float, grace: float) -> Path:
    """`hand-over` triggers `record` once with payload {"n": 1}; `record` takes `seconds`."""
    path = tmp_path / "record.toml"
    path.write_text(
        f"""
[orchestrator]
shutdown_grace_seconds = {grace}

[workers.hand-over]
fn = "tests.e2e.durability_workers:hand_over"
interval_seconds = 3600
params = {{ target = "record", payloads = [{{ n = 1 }}] }}

[workers.record]
fn = "tests.e2e.durability_workers:record"
mode = "triggered"
params = {{ log = "{tmp_path / 'record.log'}", seconds = {seconds} }}
"""
    )
    return path


def store_rows(store: Path, query: str) -> list[tuple]:
    with closing(sqlite3.connect(store)) as conn:
        return conn.execute(query).fetchall()


# ---------------------------------------------------------------------- one owner, bad stores


def test_second_instance_on_the_same_store_is_refused(start_jobdeck, tmp_path: Path) -> None:
    """While one jobdeck runs on a store, a second one exits 2 at once naming its pid."""
    config, store = idle_config(tmp_path), tmp_path / "s.db"
    first = start_jobdeck("--no-ui", "--log-format", "json", "--config", str(config),
                          "--store", str(store))
    first.wait_for(has("orchestrator_started"))
    second = run_jobdeck("--no-ui", "--config", str(config), "--store", str(store), timeout=30)
    assert second.returncode == 2
    assert f"store {store} is in use by pid {first.proc.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    first.signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 0
    # Once the owner is gone the store is free again.
    again = start_jobdeck("--no-ui", "--log-format", "json", "--config", str(config),
                          "--store", str(store))
    again.wait_for(has("orchestrator_started"))
    again.signal(signal.SIGTERM)
    assert again.wait(timeout=30) == 0


def test_corrupt_store_file_exits_2(tmp_path: Path) -> None:
    """A store file that is not a database exits 2 with a message naming it, no traceback."""
    store = tmp_path / "s.db"
    store.write_bytes(b"this is not an SQLite database, whatever the name says\n" * 100)
    result = run_jobdeck("--no-ui", "--config", str(idle_config(tmp_path)), "--store", str(store))
    assert result.returncode == 2
    assert f"store {store} is corrupt or not a jobdeck store" in result.stderr
    assert "Traceback" not in result.stderr


def test_store_whose_folder_is_a_file_exits_2(tmp_path: Path) -> None:
    """A store path under a regular file exits 2 with a clear message (works as root too)."""
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    store = blocker / "s.db"
    result = run_jobdeck("--no-ui", "--config", str(idle_config(tmp_path)), "--store", str(store))
    assert result.returncode == 2
    assert f"store {store}: {blocker} is not a folder" in result.stderr
    assert "Traceback" not in result.stderr


def without_root_powers() -> list[str]:
    """A command prefix under which permission bits bind, even for root; skip if none."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: read-only folders cannot be tested")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search",
              "--inh-caps=-dac_override,-dac_read_search"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"cannot drop root's file powers here: {probe.stderr.decode().strip()}")
    return prefix


def run_powerless(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1")
    return subprocess.run(
        [*without_root_powers(), *jobdeck_command(), *args], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=30,
    )


def test_store_in_a_read_only_folder_exits_2(tmp_path: Path) -> None:
    """A store in a folder jobdeck may not write exits 2 saying the folder is not writable."""
    config = idle_config(tmp_path)
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = run_powerless("--no-ui", "--config", str(config), "--store", str(folder / "s.db"))
    finally:
        folder.chmod(0o755)
    assert result.returncode == 2, result.stderr
    assert f"store {folder / 's.db'}: folder {folder} is not writable" in result.stderr
    assert "Traceback" not in result.stderr


def test_read_only_store_file_exits_2(tmp_path: Path) -> None:
    """An existing store file jobdeck may not write exits 2 saying it is read-only."""
    store = tmp_path / "s.db"
    trio.run(_create_store, store)
    store.chmod(0o444)
    result = run_powerless("--no-ui", "--config", str(idle_config(tmp_path)), "--store", str(store))
    assert result.returncode == 2, result.stderr
    assert f"store {store} is not writable" in result.stderr
    assert "Traceback" not in result.stderr


async def _create_store(path: Path) -> None:
    store = SQLiteStore(path)
    await store.open()
    await store.close()


def test_default_store_lives_in_the_state_folder(
    start_jobdeck, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --store, state goes to $XDG_STATE_HOME/jobdeck/<config name>-<hash>.db."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    proc = start_jobdeck("--no-ui", "--log-format", "json", "--config",
                         str(idle_config(tmp_path)))
    proc.wait_for(has("orchestrator_started"))
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert [p.name for p in (tmp_path / "state" / "jobdeck").glob("jobs-*.db")] == [
        default_store_path(idle_config(tmp_path)).name
    ]


def test_dlq_needs_a_store_or_a_config(tmp_path: Path) -> None:
    """`jobdeck dlq list` without --store or --config exits 2 saying what to give."""
    result = dlq("list")
    assert result.returncode == 2
    assert "give --store PATH or --config FILE" in result.stderr


def test_dlq_config_uses_its_default_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`jobdeck dlq list --config FILE` reads that config's default store."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    config = idle_config(tmp_path)
    path = default_store_path(config)
    path.parent.mkdir(parents=True)
    trio.run(_fill_dlq, path)
    result = dlq("list", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    assert [e["id"] for e in json.loads(result.stdout)] == [2, 1]


# ---------------------------------------------------------------------- shutdown


def test_sigterm_within_grace_lets_the_run_finish(start_jobdeck, tmp_path: Path) -> None:
    """SIGTERM during a run shorter than the grace: it succeeds, nothing is left pending."""
    config, store = record_config(tmp_path, seconds=1, grace=10), tmp_path / "s.db"
    args = ("--no-ui", "--log-format", "json", "--config", str(config), "--store", str(store))
    proc = start_jobdeck(*args)
    proc.wait_for(has("run_started", worker="record"))
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    events = proc.events()
    assert has("run_succeeded", worker="record")(events)
    assert "run_interrupted" not in names(events)
    assert store_rows(store, "SELECT count(*) FROM pending") == [(0,)]

    again = start_jobdeck(*args)
    again.wait_for(has("orchestrator_started"))
    again.signal(signal.SIGTERM)
    assert again.wait(timeout=30) == 0
    assert "run_started" not in names(again.events()), "a finished run ran again"
    starts = [line for line in (tmp_path / "record.log").read_text().splitlines()
              if line.startswith("start")]
    assert len(starts) == 1


def test_sigterm_beyond_grace_requeues_the_run(start_jobdeck, tmp_path: Path) -> None:
    """A run still going when the grace ends is interrupted and runs after the restart."""
    config, store = record_config(tmp_path, seconds=600, grace=0.5), tmp_path / "s.db"
    args = ("--no-ui", "--log-format", "json", "--config", str(config), "--store", str(store))
    proc = start_jobdeck(*args)
    proc.wait_for(has("run_started", worker="record"))
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    events = proc.events()
    interrupted = next(e for e in events if e["event"] == "run_interrupted")
    assert (interrupted["worker"], interrupted["reason"]) == ("record", "shutdown")
    assert store_rows(store, "SELECT id, payload FROM pending") == [
        (interrupted["trigger_id"], '{"n": 1}')
    ]

    (tmp_path / "fast").touch()
    again = start_jobdeck(*args)
    again.wait_for(has("run_succeeded", worker="record"))
    again.signal(signal.SIGTERM)
    assert again.wait(timeout=30) == 0
    rerun = next(e for e in again.events() if e["event"] == "run_started")
    assert (rerun["trigger_id"], rerun["payload"]) == (interrupted["trigger_id"], {"n": 1})
    assert "hand-over" not in {e.get("worker") for e in again.events()
                               if e["event"] == "run_started"}, "the schedule restarted"


# ---------------------------------------------------------------------- jobdeck dlq


def dlq(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_jobdeck("dlq", *args, input=input, timeout=30)


@pytest.fixture
def dlq_store(tmp_path: Path) -> Path:
    """A store with two dead letters of `broken`: ids 1 ({"file": "a.csv"}) and 2 (null)."""
    path = tmp_path / "dlq.db"
    trio.run(_fill_dlq, path)
    return path


async def _fill_dlq(path: Path) -> None:
    store = SQLiteStore(path)
    await store.open()
    for payload in ({"file": "a.csv"}, None):
        now = datetime.now(UTC)
        trigger = Trigger(worker="broken", source=Source.MANUAL, payload=payload, accepted_at=now)
        run = RunRecord(worker="broken", trigger=trigger, status=RunStatus.FAILED,
                        started_at=now, ended_at=now, attempts=4,
                        error=f"ValueError: cannot process {payload!r}")
        await store.finish_run(
            run, worker=WorkerState(name="broken"),
            dead_letter=DeadLetterDraft(
                error=f"ValueError: cannot process {payload!r}",
                traceback='Traceback (most recent call last):\n  File "x.py"\nValueError\n',
            ),
        )
    await store.close()


def test_dlq_list_shows_a_table(dlq_store: Path) -> None:
    """`dlq list` prints a header and one row per entry, newest first."""
    result = dlq("list", "--store", str(dlq_store))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "WORKER", "SOURCE", "ATTEMPTS", "FAILED", "AT", "ERROR"]
    assert lines[1].split()[:4] == ["2", "broken", "manual", "4"]
    assert lines[2].split()[:4] == ["1", "broken", "manual", "4"]
    assert "ValueError: cannot process {'file': 'a.csv'}" in lines[2]
    assert lines[3] == "2 dead letters"


def test_dlq_list_json(dlq_store: Path) -> None:
    """`dlq list --json` prints every field of every entry as JSON."""
    result = dlq("list", "--store", str(dlq_store), "--json")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert [e["id"] for e in entries] == [2, 1]
    assert entries[1]["payload"] == {"file": "a.csv"}
    assert entries[1]["traceback"].startswith("Traceback")
    assert {"worker", "trigger_id", "run_id", "source", "error", "attempts", "started_at",
            "failed_at"} <= entries[1].keys()


def test_dlq_show_gives_payload_and_traceback(dlq_store: Path) -> None:
    """`dlq show ID` prints the entry's payload and traceback; `--json` the same as JSON."""
    result = dlq("show", "1", "--store", str(dlq_store))
    assert result.returncode == 0, result.stderr
    assert '"file": "a.csv"' in result.stdout
    assert "Traceback (most recent call last)" in result.stdout
    as_json = json.loads(dlq("show", "1", "--store", str(dlq_store), "--json").stdout)
    assert (as_json["id"], as_json["payload"]) == (1, {"file": "a.csv"})


@pytest.mark.parametrize("entry_id", ["99", "99999999999999999999"])  # past 2**63 - 1
def test_dlq_unknown_id_exits_2(dlq_store: Path, entry_id: str) -> None:
    """show, replay and delete of an id the DLQ does not hold exit 2 with a message."""
    for command in ("show", "replay", "delete"):
        result = dlq(command, entry_id, "--store", str(dlq_store))
        assert result.returncode == 2, command
        assert f"no dead-letter entry with id {entry_id}" in result.stderr
        assert "Traceback" not in result.stderr


def test_dlq_list_limit_past_any_store_lists_all(dlq_store: Path) -> None:
    """`dlq list --limit N` with N past 2**63 - 1 lists every entry."""
    result = dlq("list", "--limit", "99999999999999999999", "--store", str(dlq_store), "--json")
    assert result.returncode == 0, result.stderr
    assert [e["id"] for e in json.loads(result.stdout)] == [2, 1]


def test_dlq_list_negative_limit_exits_2(dlq_store: Path) -> None:
    """`dlq list --limit -1` is a usage error (exit 2), not a way to say "all"."""
    result = dlq("list", "--limit", "-1", "--store", str(dlq_store))
    assert result.returncode == 2
    assert "--limit: must be 0 or more" in result.stderr
    assert "Traceback" not in result.stderr


def test_dlq_delete_removes_one_entry(dlq_store: Path) -> None:
    """`dlq delete ID` removes that entry and keeps the other."""
    result = dlq("delete", "2", "--store", str(dlq_store))
    assert (result.returncode, result.stdout.strip()) == (0, "Deleted dead letter 2.")
    remaining = json.loads(dlq("list", "--store", str(dlq_store), "--json").stdout)
    assert [e["id"] for e in remaining] == [1]


def test_dlq_purge_without_answer_refuses(dlq_store: Path) -> None:
    """`dlq purge` with no answer on stdin (EOF) purges nothing and exits 2."""
    result = dlq("purge", "--store", str(dlq_store), input="")
    assert result.returncode == 2
    assert "nothing purged" in result.stderr
    assert len(json.loads(dlq("list", "--store", str(dlq_store), "--json").stdout)) == 2


def test_dlq_purge_answered_no_exits_0(dlq_store: Path) -> None:
    """`dlq purge` answered "n" deletes nothing and exits 0: a "no" is not an error."""
    result = dlq("purge", "--store", str(dlq_store), input="n\n")
    assert result.returncode == 0
    assert "nothing deleted" in result.stderr
    assert len(json.loads(dlq("list", "--store", str(dlq_store), "--json").stdout)) == 2


def test_dlq_purge_confirmed(dlq_store: Path) -> None:
    """`dlq purge` purges after a "y" on stdin, or at once with --yes."""
    result = dlq("purge", "--store", str(dlq_store), input="y\n")
    assert (result.returncode, result.stdout.strip()) == (0, "Purged 2 dead letters.")
    result = dlq("purge", "--store", str(dlq_store), "--yes", "--json")
    assert json.loads(result.stdout) == {"purged": 0}


def test_dlq_list_skips_a_damaged_entry(dlq_store: Path) -> None:
    """`dlq list` on a store with a damaged entry lists the good ones, names the damaged
    one on stderr and exits 0; `dlq show` of it exits 2 naming it. No traceback."""
    with closing(sqlite3.connect(dlq_store)) as conn:
        conn.execute(
            "INSERT INTO dlq (worker, trigger_id, source, payload, error, traceback, attempts,"
            " started_at, failed_at, run_id) VALUES ('broken', 't', 'manual', '{oops', 'e',"
            " 'tb', 1, '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', 'r')"
        )
        conn.commit()
    result = dlq("list", "--store", str(dlq_store))
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()[1:3]] == ["2", "1"]
    assert "dlq row id 3: payload is not JSON" in result.stderr
    as_json = json.loads(dlq("list", "--store", str(dlq_store), "--json").stdout)
    assert [e["id"] for e in as_json] == [2, 1]
    shown = dlq("show", "3", "--store", str(dlq_store))
    assert shown.returncode == 2
    assert "dlq row id 3: payload is not JSON" in shown.stderr
    assert "Traceback" not in result.stderr + shown.stderr


def test_damaged_pending_trigger_is_skipped_and_the_rest_runs(
    start_jobdeck, tmp_path: Path
) -> None:
    """jobdeck starts on a store with a damaged pending trigger: the good one runs, the
    damaged row stays in the file, exit 0, no traceback."""
    config, store = idle_config(tmp_path), tmp_path / "s.db"
    good = Trigger(worker="idle", source=Source.MANUAL, accepted_at=datetime.now(UTC))
    trio.run(_add_pending, store, good)
    damaged = ("bad", "idle", "manual", "null", "the day before yesterday")
    with closing(sqlite3.connect(store)) as conn:
        conn.execute(
            "INSERT INTO pending (id, worker, source, payload, accepted_at)"
            " VALUES (?, ?, ?, ?, ?)", damaged,
        )
        conn.commit()
    proc = start_jobdeck("--no-ui", "--log-format", "json", "--config", str(config),
                         "--store", str(store))
    events = proc.wait_for(has("run_succeeded", worker="idle", trigger_id=good.id))
    (skipped,) = [e for e in events if e["event"] == "store_rows_skipped"]
    assert len(skipped["rows"]) == 1 and "pending" in skipped["rows"][0]
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert "Traceback" not in proc.stderr()
    assert store_rows(store, "SELECT id, worker, source, payload, accepted_at FROM pending") == [
        damaged
    ]


async def _add_pending(path: Path, trigger: Trigger) -> None:
    store = SQLiteStore(path)
    await store.open()
    await store.add_trigger(trigger)
    await store.close()


def test_dlq_on_a_missing_store_exits_2(tmp_path: Path) -> None:
    """A store path that does not exist is an error, not an empty DLQ."""
    result = dlq("list", "--store", str(tmp_path / "typo.db"))
    assert result.returncode == 2
    assert f"store {tmp_path / 'typo.db'} does not exist" in result.stderr
    assert not (tmp_path / "typo.db").exists()


def test_dlq_replay_runs_at_the_next_start(start_jobdeck, tmp_path: Path, dlq_store: Path) -> None:
    """`dlq replay ID` makes a pending `replay` trigger with the payload; jobdeck runs it."""
    result = dlq("replay", "1", "--store", str(dlq_store), "--json")
    assert result.returncode == 0, result.stderr
    replayed = json.loads(result.stdout)
    assert (replayed["replayed"], replayed["worker"]) == (1, "broken")
    config = tmp_path / "broken.toml"
    config.write_text(
        """
[workers.broken]
fn = "tests.e2e.durability_workers:fail"
mode = "triggered"
max_retries = 0
"""
    )
    proc = start_jobdeck("--no-ui", "--log-format", "json", "--config", str(config),
                         "--store", str(dlq_store))
    proc.wait_for(has("dead_lettered", trigger_id=replayed["trigger_id"]))
    # While jobdeck owns the store, the offline commands refuse.
    busy = dlq("list", "--store", str(dlq_store))
    assert busy.returncode == 2
    assert f"is in use by pid {proc.proc.pid}" in busy.stderr
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    started = next(e for e in proc.events() if e["event"] == "run_started")
    assert (started["source"], started["payload"]) == ("replay", {"file": "a.csv"})
    entries = json.loads(dlq("list", "--store", str(dlq_store), "--json").stdout)
    assert [(e["source"], e["payload"]) for e in entries] == [
        ("replay", {"file": "a.csv"}), ("manual", None)
    ]


def test_dlq_finds_the_store_of_a_config(tmp_path: Path, dlq_store: Path) -> None:
    """`dlq list --config FILE` uses that config's `store` (relative to the config)."""
    config = tmp_path / "jobs.toml"
    config.write_text(f'[orchestrator]\nstore = "{dlq_store.name}"\n')
    result = dlq("list", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    assert [e["id"] for e in json.loads(result.stdout)] == [2, 1]
