"""A throwaway PostgreSQL for the cluster tests: one server per session, one database per test.

The server is `tests.pgserver`'s (shared with `python -m bench cluster`). Where no server
binary exists, every test here is skipped with a reason that says how to get one.
"""

from __future__ import annotations

import inspect
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.pgserver import NoServer, PgServer, start_server

HERE = Path(__file__).parent
#: The password of the role the credential tests log in as over TCP.
ROLE, ROLE_PASSWORD = "jd_user", "s3cret-pw"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Cluster tests run in trio mode (on the real clock: the store works in threads)."""
    for item in items:
        fn = getattr(item, "function", None)
        if HERE in Path(str(item.fspath)).parents and inspect.iscoroutinefunction(fn):
            item.add_marker(pytest.mark.trio)


@contextmanager
def throwaway_server() -> Iterator[PgServer]:
    """A new PostgreSQL server with the tests' password role, stopped and removed when
    the block ends (skips the test where there is no server binary to start)."""
    try:
        server = start_server()
    except NoServer as exc:
        pytest.skip(str(exc))
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}'")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the whole session, stopped and removed at its end."""
    with throwaway_server() as server:
        yield server


_numbers = itertools.count()


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database (from template0) for one test, dropped after it."""
    name = f"jd_test_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE template0 OWNER {ROLE}")
    try:
        yield pg_server.dsn(name)
    finally:
        with psycopg.connect(pg_server.dsn(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
