"""Pure time arithmetic: fixed-rate grids, cron times, retry backoff."""

from __future__ import annotations

import math
import random
from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import croniter


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
    cron = croniter(expression, local)
    minute, hour = cron.expressions[0], cron.expressions[1]
    wildcard = minute.startswith("*") or hour.startswith("*")
    fire: datetime = cron.get_next(datetime)
    while not wildcard and _repeated_wall_time(fire):
        fire = croniter(expression, fire).get_next(datetime)
    return fire


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
