"""A throwaway PostgreSQL server, for the cluster tests and `python -m bench cluster`.

Made with the real binaries (`initdb`, `pg_ctl`) in a temporary folder, on a Unix socket
and 127.0.0.1 (a free port), with fsync off. `initdb` and `postgres` refuse to run as
root, so as root they run as the `postgres` account (`runuser`), in a folder that
account owns. Plain Python (no pytest): the tests' fixture turns `NoServer` into a skip,
the benchmark into a skipped line.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs


class NoServer(Exception):
    """No server can be started here; the message says how to get one."""


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
    bindir: Path | None = None
    #: the command prefix that runs the server's binaries as `postgres` (as root).
    as_user: tuple[str, ...] = ()
    options: str = ""

    @property
    def data(self) -> Path:
        return self.socket_dir / "data"

    def dsn(self, dbname: str = "postgres", **extra: str) -> str:
        params = {"host": str(self.socket_dir), "port": str(self.port), "dbname": dbname,
                  "user": "postgres", **extra}
        return " ".join(f"{k}={v}" for k, v in params.items())

    def tcp_dsn(self, dbname: str, user: str, password: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run `pg_ctl -D <data> ARGS` as the server's account."""
        assert self.bindir is not None
        return subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args],
            check=check, capture_output=True, cwd=self.socket_dir,
        )

    def restart(self) -> None:
        """Stop the server (fast: connections are cut) and start it again, waiting."""
        self.pg_ctl("-l", str(self.socket_dir / "log"), "-w", "-m", "fast", "-o",
                    self.options, "restart")

    def stop(self) -> None:
        """Stop the server at once (immediate) and remove its folder (again: nothing)."""
        if not self.socket_dir.exists():
            return
        if self.bindir is not None:
            self.pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def start_server(settings: Sequence[str] = ()) -> PgServer:
    """Make and start a throwaway server; `settings` are extra `name=value` options.

    Raises:
        NoServer: no server binaries here, or no account to run them as (as root).
        RuntimeError: the binaries exist but the server did not start (its log attached).
    """
    bindir = find_server_bin()
    if bindir is None:
        raise NoServer(
            "no PostgreSQL server binaries (initdb, pg_ctl) in PATH or /usr/lib/postgresql/*/bin:"
            " install them with `apt-get install postgresql`"
        )
    as_user: tuple[str, ...] = ()
    uid_gid: tuple[int, int] | None = None
    if os.geteuid() == 0:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise NoServer(
                "running as root and there is no `postgres` account to run the server"
                " as: `apt-get install postgresql` creates it"
            ) from None
        as_user, uid_gid = ("runuser", "-u", "postgres", "--"), (pw.pw_uid, pw.pw_gid)
    root = Path(tempfile.mkdtemp(prefix="jobdeck-pg-"))
    if uid_gid is not None:
        os.chown(root, *uid_gid)
    port = _free_port()
    options = " ".join(
        [f"-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
         f" -c listen_addresses=127.0.0.1 -p {port} -k {root} -c max_connections=200",
         *(f"-c {s}" for s in settings)]
    )
    server = PgServer(socket_dir=root, port=port, bindir=bindir, as_user=as_user,
                      options=options)
    try:
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(server.data), "-U", "postgres",
             "-E", "UTF8", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"],
            check=True, capture_output=True, cwd=root,
        )
        server.pg_ctl("-l", str(root / "log"), "-w", "-o", options, "start")
    except subprocess.CalledProcessError as exc:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr!r}\n{log}") from None
    return server


@contextmanager
def throwaway_server(settings: Sequence[str] = ()) -> Iterator[PgServer]:
    """A server for the block, stopped and removed at its end (see `start_server`)."""
    server = start_server(settings)
    try:
        yield server
    finally:
        server.stop()
