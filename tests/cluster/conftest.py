"""A throwaway PostgreSQL for the cluster tests: one server per session, one database per test.

The server is made with the real binaries (`initdb`, `pg_ctl`) in a temporary folder,
on a Unix socket and 127.0.0.1 (a free port), with fsync off. `initdb` and `postgres`
refuse to run as root, so as root they run as the `postgres` account (`runuser`), in a
folder that account owns. Where no server binary exists, every test here is skipped
with a reason that says how to get one.
"""

from __future__ import annotations

import glob
import inspect
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import psycopg
import pytest

HERE = Path(__file__).parent
#: The password of the role the credential tests log in as over TCP.
ROLE, ROLE_PASSWORD = "jd_user", "s3cret-pw"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Cluster tests run in trio mode (on the real clock: the store works in threads)."""
    for item in items:
        fn = getattr(item, "function", None)
        if HERE in Path(str(item.fspath)).parents and inspect.iscoroutinefunction(fn):
            item.add_marker(pytest.mark.trio)


def find_server_bin() -> Path | None:
    """The folder holding `initdb` and `pg_ctl`: PATH first, then Debian's layout."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@attrs.frozen
class PgServer:
    """A running throwaway server."""

    socket_dir: Path
    port: int
    #: `pg_ctl` and the data folder, to restart it (see `restart`).
    pg_ctl: tuple[str, ...] = ()
    data: Path | None = None

    def dsn(self, dbname: str = "postgres", **extra: str) -> str:
        params = {"host": str(self.socket_dir), "port": str(self.port), "dbname": dbname,
                  "user": "postgres", **extra}
        return " ".join(f"{k}={v}" for k, v in params.items())

    def tcp_dsn(self, dbname: str, user: str, password: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    def restart(self) -> None:
        """Stop the server (fast: connections are cut) and start it again, same port."""
        assert self.data is not None
        # (its log to a file: a server started on our pipes would hold them open)
        subprocess.run([*self.pg_ctl, "-D", str(self.data), "-l", str(self.socket_dir / "log"),
                        "-m", "fast", "-w", "restart"],
                       check=True, capture_output=True, cwd=self.socket_dir, timeout=120)


@contextmanager
def throwaway_server() -> Iterator[PgServer]:
    """A new PostgreSQL server, stopped and removed when the block ends (skips the
    test where there is no server binary to start)."""
    bindir = find_server_bin()
    if bindir is None:
        pytest.skip(
            "no PostgreSQL server binaries (initdb, pg_ctl) in PATH or /usr/lib/postgresql/*/bin:"
            " install them with `apt-get install postgresql`"
        )
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` account to run the server"
                        " as: `apt-get install postgresql` creates it")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="jobdeck-pg-"))
    if as_user:
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, port = root / "data", _free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, cwd=root)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
        options = (f"-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
                   f" -c listen_addresses=127.0.0.1 -p {port} -k {root} -c max_connections=200")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
            options, "start")
    except subprocess.CalledProcessError as exc:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr!r}\n{log}") from None
    server = PgServer(socket_dir=root, port=port, pg_ctl=(*as_user, str(bindir / "pg_ctl")),
                      data=data)
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}'")
        yield server
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, cwd=root)
        shutil.rmtree(root, ignore_errors=True)


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
