"""The PostgreSQL store meets the Store contract, and says clearly what is wrong when it cannot.

On trio's real clock: the store works in threads (STYLE.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import psycopg
import pytest
import trio

from jobdeck import Store, StoreError
from jobdeck._pg_schema import SCHEMA_VERSION
from jobdeck._pg_store import PgStore

from ..core.store_contract import MakeStore, StoreContract
from .conftest import ROLE, ROLE_PASSWORD, PgServer


class TestPgStore(StoreContract):
    """PgStore: a restart is a new store on the same database."""

    @pytest.fixture
    def make_store(self, pg_server: PgServer) -> Iterator[MakeStore]:
        numbers = itertools.count()
        made: list[str] = []

        def make_store(*, history_per_worker: int = 200) -> Store:
            name = f"jd_contract_{next(numbers)}"
            with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
            made.append(name)
            return PgStore(pg_server.dsn(name), history_per_worker=history_per_worker)

        yield make_store
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            for name in made:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    async def reopen(self, store: Store) -> Store:
        assert isinstance(store, PgStore)
        return PgStore(store.dsn, history_per_worker=store.history_per_worker)


async def test_three_nodes_opening_at_once_migrate_once(pg_dsn: str) -> None:
    """Three stores opening an empty database together create the schema once, no error."""
    stores = [PgStore(pg_dsn) for _ in range(3)]
    try:
        async with trio.open_nursery() as nursery:
            for store in stores:
                nursery.start_soon(store.open)
    finally:
        for store in stores:
            await store.close()
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT version FROM jd_schema").fetchall() == [(SCHEMA_VERSION,)]
        assert conn.execute("SELECT count(*) FROM jd_cluster").fetchone() == (1,)


async def test_a_newer_schema_is_refused(pg_dsn: str) -> None:
    """A database migrated by a newer jobdeck is refused with a StoreError saying so."""
    store = PgStore(pg_dsn)
    await store.open()
    await store.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE jd_schema SET version = version + 1")
    again = PgStore(pg_dsn)
    with pytest.raises(StoreError, match=rf"schema is version {SCHEMA_VERSION + 1}, newer"):
        await again.open()
    await again.close()


async def test_an_unreachable_server_is_a_clear_error() -> None:
    """Nothing listening: a StoreError naming host, port and database."""
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = PgStore(f"postgresql://someone:hunter2@127.0.0.1:{port}/jobs?connect_timeout=2")
    with pytest.raises(StoreError) as caught:
        await store.open()
    message = str(caught.value)
    assert f"127.0.0.1:{port}/jobs" in message and "cannot connect" in message
    assert "hunter2" not in message


async def test_wrong_credentials_are_a_clear_error(pg_server: PgServer, pg_dsn: str) -> None:
    """A wrong password: a StoreError naming the server and database, never the password."""
    dbname = pg_dsn.split("dbname=")[1].split()[0]
    store = PgStore(pg_server.tcp_dsn(dbname, ROLE, "not-" + ROLE_PASSWORD))
    with pytest.raises(StoreError) as caught:
        await store.open()
    message = str(caught.value)
    assert f"{ROLE}@127.0.0.1:{pg_server.port}/{dbname}" in message
    assert "password authentication failed" in message
    assert ROLE_PASSWORD not in message


async def test_right_credentials_over_tcp_open(pg_server: PgServer, pg_dsn: str) -> None:
    """The same role with its password opens the store over TCP."""
    dbname = pg_dsn.split("dbname=")[1].split()[0]
    store = PgStore(pg_server.tcp_dsn(dbname, ROLE, ROLE_PASSWORD))
    try:
        assert (await store.open()).dlq_size == 0
    finally:
        await store.close()
