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
    """Where a generated token is written: beside the store file (`jobs.db.token`); for
    a cluster's database, in the state folder, named for the database (`pg-host-db-….token`:
    shared by the nodes on this machine); else in the state folder (`<config name>.token`)."""
    if isinstance(store, SQLiteStore):
        return store.path.with_name(store.path.name + ".token")
    shared_name = getattr(store, "token_file_name", None)
    if callable(shared_name):
        return default_store_path(config_path).parent / shared_name()
    return default_store_path(config_path).with_suffix(".token")


def is_shared(store: Store) -> bool:
    """Whether the store is a cluster's: its nodes share one token file on a machine."""
    return callable(getattr(store, "token_file_name", None))


def write_token_file(path: Path, token: str) -> None:
    """Write `token` to `path`, readable by its owner only (mode 0600), atomically.

    Raises:
        HttpApiError: the file or its folder cannot be written.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        _write_private(temporary, token)
        os.replace(temporary, path)
    except OSError as exc:
        with suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise _unwritable(path, exc) from None


def shared_token(path: Path) -> str:
    """The token in `path`, or a new one written there if there is none yet.

    The nodes of one cluster on one machine share the file, so each answers to the same
    token: the first to start makes it (created exclusively, so two starting at once
    cannot each write their own), the others read it.

    Raises:
        HttpApiError: the file cannot be read or written.
    """
    for _ in range(20):
        try:
            token = path.read_text(encoding="utf-8", errors="replace").strip()
        except FileNotFoundError:
            token = ""
        except OSError as exc:
            raise _unwritable(path, exc) from None
        if token:
            return token
        token = new_token()
        # (a name of its own: two nodes, or two threads of one process, never share it)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            _write_private(temporary, token)
            os.link(temporary, path)  # whole, and only if no other node made it first
            return token
        except FileExistsError:
            continue  # another node's: read it
        except OSError as exc:
            raise _unwritable(path, exc) from None
        finally:
            with suppress(OSError):
                temporary.unlink(missing_ok=True)
    raise HttpApiError(f"the API token file {path} stays empty; set {TOKEN_ENV} instead")


def _write_private(path: Path, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # exact, whatever the umask
        os.write(descriptor, (token + "\n").encode())
    finally:
        os.close(descriptor)


def _unwritable(path: Path, exc: OSError) -> HttpApiError:
    return HttpApiError(
        f"cannot write the API token file {path}: {exc.strerror or exc}; set {TOKEN_ENV} instead"
    )
