"""Which store an offline command (`jobdeck dlq`, `jobdeck runs`) works on.

`--store PATH`, or `--config FILE` for that config's store (its `[orchestrator] store`,
else its default store). The command opens the store like the orchestrator does, taking
its lock, so it refuses while a jobdeck runs on it.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import StoreError
from ._sqlite_store import SQLiteStore, adopt_legacy_store

if TYPE_CHECKING:
    from ._pg_store import PgStore

Commands = argparse._SubParsersAction  # type: ignore[type-arg]


def offline_parser(
    prog: str, what: str
) -> tuple[argparse.ArgumentParser, Commands, argparse.ArgumentParser]:
    """The parser of an offline command on `what` (say "Dead letters"): the parser, its
    subcommands, and the options every subcommand takes (`parents=[...]`)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"{what} of a store no jobdeck is running on: --store PATH, or "
        "--config FILE for that config's store.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    return parser, commands, _store_options()


def _store_options() -> argparse.ArgumentParser:
    """The options every offline command takes: where its store is, and `--json`."""
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--store", metavar="PATH", help="the store file")
    where.add_argument(
        "--config", metavar="FILE",
        help="use this config's store (its `store`, or its default store)",
    )
    common.add_argument("--json", action="store_true", help="print JSON")
    return common


def is_postgresql(where: str) -> bool:
    """Whether a `--store` names a cluster's PostgreSQL database, not a file."""
    return where.startswith(("postgresql://", "postgres://"))


def offline_store_path(options: argparse.Namespace) -> Path | str:
    """The existing store file that `--store` or `--config` names, or a cluster's URL.

    Raises:
        StoreError: neither is given, the store keeps nothing (`:memory:`), the config
            cannot be read, or the file does not exist.
    """
    if options.store is not None:
        if options.store == ":memory:":
            raise StoreError("store :memory: keeps nothing between runs: give a store file")
        if is_postgresql(options.store):
            return str(options.store)
        path = Path(options.store).expanduser()
    elif options.config is not None:
        found = _store_of_config(Path(options.config))
        if isinstance(found, str):
            return found
        path = found
    else:
        # The bundled demo keeps its state in memory: there is no store to guess.
        raise StoreError("which store? give --store PATH or --config FILE")
    # Opening would create an empty store: a mistyped path must not look like an empty one.
    if not path.is_file():
        raise StoreError(f"store {path} does not exist")
    return path


def _store_of_config(config_path: Path) -> Path | str:
    """The config's `[orchestrator] store`, else the default store of that config."""
    try:
        with config_path.open("rb") as file:
            table = tomllib.load(file).get("orchestrator", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StoreError(f"cannot read config {config_path}: {exc}") from None
    configured = table.get("store") if isinstance(table, dict) else None
    if configured is None:
        return adopt_legacy_store(config_path, say=lambda text: print(text, file=sys.stderr))
    if configured == ":memory:":
        raise StoreError(f"config {config_path} uses store :memory:, which keeps nothing")
    if is_postgresql(str(configured)):
        return str(configured)
    path = Path(str(configured)).expanduser()
    return path if path.is_absolute() else config_path.parent / path


def offline_store(path: Path | str) -> SQLiteStore | PgStore:
    """The store at `path` (a SQLite file, or a cluster's URL), not opened yet."""
    if isinstance(path, str):
        from ._pg_store import PgStore  # psycopg loads only when asked for

        return PgStore(path, pool_size=1)
    return SQLiteStore(path)
