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
    return anchor + k * interval


def next_cron_time(expression: str, timezone: str, after: datetime) -> datetime:
    """The first time the cron expression fires strictly after `after`, in `timezone`."""
    local = after.astimezone(ZoneInfo(timezone))
    fire: datetime = croniter(expression, local).get_next(datetime)
    return fire


def cron_period(expression: str, timezone: str, after: datetime) -> float:
    """Seconds between the next two fire times (what "one interval late" means for cron)."""
    first = next_cron_time(expression, timezone, after)
    second = next_cron_time(expression, timezone, first)
    return (second - first).total_seconds()


def backoff_ceiling(failed_attempts: int, base: float, cap: float) -> float:
    """`min(cap, base * 2**(n-1))` after n failed attempts: the most a retry waits."""
    exponent = max(failed_attempts - 1, 0)
    # Guard the power: 2**1100 overflows a float long before the cap matters.
    if exponent > 60:
        return cap
    return min(cap, base * 2.0**exponent)


def backoff_delay(failed_attempts: int, base: float, cap: float, rng: random.Random) -> float:
    """How long to wait before the next attempt: full jitter over the ceiling."""
    return backoff_ceiling(failed_attempts, base, cap) * rng.random()
