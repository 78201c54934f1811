"""`jobdeck runs list|show`: the run history of a store, offline."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import trio

from jobdeck import (
    Attempt,
    RunDetailDraft,
    RunLogLine,
    RunRecord,
    RunStatus,
    Source,
    SQLiteStore,
    Trigger,
    WorkerState,
)
from jobdeck._cli import main

from .store_contract import at


def run(worker: str, t: float, status: RunStatus, error: str | None = None) -> RunRecord:
    trigger = Trigger(worker=worker, source=Source.MANUAL, payload={"t": t}, accepted_at=at(t))
    return RunRecord(
        worker=worker, trigger=trigger, status=status, started_at=at(t),
        ended_at=at(t) + timedelta(seconds=2), attempts=2 if error else 1, duration_s=2.0,
        error=error,
    )


FAILED = run("export", 2, RunStatus.FAILED, "PermissionError: denied")
OK = run("fetch", 1, RunStatus.SUCCEEDED)
DETAIL = RunDetailDraft(
    attempts=(
        Attempt(number=1, started_at=at(2), ended_at=at(3), duration_s=1.0,
                error="PermissionError: denied", traceback="Traceback: first\n"),
        Attempt(number=2, started_at=at(3), ended_at=at(4), duration_s=1.0,
                error="PermissionError: denied", traceback="Traceback: second\n"),
    ),
    logs=(RunLogLine(ts=at(2.5), level="WARNING", message="cannot write"),),
    logs_dropped=3,
)


@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    """A store holding a succeeded run of `fetch` and a newer failed run of `export`."""
    path = tmp_path / "jobs.db"

    async def fill() -> None:
        store = SQLiteStore(path)
        await store.open()
        await store.finish_run(OK, worker=WorkerState(name="fetch"))
        await store.finish_run(FAILED, worker=WorkerState(name="export"), detail=DETAIL)
        await store.close()

    trio.run(fill)
    return path


def test_list_json_newest_first(store_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`runs list --json` is an array of runs, newest first, with the documented fields."""
    assert main(["runs", "list", "--store", str(store_file), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in found] == [FAILED.id, OK.id]
    assert {"id", "worker", "status", "source", "started_at", "ended_at", "attempts",
            "error"} <= found[0].keys()
    assert (found[0]["status"], found[0]["attempts"], found[0]["error"]) == (
        "failed", 2, "PermissionError: denied"
    )


def test_list_of_one_worker_and_limit(
    store_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--worker W` lists that worker's runs only; `--limit N` at most N."""
    main(["runs", "list", "--store", str(store_file), "--json", "--worker", "fetch"])
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [OK.id]
    main(["runs", "list", "--store", str(store_file), "--json", "--limit", "1"])
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [FAILED.id]


def test_list_text_is_a_table_with_short_ids(
    store_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runs list` prints one row per run, ids cut to 8 characters."""
    assert main(["runs", "list", "--store", str(store_file)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "ID", "WORKER", "STATUS", "SOURCE", "STARTED", "DURATION", "ATTEMPTS", "ERROR"
    ]
    assert FAILED.id[:8] in out and FAILED.id not in out
    assert out.rstrip().endswith("2 runs")


def test_show_json_has_attempts_and_log_lines(
    store_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`runs show ID --json`: the run with its payload, every attempt, its log lines."""
    assert main(["runs", "show", FAILED.id, "--store", str(store_file), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["run"]["id"] == FAILED.id and found["run"]["payload"] == {"t": 2}
    assert [a["traceback"] for a in found["attempts"]] == [
        "Traceback: first\n", "Traceback: second\n"
    ]
    assert found["logs"] == [
        {"ts": at(2.5).isoformat(), "level": "WARNING", "message": "cannot write"}
    ]
    assert found["logs_dropped"] == 3


def test_show_text_by_short_id(store_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`runs show` takes the short id the text views print, and shows tracebacks and lines."""
    assert main(["runs", "show", FAILED.id[:8], "--store", str(store_file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Run {FAILED.id}")
    assert "Traceback: second" in out and "cannot write" in out
    assert "3 earlier lines dropped" in out


def test_show_unknown_id_exits_2(store_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An id no run has is exit 2 with a message, no traceback."""
    assert main(["runs", "show", "feedface", "--store", str(store_file)]) == 2
    err = capsys.readouterr().err
    assert "no run with id 'feedface'" in err and "Traceback" not in err


def test_runs_needs_a_store_or_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --store or --config there is no store to read: exit 2 saying what to give."""
    assert main(["runs", "list"]) == 2
    assert "give --store PATH or --config FILE" in capsys.readouterr().err
