"""How the dashboard's cells read: states in colour, "12s ago", "in 48s", sparklines.

Pure functions of frozen snapshots and a "now": the tables, the detail screen and the
tests share them, and none of them reads a clock itself.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

import humanize
from rich.text import Text

import jobdeck
from jobdeck import OrchestratorSnapshot, WorkerSnapshot, format_seconds

#: The state a person reads in the table, and its colour. Problems are loud, calm is dim.
STATE_STYLES: dict[str, str] = {
    "running": "bold green",
    "ok": "green",
    "waiting": "cyan",
    "retrying": "bold yellow",
    "degraded": "yellow",
    "failing": "bold red",
    "overdue": "red",
    "stalled": "bold red",
    "disabled": "bright_black",
    "stuck": "bold magenta",
}

#: Sort rank of each displayed state: the ones that need a person come first.
STATE_RANK: dict[str, int] = {
    "stuck": 0,
    "failing": 1,
    "stalled": 2,
    "overdue": 3,
    "disabled": 4,
    "retrying": 5,
    "degraded": 6,
    "running": 7,
    "waiting": 8,
    "ok": 9,
}

ORCHESTRATOR_STYLES: dict[str, str] = {
    "created": "bright_black",
    "running": "bold green",
    "paused": "bold yellow",
    "stopping": "bold red",
    "stopped": "bright_black",
}

HEALTH_STYLES: dict[str, str] = {
    "ok": "bold green",
    "degraded": "bold yellow",
    "failing": "bold red",
    "overdue": "bold red",
    "stalled": "bold red",
    "disabled": "bold red",
    "stuck": "bold magenta",
}

RUN_STATUS_STYLES: dict[str, str] = {
    "running": "bold green",
    "succeeded": "green",
    "failed": "bold red",
    "interrupted": "yellow",
}

CIRCUIT_STYLES: dict[str, str] = {
    "closed": "bright_black",
    "open": "bold red",
    "half_open": "bold yellow",
}

MODE_LABELS = {"scheduled": "sched", "triggered": "trig", "continuous": "loop"}
PRIORITY_LABELS = {"low": "low", "normal": "norm", "high": "high", "critical": "crit"}

SPARK_BARS = "▁▂▃▄▅▆▇█"
DIM = "bright_black"


def display_state(worker: WorkerSnapshot) -> str:
    """The one word the state column shows: what the core says, sharpened by health.

    running, stuck, retrying and disabled come from the worker's state; an idle or waiting
    worker shows its health when that is not ok (failing, degraded, overdue, stalled),
    else `waiting` (it wants to run but may not yet) or `ok`.
    """
    if worker.state in ("running", "stuck", "retrying", "disabled"):
        return worker.state
    if worker.health in ("failing", "degraded", "overdue", "stalled"):
        return worker.health
    return "waiting" if worker.state == "waiting" else "ok"


def seconds_text(seconds: float) -> str:
    """`0.42s`, `1.5s`, `12s`, `4m 05s`, `2h 03m`: short, for a cell."""
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds:.2f}s"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = math.floor(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def ago(when: datetime | None, now: datetime) -> str:
    """`12s ago`, `4m ago`, `2h ago`, `3d ago` (empty for never)."""
    if when is None:
        return ""
    seconds = max(0.0, (now - when).total_seconds())
    whole = math.floor(seconds)
    if whole < 1:
        return "just now"
    if whole < 60:
        return f"{whole}s ago"
    if whole < 3600:
        return f"{whole // 60}m ago"
    if whole < 86400:
        return f"{whole // 3600}h ago"
    return f"{whole // 86400}d ago"


def until(when: datetime | None, now: datetime) -> str:
    """`in 48s`, `in 4m 05s`, `now` (empty when there is no due time).

    Rounded like the core's reasons ("next in 48s"), so the two columns agree.
    """
    if when is None:
        return ""
    seconds = (when - now).total_seconds()
    if seconds <= 0:
        return "now"
    return f"in {format_seconds(seconds)}"


def spec_seconds(seconds: float) -> str:
    """A configured duration as written: `3s`, `0.5s`, `90s`, then `5m 00s`, `1h 00m`."""
    if seconds < 120:
        return f"{seconds:g}s"
    return format_seconds(seconds)


def natural_ago(when: datetime | None, now: datetime) -> str:
    """`12 seconds ago` (humanize), for the detail screen; `never` for None."""
    if when is None:
        return "never"
    return humanize.naturaltime(now - when)


def clock_time(when: datetime | None, tz: tzinfo | None) -> str:
    """`14:03:07` in the display time zone (`tz`, or the machine's when None)."""
    if when is None:
        return ""
    return when.astimezone(tz).strftime("%H:%M:%S")


def full_time(when: datetime | None, tz: tzinfo | None) -> str:
    """`2026-01-01 14:03:07` in the display time zone."""
    if when is None:
        return "never"
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def sparkline(values: Sequence[float], width: int = 8) -> str:
    """The last `width` values as bars, scaled between their own min and max: `▁▃▅▇`.

    Equal values draw a flat middle line, so a steady worker looks steady.
    """
    recent = list(values)[-width:]
    if not recent:
        return ""
    low, high = min(recent), max(recent)
    if high - low < 1e-9:
        return SPARK_BARS[3] * len(recent)
    top = len(SPARK_BARS) - 1
    return "".join(SPARK_BARS[round((v - low) / (high - low) * top)] for v in recent)


def payload_text(payload: Any) -> str:
    """A JSON payload, pretty-printed; `none` for no payload."""
    if payload is None:
        return "none"
    return json.dumps(payload, indent=2, ensure_ascii=False, default=str)


_TRACEBACK_FILE = re.compile(r'File "([^"]+)"')


def short_traceback(traceback: str) -> str:
    """A traceback with file paths made relative to the import path they came from.

    `File "/home/me/app/.venv/lib/python3.11/site-packages/trio/_core/_run.py"` reads
    `File "trio/_core/_run.py"`: shorter lines, and no machine-specific prefixes.
    """
    places = {os.path.abspath(p or ".") for p in sys.path}
    # An editable install imports `jobdeck` through a finder, not a sys.path entry.
    places.add(os.path.dirname(os.path.dirname(os.path.abspath(jobdeck.__file__))))
    roots = sorted((p.rstrip(os.sep) + os.sep for p in places), key=len, reverse=True)

    def shorten(match: re.Match[str]) -> str:
        path = match.group(1)
        for root in roots:
            if path.startswith(root):
                return f'File "{path[len(root):]}"'
        return match.group(0)

    return _TRACEBACK_FILE.sub(shorten, traceback)


def one_line(text: str | None, limit: int = 200) -> str:
    """The first line of an error, cut to `limit` characters."""
    if not text:
        return ""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


# ---------------------------------------------------------------------- worker rows

#: (key, label) of every column of the workers table, in order.
WORKER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "worker"),
    ("mode", "mode"),
    ("priority", "prio"),
    ("state", "state"),
    ("why", "why"),
    ("last", "last run"),
    ("next", "next run"),
    ("took", "took"),
    ("trend", "trend"),
    ("runs", "ok/fail"),
    ("failures", "fails"),
    ("circuit", "circuit"),
)

#: Fixed widths; `why` takes what is left and `name` fits the longest name.
WORKER_COLUMN_WIDTHS: dict[str, int] = {
    "mode": 5,
    "priority": 4,
    "state": 8,
    "last": 8,
    "next": 10,
    "took": 6,
    "trend": 8,
    "runs": 7,
    "failures": 5,
    "circuit": 7,
}

#: One cell's content: (text, style). Cheap to build and compare; made Text only if changed.
Cell = tuple[str, str]


def worker_row(worker: WorkerSnapshot, now: datetime) -> tuple[Cell, ...]:
    """Every cell of a worker's row, in `WORKER_COLUMNS` order."""
    state = display_state(worker)
    return (
        (worker.name, "bold" if state in ("running", "stuck") else ""),
        (MODE_LABELS.get(worker.mode, worker.mode), DIM),
        _priority_cell(worker.priority),
        (state, STATE_STYLES.get(state, "")),
        _why_cell(worker, state),
        _last_cell(worker, now),
        _next_cell(worker, now),
        _took_cell(worker, now),
        (sparkline(worker.durations), "blue"),
        _runs_cell(worker),
        _failures_cell(worker),
        _circuit_cell(worker.circuit),
    )


def cell_text(cell: Cell) -> Text:
    """The Rich Text a table shows for a cell."""
    text, style = cell
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _priority_cell(priority: str) -> Cell:
    style = {"critical": "bold red", "high": "yellow", "low": DIM}.get(priority, "")
    return (PRIORITY_LABELS.get(priority, priority), style)


def _why_cell(worker: WorkerSnapshot, state: str) -> Cell:
    reason = worker.reason
    if state == "disabled" and reason.startswith("disabled: "):
        reason = reason.removeprefix("disabled: ")  # the state column says it already
    if state in ("running", "ok", "waiting"):
        return (reason, "" if state == "waiting" else DIM)
    return (reason, STATE_STYLES.get(state, ""))


def _last_cell(worker: WorkerSnapshot, now: datetime) -> Cell:
    text = ago(worker.last_start, now)
    if not text:
        return ("never", DIM)
    if worker.state in ("running", "stuck", "retrying"):
        return (text, "")
    if worker.consecutive_failures > 0:
        return (text, "red")
    return (text, "green" if worker.last_success is not None else "")


def _next_cell(worker: WorkerSnapshot, now: datetime) -> Cell:
    if worker.state in ("running", "stuck"):
        return ("", "")
    if not worker.enabled or worker.circuit == "open":
        return ("—", DIM)
    if worker.mode == "triggered":
        return ("on trigger", DIM) if worker.pending == 0 else (f"{worker.pending} queued", "cyan")
    if worker.mode == "continuous":
        return ("loop", DIM)
    return (until(worker.next_due, now), "")


def _took_cell(worker: WorkerSnapshot, now: datetime) -> Cell:
    if worker.running_since is not None:
        elapsed = (now - worker.running_since).total_seconds()
        return (seconds_text(elapsed), "green italic")
    if worker.last_duration_s is None:
        return ("", "")
    return (seconds_text(worker.last_duration_s), "")


def _runs_cell(worker: WorkerSnapshot) -> Cell:
    text = f"{worker.runs_ok}/{worker.runs_failed}"
    return (text, "red" if worker.runs_failed else "")


def _failures_cell(worker: WorkerSnapshot) -> Cell:
    count = worker.consecutive_failures
    if count == 0:
        return ("0", DIM)
    near = count >= max(1, math.ceil(worker.spec.max_consecutive_failures / 2))
    return (str(count), "bold red" if near else "yellow")


def _circuit_cell(circuit: str) -> Cell:
    label = {"half_open": "half", "closed": "closed", "open": "open"}.get(circuit, circuit)
    return (label, CIRCUIT_STYLES.get(circuit, ""))


# ---------------------------------------------------------------------- sorting

#: Sort orders `s` cycles through: (key, label shown in the header).
SORTS: tuple[tuple[str, str], ...] = (
    ("config", "config order"),
    ("name", "name"),
    ("state", "state"),
    ("last", "last run"),
    ("next", "next run"),
    ("took", "duration"),
    ("failures", "failures"),
)

#: The column whose header carries the sort arrow, per sort key.
SORT_COLUMNS = {"name": "name", "state": "state", "last": "last", "next": "next",
                "took": "took", "failures": "failures"}

#: Sorts that put the biggest (most recent, slowest, most failing) first.
SORT_DESCENDING = frozenset({"last", "took", "failures"})

_FAR = float("inf")


def sort_key(sort: str, worker: WorkerSnapshot, index: int) -> tuple[Any, ...]:
    """Where `worker` (registered `index`-th) goes in the table under `sort`."""
    if sort == "name":
        return (worker.name,)
    if sort == "state":
        return (STATE_RANK.get(display_state(worker), 99), index)
    if sort == "last":
        # Most recent first; never-run workers last.
        started = worker.last_start.timestamp() if worker.last_start else -_FAR
        return (-started, index)
    if sort == "next":
        due = worker.next_due.timestamp() if worker.next_due else _FAR
        return (due, index)
    if sort == "took":
        took = worker.last_duration_s if worker.last_duration_s is not None else -1.0
        return (-took, index)
    if sort == "failures":
        return (-worker.consecutive_failures, -worker.runs_failed, index)
    return (index,)


def matches(worker: WorkerSnapshot, query: str) -> bool:
    """Whether the filter `query` keeps `worker`: a name fragment or a state word.

    `fetch` keeps every worker whose name contains it; `failing`, `running`, `disabled`
    (any displayed state, or the core's own state word) keep workers in that state.
    """
    query = query.strip().lower()
    if not query:
        return True
    if query in worker.name.lower():
        return True
    return query in (display_state(worker), worker.state, worker.health, worker.mode)


# ---------------------------------------------------------------------- header


def status_line(
    snapshot: OrchestratorSnapshot,
    *,
    title: str,
    sort_label: str,
    filter_text: str,
    shown: int,
) -> Text:
    """The status bar: state, health, slots, pending, DLQ, uptime, sort and filter."""
    sep = ("  │  ", DIM)
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(" jobdeck", style="bold")
    if title:
        text.append(f" · {title}", style=DIM)
    text.append(*sep)
    text.append("● ", style=ORCHESTRATOR_STYLES.get(snapshot.state, ""))
    text.append(snapshot.state, style=ORCHESTRATOR_STYLES.get(snapshot.state, ""))
    text.append(*sep)
    text.append("health ", style=DIM)
    text.append(snapshot.health, style=HEALTH_STYLES.get(snapshot.health, "bold"))
    text.append(*sep)
    text.append("running ", style=DIM)
    busy = snapshot.running >= snapshot.max_concurrent_workers
    slots = f"{snapshot.running}/{snapshot.max_concurrent_workers}"
    text.append(slots, style="bold yellow" if busy else "bold")
    text.append(*sep)
    text.append("pending ", style=DIM)
    text.append(str(snapshot.pending), style="bold cyan" if snapshot.pending else "bold")
    text.append(*sep)
    text.append("DLQ ", style=DIM)
    text.append(str(snapshot.dlq_size), style="bold red" if snapshot.dlq_size else "bold")
    text.append(*sep)
    text.append("up ", style=DIM)
    text.append(format_seconds(math.floor(snapshot.uptime_s)))
    text.append(*sep)
    text.append("sort ", style=DIM)
    text.append(sort_label)
    if filter_text:
        text.append(*sep)
        text.append("filter ", style=DIM)
        text.append(filter_text, style="bold reverse")
        text.append(f" {shown}/{len(snapshot.workers)}", style=DIM)
    return text
