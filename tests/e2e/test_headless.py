"""The real `jobdeck` command, headless: event lines, signals, exit codes."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .conftest import run_jobdeck

pytestmark = pytest.mark.e2e

REQUIRED_FIELDS = {"ts", "event"}


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "jobs.toml"
    path.write_text(text)
    return path


def names(events: list[dict]) -> list[str]:
    return [e["event"] for e in events]


def test_demo_headless_json_then_sigterm_exits_0(start_jobdeck):
    """The demo runs headless, writes one JSON object per line, and SIGTERM exits 0."""
    proc = start_jobdeck("--no-ui", "--store", ":memory:", "--log-format", "json")
    proc.wait_for(lambda ev: "run_succeeded" in names(ev), timeout=20)
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    events = proc.events()
    assert all(REQUIRED_FIELDS <= e.keys() for e in events)
    assert names(events)[0] == "orchestrator_started"
    assert names(events)[-1] == "orchestrator_stopped"
    assert "orchestrator_stopping" in names(events)
    started = next(e for e in events if e["event"] == "run_started")
    assert {"worker", "run_id", "trigger_id", "source", "attempt"} <= started.keys()


def test_bad_config_lists_every_problem_and_exits_2(tmp_path):
    """A config with several problems exits 2, names each one, and prints no traceback."""
    config = write_config(
        tmp_path,
        """
[workers.a]
fn = "tests.e2e.headless_workers:quick"
interval_seconds = -1

[workers.b]
fn = "tests.e2e.headless_workers:quick"
depends_on = ["ghost"]
colour = "blue"
""",
    )
    result = run_jobdeck("--no-ui", "--config", str(config), "--store", ":memory:")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "worker 'a': key 'interval_seconds'" in result.stderr
    assert "worker 'b': key 'depends_on': unknown worker 'ghost'" in result.stderr
    assert "worker 'b': key 'colour'" in result.stderr


def test_missing_config_file_exits_2(tmp_path):
    """A config path that does not exist is a usage error, not a traceback."""
    result = run_jobdeck("--no-ui", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "nope.toml" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_good_config_prints_dependency_order(tmp_path):
    """`jobdeck check` on a good config exits 0 and lists workers dependencies first."""
    config = write_config(
        tmp_path,
        """
[workers.report]
fn = "tests.e2e.headless_workers:quick"
mode = "triggered"
depends_on = ["fetch"]

[workers.fetch]
fn = "tests.e2e.headless_workers:quick"
interval_seconds = 60
""",
    )
    result = run_jobdeck("check", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "2 workers" in lines[0]
    assert lines.index("  fetch: every 60s, normal") < lines.index(
        "  report: triggered, normal, after fetch"
    )


def test_check_bad_config_exits_2(tmp_path):
    """`jobdeck check` on a bad config prints each problem and exits 2."""
    config = write_config(
        tmp_path,
        """
[workers.a]
fn = "no.such.module:fn"
mode = "sometimes"
""",
    )
    result = run_jobdeck("check", str(config))
    assert result.returncode == 2
    assert "key 'mode'" in result.stderr
    assert "key 'fn'" in result.stderr
    assert "2 problems" in result.stderr


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
        ("import sys\nsys.exit(3)", "SystemExit: 3"),
    ],
)
def test_worker_module_raising_at_import_exits_2(tmp_path, source, shown):
    """A module that raises KeyboardInterrupt or exits at import: check and run exit 2."""
    (tmp_path / "my_jobs.py").write_text(source + "\n")
    config = write_config(tmp_path, '[workers.w]\nfn = "my_jobs:run"\n')
    message = f"key 'fn': cannot import 'my_jobs:run': importing 'my_jobs' raised {shown}"
    checked = run_jobdeck("check", str(config), cwd=tmp_path, repo_on_path=False)
    ran = run_jobdeck("--no-ui", "--config", str(config), "--store", ":memory:",
                      cwd=tmp_path, repo_on_path=False)
    for result in (checked, ran):
        assert result.returncode == 2
        assert message in result.stderr
        assert "Traceback" not in result.stderr


def test_run_prints_warnings_for_ignored_keys_once_at_start(tmp_path, start_jobdeck):
    """A key the worker's mode ignores is one stderr warning at start; the run goes on."""
    config = write_config(
        tmp_path,
        """
[workers.on-demand]
fn = "tests.e2e.headless_workers:quick"
mode = "triggered"
interval_seconds = 60
""",
    )
    proc = start_jobdeck("--no-ui", "--config", str(config), "--store", ":memory:",
                         "--log-format", "json")
    proc.wait_for(lambda ev: "orchestrator_started" in names(ev))
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert proc.stderr().splitlines() == [
        f"{config}: worker 'on-demand': warning: key 'interval_seconds' is ignored"
        " for mode 'triggered'",
    ]


def test_second_sigterm_skips_the_grace(tmp_path, start_jobdeck):
    """A second SIGTERM ends a long grace at once; the run is recorded interrupted."""
    config = write_config(
        tmp_path,
        """
[orchestrator]
shutdown_grace_seconds = 120

[workers.long]
fn = "tests.e2e.headless_workers:slow"
timeout_seconds = 300
params = { seconds = 300 }
""",
    )
    proc = start_jobdeck("--no-ui", "--config", str(config), "--store", ":memory:",
                         "--log-format", "json")
    proc.wait_for(lambda ev: "run_started" in names(ev))
    proc.signal(signal.SIGTERM)
    proc.wait_for(lambda ev: "orchestrator_stopping" in names(ev))
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    interrupted = [e for e in proc.events() if e["event"] == "run_interrupted"]
    assert [e["reason"] for e in interrupted] == ["shutdown"]


def test_grace_option_overrides_config(tmp_path, start_jobdeck):
    """`--grace 0` interrupts in-flight runs at once on SIGTERM."""
    config = write_config(
        tmp_path,
        """
[orchestrator]
shutdown_grace_seconds = 120

[workers.long]
fn = "tests.e2e.headless_workers:slow"
""",
    )
    proc = start_jobdeck("--no-ui", "--config", str(config), "--store", ":memory:",
                         "--log-format", "json", "--grace", "0")
    proc.wait_for(lambda ev: "run_started" in names(ev))
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    stopping = next(e for e in proc.events() if e["event"] == "orchestrator_stopping")
    assert stopping["grace_s"] == 0


def test_worker_ignoring_cancellation_does_not_hang_exit(tmp_path, start_jobdeck):
    """A worker that shields itself from cancellation is flagged stuck; jobdeck still exits 0."""
    config = write_config(
        tmp_path,
        """
[orchestrator]
shutdown_grace_seconds = 0.2
stuck_after_seconds = 0.5

[workers.stubborn]
fn = "tests.e2e.headless_workers:stubborn"
""",
    )
    proc = start_jobdeck("--no-ui", "--config", str(config), "--store", ":memory:",
                         "--log-format", "json")
    proc.wait_for(lambda ev: "run_started" in names(ev))
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    events = proc.events()
    assert [e["reason"] for e in events if e["event"] == "run_interrupted"] == ["stuck"]
    assert events[-1]["event"] == "orchestrator_stopped"
    assert events[-1]["stuck"] == 1


def test_text_format_is_one_aligned_line_per_event(tmp_path, start_jobdeck):
    """`--log-format text` writes one line per event with the event name and worker."""
    config = write_config(
        tmp_path,
        """
[workers.quick]
fn = "tests.e2e.headless_workers:quick"
interval_seconds = 60
""",
    )
    proc = start_jobdeck("--no-ui", "--config", str(config), "--store", ":memory:")
    proc.wait_for(lambda _: any("run_succeeded" in line for line in proc.lines))
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    succeeded = next(line for line in proc.lines if "run_succeeded" in line)
    assert succeeded.split()[1:3] == ["run_succeeded", "quick"]
    assert any(" log " in line and "quick run" in line for line in proc.lines)


def test_worker_may_import_its_own_core_package(tmp_path, start_jobdeck):
    """A user's own `core` package beside the config is theirs: jobdeck's is `jobdeck`."""
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__init__.py").write_text("")
    (tmp_path / "core" / "helpers.py").write_text("GREETING = 'hello from the user'\n")
    (tmp_path / "my_jobs.py").write_text(
        "from core.helpers import GREETING\n\n"
        "async def greet(ctx):\n"
        "    ctx.log.info(GREETING)\n"
    )
    config = write_config(
        tmp_path,
        """
[workers.greet]
fn = "my_jobs:greet"
interval_seconds = 60
""",
    )
    checked = run_jobdeck("check", str(config), cwd=tmp_path, repo_on_path=False)
    assert checked.returncode == 0, checked.stderr
    proc = start_jobdeck(
        "--no-ui", "--config", str(config), "--store", ":memory:", "--log-format", "json",
        cwd=tmp_path, repo_on_path=False,
    )
    events = proc.wait_for(lambda ev: "run_succeeded" in names(ev), timeout=20)
    assert any(e.get("message") == "hello from the user" for e in events)
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_sighup_reloads_the_config(tmp_path, start_jobdeck):
    """SIGHUP re-reads the config: an added worker starts, a removed one goes, a broken
    config is refused with check's messages and the running set stays; SIGTERM still
    stops gracefully."""
    config = write_config(
        tmp_path,
        """
[workers.first]
fn = "tests.e2e.headless_workers:quick"
interval_seconds = 60
""",
    )
    proc = start_jobdeck(
        "--no-ui", "--config", str(config), "--store", ":memory:", "--log-format", "json"
    )
    proc.wait_for(lambda ev: "run_succeeded" in names(ev), timeout=20)
    config.write_text(
        """
[workers.second]
fn = "tests.e2e.headless_workers:quick"
interval_seconds = 60
"""
    )
    proc.signal(signal.SIGHUP)
    events = proc.wait_for(
        lambda ev: any(e["event"] == "run_succeeded" and e["worker"] == "second" for e in ev)
    )
    reloaded = next(e for e in events if e["event"] == "config_reloaded")
    assert (reloaded["added"], reloaded["removed"], reloaded["changed"]) == (
        ["second"], ["first"], []
    )
    config.write_text('[workers.second]\nfn = "tests.e2e.headless_workers:quick"\nmode = "x"\n')
    proc.signal(signal.SIGHUP)
    events = proc.wait_for(lambda ev: "config_reload_failed" in names(ev))
    failed = next(e for e in events if e["event"] == "config_reload_failed")
    checked = run_jobdeck("check", str(config))
    assert failed["problems"] == checked.stderr.splitlines()[:-1]
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert names(proc.events())[-1] == "orchestrator_stopped"
