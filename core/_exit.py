"""How a jobdeck process ends: its exit codes, and the error that ended the core."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """The exit codes of the `jobdeck` command, whatever runs: dashboard, headless or `dlq`."""

    #: A clean stop (a signal, `q`), or a command that did what it was asked.
    OK = 0
    #: Anything unexpected: a bug, with its traceback.
    UNEXPECTED = 1
    #: A usage or config error, or a store that cannot be used: a message, no traceback.
    USAGE = 2
    #: `jobdeck plan`: a worker falls behind (CI can gate a config change on it).
    BEHIND = 3


def leaf_exception(error: BaseException) -> BaseException:
    """The one exception inside (nested) single-exception groups, or `error` itself.

    The core fails inside a nursery, so what ended it arrives wrapped in a group.
    """
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
