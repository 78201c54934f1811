"""What a failure of SQLite means for the store's callers, as a StoreError.

Failures are told apart by the sqlite3 exception's primary result code (its
`sqlite_errorname` up to any extended suffix), else by its class:

- the store is unusable as a whole (corrupt, not a database): StoreError itself;
- the store cannot take the write now (full, locked, I/O error...): StoreUnavailable;
- the write itself can never be stored (constraint, mismatch, text SQLite cannot
  encode...): StoreRejected.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ._errors import StoreError, StoreRejected, StoreUnavailable

_BROKEN = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
#: A statement or value SQLite refuses, whenever it is tried (a schema mismatch is an
#: SQLITE_ERROR: "no such table", "table has no column"...).
_REJECTED = frozenset({
    "SQLITE_CONSTRAINT", "SQLITE_MISMATCH", "SQLITE_TOOBIG", "SQLITE_RANGE", "SQLITE_ERROR",
    "SQLITE_MISUSE",
})
#: Exceptions without a result code that say the same.
_REJECTED_CLASSES = (
    sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError,
    sqlite3.InterfaceError, sqlite3.NotSupportedError,
)


def store_error(path: Path, what: str, exc: sqlite3.Error) -> StoreError:
    """The StoreError telling that the store at `path` `what` ("cannot be read"...).

    Anything not known to be permanent is StoreUnavailable: retrying it loses nothing.
    """
    name = getattr(exc, "sqlite_errorname", None) or ""
    primary = "_".join(name.split("_", 2)[:2])  # SQLITE_IOERR_WRITE: SQLITE_IOERR
    if primary in _BROKEN:
        return StoreError(
            f"store {path} is corrupt or not a jobdeck store ({exc}); "
            "move it aside to start afresh"
        )
    if primary in _REJECTED or (not primary and isinstance(exc, _REJECTED_CLASSES)):
        return StoreRejected(f"store {path} {what}: {exc}")
    if name == "SQLITE_READONLY_DBMOVED":
        return StoreUnavailable(f"store {path} was deleted or replaced while jobdeck ran")
    if primary == "SQLITE_READONLY":
        return StoreUnavailable(f"store {path} is read-only ({exc})")
    if primary == "SQLITE_FULL":
        return StoreUnavailable(f"store {path}: disk full ({exc})")
    if primary in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        return StoreUnavailable(f"store {path} is locked by another connection ({exc})")
    return StoreUnavailable(f"store {path} {what}: {exc}")


def unencodable(path: Path, exc: Exception) -> StoreRejected:
    """The error for a write whose values cannot be stored (raised while encoding or
    binding them: a lone surrogate, a payload JSON cannot encode, an integer too big)."""
    return StoreRejected(f"store {path} cannot hold this write: {exc}")


#: Raised by Python while encoding or binding a write's values: the write is rejected.
UNENCODABLE = (ValueError, TypeError, OverflowError)


def write_failure(path: Path, exc: Exception) -> Exception:
    """What the caller of a failed write is told: a StoreError of the right kind, or
    `exc` itself when it is not the store's (UnknownDeadLetter)."""
    if isinstance(exc, sqlite3.Error):
        return store_error(path, "cannot be written", exc)
    if isinstance(exc, UNENCODABLE):
        return unencodable(path, exc)
    return exc
