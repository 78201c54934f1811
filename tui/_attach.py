"""`jobdeck attach URL`: open the dashboard on a headless jobdeck's HTTP API."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from jobdeck._api_token import TOKEN_ENV, token_file_for, token_from_env
from jobdeck._exit import ExitCode
from jobdeck._offline_store import is_postgresql
from jobdeck._pg_store import PgStore

from ._remote import (
    ATTACHED_REFRESH_INTERVAL,
    HttpClient,
    RemoteBridge,
    RemoteOrchestrator,
    check_attachable,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobdeck attach",
        description="Open the dashboard on a headless jobdeck (--no-ui --http HOST:PORT). "
        "Quitting closes the dashboard only; the jobdeck attached to runs on.",
        epilog=f"The API token comes from {TOKEN_ENV}, else from --token-file, else from "
        "the file beside --store (STORE.token), as the headless jobdeck wrote it (for "
        "--store postgresql://…, the token file this machine's nodes of that cluster share).",
    )
    parser.add_argument("url", metavar="URL", help="the API's address, e.g. http://127.0.0.1:8765")
    parser.add_argument("--token-file", metavar="PATH", help="file holding the API token")
    parser.add_argument(
        "--store", metavar="PATH",
        help="the node's store: its token is PATH.token (a cluster's: the nodes' shared file)",
    )
    return parser


def _token(options: argparse.Namespace) -> str | None:
    token = token_from_env(os.environ)
    if token is not None:
        return token
    path = options.token_file
    if path is None and options.store is not None:
        if is_postgresql(options.store):
            # a cluster's: the file its nodes on this machine share, named for the database
            path = str(token_file_for(PgStore(options.store), Path("jobs.toml")))
        else:
            path = f"{options.store}.token"
    if path is None:
        return None
    try:
        return Path(path).expanduser().read_text().strip() or None
    except OSError as exc:
        raise ValueError(f"cannot read the token file {path}: {exc.strerror}") from None


def attach_main(args: list[str]) -> int:
    """Run `jobdeck attach`; returns the exit code."""
    options = _parser().parse_args(args)
    try:
        token = _token(options)
        client = HttpClient(options.url, token)
    except ValueError as exc:
        print(f"jobdeck attach: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    problem = asyncio.run(check_attachable(client))
    if problem is not None:
        print(f"jobdeck attach: {problem}", file=sys.stderr)
        return ExitCode.USAGE
    from .app import DeckApp, _serve

    orch = RemoteOrchestrator(client)
    bridge = RemoteBridge(orch)
    app = DeckApp(orch, title=f"attached to {client.netloc}", bridge=bridge,  # type: ignore[arg-type]
                  refresh_interval=ATTACHED_REFRESH_INTERVAL)
    return asyncio.run(_serve(app))
