"""Exceptions raised by jobdeck.

Each one subclasses the builtin that matches its meaning, so callers that only know
Python's own exceptions still catch them sensibly.
"""

from __future__ import annotations


def describe(exc: BaseException) -> str:
    """`TypeName: message`, or the type's name alone when the message is empty (or
    cannot be made: a user's exception whose `__str__` raises)."""
    try:
        text = str(exc)
    except Exception:
        text = "<unprintable>"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class JobdeckError(Exception):
    """Base class of every error jobdeck raises on purpose."""


class ConfigError(JobdeckError, ValueError):
    """A configuration has one or more problems.

    Attributes:
        problems: one human-readable message per problem, each naming the file, the
            worker and the key involved.
    """

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class UnknownWorker(JobdeckError, LookupError):
    """A name was given that no registered worker has."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown worker {name!r}")


class UnknownDeadLetter(JobdeckError, LookupError):
    """A dead-letter id was given that the DLQ does not hold."""

    def __init__(self, entry_id: int) -> None:
        self.entry_id = entry_id
        super().__init__(f"no dead-letter entry with id {entry_id}")


class UnknownRun(JobdeckError, LookupError):
    """A run id was given that the history does not hold (never, or no longer)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}")


class NotRunning(JobdeckError, RuntimeError):
    """A control call needs a running orchestrator, and it is not running (any more)."""


class StoreError(JobdeckError, OSError):
    """The store cannot be opened, read or written.

    A failing write raises one of the two subclasses below when its cause is known;
    StoreError itself means the store as a whole is unusable: corrupt, not a jobdeck
    store, written by a newer jobdeck, or not open.
    """


class StoreUnavailable(StoreError):
    """The store cannot take this write now, through no fault of the write.

    Transient: the disk is full, the database is locked or busy, an I/O error, the store
    file is read-only or was deleted or replaced. A caller may retry it later, once the
    cause is gone.
    """


class StoreRejected(StoreError):
    """The store can never take this write: retrying it is pointless.

    Text it cannot encode (a lone surrogate such as "\\ud800" in an error message, a payload
    JSON cannot encode), a constraint violation, a datatype or schema mismatch.
    The other writes of the same batch are not affected.
    """


class StoreInUse(StoreError):
    """Another process owns the store."""


class LeaseLost(JobdeckError, RuntimeError):
    """A run's write carried a fencing token that no longer holds the run's lease.

    Its lease was taken away (the node was reaped or fenced): the write changed nothing,
    and the run's outcome is another holder's to record.
    """

    def __init__(self, worker: str, token: int) -> None:
        self.worker = worker
        self.token = token
        super().__init__(f"run of {worker!r} lost its lease (token {token})")


class NodeFenced(JobdeckError, RuntimeError):
    """This cluster node's lease expired and it was reaped: every lease it held is gone.

    It must stop what it runs (their results would be refused) and join again.
    """
