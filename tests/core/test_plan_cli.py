"""`jobdeck plan FILE`: the command, its output, its exit codes, and `--store`."""

from __future__ import annotations

import io
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from jobdeck import (
    RunRecord,
    RunStatus,
    Source,
    SQLiteStore,
    StoreError,
    Trigger,
    WorkerState,
)
from jobdeck._cli import main
from jobdeck._config import load_config
from jobdeck._plan_cli import parse_duration, parse_start, plan_main
from jobdeck._plan_history import read_history

HERE = Path(__file__).parent
README = HERE.parents[1] / "README.md"


def run_plan(*args: str) -> tuple[int, str]:
    """`jobdeck plan ARGS` in process: its exit code and what it printed."""
    out = io.StringIO()
    code = plan_main(list(args), out=out)
    return code, out.getvalue()


def write(tmp_path: Path, text: str, name: str = "jobs.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


ROOMY = """
[workers.tick]
fn = "ops.jobs:tick"
interval_seconds = 60
expected_seconds = 5
"""


def test_golden_text_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report of the example config is exactly the checked-in text."""
    monkeypatch.chdir(HERE)
    code, text = run_plan("plan_example.toml")
    assert text == (HERE / "plan_example.txt").read_text(encoding="utf-8")
    assert code == 3


def test_exit_code_3_when_a_worker_falls_behind(tmp_path: Path) -> None:
    """A worker whose runs outlast its interval makes the command exit 3; none, 0."""
    behind = write(tmp_path, """
[workers.slow]
fn = "ops.jobs:slow"
interval_seconds = 60
expected_seconds = 90
timeout_seconds = 120
""")
    assert main(["plan", str(behind)]) == 3
    assert main(["plan", str(write(tmp_path, ROOMY, "roomy.toml"))]) == 0


def test_plan_never_imports_fn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config whose functions' module does not exist still plans (and `check` refuses)."""
    config = write(tmp_path, """
[workers.fetch]
fn = "no_such_package_for_plan.jobs:fetch"
interval_seconds = 300
""")
    assert main(["plan", str(config)]) == 0
    assert "no_such_package_for_plan" not in sys.modules
    assert "fetch" in capsys.readouterr().out
    assert main(["check", str(config)]) == 2


def test_config_problems_are_reported_like_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad config: the messages `check` gives (bar the import), exit 2."""
    config = write(tmp_path, """
[workers.a]
fn = "not a reference"
interval_seconds = 0
expected_seconds = 0

[workers.b]
fn = "ops.jobs:b"
expected_seconds = inf
""")
    assert main(["plan", str(config)]) == 2
    err = capsys.readouterr().err
    assert "worker 'a': key 'fn': must look like 'package.module:function'" in err
    assert "key 'interval_seconds': must be from 0.001 to" in err
    assert "worker 'a': key 'expected_seconds': must be from 0.001 to" in err
    assert "worker 'b': key 'expected_seconds': must be from 0.001 to" in err
    assert f"{config}: 4 problems" in err


def test_check_and_a_run_accept_expected_seconds(tmp_path: Path) -> None:
    """`expected_seconds` is a worker key like any other for `check` and a normal run."""
    config = write(tmp_path, """
[workers.w]
fn = "tests.core.sample_workers:ok"
expected_seconds = 12.5
""")
    assert main(["check", str(config)]) == 0
    assert load_config(config).workers[0].spec.expected_seconds == 12.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--for", "soon"], "jobdeck plan: --for: not a duration: 'soon' (examples: 90m, 24h, 7d)"),
        (["--for", "0h"], "jobdeck plan: --for: must be more than 0 and at most 366d, got '0h'"),
        (["--from", "tomorrow"], "jobdeck plan: --from: not an ISO 8601 time: 'tomorrow'"),
        (["--from", "2026-03-29T00:30[Mars/Olympus]"], "--from: not a known time zone"),
        (["--from", "9999-12-31T00:00"], "--from: must be before the year 9000"),
        (["--store", "/nonexistent/jobs.db"], "store /nonexistent/jobs.db: no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """A bad duration, time or store: one clear line on stderr, no traceback, exit 2."""
    config = write(tmp_path, ROOMY)
    assert main(["plan", str(config), *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_missing_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config file that does not exist: its name and `no such file`, exit 2."""
    assert main(["plan", str(tmp_path / "nope.toml")]) == 2
    assert capsys.readouterr().err.strip() == f"{tmp_path / 'nope.toml'}: no such file"


def test_durations_and_start_times() -> None:
    """`--for` takes 90m, 24h, 7d, 1h30m or seconds; `--from` an offset or a zone."""
    assert [parse_duration(t) for t in ("90m", "24h", "7d", "1h30m", "45")] == [
        5400, 86400, 604800, 5400, 45,
    ]
    assert parse_start("2026-03-29T00:30") == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    berlin = parse_start("2026-03-29T00:30[Europe/Berlin]")
    assert berlin.utcoffset() == timedelta(hours=1)
    assert str(berlin.tzinfo) == "Europe/Berlin"


def test_json_shape(tmp_path: Path) -> None:
    """`--json`: window, every worker's figures with all wait kinds, and the slots."""
    code, text = run_plan(str(HERE / "plan_example.toml"), "--json", "--for", "6h")
    data = json.loads(text)
    assert code == 3
    assert data["window_seconds"] == 6 * 3600
    assert list(data["workers"]) == ["backup", "ingest", "report", "export", "cleanup"]
    backup = data["workers"]["backup"]
    assert set(backup) == {
        "runs", "coalesced", "expected_seconds", "expected_source", "max_delay_seconds",
        "median_delay_seconds", "waits", "falls_behind",
    }
    assert set(backup["waits"]) == {"blocked", "slots", "dependency", "self", "paused"}
    assert backup["expected_source"] == "config"
    assert backup["waits"]["blocked"] > 0
    assert data["workers"]["export"]["falls_behind"] is True
    assert data["slots"]["limit"] == 3
    assert set(data["slots"]) == {"limit", "peak", "mean_busy"}


def test_from_prints_wall_times(tmp_path: Path) -> None:
    """With `--from` the timeline shows wall times in its zone, DST included."""
    config = write(tmp_path, """
[workers.hourly]
fn = "ops.jobs:hourly"
cron = "0 * * * *"
timezone = "Europe/Berlin"
""")
    code, text = run_plan(str(config), "--from", "2026-03-29T00:30[Europe/Berlin]", "--for", "3h")
    assert code == 0
    assert "  2026-03-29 01:00:00+01:00  hourly  runs 1s" in text
    assert "  2026-03-29 03:00:00+02:00  hourly  runs 1s" in text


def _readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1]
    found = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    assert found is not None, "no ```toml block under ## Configuration"
    return found.group(1)


def test_readme_example_config_plans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's example config (under "## Configuration") plans without a traceback."""
    config = write(tmp_path, _readme_example())
    assert main(["plan", str(config)]) in (0, 3)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "Plan of" in captured.out


# ---------------------------------------------------------------------- --store


async def _fill_store(path: Path, now: datetime) -> SQLiteStore:
    """A store as a jobdeck leaves it: `hourly` started 10 minutes ago, three runs each."""
    store = SQLiteStore(path)
    await store.open()
    for worker, seconds in (("hourly", (30.0, 40.0, 200.0)), ("quick", (2.0, 4.0, 3.0))):
        for i, duration in enumerate(seconds):
            started = now - timedelta(hours=3 - i)
            trigger = Trigger(worker=worker, source=Source.SCHEDULE, accepted_at=started)
            run = RunRecord(worker=worker, trigger=trigger, started_at=started)
            await store.start_run(run)
            await store.finish_run(
                run.finished(
                    RunStatus.SUCCEEDED, ended_at=started + timedelta(seconds=duration),
                    attempts=1, duration_s=duration,
                ),
                worker=WorkerState(name=worker, last_start=now - timedelta(minutes=10)),
            )
    return store


def test_store_gives_median_durations_and_the_restart_point(tmp_path: Path) -> None:
    """`--store`: each worker's median run time, and its schedule continues from the
    stored last start; the store may be in use (read-only, no lock taken)."""
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    path = tmp_path / "jobs.db"

    async def scenario() -> tuple[int, str]:
        store = await _fill_store(path, now)
        try:  # the owner still has the store open: plan reads beside it
            return await trio.to_thread.run_sync(
                run_plan, str(config), "--store", str(path), "--from", now.isoformat(),
                "--for", "2h",
            )
        finally:
            await store.close()

    config = write(tmp_path, """
[workers.hourly]
fn = "ops.jobs:hourly"
interval_seconds = 3600

[workers.quick]
fn = "ops.jobs:quick"
interval_seconds = 3600
expected_seconds = 1
""")
    code, text = trio.run(scenario)
    assert code == 0
    history = read_history(path)
    assert history.median_seconds == {"hourly": 40.0, "quick": 3.0}
    assert history.workers["hourly"].last_start == now - timedelta(minutes=10)
    assert re.search(r"hourly\s+2\s+40s history", text)
    assert re.search(r"quick\s+2\s+1s config", text)
    # Started 10 minutes before the plan's start: next at 09:50, not at once.
    assert "  2026-01-05 09:50:00+00:00  hourly  runs 40s" in text


def test_store_that_is_not_a_jobdeck_store(tmp_path: Path) -> None:
    """A file that is not a jobdeck store is a clear error."""
    path = tmp_path / "other.db"
    path.write_bytes(b"")
    with pytest.raises(StoreError, match="is not a jobdeck store"):
        read_history(path)


def test_readme_shows_the_real_report_of_the_example() -> None:
    """The README's sample report is the golden one (the config named `jobs.toml` there)."""
    golden = (HERE / "plan_example.txt").read_text(encoding="utf-8")
    shown = golden.replace("Plan of plan_example.toml:", "Plan of jobs.toml:")
    assert f"```\n{shown}```" in README.read_text(encoding="utf-8")
