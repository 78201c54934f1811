"""`jobdeck attach`: the dashboard on a headless jobdeck over its HTTP API (a real one,
in a subprocess on loopback)."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from jobdeck.tui._remote import HttpClient, RemoteBridge, RemoteOrchestrator, check_attachable
from jobdeck.tui.app import DeckApp
from jobdeck.tui.screens import ConfirmScreen
from tests.e2e.conftest import REPO, Jobdeck, run_jobdeck

from .conftest import drive, until

pytestmark = pytest.mark.e2e

TOKEN = "attach-test-token"
CONFIG = """
[workers.alpha]
fn = "tests.tui.workers:ok"
mode = "triggered"

[workers.bravo]
fn = "tests.tui.workers:fail"
mode = "triggered"
max_retries = 0
max_consecutive_failures = 5

[workers.charlie]
fn = "tests.tui.workers:ok"
interval_seconds = 3600
run_at_start = false
"""


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Jobdeck, str]]:
    """A headless jobdeck serving its API on a free loopback port: (process, base URL)."""
    config = tmp_path / "jobs.toml"
    config.write_text(CONFIG)
    monkeypatch.setenv("JOBDECK_API_TOKEN", TOKEN)
    process = Jobdeck(
        ["--no-ui", "--config", str(config), "--store", ":memory:", "--log-format", "json",
         "--http", "127.0.0.1:0"],
        REPO,
    )
    try:
        events = process.wait_for(lambda ev: any(e["event"] == "orchestrator_started" for e in ev))
        started = next(e for e in events if e["event"] == "orchestrator_started")
        yield process, f"http://{started['http']}"
    finally:
        process.kill()
        process._reader.join(timeout=5)
        for stream in (process.proc.stdout, process.proc.stderr):
            if stream is not None:
                stream.close()


def attached_app(url: str, token: str | None = TOKEN) -> DeckApp:
    orch = RemoteOrchestrator(HttpClient(url, token))
    app = DeckApp(orch, title="attached", bridge=RemoteBridge(orch),  # type: ignore[arg-type]
                  refresh_interval=0.05)
    app.animation_level = "none"
    return app


def shown(app: DeckApp) -> Any:
    """The snapshot the dashboard shows (the keys act on what is shown)."""
    return app.model.snapshot


def worker_state(app: DeckApp, name: str) -> Any:
    worker = app.model.worker(name)
    assert worker is not None
    return worker


def rows(app: DeckApp) -> list[str]:
    return app.deck.worker_table.keys


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_every_key_works_over_attach_and_quitting_leaves_the_node_running(
    node: tuple[Jobdeck, str],
) -> None:
    """Trigger, payload trigger, disable, enable, pause, resume, replay, delete and purge
    reach the remote node; quitting closes the dashboard and the node runs on."""
    process, url = node
    app = attached_app(url)

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app) == ["alpha", "bravo", "charlie"], "rows")
        app.deck.worker_table.select_key("alpha")
        await pilot.press("t")
        await until(pilot, lambda: worker_state(app, "alpha").runs_ok == 1, "alpha's run")
        await pilot.press("T", *'{"n": 3}', "enter")
        await until(pilot, lambda: worker_state(app, "alpha").runs_ok == 2, "payload run")
        runs = await app.bridge.read(app.orch.history, "alpha", 5)
        assert runs[0].trigger.payload == {"n": 3}
        await pilot.press("d")
        await until(pilot, lambda: not worker_state(app, "alpha").enabled, "disabled")
        await pilot.press("e")
        await until(pilot, lambda: worker_state(app, "alpha").enabled, "enabled")
        await pilot.press("p")
        await until(pilot, lambda: shown(app).state == "paused", "paused")
        await pilot.press("p")
        await until(pilot, lambda: shown(app).state == "running", "resumed")
        # Dead letters: bravo fails into the DLQ twice; replay one, delete one, purge.
        app.deck.worker_table.select_key("bravo")
        await pilot.press("t")
        await until(pilot, lambda: shown(app).dlq_size == 1, "a dead letter")
        await pilot.press("3")
        await until(pilot, lambda: len(app.model.dead_letters) == 1, "the DLQ tab")
        await pilot.press("r")
        await until(pilot, lambda: worker_state(app, "bravo").runs_failed == 2, "replayed")
        await until(pilot, lambda: len(app.model.dead_letters) == 1, "the replay's letter")
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: shown(app).dlq_size == 0, "deleted")
        await pilot.press("1")
        app.deck.worker_table.select_key("bravo")
        await pilot.press("t")
        await until(pilot, lambda: shown(app).dlq_size == 1, "another dead letter")
        await pilot.press("3", "X")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: shown(app).dlq_size == 0, "purged")
        await pilot.press("q")
        await asyncio.wait_for(app.bridge.wait_done(), 5)

    drive(app, scenario, timeout=40)
    assert get_json(f"{url}/status")["state"] == "running"
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


def test_attach_sees_a_reload_of_the_node(node: tuple[Jobdeck, str], tmp_path: Path) -> None:
    """ctrl+r over attach reloads the node's config; the new worker shows up."""
    _, url = node
    app = attached_app(url)

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: rows(app) == ["alpha", "bravo", "charlie"], "rows")
        (tmp_path / "jobs.toml").write_text(
            CONFIG + '\n[workers.delta]\nfn = "tests.tui.workers:ok"\nmode = "triggered"\n'
        )
        await pilot.press("ctrl+r")
        await until(pilot, lambda: rows(app) == ["alpha", "bravo", "charlie", "delta"], "delta")

    drive(app, scenario)


def test_a_wrong_token_is_refused_before_the_dashboard_opens(node: tuple[Jobdeck, str]) -> None:
    """attach checks the address and the token first, and says what is wrong."""
    _, url = node
    problem = asyncio.run(check_attachable(HttpClient(url, "wrong")))
    assert problem is not None and "refused the token" in problem
    result = run_jobdeck("attach", "http://127.0.0.1:1")
    assert result.returncode == 2
    assert "cannot reach" in result.stderr


def test_the_token_of_a_cluster_node_comes_from_the_file_its_nodes_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`jobdeck attach URL --store postgresql://…` reads the token file the nodes of that
    cluster on this machine share (named for the database, whatever the password)."""
    from jobdeck._api_token import shared_token, token_file_for
    from jobdeck._pg_store import PgStore
    from jobdeck.tui._attach import _parser, _token

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.delenv("JOBDECK_API_TOKEN", raising=False)
    made = shared_token(token_file_for(PgStore("postgresql://jd:pw@db:5432/jobs"),
                                       Path("jobs.toml")))
    options = _parser().parse_args(
        ["http://127.0.0.1:1", "--store", "postgresql://jd@db:5432/jobs"]
    )
    assert _token(options) == made
