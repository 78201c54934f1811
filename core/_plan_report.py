"""What `jobdeck plan` prints: a report for people, or JSON for tools."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import humanize

from ._plan import WAIT_KINDS, PlannedStart, PlanResult, SlotUsage, WorkerPlan
from ._spec import Mode

SPARK = "▁▂▃▄▅▆▇█"

#: What each worker's row names at most of what its delays were spent on.
CAUSES_SHOWN = 3


def compact(seconds: float) -> str:
    """A duration, short: `0s`, `40s`, `14m`, `2m30s`, `2h15m`, `24h`, `3d4h` (at most
    two units; hours up to two days)."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        minutes, s = divmod(s, 60)
        return f"{minutes}m{s}s" if s else f"{minutes}m"
    minutes = round(s / 60)
    if minutes < 48 * 60:
        hours, minutes = divmod(minutes, 60)
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(round(s / 3600), 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def _run_time(seconds: float) -> str:
    """An expected run time: fractions of a second are kept (`0.5s`)."""
    if seconds < 10 and seconds != round(seconds):
        return f"{seconds:.2g}s"
    return compact(seconds)


def _plural(count: int, word: str) -> str:
    return f"{humanize.intcomma(count)} {word}{'s' * (count != 1)}"


def render_text(result: PlanResult, *, source: str) -> str:
    """The plan for people: workers, what falls behind, slots, the first runs."""
    lines = [_header(result, source), ""]
    lines += _worker_table(result.workers)
    behind = result.behind
    if behind:
        lines += ["", "Falls behind:"]
        for worker in behind:
            lines += _behind(worker, width=max(len(w.name) for w in behind))
    lines += ["", *_slots(result.slots, result)]
    if result.first_runs:
        lines += ["", "First runs:", *_timeline(result)]
    lines.append("")
    if behind:
        lines.append(f"{_plural(len(behind), 'worker')} {'falls' if len(behind) == 1 else 'fall'}"
                     " behind: exit 3.")
    else:
        lines.append("Every worker keeps up.")
    return "\n".join(lines)


def _header(result: PlanResult, source: str) -> str:
    workers = _plural(len(result.workers), "worker")
    slots = _plural(result.slots.limit, "slot")
    span = compact(result.window_s)
    if result.start_given:
        return f"Plan of {source}: {span} from {_wall(result, 0)}, {workers}, {slots}."
    return (
        f"Plan of {source}: {span} from a fresh start, {workers}, {slots}"
        " (times are offsets from the start)."
    )


def _at(result: PlanResult, seconds: float) -> str:
    return _wall(result, seconds) if result.start_given else f"+{compact(seconds)}"


def _wall(result: PlanResult, seconds: float) -> str:
    return (result.start + timedelta(seconds=seconds)).isoformat(sep=" ", timespec="seconds")


def _worker_table(workers: tuple[WorkerPlan, ...]) -> list[str]:
    header = ("worker", "runs", "expected", "max delay", "typical", "delay spent on")
    rows = [header]
    for w in workers:
        ran = bool(w.runs)
        rows.append((
            w.name,
            humanize.intcomma(w.runs),
            f"{_run_time(w.expected.seconds)} {w.expected.source}",
            compact(w.max_delay_s) if ran else "-",
            compact(w.median_delay_s) if ran else "-",
            _spent_on(w),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    right = {1, 3, 4}
    out = []
    for row in rows:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        out.append(("  ".join(cells) + "  " + row[-1]).rstrip())
    return out


def _spent_on(w: WorkerPlan) -> str:
    if not w.may_run and not w.runs:
        return "never runs: disabled"
    if w.mode is Mode.TRIGGERED and w.period_s is None and not w.runs:
        return "runs only when triggered"
    causes = [(label, s) for label, s in w.causes if round(s) > 0]
    said = [f"{label} {compact(s)}" for label, s in causes[:CAUSES_SHOWN]]
    if len(causes) > CAUSES_SHOWN:
        said.append("...")
    return ", ".join(said)


def _behind(w: WorkerPlan, *, width: int) -> list[str]:
    scheduled = w.mode is Mode.SCHEDULED
    said: list[str] = []
    if w.times_out:
        said.append(
            f"every run would time out: it takes {_run_time(w.expected.seconds)},"
            f" its timeout is {_run_time(w.timeout_seconds)}"
        )
    if w.coalesced:
        said.append(
            f"{_plural(w.coalesced, 'due time')} skipped: they passed while a run was still"
            " waiting to start (coalesced)"
        )
    period = compact(w.period_s or 0)
    if w.late_runs:
        late = _plural(w.late_runs, "run")
        if scheduled:
            said.append(
                f"{late} started more than one interval ({period}) after due, up to"
                f" {compact(w.max_delay_s)}: in production it will be `overdue`"
            )
        else:
            said.append(
                f"{late} started more than {period} (the interval feeding it) after"
                f" their trigger, up to {compact(w.max_delay_s)}"
            )
    if w.late_at_end and w.may_run:
        what = "due" if scheduled else "its trigger"
        said.append(f"still waiting at the end, {compact(w.waiting_at_end_s)} after {what}")
    if w.queued_at_end > 1:
        said.append(f"{_plural(w.queued_at_end, 'trigger')} still queued at the end")
    first, *rest = said
    return [f"  {w.name.ljust(width)}  {first}", *(f"  {'':{width}}  {line}" for line in rest)]


def _slots(slots: SlotUsage, result: PlanResult) -> list[str]:
    profile = "".join(
        SPARK[min(len(SPARK) - 1, round(level / slots.limit * (len(SPARK) - 1)))]
        for level in slots.profile
    )
    part = compact(result.window_s / len(slots.profile))
    start, end = _at(result, 0), _at(result, result.window_s)
    return [
        f"Slots: {slots.limit}, peak {slots.peak} in use, mean {slots.mean_busy:.2f}."
        f" In use on average, each mark {part} ({SPARK[-1]} = {slots.limit}):",
        f"  {profile}",
        f"  {start}{' ' * max(2, len(profile) - len(start) - len(end))}{end}",
    ]


def _timeline(result: PlanResult) -> list[str]:
    runs = result.first_runs
    times = [_at(result, run.at_s) for run in runs]
    t_width = max(map(len, times))
    n_width = max(len(run.worker) for run in runs)
    return [
        f"  {when.ljust(t_width)}  {run.worker.ljust(n_width)}  {_started(run)}"
        for when, run in zip(times, runs, strict=True)
    ]


def _started(run: PlannedStart) -> str:
    text = f"runs {_run_time(run.expected_s)}"
    if round(run.delay_s) > 0:
        text += f", {compact(run.delay_s)} late"
        if run.cause is not None:
            text += f": {run.cause}"
    return text


def plan_json(result: PlanResult) -> dict[str, Any]:
    """The plan as JSON: figures in seconds, waits by kind (`WAIT_KINDS`)."""
    return {
        "window_seconds": result.window_s,
        "workers": {
            w.name: {
                "runs": w.runs,
                "coalesced": w.coalesced,
                "expected_seconds": w.expected.seconds,
                "expected_source": w.expected.source,
                "max_delay_seconds": _ms(w.max_delay_s),
                "median_delay_seconds": _ms(w.median_delay_s),
                "waits": {kind: _ms(w.waits[kind]) for kind in WAIT_KINDS},
                "falls_behind": w.falls_behind,
            }
            for w in result.workers
        },
        "slots": {
            "limit": result.slots.limit,
            "peak": result.slots.peak,
            "mean_busy": round(result.slots.mean_busy, 3),
        },
    }


def _ms(seconds: float) -> float:
    # Runs end a fraction of a millisecond early (END_STEP_S): keep what people count.
    return round(seconds, 3)
