"""What a store says about the past, for `jobdeck plan --store`: read-only, lock-free.

A plan may read the store of a jobdeck that is running: it opens the file read-only
(SQLite's `mode=ro`; WAL lets a reader in beside the writer) and does not take the
owner's lock, so it neither waits for nor disturbs the owner.
"""

from __future__ import annotations

import math
import sqlite3
import statistics
from collections import defaultdict
from pathlib import Path

from ._errors import StoreError
from ._plan import History
from ._sqlite_rows import records, worker_of
from ._sqlite_schema import schema_version

#: How long to wait for the owner's writer to let go of the file, at most.
BUSY_TIMEOUT_SECONDS = 5.0


def read_history(path: str | Path) -> History:
    """Each worker's stored state, and the median duration of its succeeded runs.

    Damaged rows are left out, as when jobdeck opens the store.

    Raises:
        StoreError: no such file, or it is not a jobdeck store (or one newer than this
            jobdeck), or it cannot be read.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise StoreError(f"store {path}: no such file")
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS
        )
    except sqlite3.Error as exc:
        raise StoreError(f"store {path} cannot be opened: {exc}") from None
    try:
        if schema_version(conn, path) == 0:
            raise StoreError(f"store {path} is not a jobdeck store (it is empty)")
        # One read transaction: states and durations as of one moment.
        conn.execute("BEGIN")
        states, _ = records(conn, "workers", "name", worker_of, "SELECT * FROM workers")
        durations: dict[str, list[float]] = defaultdict(list)
        for name, seconds in conn.execute(
            "SELECT worker, duration_s FROM runs"
            " WHERE status = 'succeeded' AND duration_s IS NOT NULL"
        ):
            if isinstance(seconds, int | float) and 0 < seconds < math.inf:
                durations[name].append(seconds)
    except sqlite3.Error as exc:
        raise StoreError(f"store {path} cannot be read: {exc}") from None
    finally:
        conn.close()
    return History(
        workers={state.name: state for state in states},
        median_seconds={name: statistics.median(found) for name, found in durations.items()},
    )
