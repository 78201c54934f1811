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
    ClusterSnapshot,
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
from jobdeck._logformat import one_line as one_line  # re-exported for the widgets
from jobdeck._tracebacks import worker_frames

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
    # Its own colour: a stop that needs a person, unlike a failing worker that still runs.
    WorkerStatus.CIRCUIT_OPEN: "bold reverse red",
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


def health_word(health: str, reasons: Sequence[str] = (), *, overall: bool = False) -> str:
    """The words a person reads for a health value.

    The core's `disabled` health is two things: an operator's disable (which never makes
    the overall health bad) and an open circuit. The dashboard says which: `disabled`
    only for the operator's, `circuit open` otherwise (README, "Prometheus").
    """
    if health == Health.DISABLED:
        if not overall and "disabled by operator" in reasons:
            return "disabled"
        return "circuit open"
    return str(health)


def plural(count: int, word: str) -> str:
    """`1 dead letter`, `3 dead letters`, `0 runs`."""
    return f"{count} {word}{'s' * (count != 1)}"


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


def short_traceback(traceback: str, *, whole: bool = False) -> str:
    """A traceback with file paths made relative to the import path they came from.

    `File "/home/me/app/.venv/lib/python3.11/site-packages/trio/_core/_run.py"` reads
    `File "trio/_core/_run.py"`: shorter lines, and no machine-specific prefixes. Only
    the worker's own frames are shown unless `whole`.
    """
    if not whole:
        traceback = worker_frames(traceback)
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


# ---------------------------------------------------------------------- worker rows

#: (key, label, width) of every column of the workers table, in order. `name` fits the
#: longest name, `why` takes what the others leave; a label never needs more than its
#: width (the sort arrow included), so sorting never cuts a header.
WORKER_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("name", "worker", 0),
    ("mode", "mode", 5),
    ("priority", "prio", 4),
    ("state", "state", 12),
    ("node", "node", 0),
    ("why", "why", 0),
    ("last", "last run", 10),
    ("next", "next run", 10),
    ("took", "took", 6),
    ("trend", "trend", 8),
    ("runs", "since start", 11),
    ("failures", "in a row", 10),
    ("circuit", "circuit", 7),
)

#: Columns always shown: who, what state, and why (the headline).
ESSENTIAL_COLUMNS = ("name", "state", "why")
#: The other columns, most wanted first: on a narrow screen the last ones go first
#: (trend, priority, mode), and none is shown that would leave `why` short of
#: `WHY_WANTED` cells.
OPTIONAL_COLUMNS = ("next", "last", "failures", "circuit", "took", "runs", "mode", "priority",
                    "trend")
WHY_WANTED = 32
#: The narrowest why, on a screen too narrow for anything else.
WHY_MIN = 12
#: The name column fits the longest name, between these (narrower only on a screen
#: too narrow for the longest name and a `WHY_WANTED` why).
NAME_WIDTH = (10, 24)
#: Cluster mode: the node column fits the longest node name, between these.
NODE_WIDTH = (4, 16)

#: One cell's content: (text, style). Cheap to build and compare; made Text only if changed.
Cell = tuple[str, str]


def worker_columns(
    names: Sequence[str], width: int, padding: int, nodes: Sequence[str] | None = None
) -> list[tuple[str, str, int]]:
    """The columns shown at `width` cells: (key, label, width), in table order.

    Args:
        names: every worker's name (the name column fits the longest).
        width: the table's width.
        padding: blank cells around each column.
        nodes: cluster mode: the names of the nodes (the node column, the first
            optional one, fits the longest); None in local mode (no node column).
    """
    longest = max((len(name) for name in names), default=0)
    widths = {key: size for key, _, size in WORKER_COLUMNS}
    optional = OPTIONAL_COLUMNS
    if nodes is not None:
        widest = max((len(node) for node in nodes), default=0)
        widths["node"] = min(max(widest, NODE_WIDTH[0]), NODE_WIDTH[1])
        optional = ("node", *OPTIONAL_COLUMNS)
    room = width - len(ESSENTIAL_COLUMNS) * padding - widths["state"]
    widths["name"] = min(max(longest, NAME_WIDTH[0]), NAME_WIDTH[1],
                         max(NAME_WIDTH[0], room - WHY_WANTED))
    used = sum(widths[key] + padding for key in ESSENTIAL_COLUMNS)
    shown = set(ESSENTIAL_COLUMNS)
    for key in optional:
        if width - used - widths[key] - padding < WHY_WANTED:
            break
        shown.add(key)
        used += widths[key] + padding
    widths["why"] = max(WHY_MIN, width - used)
    return [(key, label, widths[key]) for key, label, _ in WORKER_COLUMNS if key in shown]


def worker_row(worker: WorkerSnapshot, now: datetime) -> dict[str, Cell]:
    """Every cell of a worker's row, by column key (`WORKER_COLUMNS`)."""
    state = display_state(worker)
    return {
        "name": (worker.name,
                 "bold" if state in (WorkerStatus.RUNNING, WorkerStatus.STUCK) else ""),
        "mode": (MODE_LABELS[worker.spec.mode], DIM),
        "priority": _priority_cell(worker.spec.priority),
        "state": (state_word(state), STATE_STYLES.get(state, "")),
        "node": (worker.node or "", "" if state == WorkerStatus.RUNNING else DIM),
        "why": _why_cell(worker, state),
        "last": _last_cell(worker, now),
        "next": _next_cell(worker, now),
        "took": _took_cell(worker, now),
        "trend": (sparkline(worker.durations), "blue"),
        "runs": runs_since_start(worker),
        "failures": _failures_cell(worker),
        "circuit": _circuit_cell(worker.circuit),
    }


def state_word(state: DisplayState) -> str:
    """The state column's word: `circuit open` rather than the core's `circuit_open`."""
    return "circuit open" if state == WorkerStatus.CIRCUIT_OPEN else str(state)


def cell_text(cell: Cell) -> Text:
    """The Rich Text a table shows for a cell."""
    text, style = cell
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


_PRIORITY_STYLES = {Priority.CRITICAL: "bold red", Priority.HIGH: "yellow", Priority.LOW: DIM}


def _priority_cell(priority: Priority) -> Cell:
    return (PRIORITY_LABELS[priority], _PRIORITY_STYLES.get(priority, ""))


_TRIAL = re.compile(r"trial run in (.+)$")


def circuit_trial_in(worker: WorkerSnapshot) -> str | None:
    """`50s` when an open circuit has a trial run coming (its cooldown), else None.

    Read from the core's own reason ("..., trial run in 50s"), so the why, the next-run
    column and the detail say the same time.
    """
    if worker.state != WorkerStatus.CIRCUIT_OPEN:
        return None
    found = _TRIAL.search(worker.reason)
    return found.group(1) if found else None


def circuit_why(worker: WorkerSnapshot) -> str:
    """`e resets · trial run in 50s · after 3 failures`: an open circuit's why, what to
    do first (a narrow column cuts the end)."""
    parts = ["e resets"]
    trial = circuit_trial_in(worker)
    if trial is not None:
        parts.append(f"trial run in {trial}")
    parts.append(f"after {plural(worker.consecutive_failures, 'failure')}")
    return " · ".join(parts)


def worker_row_why(worker: WorkerSnapshot) -> str:
    """The why column's words for `worker`."""
    return _why_cell(worker, display_state(worker))[0]


def _why_cell(worker: WorkerSnapshot, state: DisplayState) -> Cell:
    reason = worker.reason
    if state == WorkerStatus.CIRCUIT_OPEN:
        reason = circuit_why(worker)
    elif state == WorkerStatus.DISABLED and reason == "disabled":
        reason = "by an operator — e enables"  # the state column says "disabled"
    if worker.pending:
        reason += f" · {plural(worker.pending, 'trigger')} queued"
    if state in (WorkerStatus.RUNNING, Health.OK, WorkerStatus.WAITING):
        return (reason, "" if state == WorkerStatus.WAITING else DIM)
    if state == WorkerStatus.CIRCUIT_OPEN:
        return (reason, "bold red")
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


def next_run(worker: WorkerSnapshot, now: datetime) -> str:
    """When the worker runs next, in the words of the next-run column (empty: running)."""
    if worker.state in (WorkerStatus.RUNNING, WorkerStatus.STUCK):
        return ""
    trial = circuit_trial_in(worker)
    if trial is not None:
        return f"trial {trial}"
    if not worker.may_run:
        return "—"
    if worker.spec.mode == Mode.TRIGGERED:
        return "on trigger" if worker.pending == 0 else f"{worker.pending} queued"
    if worker.spec.mode == Mode.CONTINUOUS:
        return "loop"
    return until(worker.next_due, now)


def _next_cell(worker: WorkerSnapshot, now: datetime) -> Cell:
    text = next_run(worker, now)
    if text.startswith("trial"):
        return (text, "yellow")
    if text in ("—", "on trigger", "loop"):
        return (text, DIM)
    return (text, "cyan" if text.endswith("queued") else "")


def _took_cell(worker: WorkerSnapshot, now: datetime) -> Cell:
    if worker.running_since is not None:
        elapsed = (now - worker.running_since).total_seconds()
        return (seconds_text(elapsed), "green italic")
    if worker.last_duration_s is None:
        return ("", "")
    return (seconds_text(worker.last_duration_s), "")


def runs_since_start(worker: WorkerSnapshot) -> Cell:
    """`12 ok 3 ✗`: runs that ended since this jobdeck started (not stored)."""
    if not worker.runs_failed:
        return (f"{worker.runs_ok} ok", "" if worker.runs_ok else DIM)
    return (f"{worker.runs_ok} ok {worker.runs_failed} ✗", "red")


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

#: Sorts that put the biggest (most recent, slowest, most failing) first, unreversed.
SORT_DESCENDING = frozenset({"last", "took", "failures"})


def sort_descending(sort: str, reverse: bool) -> bool:
    """Whether rows go biggest first under `sort`, reversed (`S`) or not."""
    return (sort in SORT_DESCENDING) != reverse


def sort_arrow(sort: str, reverse: bool) -> str:
    """`▼` biggest first, `▲` smallest first; none for the config order."""
    if sort == "config":
        return "▼" if reverse else ""
    return "▼" if sort_descending(sort, reverse) else "▲"


def sort_value(sort: str, worker: WorkerSnapshot) -> Any:
    """What `sort` orders `worker` by; None when it has nothing to order by (never ran,
    cannot run, runs only on a trigger): such rows go last, whichever the direction."""
    if sort == "name":
        return worker.name
    if sort == "state":
        return STATE_RANK.get(display_state(worker), 99)
    if sort == "last":
        return worker.last_start.timestamp() if worker.last_start else None
    if sort == "next":
        return _next_due_value(worker)
    if sort == "took":
        return worker.last_duration_s
    if sort == "failures":
        return (worker.consecutive_failures, worker.runs_failed)
    return None


def _next_due_value(worker: WorkerSnapshot) -> float | None:
    if not worker.may_run or worker.state in (WorkerStatus.RUNNING, WorkerStatus.STUCK):
        return None
    if worker.pending:
        return -math.inf  # a trigger waits: it runs as soon as it may
    if worker.spec.mode == Mode.SCHEDULED and worker.next_due is not None:
        return worker.next_due.timestamp()
    return None


def order_workers(
    workers: Sequence[WorkerSnapshot], sort: str, reverse: bool
) -> list[WorkerSnapshot]:
    """`workers` (in config order) as `sort` orders them; ties keep the config order,
    rows without a value go last. `reverse` (`S`) flips the direction."""
    if sort == "config":
        return list(reversed(workers)) if reverse else list(workers)
    valued = [(sort_value(sort, worker), worker) for worker in workers]
    ordered = sorted(
        ((value, worker) for value, worker in valued if value is not None),
        key=lambda pair: pair[0], reverse=sort_descending(sort, reverse),
    )
    return [worker for _, worker in ordered] + [w for value, w in valued if value is None]


def matches(worker: WorkerSnapshot, query: str) -> bool:
    """Whether the filter `query` keeps `worker`: a name fragment or a state word.

    `fetch` keeps every worker whose name contains it; `failing`, `running`, `disabled`,
    `circuit open` (any displayed state, or the core's own state word) keep workers in
    that state.
    """
    query = query.strip().lower()
    if not query:
        return True
    if query in worker.name.lower():
        return True
    state = display_state(worker)
    return query in (state, state_word(state), worker.state, worker.health, worker.mode)


# ---------------------------------------------------------------------- header


def overall_health_text(snapshot: OrchestratorSnapshot) -> str:
    """What is wrong, in the header's words: `ok`, `1 circuit open`, `2 failing`, `stuck`.

    The core's overall `disabled` is only ever open circuits (an operator's disable does
    not count): it reads `N circuit(s) open`, never "health disabled".
    """
    health = snapshot.health
    if health == Health.OK:
        return "ok"
    if health == Health.DISABLED:
        count = sum(1 for w in snapshot.workers if w.state == WorkerStatus.CIRCUIT_OPEN)
        return f"{count} circuit{'s' * (count != 1)} open" if count else "circuit open"
    count = sum(1 for w in snapshot.workers if w.health == health)
    return f"{count} {health}" if count else str(health)


#: Separators from the widest header to the tightest.
_SEPARATORS = ("  │  ", " │ ", " │ ", "  ", " ")


def status_line(
    snapshot: OrchestratorSnapshot,
    *,
    title: str,
    sort_label: str,
    filter_text: str,
    shown: int,
    total: int | None = None,
    width: int = 0,
) -> Text:
    """The status bar: state, health, slots, pending, DLQ, uptime, sort and filter.

    Log lines dropped from the workers' buffers show after the DLQ, when there are any.
    The widest wording that fits `width` cells is used (0: the widest): labels shorten
    and separators narrow before anything is cut, so DLQ, uptime, sort and filter stay.
    A filter shows as `shown` of `total` rows (None: of every worker).
    """
    if total is None:
        total = len(snapshot.workers)
    for level, separator in enumerate(_SEPARATORS):
        text = _status_text(snapshot, title=title, sort_label=sort_label,
                            filter_text=filter_text, shown=shown, total=total, level=level,
                            separator=separator)
        if not width or text.cell_len <= width:
            return text
    text.truncate(width, overflow="ellipsis")
    return text


def _status_text(
    snapshot: OrchestratorSnapshot,
    *,
    title: str,
    sort_label: str,
    filter_text: str,
    shown: int,
    total: int,
    level: int,
    separator: str,
) -> Text:
    """The header at one `level` of wording: 0 widest; 1 without the title; 2, 3 short
    labels (`4/5 run`, `2 pend`); 4 without what goes without saying (`running` by its
    green dot, `0 pend`)."""
    short = level >= 2
    tightest = level >= 4
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    if level == 0:
        text.append(" jobdeck", style="bold")
        if title:
            text.append(f" · {title}", style=DIM)
        text.append(separator, style=DIM)
    else:
        text.append(" ")
    state_style = ORCHESTRATOR_STYLES.get(snapshot.state, "")
    if tightest and snapshot.state == OrchestratorState.RUNNING:
        text.append("●", style=state_style)
    else:
        text.append("● ", style=state_style)
        text.append(snapshot.state, style=state_style)
    text.append(separator, style=DIM)
    health_style = HEALTH_STYLES.get(snapshot.health, "bold")
    if snapshot.health == Health.OK:
        text.append("health ", style=DIM)
    text.append(overall_health_text(snapshot), style=health_style)
    text.append(separator, style=DIM)
    # A cluster node's runs over its own capacity (the cluster's slots are on the
    # cluster line below); one process's over max_concurrent_workers.
    limit = (snapshot.max_concurrent_workers if snapshot.cluster is None
             else snapshot.cluster.node_capacity)
    busy = snapshot.running >= limit
    slots = f"{snapshot.running}/{limit}"
    _labelled(text, "running", slots, "bold yellow" if busy else "bold", short, "run")
    text.append(separator, style=DIM)
    if snapshot.pending or not tightest:
        _labelled(text, "pending", str(snapshot.pending),
                  "bold cyan" if snapshot.pending else "bold", short, "pend")
        text.append(separator, style=DIM)
    text.append("DLQ ", style=DIM)
    text.append(str(snapshot.dlq_size), style="bold red" if snapshot.dlq_size else "bold")
    if snapshot.log_lines_dropped:
        # Lines that fell out of the workers' log buffers: the Logs tab no longer has them.
        text.append(separator, style=DIM)
        text.append("log ", style=DIM)
        text.append(str(snapshot.log_lines_dropped), style="bold yellow")
        text.append(" dropped", style=DIM)
    text.append(separator, style=DIM)
    text.append("up ", style=DIM)
    uptime = format_seconds(math.floor(snapshot.uptime_s))
    text.append(uptime.replace(" ", "") if short else uptime)
    text.append(separator, style=DIM)
    if not short:
        text.append("sort ", style=DIM)
    text.append(sort_label)
    if filter_text:
        text.append(separator, style=DIM)
        if not short:
            text.append("filter ", style=DIM)
        text.append(("/" if short else "") + filter_text, style="bold reverse")
        text.append(f" {shown}/{total}", style=DIM)
    return text


def _labelled(text: Text, label: str, value: str, style: str, short: bool, short_label: str
              ) -> None:
    """`running 4/5`, or short: `4/5 run`."""
    if short:
        text.append(value, style=style)
        text.append(f" {short_label}", style=DIM)
    else:
        text.append(f"{label} ", style=DIM)
        text.append(value, style=style)


def cluster_line(cluster: ClusterSnapshot, width: int = 0) -> Text:
    """The cluster line under the status bar (cluster mode only):
    `cluster pg://host/db · 3 nodes · 7/20 slots · this node n2 3/8 · listener ok`.

    The widest wording that fits `width` cells (0: the widest): labels go first, then
    the database's address; the counts, this node and the listener stay.
    """
    for level in range(4):
        text = _cluster_text(cluster, level)
        if not width or text.cell_len <= width:
            return text
    text.truncate(width, overflow="ellipsis")
    return text


def _cluster_text(cluster: ClusterSnapshot, level: int) -> Text:
    """At `level`: 0 widest; 1 without `cluster`, `this node`; 2 short labels; 3 without
    the database's address."""
    separator = " · " if level < 2 else " "
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    text.append(" ")
    if level == 0:
        text.append("cluster ", style=DIM)
    if level < 3:
        text.append(one_line(cluster.store, 60), style="bold")
        text.append(separator, style=DIM)
    text.append(str(cluster.nodes), style="bold")
    text.append((" node" if cluster.nodes == 1 else " nodes") if level < 2 else "n", style=DIM)
    text.append(separator, style=DIM)
    full = cluster.slots_max and cluster.slots_used >= cluster.slots_max
    text.append(f"{cluster.slots_used}/{cluster.slots_max}",
                style="bold yellow" if full else "bold")
    text.append(" slots" if level < 2 else " run", style=DIM)
    text.append(separator, style=DIM)
    if level == 0:
        text.append("this node ", style=DIM)
    text.append(one_line(cluster.node, 40), style="bold")
    if cluster.node_state != "active":
        text.append(f" {cluster.node_state}", style=NODE_STATE_STYLES.get(cluster.node_state, ""))
    text.append(f" {cluster.node_used}/{cluster.node_capacity}")
    text.append(separator, style=DIM)
    if cluster.read_age_s > STALE_READ_S:
        # the database does not answer: what is shown is that old
        age = format_seconds(math.floor(cluster.read_age_s))
        text.append(f"no read for {age}" if level < 2 else f"stale {age}", style="bold red")
    elif cluster.listener_ok:
        text.append("listener ok" if level < 2 else "listening", style="green")
    else:
        text.append("listener down" if level < 2 else "polling", style="bold red")
    return text


#: Seconds without a read of the cluster (normally one a second) before the line says so.
STALE_READ_S = 5.0
#: A node's state word, coloured: draining and fenced take no new run.
NODE_STATE_STYLES = {"active": "green", "draining": "yellow", "fenced": "bold red",
                     "lost": "bold red"}
