"""`jobdeck plan FILE`: what a config will do, before it runs: delays, what they are spent
on, who falls behind, how busy the slots are."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._config import load_config
from ._errors import ConfigError, StoreError
from ._exit import ExitCode
from ._plan import plan
from ._plan_history import read_history
from ._plan_report import plan_json, render_text

DEFAULT_WINDOW = "24h"
#: The longest window a plan runs for.
MAX_WINDOW_S = 366 * 86400
#: `--from` must come before this year.
LAST_YEAR = 9000

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobdeck plan",
        description="Run a config on a virtual clock with stand-in workers (nothing of "
        "your code is imported or run) and report, per worker, the runs, the delays "
        "between due and start and what they were spent on, and who falls behind; and "
        "how busy the slots are.",
        epilog="Exit codes: 0 every worker keeps up; 3 a worker falls behind (a due time "
        "coalesced, a run more than one interval late, runs that would time out); "
        "2 a bad config, store or option.",
    )
    parser.add_argument("file", metavar="FILE", help="the config to plan")
    parser.add_argument(
        "--for", dest="window", metavar="DURATION", default=DEFAULT_WINDOW,
        help=f"how long to plan for: 90m, 24h, 7d, 1h30m (default {DEFAULT_WINDOW})",
    )
    parser.add_argument(
        "--from", dest="start", metavar="ISO-TIME",
        help="start at this wall time (cron follows the calendar from it) and print "
        "wall times: 2026-03-29T00:30+01:00, or with a zone 2026-03-29T00:30[Europe/Berlin], "
        "without either UTC; default: now, times printed as offsets",
    )
    parser.add_argument(
        "--store", metavar="PATH",
        help="a store to learn from (read-only, may be in use): each worker's median "
        "run time, and restart from its last runs",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def plan_main(args: Sequence[str], *, out: IO[str] | None = None) -> int:
    """Run `jobdeck plan ...`; returns the exit code (0, 3 falls behind, 2 bad input)."""
    options = _parser().parse_args(list(args))
    try:
        window_s = parse_duration(options.window)
        start = None if options.start is None else parse_start(options.start)
    except ValueError as exc:
        print(f"jobdeck plan: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        config = load_config(options.file, import_functions=False)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        if len(exc.problems) > 1:
            print(f"{options.file}: {len(exc.problems)} problems", file=sys.stderr)
        return ExitCode.USAGE
    for warning in config.warnings:
        print(warning, file=sys.stderr)
    try:
        history = None if options.store is None else read_history(options.store)
    except StoreError as exc:
        print(f"jobdeck plan: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    result = plan(config, window_s=window_s, start=start, history=history)
    text = (
        json.dumps(plan_json(result), indent=2)
        if options.json
        else render_text(result, source=options.file)
    )
    _write(text, out if out is not None else sys.stdout)
    return ExitCode.BEHIND if result.behind else ExitCode.OK


def _write(text: str, stream: IO[str]) -> None:
    try:
        stream.write(text + "\n")
        stream.flush()
    except BrokenPipeError:
        # The reader left (`jobdeck plan jobs.toml | head`): not the plan's failure. Point
        # stdout at nothing, so that the interpreter's last flush does not fail either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def parse_duration(text: str) -> float:
    """`90m`, `24h`, `7d`, `1h30m` or plain seconds, as seconds.

    Raises:
        ValueError: not such a duration, not > 0, or longer than a year.
    """
    spec = text.strip().lower()
    try:
        seconds = float(spec)
    except ValueError:
        if not spec or _PART.sub("", spec):
            raise ValueError(
                f"--for: not a duration: {text!r} (examples: 90m, 24h, 7d)"
            ) from None
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(spec))
    if not 0 < seconds <= MAX_WINDOW_S:
        raise ValueError(f"--for: must be more than 0 and at most 366d, got {text!r}")
    return seconds


def parse_start(text: str) -> datetime:
    """An ISO 8601 time, optionally followed by a time zone in brackets
    (`2026-03-29T00:30[Europe/Berlin]`, shown in that zone); one with neither a UTC
    offset nor a zone is taken as UTC.

    Raises:
        ValueError: not such a time, or an unknown zone.
    """
    stamp, _, zone_name = text.strip().partition("[")
    try:
        start = datetime.fromisoformat(stamp)
    except ValueError:
        raise ValueError(
            f"--from: not an ISO 8601 time: {text!r} (examples: 2026-03-29T00:30+01:00,"
            " 2026-03-29T00:30[Europe/Berlin])"
        ) from None
    if start.year >= LAST_YEAR:
        # A year's plan (and a cron's next fire after it) must stay within datetime's range.
        raise ValueError(f"--from: must be before the year {LAST_YEAR}, got {text!r}")
    if not zone_name:
        return start if start.tzinfo is not None else start.replace(tzinfo=UTC)
    try:
        zone = ZoneInfo(zone_name.removesuffix("]"))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"--from: not a known time zone: {text!r}") from None
    return start.astimezone(zone) if start.tzinfo is not None else start.replace(tzinfo=zone)
