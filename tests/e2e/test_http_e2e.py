"""The real `jobdeck --no-ui --http`: the API over a socket, the token, SIGTERM and the port."""

from __future__ import annotations

import json
import signal
import socket
import stat
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import run_jobdeck

pytestmark = pytest.mark.e2e

CONFIG = """
[orchestrator]
shutdown_grace_seconds = 5

[workers.echo]
fn = "tests.e2e.headless_workers:echo"
mode = "triggered"
"""


def write_config(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "jobs.toml"
    path.write_text(text)
    return path


def http(
    method: str, url: str, *, body: bytes | None = None, token: str | None = None
) -> tuple[int, Any]:
    """One request with urllib: (status, JSON body or text)."""
    request = urllib.request.Request(url, data=body, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw, kind = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        with error:
            status, raw, kind = error.code, error.read(), error.headers
    if kind.get_content_type() == "application/json":
        return status, json.loads(raw)
    return status, raw.decode()


def started_address(proc: Any) -> str:
    events = proc.wait_for(lambda ev: any(e["event"] == "orchestrator_started" for e in ev))
    started = next(e for e in events if e["event"] == "orchestrator_started")
    return str(started["http"])


def test_api_serves_then_sigterm_exits_0_and_releases_the_port(
    tmp_path: Path, start_jobdeck: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Port 0 binds a free port named in orchestrator_started; SIGTERM exits 0 and frees it."""
    monkeypatch.setenv("JOBDECK_API_TOKEN", "e2e-token")
    proc = start_jobdeck("--no-ui", "--config", str(write_config(tmp_path)), "--store",
                         ":memory:", "--http", "127.0.0.1:0", "--log-format", "json")
    address = started_address(proc)
    host, port = address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    base = f"http://{address}"

    assert http("GET", f"{base}/healthz")[0] == 200
    assert http("POST", f"{base}/workers/echo/trigger", body=b'{"n": 1}')[0] == 401
    status, body = http("POST", f"{base}/workers/echo/trigger", body=b'{"n": 1}',
                        token="e2e-token")
    assert status == 202
    proc.wait_for(lambda ev: any(
        e["event"] == "log" and e["message"] == "payload {'n': 1}" for e in ev
    ))
    accepted = next(e for e in proc.events() if e["event"] == "trigger_accepted")
    assert accepted["trigger_id"] == body["trigger_id"]
    assert accepted["payload"] == {"n": 1}
    status, metrics = http("GET", f"{base}/metrics")
    assert status == 200
    assert 'jobdeck_runs_total{outcome="succeeded",worker="echo"} 1.0' in metrics

    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert proc.events()[-1]["event"] == "orchestrator_stopped"
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, int(port)))  # fails with EADDRINUSE if anyone still listens
        probe.listen()


def test_generated_token_is_written_0600_and_its_path_logged(
    tmp_path: Path, start_jobdeck: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without JOBDECK_API_TOKEN a token is generated into a 0600 file beside the store."""
    monkeypatch.delenv("JOBDECK_API_TOKEN", raising=False)
    store = tmp_path / "state.db"
    proc = start_jobdeck("--no-ui", "--config", str(write_config(tmp_path)), "--store",
                         str(store), "--http", "127.0.0.1:0", "--log-format", "json")
    base = f"http://{started_address(proc)}"
    token_file = tmp_path / "state.db.token"
    proc.wait_for(lambda _: token_file.exists())
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert len(token) >= 32
    assert http("POST", f"{base}/pause", token="not-it")[0] == 401
    assert http("POST", f"{base}/pause", token=token) == (200, {"paused": True})
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    stderr = proc.stderr()
    assert f"token in {token_file}" in stderr
    assert token not in stderr
    assert token not in "\n".join(proc.lines)


def test_a_busy_port_exits_2_without_traceback(tmp_path: Path) -> None:
    """An address already in use is a clear error and exit 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_jobdeck("--no-ui", "--config", str(write_config(tmp_path)), "--store",
                             ":memory:", "--http", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("address", ["nohost", "127.0.0.1:http", "1.2.3.4:99999"])
def test_a_bad_http_address_exits_2(tmp_path: Path, address: str) -> None:
    """--http without a valid port is a usage error."""
    result = run_jobdeck("--no-ui", "--config", str(write_config(tmp_path)), "--store",
                         ":memory:", "--http", address)
    assert result.returncode == 2
    assert "--http" in result.stderr
    assert "Traceback" not in result.stderr


def test_http_needs_no_ui(tmp_path: Path) -> None:
    """--http is for headless runs; with the dashboard it is refused with a hint."""
    result = run_jobdeck("--config", str(write_config(tmp_path)), "--store", ":memory:",
                         "--http", "127.0.0.1:0")
    assert result.returncode == 2
    assert "--no-ui" in result.stderr


def test_text_logs_have_a_periodic_status_line(tmp_path: Path, start_jobdeck: Any) -> None:
    """`--log-format text` adds a status line (running, pending, DLQ, health) every few s."""
    proc = start_jobdeck("--no-ui", "--config", str(write_config(tmp_path)), "--store",
                         ":memory:")
    proc.wait_for(lambda _: any(" status " in line for line in proc.lines), timeout=15)
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    status = next(line for line in proc.lines if " status " in line)
    assert status.split()[1] == "status"
    assert status.split()[2:] == ["running=0/5", "pending=0", "dlq=0", "health=ok"]
    assert "\x1b[" not in "\n".join(proc.lines)  # not a terminal, and NO_COLOR is set
