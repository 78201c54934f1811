"""What a failure of SQLite means for the store's callers, as a StoreError."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ._errors import StoreError


def store_error(path: Path, what: str, exc: sqlite3.Error) -> StoreError:
    """The StoreError telling that the store at `path` `what` ("cannot be read"...)."""
    name = getattr(exc, "sqlite_errorname", "")
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        return StoreError(
            f"store {path} is corrupt or not a jobdeck store ({exc}); "
            "move it aside to start afresh"
        )
    if name == "SQLITE_READONLY":
        return StoreError(f"store {path} is read-only ({exc})")
    if name == "SQLITE_FULL":
        return StoreError(f"store {path}: disk full ({exc})")
    return StoreError(f"store {path} {what}: {exc}")
