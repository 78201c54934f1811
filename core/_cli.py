"""The `jobdeck` command line: argument parsing, `check`, and the headless runner.

The dashboard lives in `tui`; it passes itself in as `run_ui`, so this module (like
all of `core`) never imports Textual.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import IO, Any

import attrs
import trio

from ._config import JobdeckConfig, load_config
from ._errors import ConfigError, StoreError
from ._events import Event, LogLine, OrchestratorStopped
from ._graph import dependency_order
from ._orchestrator import Orchestrator
from ._spec import Mode
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
    return Path(str(resources.files("demo_workers") / "demo.toml"))


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobdeck",
        description="Run background workers with a terminal dashboard, or headless.",
        epilog="Other commands: 'jobdeck check FILE' validates a config.",
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
        "--grace", metavar="SECONDS", type=_seconds, help="shutdown grace (overrides config)"
    )
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def main(argv: Sequence[str] | None = None, *, run_ui: UiRunner | None = None) -> int:
    """Entry point of the `jobdeck` command; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "check":
            return _check(args[1:])
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
    if options.http is not None:
        print("jobdeck: --http is not available yet", file=sys.stderr)
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
    """The store the options and config ask for (`--store` wins over the config)."""
    where = options.store or config.orchestrator.store
    history = config.orchestrator.history_per_worker
    if where in (None, ":memory:"):
        # The SQLite store is not built yet: state lives in memory until it is.
        return MemoryStore(history_per_worker=history)
    raise StoreError(f"store {where!r}: only ':memory:' is supported so far")


# ---------------------------------------------------------------------- headless


def run_headless(orch: Orchestrator, options: RunOptions, out: IO[str] | None = None) -> int:
    """Run the orchestrator without a UI, writing one line per event, until a signal."""
    stream = out if out is not None else sys.stdout
    formatter = json_line if options.log_format == "json" else text_line
    try:
        trio.run(_headless, orch, options, _LineWriter(stream, formatter))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:
        print(f"jobdeck: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


async def _headless(orch: Orchestrator, options: RunOptions, writer: _LineWriter) -> None:
    written = trio.Event()
    async with trio.open_nursery() as nursery:
        with orch.subscribe(max_buffer=100_000) as events:
            nursery.start_soon(_write_events, events, writer, written)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                nursery.start_soon(_stop_on_signals, signals, orch, options.grace)
                await nursery.start(orch.run)
                await orch.wait_stopped()
                await written.wait()
                if writer.stuck:
                    # Workers that ignore cancellation would keep the process alive for
                    # ever; everything is recorded and flushed, so leave without them.
                    writer.flush()
                    os._exit(EXIT_OK)
                nursery.cancel_scope.cancel()


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
        if self._broken:
            return
        try:
            self._stream.write(self._formatter(event) + "\n")
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            self._broken = True

    def flush(self) -> None:
        if not self._broken:
            try:
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                self._broken = True


def json_line(event: Event) -> str:
    """One JSON object: `ts`, `event`, then the event's fields."""
    return json.dumps(event.to_dict(), default=str, ensure_ascii=False)


_TEXT_FIRST = ("worker",)
_TEXT_SKIP = {"ts", "event", "worker"}


def text_line(event: Event) -> str:
    """One aligned line for people: time, event, worker, then key=value details."""
    data = event.to_dict()
    ts = data["ts"][11:23]
    worker = data.get("worker") or ""
    if isinstance(event, LogLine):
        details = f"{event.level:<7} {event.message}"
    else:
        details = " ".join(
            f"{key}={_text_value(value)}" for key, value in data.items() if key not in _TEXT_SKIP
        )
    return f"{ts}  {event.name:<21} {worker:<18} {details}".rstrip()


def _text_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, str) and " " not in value:
        return value
    return json.dumps(value, default=str, ensure_ascii=False)
