"""The `jobdeck` command line: argument parsing, `check`, and dispatch to the dashboard,
the headless runner (`_headless`), `jobdeck dlq` (`_dlq_cli`) or `jobdeck runs`
(`_runs_cli`).

The dashboard lives in `tui`; it passes itself in as `run_ui`, so this module (like
all of `core`) never imports Textual.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import attrs

from ._config import JobdeckConfig, load_config
from ._dlq_cli import dlq_main
from ._errors import ConfigError, StoreError
from ._exit import ExitCode
from ._graph import dependency_order
from ._headless import run_headless
from ._orchestrator import Orchestrator
from ._plan_cli import plan_main
from ._runs_cli import runs_main
from ._spec import Mode, seconds_problem
from ._sqlite_store import SQLiteStore, adopt_legacy_store, default_store_path
from ._store import Store
from ._store_memory import MemoryStore
from ._worklog import WORKER_LOGGER


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
        "'jobdeck plan FILE' simulates it (delays, who falls behind, slots); "
        "'jobdeck dlq list|show|replay|delete|purge --store PATH' works on dead letters; "
        "'jobdeck runs list|show --store PATH' shows run history.",
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
        if args and args[0] == "runs":
            return runs_main(args[1:])
        if args and args[0] == "plan":
            return plan_main(args[1:])
        return _run(args, run_ui)
    except KeyboardInterrupt:
        return ExitCode.OK


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
        return ExitCode.USAGE
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
    return ExitCode.OK


def _run(args: list[str], run_ui: UiRunner | None) -> int:
    options = _parse_run(args)
    _importable_beside(options.config_path)
    try:
        config = load_config(options.config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return ExitCode.USAGE
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    if options.http is not None:
        if options.ui:
            print("jobdeck: --http serves the API when headless; add --no-ui", file=sys.stderr)
            return ExitCode.USAGE
        # Imported only when asked for: starlette and hypercorn cost start-up time.
        from ._http_server import parse_address

        try:
            parse_address(options.http)
        except ValueError as exc:
            print(f"jobdeck: --http: {exc}", file=sys.stderr)
            return ExitCode.USAGE
    logging.getLogger(WORKER_LOGGER).setLevel(options.log_level.upper())
    # Worker lines are written as events; keep stdlib's last-resort handler off stderr.
    logging.getLogger("jobdeck").addHandler(logging.NullHandler())
    logging.getLogger("jobdeck").propagate = False
    try:
        store = open_store(options, config)
    except StoreError as exc:
        print(f"jobdeck: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    orch = Orchestrator.from_config(config, store=store)
    if options.ui:
        if run_ui is None:
            print("jobdeck: the dashboard is not installed; use --no-ui", file=sys.stderr)
            return ExitCode.USAGE
        return run_ui(orch, config, options)
    return run_headless(
        orch, config_path=options.config_path, log_format=options.log_format,
        grace=options.grace, http=options.http,
    )


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

    Neither names one: the bundled demo runs in memory (what a newcomer sees is always
    the tour); any other config has its default store, `$XDG_STATE_HOME/jobdeck/<config
    name>-<hash>.db`, its folder created (an older jobdeck's `<config name>.db` is taken
    over). A relative `store` in the config is relative to the config file; `:memory:`
    keeps nothing. The store is opened (and its lock taken) when the orchestrator runs.

    Raises:
        StoreError: the default state folder cannot be created.
    """
    history = config.orchestrator.history_per_worker
    where = options.store if options.store is not None else config.orchestrator.store
    if where == ":memory:" or (where is None and options.is_demo):
        return MemoryStore(history_per_worker=history)
    if where is not None and where.startswith(("postgresql://", "postgres://")):
        from ._pg_store import PgStore  # a cluster node; psycopg loads only when asked for

        cluster = config.cluster
        return PgStore(
            where, history_per_worker=history, node_name=cluster.node_name,
            capacity=cluster.capacity, lease_seconds=cluster.lease_seconds,
            heartbeat_seconds=cluster.heartbeat_seconds,
        )
    if where is None:
        path = default_store_path(options.config_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"store {path}: cannot create the folder {path.parent}: {exc.strerror}"
            ) from None
        path = adopt_legacy_store(
            options.config_path, say=lambda text: print(text, file=sys.stderr)
        )
    else:
        path = Path(where).expanduser()
        if options.store is None and not path.is_absolute():
            path = options.config_path.parent / path
    return SQLiteStore(path, history_per_worker=history)
