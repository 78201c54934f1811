"""A run's detail (its attempts and log lines) as JSON, the same in every store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ._records import Attempt, RunDetailDraft, RunLogLine


def attempts_text(attempts: Sequence[Attempt]) -> str:
    """A run's attempts as JSON text: one array per attempt."""
    return json.dumps([
        [a.number, a.started_at.isoformat(),
         None if a.ended_at is None else a.ended_at.isoformat(), a.duration_s, a.error,
         a.traceback]
        for a in attempts
    ])


def logs_text(lines: Sequence[RunLogLine]) -> str:
    """A run's log lines as JSON text: [time, level, message] each."""
    return json.dumps([[line.ts.isoformat(), line.level, line.message] for line in lines])


def detail_of_json(attempts: Any, logs: Any, logs_dropped: int) -> RunDetailDraft:
    """The detail from the decoded JSON of `attempts_text` and `logs_text`.

    Raises:
        ValueError: `attempts` or `logs` is not what those functions write (the message
            says which).
    """
    try:
        kept = tuple(
            Attempt(
                number=int(number), started_at=_moment(started),
                ended_at=None if ended is None else _moment(ended), duration_s=duration,
                error=error, traceback=traceback,
            )
            for number, started, ended, duration, error, traceback in attempts
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"attempts are not attempts ({exc})") from None
    try:
        lines = tuple(
            RunLogLine(ts=_moment(ts), level=str(level), message=str(message))
            for ts, level, message in logs
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"logs are not log lines ({exc})") from None
    return RunDetailDraft(attempts=kept, logs=lines, logs_dropped=logs_dropped)


def _moment(text: Any) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment
