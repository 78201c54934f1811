"""One worker in full: live state, spec, pending triggers, recent runs, last error."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from jobdeck import Mode, RunRecord, RunStatus, WorkerSnapshot, WorkerStatus

from .._cells import (
    CIRCUIT_STYLES,
    HEALTH_STYLES,
    RUN_STATUS_STYLES,
    STATE_STYLES,
    ago,
    circuit_trial_in,
    display_state,
    full_time,
    health_word,
    natural_ago,
    next_run,
    one_line,
    plural,
    seconds_text,
    short_traceback,
    sparkline,
    spec_seconds,
    state_word,
    until,
    worker_row_why,
)

#: Recent runs shown.
RUNS_SHOWN = 15


def _grid() -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bright_black", no_wrap=True)
    grid.add_column()
    return grid


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "—"


def _may_run(worker: WorkerSnapshot) -> Text:
    """`yes`, or no and why, and what undoes it."""
    if worker.state == WorkerStatus.CIRCUIT_OPEN:
        return Text("no: its circuit is open (e resets it)", style="bold red")
    if worker.state == WorkerStatus.DISABLED:
        return Text("no: disabled by an operator (e enables it)", style="bold")
    return Text("yes")


class WorkerDetail(VerticalScroll):
    """What `enter` opens for a worker; `show()` redraws only the parts that changed."""

    DEFAULT_CSS = """
    WorkerDetail {
        height: 1fr;
        padding: 0 1;
    }
    WorkerDetail #detail-title {
        height: auto;
        padding: 0 0 1 0;
    }
    WorkerDetail #detail-columns {
        height: auto;
    }
    WorkerDetail .detail-box {
        width: 1fr;
        height: auto;
        border: round $primary 40%;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    WorkerDetail #detail-error {
        color: $text-error;
    }
    """

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tz = tz
        self._shown: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        with Horizontal(id="detail-columns"):
            yield self._box("detail-state", "state")
            yield self._box("detail-spec", "spec")
        yield self._box("detail-pending", "pending triggers")
        yield self._box("detail-runs", "recent runs · stored, kept across restarts")
        yield self._box("detail-error", "last error")

    @staticmethod
    def _box(id: str, title: str) -> Static:
        box = Static(id=id, classes="detail-box")
        box.border_title = title
        return box

    def show(
        self,
        worker: WorkerSnapshot,
        now: datetime,
        *,
        runs: Sequence[RunRecord] | None,
        pending: Sequence[Any] | None,
        selected_run: int | None = None,
    ) -> None:
        """Show `worker` as of `now`, with its recent `runs` and `pending` triggers.

        `runs` None: not loaded yet. `pending`: trigger records if the core lists them,
        else None (only the count is known). `selected_run`: the index of the run shown
        selected (the one `enter` opens).
        """
        self._put("detail-title", self._title(worker))
        self._put("detail-state", self._state(worker, now))
        self._put("detail-spec", self._spec(worker))
        self._put("detail-pending", self._pending(worker, pending, now))
        self._put("detail-runs", self._runs(runs, now, selected_run))
        self._put("detail-error", self._error(worker))

    def _put(self, id: str, content: tuple[Any, RenderableType]) -> None:
        key, renderable = content
        if self._shown.get(id) != key:
            self._shown[id] = key
            self.query_one(f"#{id}", Static).update(renderable)

    def _title(self, worker: WorkerSnapshot) -> tuple[Any, RenderableType]:
        state = display_state(worker)
        why = worker_row_why(worker)
        key = (worker.name, state, why)
        text = Text()
        text.append(worker.name, style="bold")
        text.append("  ")
        style = STATE_STYLES.get(state, "")
        if "reverse" not in style:
            style = f"reverse {style}"
        text.append(f" {state_word(state)} ", style=style)
        text.append("  " + why, style="bright_black")
        return key, text

    def _state(self, worker: WorkerSnapshot, now: datetime) -> tuple[Any, RenderableType]:
        grid = _grid()
        health = health_word(worker.health, worker.health_reasons)
        grid.add_row("health", Text(health, style=HEALTH_STYLES.get(worker.health, "")))
        for reason in worker.health_reasons:
            grid.add_row("", Text(reason, style="bright_black"))
        grid.add_row("may run", _may_run(worker))
        grid.add_row(
            "circuit",
            Text(worker.circuit.replace("_", "-"), style=CIRCUIT_STYLES.get(worker.circuit, "")),
        )
        grid.add_row(
            "failures in a row",
            f"{worker.consecutive_failures} (circuit opens at "
            f"{worker.spec.max_consecutive_failures}; stored)",
        )
        ok, failed = worker.runs_ok, worker.runs_failed
        grid.add_row("since start", Text(f"{ok} ok · {failed} failed (runs since jobdeck started)",
                                          style="red" if failed else ""))
        if worker.attempt is not None:
            grid.add_row("attempt", f"{worker.attempt} of {worker.max_attempts}")
        if worker.running_since is not None:
            grid.add_row("running for", seconds_text((now - worker.running_since).total_seconds()))
        grid.add_row("last start", self._when(worker.last_start, now))
        grid.add_row("last success", self._when(worker.last_success, now))
        grid.add_row("next run", self._next_run(worker, now))
        took = "" if worker.last_duration_s is None else seconds_text(worker.last_duration_s)
        grid.add_row("last duration", took or "—")
        if worker.durations:
            grid.add_row("durations", Text(sparkline(worker.durations, 20), style="blue"))
        key = (
            worker.health, worker.health_reasons, worker.state, worker.enabled, worker.circuit,
            worker.consecutive_failures, worker.runs_ok, worker.runs_failed, worker.attempt,
            ago(worker.last_start, now), ago(worker.last_success, now),
            next_run(worker, now), worker.last_duration_s, worker.durations,
            None
            if worker.running_since is None
            else int((now - worker.running_since).total_seconds()),
        )
        return key, grid

    def _next_run(self, worker: WorkerSnapshot, now: datetime) -> str:
        """The next-run column's words, said in full (the same time everywhere)."""
        trial = circuit_trial_in(worker)
        if trial is not None:
            return f"trial run in {trial} (e resets the circuit now)"
        if worker.state == WorkerStatus.CIRCUIT_OPEN:
            return "none until the circuit is reset (e)"
        if worker.state == WorkerStatus.DISABLED:
            return "none until enabled (e)"
        words = next_run(worker, now)
        if worker.spec.mode == Mode.SCHEDULED and worker.next_due is not None:
            due = f"{full_time(worker.next_due, self.tz)} ({until(worker.next_due, now)})"
            return due if words else f"{due}, after the run in flight"
        return words or "after the run in flight"

    def _when(self, when: datetime | None, now: datetime) -> str:
        if when is None:
            return "never"
        return f"{full_time(when, self.tz)} ({natural_ago(when, now)})"

    def _spec(self, worker: WorkerSnapshot) -> tuple[Any, RenderableType]:
        spec = worker.spec
        grid = _grid()
        grid.add_row("fn", worker.fn)
        grid.add_row("mode", spec.mode.value)
        if spec.mode == Mode.SCHEDULED:
            if spec.cron:
                grid.add_row("cron", f"{spec.cron} ({spec.timezone})")
            else:
                grid.add_row("every", spec_seconds(spec.interval_seconds))
            if spec.jitter_seconds:
                grid.add_row("jitter", f"up to {spec_seconds(spec.jitter_seconds)}")
            grid.add_row("run at start", "yes" if spec.run_at_start else "no")
        grid.add_row("priority", spec.priority.label)
        timeout = spec.timeout_seconds
        grid.add_row("timeout", spec_seconds(timeout) if timeout else "none")
        if spec.expected_seconds is not None:
            grid.add_row("expected", spec_seconds(spec.expected_seconds))
        grid.add_row(
            "retries",
            f"{spec.max_retries} (backoff {spec_seconds(spec.retry_backoff_seconds)}"
            f", max {spec_seconds(spec.retry_backoff_max_seconds)})",
        )
        cooldown = spec.circuit_cooldown_seconds
        grid.add_row(
            "circuit",
            f"opens after {spec.max_consecutive_failures} failed runs"
            + (f", trial run after {spec_seconds(cooldown)}" if cooldown else ""),
        )
        grid.add_row("depends on", _names(spec.depends_on))
        grid.add_row("blocks", _names(spec.blocks))
        if spec.params:
            params = Table.grid(padding=(0, 1))
            params.add_column(style="cyan")
            params.add_column()
            for name, value in spec.params.items():
                params.add_row(str(name), repr(value) if not isinstance(value, str) else value)
            grid.add_row("params", params)
        return (worker.name, spec), grid

    def _pending(
        self, worker: WorkerSnapshot, pending: Sequence[Any] | None, now: datetime
    ) -> tuple[Any, RenderableType]:
        if worker.pending == 0:
            return (0,), Text("none", style="bright_black")
        if not pending:
            return (worker.pending,), Text(f"{worker.pending} waiting")
        table = Table(box=None, padding=(0, 2), show_edge=False, header_style="bright_black")
        table.add_column("accepted")
        table.add_column("source")
        table.add_column("payload", overflow="ellipsis", no_wrap=True)
        for trigger in pending[:20]:
            table.add_row(
                ago(trigger.accepted_at, now), trigger.source.value,
                "none" if trigger.payload is None else json.dumps(trigger.payload, default=str),
            )
        if len(pending) > 20:
            table.add_row("", "", f"… and {len(pending) - 20} more")
        key = (worker.pending, tuple((t.id, ago(t.accepted_at, now)) for t in pending[:20]))
        return key, Group(Text(f"{worker.pending} waiting"), table)

    def _runs(
        self, runs: Sequence[RunRecord] | None, now: datetime, selected: int | None = None
    ) -> tuple[Any, RenderableType]:
        if runs is None:
            return None, Text("loading…", style="bright_black")
        if not runs:
            return (), Text("no runs yet", style="bright_black")
        table = Table(box=None, padding=(0, 2), show_edge=False, header_style="bright_black",
                      expand=True)
        table.add_column("started", no_wrap=True)
        table.add_column("source", no_wrap=True)
        table.add_column("status", no_wrap=True, min_width=11)
        table.add_column("tries", no_wrap=True)
        table.add_column("took", justify="right", no_wrap=True)
        table.add_column("error", ratio=1, no_wrap=True, overflow="ellipsis")
        shown = list(runs)[:RUNS_SHOWN]
        for index, run in enumerate(shown):
            status = run.status
            took = "" if run.duration_s is None else seconds_text(run.duration_s)
            table.add_row(
                ago(run.started_at, now), run.trigger.source.value,
                Text(status.value, style=RUN_STATUS_STYLES.get(status, "")),
                "" if status == RunStatus.RUNNING else str(run.attempts), took,
                Text(one_line(run.error), style="red"),
                style="reverse" if index == selected else None,
            )
        key = selected, tuple(
            (r.id, r.status, r.attempts, r.duration_s, ago(r.started_at, now)) for r in shown
        )
        ended = [run for run in runs if run.status != RunStatus.RUNNING]
        ok = sum(1 for run in ended if run.status == RunStatus.SUCCEEDED)
        failed = sum(1 for run in ended if run.status == RunStatus.FAILED)
        summary = Text(f"last {plural(len(ended), 'stored run')}: {ok} ok · {failed} failed",
                       style="bright_black")
        return (key, len(runs)), Group(summary, table)

    def _error(self, worker: WorkerSnapshot) -> tuple[Any, RenderableType]:
        if not worker.last_error:
            return None, Text("none", style="bright_black")
        parts: list[RenderableType] = [Text(worker.last_error, style="bold red")]
        if worker.last_traceback:
            parts.append(Text(short_traceback(worker.last_traceback).rstrip(), style="red"))
        return (worker.last_error, worker.last_traceback), Group(*parts)
