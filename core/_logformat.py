"""Headless log lines: one JSON object per event (`--log-format json`), or for people
(`--log-format text`) aligned columns, coloured on a terminal.

For people, one line per event: the time of day (UTC, milliseconds), the event name, the
worker, then the details as `key=value` pairs (worker log lines show their level and
message instead). Run and trigger ids are cut to their first 8 characters (JSON keeps
them whole), and a traceback in a log line shows the worker's frames only. Every few
seconds the headless runner adds a `status` line built from a snapshot: running slots,
pending triggers, DLQ size, overall health, and log lines dropped from the ring buffers
if any were. `one_line` cuts a long text to a column, for tables.

Colour is used only when the stream is a terminal and `NO_COLOR` is not set
(https://no-color.org); the text is the same with and without it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from ._events import Event, HealthChanged, LogLine
from ._snapshot import OrchestratorSnapshot
from ._tracebacks import worker_frames

EVENT_WIDTH = 21
WORKER_WIDTH = 18
LEVEL_WIDTH = 7
#: Seconds between two status lines.
STATUS_INTERVAL_S = 5.0

_SGR = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}

_EVENT_STYLE = {
    "orchestrator_started": "bold",
    "orchestrator_stopping": "bold",
    "orchestrator_stopped": "bold",
    "orchestrator_paused": "yellow",
    "orchestrator_resumed": "green",
    "trigger_accepted": "cyan",
    "run_started": "cyan",
    "run_succeeded": "green",
    "attempt_failed": "yellow",
    "run_interrupted": "yellow",
    "run_failed": "red",
    "dead_lettered": "red",
    "control_failed": "red",
    "worker_disabled": "yellow",
    "worker_enabled": "green",
    "status": "bold",
}
_LEVEL_STYLE = {"DEBUG": "dim", "WARNING": "yellow", "ERROR": "red", "CRITICAL": "red"}
_HEALTH_STYLE = {"ok": "green", "degraded": "yellow"}
_SKIP = frozenset({"ts", "event", "worker"})


def use_colour(stream: IO[str], environ: Mapping[str, str] | None = None) -> bool:
    """Whether lines written to `stream` should be coloured.

    Args:
        stream: where the lines go; colour only if it is a terminal.
        environ: the environment (default `os.environ`); a non-empty `NO_COLOR` or
            `TERM=dumb` turns colour off.
    """
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def json_line(event: Event) -> str:
    """One JSON object: `ts`, `event`, then the event's fields."""
    return json.dumps(event.to_dict(), default=str, ensure_ascii=False)


def text_line(event: Event, *, colour: bool = False) -> str:
    """One aligned line for people: time, event, worker, then `key=value` details."""
    data = event.to_dict()
    worker = data.get("worker") or ""
    if isinstance(event, LogLine):
        level = event.level.upper()
        details = _paint(_pad(level, LEVEL_WIDTH), _LEVEL_STYLE.get(level), colour)
        details += f" {worker_frames(event.message)}"
    else:
        health = isinstance(event, HealthChanged)
        details = " ".join(
            f"{key}={_health_value(key, value, colour) if health else _value(value)}"
            for key, value in _short_ids(data).items()
            if key not in _SKIP
        )
    return _columns(event.ts, event.name, worker, details, colour)


def status_line(snapshot: OrchestratorSnapshot, *, colour: bool = False) -> str:
    """The periodic summary: `running=n/max pending=n dlq=n health=…` (and why).

    `log_lines_dropped=n` is added once worker log lines have fallen out of the ring
    buffers, like `state=` once the orchestrator is not simply running.
    """
    parts = [
        f"running={snapshot.running}/{snapshot.max_concurrent_workers}",
        f"pending={snapshot.pending}",
        f"dlq={snapshot.dlq_size}",
        f"health={_paint(snapshot.health, _health_style(snapshot.health), colour)}",
    ]
    if snapshot.state != "running":
        parts.append(f"state={snapshot.state}")
    if snapshot.log_lines_dropped:
        parts.append(f"log_lines_dropped={snapshot.log_lines_dropped}")
    if snapshot.health_reasons:
        parts.append(f"reasons={_value(list(snapshot.health_reasons))}")
    return _columns(snapshot.taken_at, "status", "", " ".join(parts), colour)


#: Characters of a run or trigger id shown for people (JSON keeps the whole id).
SHORT_ID = 8


def short_id(full: str) -> str:
    """The first `SHORT_ID` characters of a run or trigger id: its counter part, which
    tells apart the ids one process made (`jobdeck runs show` takes it)."""
    return full[:SHORT_ID]


def one_line(text: str | None, limit: int = 200) -> str:
    """The first line of `text` (an error, say), cut to `limit` characters with `…`."""
    if not text:
        return ""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


_ID_KEYS = ("run_id", "trigger_id")


def _short_ids(data: dict[str, Any]) -> dict[str, Any]:
    for key in _ID_KEYS:
        value = data.get(key)
        if isinstance(value, str):
            data[key] = short_id(value)
    return data


def _columns(ts: datetime, name: str, worker: str, details: str, colour: bool) -> str:
    clock = _paint(_clock(ts), "dim", colour)
    event = _paint(name, _EVENT_STYLE.get(name), colour) + " " * (EVENT_WIDTH - len(name))
    return f"{clock}  {event} {_pad(worker, WORKER_WIDTH)} {details}".rstrip()


def _clock(ts: datetime) -> str:
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC)
    return f"{ts:%H:%M:%S}.{ts.microsecond // 1000:03d}"


def _pad(text: str, width: int) -> str:
    return f"{text:<{width}}"


def _paint(text: str, style: str | None, colour: bool) -> str:
    if not colour or style is None:
        return text
    return f"\x1b[{_SGR[style]}m{text}\x1b[0m"


def _health_style(health: str) -> str:
    return _HEALTH_STYLE.get(health, "red")


def _health_value(key: str, value: Any, colour: bool) -> str:
    if key in ("health", "previous") and isinstance(value, str):
        return _paint(value, _health_style(value), colour)
    return _value(value)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, str) and value and " " not in value and '"' not in value:
        return value
    return json.dumps(value, default=str, ensure_ascii=False)
