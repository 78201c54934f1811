"""Connections to PostgreSQL, used from trio through worker threads.

psycopg 3's async API is asyncio-only, so jobdeck uses its sync API in threads
(`trio.to_thread`), one connection per thread at a time: `PgPool.run(fn)` takes an idle
connection (or opens one, up to `size`), runs `fn(conn)` in one transaction in a
worker thread, and gives the connection back. psycopg's errors become jobdeck's:
a connection that fails is `StoreUnavailable` (transient: retried by `persist`), a
constraint or bad data `StoreRejected`; every message names the server and database,
never the password.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg
import trio
from psycopg import conninfo

from ._errors import NodeFenced, StoreError, StoreRejected, StoreUnavailable

T = TypeVar("T")

#: What `jd_claim` raises for a node whose lease expired (see _pg_schema).
FENCED_SQLSTATE = "JDF01"
#: Seconds a connection attempt may take before the server counts as unreachable.
CONNECT_TIMEOUT_S = 10


def describe_target(dsn: str) -> str:
    """`postgresql://user@host:port/db` for messages: the password left out."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql (an unreadable connection string)"
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = params.get("port")
    user = params.get("user")
    where = f"{user}@{host}" if user else host
    if port:
        where += f":{port}"
    return f"postgresql://{where}/{params.get('dbname') or user or ''}"


def _scrub(text: str, dsn: str) -> str:
    """`text` without the connection string's password, should the driver echo it."""
    try:
        password = conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        return text
    return text.replace(str(password), "***") if password else text


def connect(dsn: str, *, idle_in_transaction_s: float | None = None) -> psycopg.Connection:
    """A new autocommit connection whose timestamps come back in UTC.

    Args:
        idle_in_transaction_s: the server ends the session if it sits this long inside a
            transaction waiting for the client (one cut off between a statement and its
            commit would otherwise hold its locks until TCP gives up, hours on).

    Raises:
        StoreUnavailable: the server cannot be reached, or refuses the login.
    """
    kwargs: dict[str, object] = {"autocommit": True}
    if "connect_timeout" not in conninfo.conninfo_to_dict(dsn):
        kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        conn = psycopg.connect(dsn, **kwargs)  # type: ignore[arg-type]
        conn.execute("SET TIME ZONE 'UTC'")
        if idle_in_transaction_s is not None:
            conn.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                (f"{max(1, round(idle_in_transaction_s * 1000))}ms",),
            )
    except psycopg.OperationalError as exc:
        reason = _scrub(str(exc).strip().splitlines()[-1] if str(exc).strip() else "", dsn)
        raise StoreUnavailable(f"store {describe_target(dsn)}: cannot connect: {reason}") from None
    return conn


def store_error(exc: psycopg.Error, dsn: str) -> StoreError | NodeFenced:
    """The jobdeck error a psycopg error means: fenced, transient or permanent."""
    text = _scrub(" ".join(str(exc).split()), dsn)
    if exc.sqlstate == FENCED_SQLSTATE:
        return NodeFenced(text)
    where = describe_target(dsn)
    if isinstance(exc, (psycopg.IntegrityError, psycopg.DataError, psycopg.ProgrammingError)):
        return StoreRejected(f"store {where}: {text}")
    return StoreUnavailable(f"store {where}: {text}")


class PgPool:
    """Up to `size` connections, each used by one thread at a time; a transaction left
    waiting on its client for `idle_in_transaction_s` is ended by the server."""

    def __init__(
        self, dsn: str, *, size: int = 4, idle_in_transaction_s: float | None = None
    ) -> None:
        self.dsn = dsn
        self._idle_in_transaction_s = idle_in_transaction_s
        self.where = describe_target(dsn)
        self._limiter = trio.CapacityLimiter(size)
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    async def run(self, fn: Callable[[psycopg.Connection], T]) -> T:
        """`fn(conn)` in one transaction, in a worker thread.

        Raises:
            StoreUnavailable: the connection failed (it is dropped; retry later).
            StoreRejected: the database refused the statement for good.
        """
        return await trio.to_thread.run_sync(self._call, fn, limiter=self._limiter)

    async def run_autocommit(self, fn: Callable[[psycopg.Connection], T]) -> T:
        """`fn(conn)` with no transaction around it (it manages its own)."""
        return await trio.to_thread.run_sync(
            self._call, fn, False, limiter=self._limiter
        )

    def _call(self, fn: Callable[[psycopg.Connection], T], transaction: bool = True) -> T:
        if self._closed:
            raise StoreUnavailable(f"store {self.where}: closed")
        conn = self._take()
        try:
            if transaction:
                with conn.transaction():
                    result = fn(conn)
            else:
                result = fn(conn)
        except psycopg.Error as exc:
            if conn.broken or isinstance(exc, psycopg.OperationalError):
                conn.close()
            else:
                self._give(conn)
            raise store_error(exc, self.dsn) from None
        except Exception:
            # jobdeck's own (UnknownDeadLetter...): rolled back, the connection is fine
            self._give(conn)
            raise
        except BaseException:
            conn.close()
            raise
        self._give(conn)
        return result

    def _take(self) -> psycopg.Connection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
        return connect(self.dsn, idle_in_transaction_s=self._idle_in_transaction_s)

    def _give(self, conn: psycopg.Connection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    def discard_idle(self) -> None:
        """Close the idle connections (the pool stays usable: it opens new ones)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    async def close(self) -> None:
        """Close every idle connection; those in use close when given back."""
        with self._lock:
            self._closed = True
        self.discard_idle()
