"""The HTTP API's bearer token: from `JOBDECK_API_TOKEN`, or generated into a 0600 file."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

from ._http_server import HttpApiError
from ._sqlite_store import SQLiteStore, default_store_path
from ._store import Store

TOKEN_ENV = "JOBDECK_API_TOKEN"


def token_from_env(environ: Mapping[str, str]) -> str | None:
    """The token set in `JOBDECK_API_TOKEN`, or None if unset or blank."""
    token = environ.get(TOKEN_ENV, "").strip()
    return token or None


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_file_for(store: Store, config_path: Path) -> Path:
    """Where a generated token is written: beside the store file (`jobs.db.token`), or
    for a store that is not a file, in the state folder (`<config name>.token`)."""
    if isinstance(store, SQLiteStore):
        return store.path.with_name(store.path.name + ".token")
    return default_store_path(config_path).with_suffix(".token")


def write_token_file(path: Path, token: str) -> None:
    """Write `token` to `path`, readable by its owner only (mode 0600), atomically.

    Raises:
        HttpApiError: the file or its folder cannot be written.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(descriptor, 0o600)  # exact, whatever the umask
            os.write(descriptor, (token + "\n").encode())
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except OSError as exc:
        with suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise HttpApiError(
            f"cannot write the API token file {path}: {exc.strerror or exc}; "
            f"set {TOKEN_ENV} instead"
        ) from None
