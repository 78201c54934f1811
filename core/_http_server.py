"""The HTTP API's server: hypercorn's trio worker on a socket of our own, stopped gracefully.

The app it serves is `_http_app`; the token it checks comes from `_api_token`.
"""

from __future__ import annotations

import socket
from typing import cast

import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.typing import ASGIFramework

from ._errors import JobdeckError
from ._event_stream import EventStream
from ._http_app import create_app
from ._metrics import Metrics
from ._orchestrator import Orchestrator

DEFAULT_HOST = "127.0.0.1"
#: Seconds requests in progress get to finish once the server is told to close.
GRACEFUL_TIMEOUT_S = 5.0


class HttpApiError(JobdeckError, OSError):
    """The API cannot be served: the address cannot be bound, or the token not written."""


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT`, `PORT` or `[IPv6]:PORT` as (host, port); host defaults to
    127.0.0.1 and port 0 means any free port.

    Raises:
        ValueError: not an address with a port in 0-65535.
    """
    given = text.strip()
    if given.startswith("["):
        host, bracket, rest = given[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"expected [IPv6]:PORT, got {text!r}")
        port_text = rest[1:]
    elif given.count(":") > 1:
        raise ValueError(f"put an IPv6 host in brackets, like [::1]:8080; got {text!r}")
    elif ":" in given:
        host, _, port_text = given.partition(":")
    else:
        host, port_text = "", given
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"expected HOST:PORT with a port from 0 to 65535, got {text!r}")
    return host or DEFAULT_HOST, int(port_text)


def format_address(host: str, port: int) -> str:
    """`host:port`, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ApiServer:
    """Serves the API of one orchestrator with hypercorn's trio worker.

    Start it before the orchestrator so the address is known for `orchestrator_started`
    and the metrics see every run::

        server = ApiServer(orch, "127.0.0.1:0", token=token)
        orch.http_address = await nursery.start(server.serve)
        await nursery.start(orch.run)
        ...
        await orch.wait_stopped()
        server.close()
        await server.wait_closed()
    """

    def __init__(
        self,
        orch: Orchestrator,
        address: str,
        *,
        token: str,
        graceful_timeout: float = GRACEFUL_TIMEOUT_S,
    ) -> None:
        self._host, self._port = parse_address(address)
        self.metrics = Metrics(orch)
        self.event_stream = EventStream(orch)
        self.app = create_app(
            orch, token=token, metrics=self.metrics, event_stream=self.event_stream
        )
        #: The `host:port` actually bound, once `serve` has started.
        self.address: str | None = None
        self._config = Config()
        self._config.accesslog = None
        self._config.loglevel = "WARNING"  # errors and tracebacks still reach stderr
        self._config.graceful_timeout = graceful_timeout
        self._config.include_server_header = False
        self._shutdown = trio.Event()
        self._closed = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, report the bound `host:port` through `task_status`, serve until `close()`.

        Raises:
            HttpApiError: the address cannot be bound.
        """
        try:
            listener, self.address = await self._listen()
            with listener:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.metrics.run)
                    await nursery.start(self.event_stream.run)
                    await nursery.start(self._serve_http, listener, nursery.cancel_scope)
                    task_status.started(self.address)
        finally:
            self._closed.set()

    async def _listen(self) -> tuple[socket.socket, str]:
        """A listening socket of our own rather than hypercorn's: a bind error is ours to
        report (and its socket closed), and the socket is not inherited by processes
        workers start, which could otherwise hold the port after jobdeck exits."""
        where = format_address(self._host, self._port)
        try:
            found = await trio.socket.getaddrinfo(
                self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except OSError as exc:
            raise HttpApiError(f"cannot serve HTTP on {where}: {exc.strerror or exc}") from None
        family, kind, protocol, _, sockaddr = found[0]
        listener = socket.socket(family, kind, protocol)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(sockaddr)
            listener.listen(self._config.backlog)
            listener.setblocking(False)
        except OSError as exc:
            listener.close()
            raise HttpApiError(f"cannot serve HTTP on {where}: {exc.strerror or exc}") from None
        bound = listener.getsockname()
        return listener, format_address(bound[0], bound[1])

    async def _serve_http(
        self,
        listener: socket.socket,
        scope: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[list[str]],
    ) -> None:
        # hypercorn.trio.serve is this worker, minus a way to hand it our own socket.
        sockets = Sockets(secure_sockets=[], insecure_sockets=[listener], quic_sockets=[])
        await worker_serve(
            ASGIWrapper(cast(ASGIFramework, self.app)),
            self._config,
            sockets=sockets,
            shutdown_trigger=self._shutdown.wait,
            task_status=task_status,
        )
        scope.cancel()  # the metrics subscriber has nothing left to count for us

    def close(self) -> None:
        """Stop accepting; requests in progress get the graceful timeout to finish."""
        self._shutdown.set()

    async def wait_closed(self) -> None:
        """Return once the server has stopped and released its port."""
        await self._closed.wait()
