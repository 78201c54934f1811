"""`--store postgresql://...` on the command line makes this process a cluster node."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from jobdeck import ClusterConfig, JobdeckConfig, OrchestratorConfig
from jobdeck._cli import RunOptions, main, open_store
from jobdeck._pg_store import PgStore

from .conftest import PgServer

CONFIG = """
[workers.hello]
fn = "tests.core.sample_workers:ok"
mode = "triggered"
"""


def url(pg_server: PgServer, pg_dsn: str) -> str:
    dbname = pg_dsn.split("dbname=")[1].split()[0]
    return f"postgresql:///{dbname}?host={pg_server.socket_dir}&port={pg_server.port}&user=postgres"


def test_a_postgresql_url_opens_a_pg_store(tmp_path: Path) -> None:
    """`--store postgresql://…` gives a PgStore on that URL, with the config's history
    and its `[cluster]` settings."""
    options = RunOptions(
        config_path=tmp_path / "jobs.toml", is_demo=False, ui=False,
        store="postgresql://db.example/jobs", log_format="json", log_level="info",
        http=None, grace=None,
    )
    config = JobdeckConfig(
        path=None, orchestrator=OrchestratorConfig(history_per_worker=9), workers=(),
        cluster=ClusterConfig(node_name="n2", capacity=3, lease_seconds=4),
    )
    store = open_store(options, config)
    assert isinstance(store, PgStore)
    assert (store.dsn, store.history_per_worker) == ("postgresql://db.example/jobs", 9)
    assert (store.node_name, store.capacity, store.lease_seconds, store.heartbeat_seconds) == (
        "n2", 3, 4.0, 4 / 3
    )


def test_a_schema_newer_than_the_code_exits_2(
    tmp_path: Path, pg_server: PgServer, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database migrated by a newer jobdeck: exit 2 and a one-line reason, no traceback."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE jd_schema (one bool PRIMARY KEY DEFAULT true,"
                     " version int NOT NULL)")
        conn.execute("INSERT INTO jd_schema (version) VALUES (999)")
    config = tmp_path / "jobs.toml"
    config.write_text(CONFIG)
    code = main(["--no-ui", "--config", str(config), "--store", url(pg_server, pg_dsn)])
    err = capsys.readouterr().err
    assert code == 2
    assert "schema is version 999, newer than this jobdeck knows" in err
    assert "Traceback" not in err


def _dead_letter(dsn: str, worker: str = "hello") -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO jd_dlq (worker, trigger_id, source, payload, error, traceback,"
            " attempts, started_at, failed_at, run_id) VALUES (%s, 't1', 'manual',"
            " '{\"n\": 1}', 'RuntimeError: boom', 'Traceback...', 2, now(), now(), 'r1')"
            " RETURNING id", (worker,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_dlq_commands_work_on_a_cluster_store(
    pg_server: PgServer, pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`jobdeck dlq list|show|replay|delete|purge --store postgresql://…` act on the
    cluster's dead letters (a replay is a pending trigger any node may run)."""
    where = url(pg_server, pg_dsn)
    assert main(["dlq", "list", "--store", where]) == 0  # creates the schema: empty
    assert "No dead letters in postgresql://postgres@" in capsys.readouterr().out
    first, second, third = (_dead_letter(pg_dsn) for _ in range(3))
    assert main(["dlq", "list", "--store", where, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in listed] == [third, second, first]
    assert main(["dlq", "show", str(first), "--store", where]) == 0
    assert "RuntimeError: boom" in capsys.readouterr().out
    assert main(["dlq", "replay", str(first), "--store", where]) == 0
    assert "a node of the cluster runs it" in capsys.readouterr().out
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT worker, source, payload, state FROM jd_triggers"
                            ).fetchall() == [("hello", "replay", {"n": 1}, "pending")]
    assert main(["dlq", "delete", str(second), "--store", where]) == 0
    capsys.readouterr()
    assert main(["dlq", "delete", str(second), "--store", where]) == 2
    assert f"no dead-letter entry with id {second}" in capsys.readouterr().err
    assert main(["dlq", "purge", "--yes", "--store", where]) == 0
    assert "Purged 1 dead letter." in capsys.readouterr().out
