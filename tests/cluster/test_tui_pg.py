"""The dashboard of a cluster node: the cluster line, the node column, the Nodes tab and
draining from it, against a real PostgreSQL.

The dashboard's node (`n2`) runs in the app's guest run, as `jobdeck --store
postgresql://…` runs it; its peer (`n1`) is a second orchestrator on the same database,
in a thread of its own. Not trio mode: the app drives itself on asyncio (`drive`).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import trio
from textual.pilot import Pilot
from textual.widgets import Static

from jobdeck import JobContext, Orchestrator, WorkerStatus
from jobdeck._pg_view import short_target
from jobdeck.tui.app import DeckApp
from jobdeck.tui.screens import ConfirmScreen, HelpScreen
from jobdeck.tui.widgets import NodeTable
from tests.e2e.conftest import REPO, Jobdeck
from tests.tui.conftest import make_app, shut_down, until
from tests.tui.test_attach import TOKEN, attached_app
from tests.tui.test_keys import plain

from .conftest import PgServer
from .nodes import make_node, sql
from .test_cli_pg import url

#: Real-clock waits: generous, for a loaded 2-core machine.
WITHIN = 30.0
SIZE = (140, 40)


class Release:
    """`slow` runs until `release` is set (from any thread), or until cancelled."""

    def __init__(self) -> None:
        self.event = threading.Event()

    async def __call__(self, ctx: JobContext) -> None:
        await trio.to_thread.run_sync(self.event.wait, abandon_on_cancel=True)


def workers(slow: Release) -> Any:
    def setup(orch: Orchestrator) -> None:
        orch.register("slow", slow, mode="triggered")
        orch.register("quick", _quick, mode="triggered")

    return setup


async def _quick(ctx: JobContext) -> None:
    return None


class ThreadNode:
    """A cluster node running in a thread of its own, with its own trio run."""

    def __init__(self, orch: Orchestrator) -> None:
        self.orch = orch
        self._token: trio.lowlevel.TrioToken | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            await nursery.start(self.orch.run)
            self._started.set()

    def __enter__(self) -> ThreadNode:
        self._thread.start()
        assert self._started.wait(WITHIN), "the peer node did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            try:
                trio.from_thread.run_sync(self.orch.stop, 0, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        self._thread.join(WITHIN)


def drive(app: DeckApp, scenario: Any) -> None:
    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            try:
                await asyncio.wait_for(app.bridge.wait_ready(), WITHIN)
                await asyncio.wait_for(scenario(pilot), 120)
            finally:
                await shut_down(app)

    asyncio.run(main())
    assert app.bridge.finished


def cluster_text(app: DeckApp) -> str:
    from jobdeck.tui.widgets import ClusterBar

    bar = app.deck.query_one("#cluster-bar", ClusterBar)
    return str(bar.render()) if bar.display else ""


def node_cell(table: NodeTable, name: str, column: str) -> str:
    """What the Nodes table shows of node `name` in `column`."""
    for key, node in table.nodes.items():
        if node.get("name") == name:
            return str(table.get_cell(key, column))
    raise KeyError(name)


@pytest.fixture
def peer_and_app(pg_dsn: str) -> Any:
    slow = Release()
    n1 = make_node(pg_dsn, "n1", workers(slow), capacity=3)
    # n2 takes no run itself: what is triggered on it runs on n1
    n2 = make_node(pg_dsn, "n2", workers(slow), capacity=0)
    with ThreadNode(n1):
        try:
            yield make_app(n2), slow
        finally:
            slow.event.set()


def test_the_cluster_line_the_node_column_and_a_run_on_the_peer(peer_and_app: Any) -> None:
    """The line under the status bar names the database (no password), counts nodes and
    cluster slots, this node and the listener; a run on n1 shows `n1` in the node column
    and `running on n1` as its why."""
    app, slow = peer_and_app

    async def scenario(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: "2 nodes" in cluster_text(app), "two nodes", WITHIN)
        text = cluster_text(app)
        assert text.startswith(" cluster pg://"), text
        assert "0/5 slots" in text and "this node n2 0/0" in text, text
        await until(pilot, lambda: "listener ok" in cluster_text(app), "the listener", WITHIN)
        assert "node" in app.deck.worker_table.columns
        app.deck.worker_table.select_key("slow")
        await pilot.press("t")

        def running_on_n1() -> bool:
            snapshot = app.model.snapshot
            return snapshot is not None and snapshot.worker("slow").node == "n1"

        await until(pilot, running_on_n1, "slow running on n1", WITHIN)
        worker = app.model.worker("slow")
        assert worker is not None and worker.state == WorkerStatus.RUNNING
        assert worker.reason == "running on n1"
        await pilot.pause(0.1)
        assert str(app.deck.worker_table.get_cell("slow", "node")) == "n1"
        assert "running on n1" in str(app.deck.worker_table.get_cell("slow", "why"))
        await until(pilot, lambda: "1/5 slots" in cluster_text(app), "one slot used", WITHIN)
        slow.event.set()

    drive(app, scenario)


def test_the_nodes_tab_lists_nodes_and_leases_and_drains(
    peer_and_app: Any, pg_dsn: str
) -> None:
    """Tab 5: a row per node (this one marked), the selected node's lease of `slow`;
    `d` asks, then drains n1 in the database; `u` undrains it."""
    app, slow = peer_and_app

    async def scenario(pilot: Pilot[Any]) -> None:
        deck = app.deck
        await until(pilot, lambda: deck.cluster_mode, "cluster mode", WITHIN)
        deck.worker_table.select_key("slow")
        await pilot.press("t")
        await until(pilot, lambda: (w := app.model.worker("slow")) is not None
                    and w.node == "n1", "slow on n1", WITHIN)
        await pilot.press("5")
        assert deck.active_tab == "nodes"
        table = deck.node_table

        def two_rows() -> bool:
            return table.row_count == 2 and any(
                lease.get("worker") == "slow" for lease in app.model.cluster_leases
            )

        await until(pilot, two_rows, "two nodes and the lease of slow", WITHIN)
        names = [str(table.get_row_at(row)[0]) for row in range(2)]
        assert names == ["n1", "n2 (here)"]
        table.move_cursor(row=0)
        await pilot.pause(0.1)
        detail = plain(deck.node_detail.query_one("#node-body", Static))
        assert "slow" in detail and "running" in detail, detail
        (token,) = sql(pg_dsn, "SELECT token FROM jd_leases WHERE worker = 'slow'")[0]
        assert str(token) in detail
        assert node_cell(table, "n1", "state") == "alive"
        assert node_cell(table, "n1", "config") == "same"
        assert node_cell(table, "n2", "used") == "0/0"

        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")

        def n1_state() -> str:
            return str(sql(pg_dsn, "SELECT state FROM jd_nodes WHERE name = 'n1'")[0][0])

        await until(pilot, lambda: n1_state() == "draining", "n1 draining", WITHIN)
        flash = app.controller.current_flash
        assert flash is not None and flash.text.startswith("Draining n1")
        await until(pilot, lambda: node_cell(table, "n1", "state") == "draining",
                    "the row says draining", WITHIN)
        await pilot.press("u")
        await until(pilot, lambda: n1_state() == "active", "n1 active again", WITHIN)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        keys = plain(app.screen.query_one(Static))
        assert "Nodes" in keys and "drain the selected node" in keys
        await pilot.press("escape")
        slow.event.set()

    drive(app, scenario)


@pytest.mark.e2e
def test_attach_shows_the_cluster_and_drains_over_http(
    pg_server: PgServer, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`jobdeck attach` on a headless cluster node: the cluster line from `/status`, the
    Nodes tab from `GET /cluster` and `/cluster/leases`, drain and undrain as
    `POST /cluster/nodes/{name}/drain|undrain`."""
    config = tmp_path / "jobs.toml"
    config.write_text(ATTACH_CONFIG)
    monkeypatch.setenv("JOBDECK_API_TOKEN", TOKEN)
    process = Jobdeck(
        ["--no-ui", "--config", str(config), "--store", url(pg_server, pg_dsn),
         "--log-format", "json", "--http", "127.0.0.1:0"],
        REPO,
    )
    try:
        events = process.wait_for(
            lambda ev: any(e["event"] == "orchestrator_started" for e in ev), timeout=WITHIN
        )
        started = next(e for e in events if e["event"] == "orchestrator_started")
        app = attached_app(f"http://{started['http']}")

        async def scenario(pilot: Pilot[Any]) -> None:
            await until(pilot, lambda: "1 node ·" in cluster_text(app), "the cluster line",
                        WITHIN)
            assert "this node " in cluster_text(app)
            await pilot.press("5")
            table = app.deck.node_table
            await until(pilot, lambda: table.row_count == 1, "the node's row", WITHIN)
            (name,) = [str(node["name"]) for node in table.nodes.values()]
            assert node_cell(table, name, "name") == f"{name} (here)"
            await pilot.press("d")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")

            def state() -> str:
                return str(sql(pg_dsn, "SELECT state FROM jd_nodes")[0][0])

            await until(pilot, lambda: state() == "draining", "drained over HTTP", WITHIN)
            await until(pilot, lambda: " draining " in cluster_text(app),
                        "the cluster line says draining", WITHIN)
            await pilot.press("u")
            await until(pilot, lambda: state() == "active", "undrained over HTTP", WITHIN)

        drive(app, scenario)
    finally:
        process.kill()
        process._reader.join(timeout=5)
        for stream in (process.proc.stdout, process.proc.stderr):
            if stream is not None:
                stream.close()


ATTACH_CONFIG = """
[workers.alpha]
fn = "tests.tui.workers:ok"
mode = "triggered"
"""


def test_the_database_is_shown_without_its_password() -> None:
    """`pg://host/db` (the port when not 5432) from a URL or key=value string, never the
    password; an unreadable string still gives a line, not an error."""
    assert short_target("postgresql://jd:hunter2@db.example:5433/jobs") == (
        "pg://db.example:5433/jobs"
    )
    assert short_target("postgresql://jd:hunter2@db.example/jobs") == "pg://db.example/jobs"
    assert short_target("host=/run/pg port=5432 dbname=jd password=x user=u") == "pg:///run/pg/jd"
    assert short_target("host='unclosed") == "pg://?"
