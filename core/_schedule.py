"""Pure time arithmetic: fixed-rate grids, cron times, retry backoff."""

from __future__ import annotations

import functools
import math
import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

#: How far ahead a fire time is looked for before a cron expression counts as one that
#: never fires. Without a year field every expression repeats with the calendar, and the
#: longest gap between two fire times (the fifth Friday of a February: up to 40 years) is
#: inside this window, so the answer does not depend on when it is asked.
CRON_SEARCH_YEARS = 50


def next_grid_time(anchor: float, interval: float, after: float) -> float:
    """The first time `anchor + k * interval` (k >= 0) strictly after `after`.

    Fixed-rate scheduling: due times stay on the grid whatever a run's duration, and
    every grid point missed while a run overran collapses into this one.
    """
    if after < anchor:
        return anchor
    k = math.floor((after - anchor) / interval) + 1
    # The division rounds: `anchor + k * interval` can land on `after` itself (a second
    # run at the same instant) or one grid point too far. Step k to the exact answer.
    while anchor + k * interval <= after:
        k += 1
    while anchor + (k - 1) * interval > after:
        k -= 1
    return anchor + k * interval


def next_cron_time(expression: str, timezone: str, after: datetime) -> datetime:
    """The first time the cron expression fires strictly after `after`, in `timezone`.

    Across DST changes this follows cron: a time skipped when clocks go forward fires
    once, just after the jump; when clocks go back, only jobs whose minute or hour field
    is a wildcard (`*`, `*/15`) fire again in the repeated hour, so a daily `30 2 * * *`
    runs once that night, not twice.

    The result carries `timezone`'s tzinfo: compare or subtract it with datetimes of
    another tzinfo (or via `.timestamp()`), since Python compares two datetimes sharing
    one tzinfo by wall time, ignoring DST.
    """
    local = after.astimezone(ZoneInfo(timezone))
    cron = _parsed(expression)
    minute, hour = cron.expressions[0], cron.expressions[1]
    wildcard = minute.startswith("*") or hour.startswith("*")
    fire: datetime = cron.get_next(datetime, start_time=local)
    while not wildcard and _repeated_wall_time(fire):
        fire = cron.get_next(datetime, start_time=fire)
    return fire


@functools.lru_cache(maxsize=1024)
def _parsed(expression: str) -> croniter:
    """An expression parsed once (parsing costs more than finding the next time), then
    asked from each start time anew. Only the trio thread (or a command) uses it."""
    return croniter(expression, 0.0, max_years_between_matches=CRON_SEARCH_YEARS)


def _repeated_wall_time(t: datetime) -> bool:
    """Whether `t` is the second pass of a wall time that clocks going back repeat."""
    return t.fold == 1 and t.replace(fold=0).utcoffset() != t.utcoffset()


def cron_period(expression: str, timezone: str, after: datetime) -> float:
    """Seconds between the next two fire times (what "one interval late" means for cron)."""
    first = next_cron_time(expression, timezone, after)
    second = next_cron_time(expression, timezone, first)
    # Timestamps, not `second - first`: both share one tzinfo, so Python would subtract
    # wall times and get DST changes wrong (0s for an hourly job when clocks go back).
    return second.timestamp() - first.timestamp()


@functools.lru_cache(maxsize=1024)
def cron_problem(expression: str, timezone: str = "UTC") -> str | None:
    """Why `expression` cannot schedule a worker, or None when it can.

    It must parse, have no year field (a schedule that runs out of times would fail the
    day after its last run), and have the two fire times the scheduler computes at start
    (`next_cron_time`, `cron_period`) within CRON_SEARCH_YEARS: `0 0 31 2 *` has none.
    Cached: many workers often share one expression.
    """
    if not croniter.is_valid(expression):
        return f"is not a valid cron expression: {expression!r}"
    if len(expression.split()) == 7:
        return (
            f"has a year field, which jobdeck does not support (a schedule must not run"
            f" out of times): {expression!r}"
        )
    try:
        cron_period(expression, timezone, datetime.now(UTC))
    except CroniterBadDateError:
        return f"never fires: no time in the next {CRON_SEARCH_YEARS} years matches {expression!r}"
    except Exception as exc:
        # croniter calls the expression valid yet cannot compute its times: it would fail
        # the same way at start.
        return f"cannot be scheduled: {expression!r} ({type(exc).__name__}: {exc})"
    return None


def backoff_ceiling(failed_attempts: int, base: float, cap: float) -> float:
    """`min(cap, base * 2**(n-1))` after n failed attempts: the most a retry waits."""
    # Clamp the exponent: 2.0**1024 raises OverflowError; any larger power only matters
    # by hitting the cap, and a base of 0 ("retry at once") must stay 0 however many
    # attempts a continuous worker has failed.
    exponent = min(max(failed_attempts - 1, 0), 1023)
    return min(cap, base * 2.0**exponent)


def backoff_delay(failed_attempts: int, base: float, cap: float, rng: random.Random) -> float:
    """How long to wait before the next attempt: full jitter over the ceiling."""
    return backoff_ceiling(failed_attempts, base, cap) * rng.random()
