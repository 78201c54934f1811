"""`jobdeck runs`: list the run history and open one run, offline.

Like `jobdeck dlq`, it opens a store file that no running jobdeck owns (`--store PATH`,
or `--config FILE` for that config's store) and refuses (exit 2) while one runs on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from ._errors import StoreError, UnknownRun
from ._exit import ExitCode
from ._json_views import run_detail_json, run_json
from ._logformat import one_line, short_id
from ._offline_store import offline_parser, offline_store, offline_store_path
from ._records import RunDetail, RunRecord

if TYPE_CHECKING:
    pass

#: Widest error text shown in the `list` table; `show` gives all of it.
ERROR_COLUMN_WIDTH = 60
#: Runs listed without --limit.
DEFAULT_LIMIT = 50


def runs_main(args: Sequence[str]) -> int:
    """Run `jobdeck runs ...`; returns the exit code (0 done, 2 refused or failed)."""
    parser = _parser()
    options = parser.parse_args(list(args))
    if getattr(options, "limit", 0) < 0:
        parser.error(f"argument --limit: must be 0 or more, got {options.limit}")
    try:
        path = offline_store_path(options)
        # what messages call the store: a cluster's URL without its password
        shown: Path | str = path if isinstance(path, Path) else _described(path)
        result = trio.run(_read, options, path)
    except (StoreError, UnknownRun) as exc:
        where = f" in store {shown}" if isinstance(exc, UnknownRun) else ""
        print(f"jobdeck: {exc}{where}", file=sys.stderr)
        return ExitCode.USAGE
    if options.json:
        if isinstance(result, RunDetail):
            print(json.dumps(run_detail_json(result), ensure_ascii=False, indent=2))
        else:
            print(json.dumps([run_json(r) for r in result], ensure_ascii=False, indent=2))
    elif isinstance(result, RunDetail):
        print(_details(result))
    else:
        print(_table(result, shown))
    return ExitCode.OK


def _parser() -> argparse.ArgumentParser:
    parser, commands, common = offline_parser("jobdeck runs", "Run history")
    listing = commands.add_parser("list", parents=[common], help="list runs, newest first")
    listing.add_argument("--worker", metavar="W", help="only this worker's runs")
    listing.add_argument(
        "--limit", type=int, metavar="N", default=DEFAULT_LIMIT,
        help=f"at most N runs (default {DEFAULT_LIMIT})",
    )
    show = commands.add_parser(
        "show", parents=[common], help="one run: its attempts, traceback and log lines"
    )
    show.add_argument("id", metavar="ID", help="a run id, or its first characters")
    return parser


def _described(url: str) -> str:
    from ._pg_pool import describe_target  # psycopg loads only when asked for

    return describe_target(url)


async def _read(options: argparse.Namespace, path: Path | str) -> list[RunRecord] | RunDetail:
    store = offline_store(path)
    await store.open()
    try:
        if options.command == "list":
            return await store.runs(options.worker, options.limit)
        try:
            return await store.run_detail(options.id)
        except UnknownRun:
            # The text views show ids cut short: a unique start of one names it.
            every = await store.runs(None, sys.maxsize >> 1)
            found = [r.id for r in every if options.id and r.id.startswith(options.id)]
            if len(found) != 1:
                raise
            return await store.run_detail(found[0])
    finally:
        await store.close()


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}s"


def _table(runs: list[RunRecord], path: Path | str) -> str:
    if not runs:
        return f"No runs in {path}."
    header = ("ID", "WORKER", "STATUS", "SOURCE", "STARTED", "DURATION", "ATTEMPTS", "ERROR")
    rows = [
        (
            short_id(r.id), r.worker, r.status.value, r.trigger.source.value,
            _when(r.started_at), _duration(r.duration_s), str(r.attempts),
            one_line(r.error, ERROR_COLUMN_WIDTH),
        )
        for r in runs
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    count = len(runs)
    lines.append(f"{count} run{'s' * (count != 1)}")
    return "\n".join(lines)


def _details(detail: RunDetail) -> str:
    record = detail.record
    payload = json.dumps(record.trigger.payload, ensure_ascii=False, indent=2)
    fields = [
        ("worker", record.worker),
        ("status", record.status.value),
        ("source", record.trigger.source.value),
        ("trigger", record.trigger.id),
        ("started", _when(record.started_at)),
        ("ended", _when(record.ended_at)),
        ("duration", _duration(record.duration_s)),
        ("attempts", str(record.attempts)),
    ]
    if record.error:
        fields.append(("error", record.error))
    lines = [f"Run {record.id}"]
    lines += [f"  {name + ':':<10} {value}" for name, value in fields]
    lines.append("  payload:")
    lines += [f"    {line}" for line in payload.splitlines()]
    for attempt in detail.attempts:
        outcome = attempt.error or ("running" if attempt.ended_at is None else "ok")
        lines.append(
            f"  attempt {attempt.number}: {_when(attempt.started_at)}, "
            f"{_duration(attempt.duration_s)}, {outcome}"
        )
        if attempt.traceback:
            lines += [f"    {line}" for line in attempt.traceback.rstrip().splitlines()]
    dropped = f" ({detail.logs_dropped} earlier lines dropped)" if detail.logs_dropped else ""
    lines.append(f"  log:{dropped}" if detail.logs else f"  log: (none){dropped}")
    for line in detail.logs:
        clock = line.ts.astimezone(UTC).strftime("%H:%M:%S")
        first, *rest = line.message.splitlines() or [""]
        lines.append(f"    {clock} {line.level:<7} {first}")
        lines += [f"{'':21}{more}" for more in rest]
    return "\n".join(lines)
