"""`jobdeck --no-ui`: the orchestrator without a dashboard, until a signal stops it.

One line per event on stdout (JSON or text for people, with a status line every few
seconds), SIGTERM and SIGINT stop it gracefully, SIGHUP reloads the config, and with
`--http` the HTTP API is served for as long as the orchestrator runs.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import IO, Any

import trio

from ._errors import ConfigError, NotRunning, StoreError
from ._events import Event, OrchestratorStopped
from ._exit import ExitCode, leaf_exception
from ._gc import settle_garbage_collector
from ._logformat import STATUS_INTERVAL_S, json_line, status_line, text_line, use_colour
from ._orchestrator import Orchestrator
from ._snapshot import OrchestratorSnapshot

#: Events the log writer may queue: enough for bursts, bounded all the same.
EVENT_BUFFER = 100_000

#: A snapshot as the periodic status line.
StatusFormatter = Callable[[OrchestratorSnapshot], str]


def run_headless(
    orch: Orchestrator,
    *,
    config_path: Path,
    log_format: str = "text",
    grace: float | None = None,
    http: str | None = None,
    out: IO[str] | None = None,
) -> int:
    """Run the orchestrator without a UI, writing one line per event, until a signal.

    With `http` the HTTP API is served too: bound before the orchestrator starts (so
    `orchestrator_started` carries the address) and closed once it has stopped.

    Args:
        orch: the orchestrator to run (not started yet).
        config_path: the config's file; a generated API token for a store that is not a
            file is written beside the state of this config.
        log_format: `json`, or `text` for people (with status lines).
        grace: shutdown grace on a signal; None uses the config's.
        http: the `HOST:PORT` to serve the HTTP API on, if any.
        out: where event lines go (default stdout).

    Returns:
        The exit code: 0 after a clean stop, 2 for a config or store error or an API that
        cannot be served.
    """
    stream = out if out is not None else sys.stdout
    status: StatusFormatter | None = None
    if log_format == "text":
        colour = use_colour(stream)
        writer = _LineWriter(stream, partial(text_line, colour=colour))
        status = partial(status_line, colour=colour)
    else:
        writer = _LineWriter(stream, json_line)
    try:
        code: int = trio.run(_headless, orch, writer, status, grace, http, config_path)
    except BaseException as exc:
        error = leaf_exception(exc)
        if isinstance(error, ConfigError):
            for problem in error.problems:
                print(problem, file=sys.stderr)
            return ExitCode.USAGE
        if isinstance(error, StoreError):
            print(f"jobdeck: {error}", file=sys.stderr)
            return ExitCode.USAGE
        raise
    return code


async def _headless(
    orch: Orchestrator,
    writer: _LineWriter,
    status: StatusFormatter | None,
    grace: float | None,
    http: str | None,
    config_path: Path,
) -> int:
    code = ExitCode.OK
    written = trio.Event()
    async with trio.open_nursery() as nursery:
        with orch.subscribe(max_buffer=EVENT_BUFFER) as events:
            nursery.start_soon(_write_events, events, writer, written)
            with trio.open_signal_receiver(
                signal.SIGTERM, signal.SIGINT, signal.SIGHUP
            ) as signals:
                nursery.start_soon(_on_signals, signals, orch, grace, config_path)
                api = None
                if http is not None:
                    api = _HttpApi(orch, http, config_path)
                    if not await api.start(nursery):
                        nursery.cancel_scope.cancel()
                        return ExitCode.USAGE
                await nursery.start(orch.run)
                settle_garbage_collector()
                if api is not None and not await api.publish_token():
                    code = ExitCode.USAGE
                    orch.stop(0)
                if status is not None:
                    nursery.start_soon(_status_lines, orch, writer, status)
                await orch.wait_stopped()
                await written.wait()
                if writer.stuck:
                    # Workers that ignore cancellation would keep the process alive for
                    # ever; everything is recorded and flushed, so leave without them.
                    writer.flush()
                    os._exit(code)
                if api is not None:
                    await api.close()
                nursery.cancel_scope.cancel()
    return code


class _HttpApi:
    """The headless HTTP API: bound first, its token published once the store is ours."""

    def __init__(self, orch: Orchestrator, address: str, config_path: Path) -> None:
        # Imported only when asked for: starlette and hypercorn cost start-up time.
        from ._api_token import is_shared, new_token, shared_token, token_file_for, token_from_env
        from ._http_server import ApiServer, HttpApiError

        self._orch = orch
        self._error: str | None = None
        token = token_from_env(os.environ)
        # A generated token is written only once the store's lock is taken, so a second
        # jobdeck refused on the same store cannot overwrite the first one's token file.
        # A cluster's nodes on one machine share theirs (the first makes it).
        self._token_file = (
            token_file_for(orch.store, config_path) if token is None else None
        )
        self._shared = self._token_file is not None and is_shared(orch.store)
        if token is None and self._shared:
            assert self._token_file is not None
            try:
                token = shared_token(self._token_file)
            except HttpApiError as exc:
                self._error = str(exc)
        self._token = token if token is not None else new_token()
        self._server = ApiServer(orch, address, token=self._token)

    async def start(self, nursery: trio.Nursery) -> bool:
        """Bind and serve; False (said on stderr) if the address cannot be bound."""
        from ._http_server import HttpApiError

        if self._error is not None:
            print(f"jobdeck: {self._error}", file=sys.stderr)
            return False
        try:
            self._orch.http_address = await nursery.start(self._server.serve)
        except HttpApiError as exc:
            print(f"jobdeck: {exc}", file=sys.stderr)
            return False
        return True

    async def publish_token(self) -> bool:
        """Write a generated token (mode 0600) and say where on stderr; False on failure."""
        from ._api_token import TOKEN_ENV, write_token_file
        from ._http_server import HttpApiError

        if self._token_file is None:
            where = f"token from {TOKEN_ENV}"
        elif self._shared:
            where = f"token in {self._token_file}, shared by this cluster's nodes here"
        else:
            try:
                await trio.to_thread.run_sync(write_token_file, self._token_file, self._token)
            except HttpApiError as exc:
                print(f"jobdeck: {exc}", file=sys.stderr)
                return False
            where = f"token in {self._token_file}"
        print(f"jobdeck: HTTP API on http://{self._orch.http_address}/ ({where})",
              file=sys.stderr, flush=True)
        return True

    async def close(self) -> None:
        """Stop accepting, let requests in progress finish, release the port."""
        self._server.close()
        await self._server.wait_closed()


async def _status_lines(
    orch: Orchestrator, writer: _LineWriter, status: StatusFormatter
) -> None:
    """Every few seconds, one line for people: running n/max, pending, DLQ, health."""
    while True:
        await trio.sleep(STATUS_INTERVAL_S)
        if orch.stopped:
            return
        writer.write_line(status(orch.snapshot()))


async def _on_signals(
    signals: Any, orch: Orchestrator, grace: float | None, config_path: Path
) -> None:
    """SIGTERM and SIGINT stop gracefully; SIGHUP reloads the config (the daemon
    convention: `ExecReload=/bin/kill -HUP $MAINPID`)."""
    async for signum in signals:
        if signum == signal.SIGHUP:
            reload_config(orch, config_path)
        else:
            orch.stop(grace)


def reload_config(orch: Orchestrator, config_path: Path) -> None:
    """Read the config again and apply it; what went wrong is in the event log
    (`config_reload_failed`), never the end of the process."""
    try:
        orch.reload_file(config_path)
    except (ConfigError, NotRunning):
        pass  # published as config_reload_failed; or stopping, when a reload is moot


async def _write_events(events: Any, writer: _LineWriter, written: trio.Event) -> None:
    async for event in events:
        writer.write(event)
    written.set()


class _LineWriter:
    """Writes each event as one line and flushes it; a closed stdout is not fatal."""

    def __init__(self, stream: IO[str], formatter: Callable[[Event], str]) -> None:
        self._stream = stream
        self._formatter = formatter
        self._broken = False
        self.stuck = 0

    def write(self, event: Event) -> None:
        if isinstance(event, OrchestratorStopped):
            self.stuck = event.stuck
        if not self._broken:
            self.write_line(self._formatter(event))

    def write_line(self, line: str) -> None:
        if self._broken:
            return
        try:
            try:
                self._stream.write(line + "\n")
            except UnicodeEncodeError:
                # Text the stream's encoding cannot take (a lone surrogate that got past
                # the engine, or an ASCII-only locale): escape it, never go silent.
                encoding = getattr(self._stream, "encoding", None) or "utf-8"
                safe = line.encode(encoding, "backslashreplace").decode(encoding)
                self._stream.write(safe + "\n")
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            # ValueError: the stream is closed. (UnicodeEncodeError is a ValueError too,
            # and handled above: it must not count as a closed pipe.)
            self._broken = True

    def flush(self) -> None:
        if not self._broken:
            try:
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                self._broken = True
