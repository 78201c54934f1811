"""The `jobdeck` command line: argument parsing, `check`, and the headless runner.

The dashboard lives in `tui`; it passes itself in as `run_ui`, so this module (like
all of `core`) never imports Textual.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from functools import partial
from importlib import resources
from pathlib import Path
from typing import IO, Any

import attrs
import trio

from ._config import JobdeckConfig, load_config
from ._dlq_cli import dlq_main
from ._errors import ConfigError, StoreError
from ._events import Event, OrchestratorStopped
from ._graph import dependency_order
from ._logformat import STATUS_INTERVAL_S, status_line, text_line, use_colour
from ._orchestrator import Orchestrator
from ._spec import Mode, seconds_problem
from ._sqlite import SQLiteStore, default_store_path
from ._store import MemoryStore, Store
from ._worklog import WORKER_LOGGER

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE = 0, 1, 2


@attrs.frozen(kw_only=True)
class RunOptions:
    """What the command line asked for, after parsing."""

    config_path: Path
    is_demo: bool
    ui: bool
    store: str | None
    log_format: str
    log_level: str
    http: str | None
    grace: float | None


#: Runs the dashboard: (orchestrator, config, options) -> exit code.
UiRunner = Callable[[Orchestrator, JobdeckConfig, RunOptions], int]


def demo_config_path() -> Path:
    """The bundled demo config (`demo_workers/demo.toml`)."""
    return Path(str(resources.files("jobdeck.demo_workers") / "demo.toml"))


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobdeck",
        description="Run background workers with a terminal dashboard, or headless.",
        epilog="Other commands: 'jobdeck check FILE' validates a config; "
        "'jobdeck dlq list|show|replay|delete|purge --store PATH' works on dead letters.",
    )
    parser.add_argument("--config", metavar="FILE", help="config file (default: the demo)")
    parser.add_argument("--no-ui", action="store_true", help="run headless, logging events")
    parser.add_argument("--store", metavar="PATH", help="state store file, or :memory:")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        type=str.lower,
        help="lowest level of worker log lines shown (default: info)",
    )
    parser.add_argument("--http", metavar="HOST:PORT", help="serve the HTTP API (headless)")
    parser.add_argument(
        "--grace", metavar="SECONDS", type=_grace_seconds, help="shutdown grace (overrides config)"
    )
    return parser


def _grace_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    # The range of `shutdown_grace_seconds`, which this option overrides.
    problem = seconds_problem(value, zero=True)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def main(argv: Sequence[str] | None = None, *, run_ui: UiRunner | None = None) -> int:
    """Entry point of the `jobdeck` command; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "check":
            return _check(args[1:])
        if args and args[0] == "dlq":
            return dlq_main(args[1:])
        return _run(args, run_ui)
    except KeyboardInterrupt:
        return EXIT_OK


def _importable_beside(config_path: Path) -> None:
    """Let `fn = "my_jobs:run"` name a module that sits next to the config file."""
    folder = str(config_path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)


def _check(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="jobdeck check", description="Validate a config.")
    parser.add_argument("file", metavar="FILE")
    options = parser.parse_args(args)
    _importable_beside(Path(options.file))
    try:
        config = load_config(options.file)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"{options.file}: {count} problem{'s' * (count != 1)}", file=sys.stderr)
        return EXIT_USAGE
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    specs = {r.spec.name: r.spec for r in config.workers}
    print(f"{options.file}: OK, {len(specs)} workers")
    for name in dependency_order(specs):
        spec = specs[name]
        if spec.mode is Mode.SCHEDULED:
            when = f"cron {spec.cron!r}" if spec.cron else f"every {spec.interval_seconds:g}s"
        else:
            when = spec.mode.value
        after = f", after {', '.join(spec.depends_on)}" if spec.depends_on else ""
        print(f"  {name}: {when}, {spec.priority.label}{after}")
    return EXIT_OK


def _run(args: list[str], run_ui: UiRunner | None) -> int:
    options = _parse_run(args)
    _importable_beside(options.config_path)
    try:
        config = load_config(options.config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    if options.http is not None:
        if options.ui:
            print("jobdeck: --http serves the API when headless; add --no-ui", file=sys.stderr)
            return EXIT_USAGE
        # Imported only when asked for: starlette and hypercorn cost start-up time.
        from ._http import parse_address

        try:
            parse_address(options.http)
        except ValueError as exc:
            print(f"jobdeck: --http: {exc}", file=sys.stderr)
            return EXIT_USAGE
    logging.getLogger(WORKER_LOGGER).setLevel(options.log_level.upper())
    # Worker lines are written as events; keep stdlib's last-resort handler off stderr.
    logging.getLogger("jobdeck").addHandler(logging.NullHandler())
    logging.getLogger("jobdeck").propagate = False
    try:
        store = open_store(options, config)
    except StoreError as exc:
        print(f"jobdeck: {exc}", file=sys.stderr)
        return EXIT_USAGE
    orch = Orchestrator.from_config(config, store=store)
    if options.ui:
        if run_ui is None:
            print("jobdeck: the dashboard is not installed; use --no-ui", file=sys.stderr)
            return EXIT_USAGE
        return run_ui(orch, config, options)
    return run_headless(orch, options)


def _parse_run(args: list[str]) -> RunOptions:
    options = _run_parser().parse_args(args)
    is_demo = options.config is None
    return RunOptions(
        config_path=demo_config_path() if is_demo else Path(options.config),
        is_demo=is_demo,
        ui=not options.no_ui,
        store=options.store,
        log_format=options.log_format,
        log_level=options.log_level,
        http=options.http,
        grace=options.grace,
    )


def open_store(options: RunOptions, config: JobdeckConfig) -> Store:
    """The store the options and config ask for (`--store` wins over the config).

    Neither names one: `$XDG_STATE_HOME/jobdeck/<config name>.db`, its folder created.
    A relative `store` in the config is relative to the config file; `:memory:` keeps
    nothing. The store is opened (and its lock taken) when the orchestrator runs.

    Raises:
        StoreError: the default state folder cannot be created.
    """
    history = config.orchestrator.history_per_worker
    where = options.store if options.store is not None else config.orchestrator.store
    if where == ":memory:":
        return MemoryStore(history_per_worker=history)
    if where is None:
        path = default_store_path(options.config_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"store {path}: cannot create the folder {path.parent}: {exc.strerror}"
            ) from None
    else:
        path = Path(where).expanduser()
        if options.store is None and not path.is_absolute():
            path = options.config_path.parent / path
    return SQLiteStore(path, history_per_worker=history)


# ---------------------------------------------------------------------- headless


def run_headless(orch: Orchestrator, options: RunOptions, out: IO[str] | None = None) -> int:
    """Run the orchestrator without a UI, writing one line per event, until a signal.

    With `options.http` the HTTP API is served too: bound before the orchestrator starts
    (so `orchestrator_started` carries the address) and closed once it has stopped.
    """
    stream = out if out is not None else sys.stdout
    colour = options.log_format == "text" and use_colour(stream)
    formatter = json_line if options.log_format == "json" else partial(text_line, colour=colour)
    try:
        code: int = trio.run(_headless, orch, options, _LineWriter(stream, formatter), colour)
    except BaseException as exc:
        # orch.run fails inside a nursery, so its error arrives wrapped in a group.
        error = _single(exc)
        if isinstance(error, ConfigError):
            for problem in error.problems:
                print(problem, file=sys.stderr)
            return EXIT_USAGE
        if isinstance(error, StoreError):
            print(f"jobdeck: {error}", file=sys.stderr)
            return EXIT_USAGE
        raise
    return code


def _single(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-exception groups, or `exc` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def _headless(
    orch: Orchestrator, options: RunOptions, writer: _LineWriter, colour: bool = False
) -> int:
    code = EXIT_OK
    written = trio.Event()
    async with trio.open_nursery() as nursery:
        with orch.subscribe(max_buffer=100_000) as events:
            nursery.start_soon(_write_events, events, writer, written)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                nursery.start_soon(_stop_on_signals, signals, orch, options.grace)
                api = None
                if options.http is not None:
                    api = _HttpApi(orch, options)
                    if not await api.start(nursery):
                        nursery.cancel_scope.cancel()
                        return EXIT_USAGE
                await nursery.start(orch.run)
                settle_garbage_collector()
                if api is not None and not await api.publish_token():
                    code = EXIT_USAGE
                    orch.stop(0)
                if options.log_format == "text":
                    nursery.start_soon(_status_lines, orch, writer, colour)
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

    def __init__(self, orch: Orchestrator, options: RunOptions) -> None:
        from ._http import ApiServer, new_token, token_file_for, token_from_env

        assert options.http is not None
        self._orch = orch
        token = token_from_env(os.environ)
        # A generated token is written only once the store's lock is taken, so a second
        # jobdeck refused on the same store cannot overwrite the first one's token file.
        self._token_file = (
            token_file_for(orch.store, options.config_path) if token is None else None
        )
        self._token = token if token is not None else new_token()
        self._server = ApiServer(orch, options.http, token=self._token)

    async def start(self, nursery: trio.Nursery) -> bool:
        """Bind and serve; False (said on stderr) if the address cannot be bound."""
        from ._http import HttpApiError

        try:
            self._orch.http_address = await nursery.start(self._server.serve)
        except HttpApiError as exc:
            print(f"jobdeck: {exc}", file=sys.stderr)
            return False
        return True

    async def publish_token(self) -> bool:
        """Write a generated token (mode 0600) and say where on stderr; False on failure."""
        from ._http import TOKEN_ENV, HttpApiError, write_token_file

        if self._token_file is None:
            where = f"token from {TOKEN_ENV}"
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


async def _status_lines(orch: Orchestrator, writer: _LineWriter, colour: bool) -> None:
    """Every few seconds, one line for people: running n/max, pending, DLQ, health."""
    while True:
        await trio.sleep(STATUS_INTERVAL_S)
        if orch.stopped:
            return
        writer.write_line(status_line(orch.snapshot(), colour=colour))


async def _stop_on_signals(signals: Any, orch: Orchestrator, grace: float | None) -> None:
    async for _ in signals:
        orch.stop(grace)


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
            self._stream.write(line + "\n")
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            self._broken = True

    def flush(self) -> None:
        if not self._broken:
            try:
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                self._broken = True


def settle_garbage_collector() -> None:
    """Move everything alive after start-up (config, workers, modules) out of the
    collector's reach: full collections then walk only what runs create, instead of
    every worker's state (at 10,000 workers, a 60 ms pause that makes schedules late)."""
    gc.collect()
    gc.freeze()


def json_line(event: Event) -> str:
    """One JSON object: `ts`, `event`, then the event's fields."""
    return json.dumps(event.to_dict(), default=str, ensure_ascii=False)
