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
from typing import Any, TypeAlias

import humanize
from rich.text import Text

import jobdeck
from jobdeck import (
    Circuit,
    Health,
    Mode,
    OrchestratorSnapshot,
    OrchestratorState,
    Priority,
    RunStatus,
    WorkerSnapshot,
    WorkerStatus,
    format_seconds,
)

#: What the state column shows: the worker's own state, or its health (`display_state`).
DisplayState: TypeAlias = WorkerStatus | Health

#: The state a person reads in the table, and its colour. Problems are loud, calm is dim.
STATE_STYLES: dict[DisplayState, str] = {
    WorkerStatus.RUNNING: "bold green",
    Health.OK: "green",
    WorkerStatus.WAITING: "cyan",
    WorkerStatus.RETRYING: "bold yellow",
    Health.DEGRADED: "yellow",
    Health.FAILING: "bold red",
    Health.OVERDUE: "red",
    Health.STALLED: "bold red",
    WorkerStatus.DISABLED: "bright_black",
    WorkerStatus.CIRCUIT_OPEN: "bold red",
    WorkerStatus.STUCK: "bold magenta",
}

#: Sort rank of each displayed state: the ones that need a person come first.
STATE_RANK: dict[DisplayState, int] = {
    WorkerStatus.STUCK: 0,
    WorkerStatus.CIRCUIT_OPEN: 1,
    Health.FAILING: 1,
    Health.STALLED: 2,
    Health.OVERDUE: 3,
    WorkerStatus.DISABLED: 4,
    WorkerStatus.RETRYING: 5,
    Health.DEGRADED: 6,
    WorkerStatus.RUNNING: 7,
    WorkerStatus.WAITING: 8,
    Health.OK: 9,
}

ORCHESTRATOR_STYLES: dict[OrchestratorState, str] = {
    OrchestratorState.CREATED: "bright_black",
    OrchestratorState.RUNNING: "bold green",
    OrchestratorState.PAUSED: "bold yellow",
    OrchestratorState.STOPPING: "bold red",
    OrchestratorState.STOPPED: "bright_black",
}

HEALTH_STYLES: dict[Health, str] = {
    Health.OK: "bold green",
    Health.DEGRADED: "bold yellow",
    Health.FAILING: "bold red",
    Health.OVERDUE: "bold red",
    Health.STALLED: "bold red",
    Health.DISABLED: "bold red",
    Health.STUCK: "bold magenta",
}

RUN_STATUS_STYLES: dict[RunStatus, str] = {
    RunStatus.RUNNING: "bold green",
    RunStatus.SUCCEEDED: "green",
    RunStatus.FAILED: "bold red",
    RunStatus.INTERRUPTED: "yellow",
}

CIRCUIT_STYLES: dict[Circuit, str] = {
    Circuit.CLOSED: "bright_black",
    Circuit.OPEN: "bold red",
    Circuit.HALF_OPEN: "bold yellow",
}

MODE_LABELS = {Mode.SCHEDULED: "sched", Mode.TRIGGERED: "trig", Mode.CONTINUOUS: "loop"}
PRIORITY_LABELS = {
    Priority.LOW: "low", Priority.NORMAL: "norm", Priority.HIGH: "high", Priority.CRITICAL: "crit",
}

SPARK_BARS = "▁▂▃▄▅▆▇█"
DIM = "bright_black"


#: Worker states the state column always shows as they are.
_OWN_STATES = (WorkerStatus.RUNNING, WorkerStatus.STUCK, WorkerStatus.RETRYING,
               WorkerStatus.DISABLED, WorkerStatus.CIRCUIT_OPEN)
#: Health that an idle or waiting worker shows instead of its state.
_TELLING_HEALTH = (Health.FAILING, Health.DEGRADED, Health.OVERDUE, Health.STALLED)


def display_state(worker: WorkerSnapshot) -> DisplayState:
    """The one word the state column shows: what the core says, sharpened by health.

    running, stuck, retrying and disabled come from the worker's state; an idle or waiting
    worker shows its health when that is not ok (failing, degraded, overdue, stalled),
    else `waiting` (it wants to run but may not yet) or `ok`.
    """
    if worker.state in _OWN_STATES:
        return worker.state
    if worker.health in _TELLING_HEALTH:
        return worker.health
    return WorkerStatus.WAITING if worker.state == WorkerStatus.WAITING else Health.OK


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
        (worker.name, "bold" if state in (WorkerStatus.RUNNING, WorkerStatus.STUCK) else ""),
        (MODE_LABELS[worker.spec.mode], DIM),
        _priority_cell(worker.spec.priority),
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


_PRIORITY_STYLES = {Priority.CRITICAL: "bold red", Priority.HIGH: "yellow", Priority.LOW: DIM}


def _priority_cell(priority: Priority) -> Cell:
    return (PRIORITY_LABELS[priority], _PRIORITY_STYLES.get(priority, ""))


def _why_cell(worker: WorkerSnapshot, state: DisplayState) -> Cell:
    reason = worker.reason
    if state == WorkerStatus.DISABLED and reason.startswith("disabled: "):
        reason = reason.removeprefix("disabled: ")  # the state column says it already
    if state in (WorkerStatus.RUNNING, Health.OK, WorkerStatus.WAITING):
        return (reason, "" if state == WorkerStatus.WAITING else DIM)
    return (reason, STATE_STYLES.get(state, ""))


def _last_cell(worker: WorkerSnapshot, now: datetime) -> Cell:
    text = ago(worker.last_start, now)
    if not text:
        return ("never", DIM)
    if worker.state in (WorkerStatus.RUNNING, WorkerStatus.STUCK, WorkerStatus.RETRYING):
        return (text, "")
    if worker.consecutive_failures > 0:
        return (text, "red")
    return (text, "green" if worker.last_success is not None else "")


def _next_cell(worker: WorkerSnapshot, now: datetime) -> Cell:
    if worker.state in (WorkerStatus.RUNNING, WorkerStatus.STUCK):
        return ("", "")
    if not worker.may_run:
        return ("—", DIM)
    if worker.spec.mode == Mode.TRIGGERED:
        return ("on trigger", DIM) if worker.pending == 0 else (f"{worker.pending} queued", "cyan")
    if worker.spec.mode == Mode.CONTINUOUS:
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


_CIRCUIT_LABELS = {Circuit.HALF_OPEN: "half", Circuit.CLOSED: "closed", Circuit.OPEN: "open"}


def _circuit_cell(circuit: Circuit) -> Cell:
    return (_CIRCUIT_LABELS[circuit], CIRCUIT_STYLES[circuit])


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
    """The status bar: state, health, slots, pending, DLQ, uptime, sort and filter.

    Log lines dropped from the workers' buffers show after the DLQ, when there are any.
    """
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
    if snapshot.log_lines_dropped:
        # Lines that fell out of the workers' log buffers: the Logs tab no longer has them.
        text.append(*sep)
        text.append("log ", style=DIM)
        text.append(str(snapshot.log_lines_dropped), style="bold yellow")
        text.append(" dropped", style=DIM)
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
