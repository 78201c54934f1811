"""`jobdeck dlq`: list, inspect, replay, delete and purge dead letters, offline.

It works on a store file that no running jobdeck owns: it takes the store's lock like
the orchestrator does, so it refuses (exit 2) while a jobdeck runs on that store. A
cluster's store (`--store postgresql://...`) is shared: it works there while nodes run,
and a replayed entry runs on whichever node claims it first.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import trio

from ._errors import StoreError, UnknownDeadLetter
from ._exit import ExitCode
from ._json_views import MAX_DEAD_LETTER_ID, check_dead_letter_id, dead_letter_json
from ._logformat import one_line
from ._offline_store import offline_parser, offline_store, offline_store_path
from ._records import DeadLetter, Source, Trigger

if TYPE_CHECKING:
    pass

#: Widest error text shown in the `list` table; `show` gives all of it.
ERROR_COLUMN_WIDTH = 60


def dlq_main(args: Sequence[str], *, stdin: IO[str] | None = None) -> int:
    """Run `jobdeck dlq ...`; returns the exit code (0 done, 2 refused or failed).

    Args:
        args: the arguments after `dlq`.
        stdin: where `purge` reads its confirmation (default `sys.stdin`).
    """
    parser = _parser()
    options = parser.parse_args(list(args))
    if getattr(options, "limit", None) is not None and options.limit < 0:
        parser.error(f"argument --limit: must be 0 or more, got {options.limit}")
    try:
        path = offline_store_path(options)
        # what messages call the store: a URL without its password
        shown: Path | str = path if isinstance(path, Path) else _described(path)
    except StoreError as exc:
        print(f"jobdeck: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if options.command == "purge" and not options.yes:
        answer = _confirmed(shown, stdin if stdin is not None else sys.stdin)
        if answer is not True:
            # An explicit "no" is an answer, not an error; no answer at all (EOF) is.
            return ExitCode.OK if answer is False else ExitCode.USAGE
    skipped: list[str] = []
    try:
        result = trio.run(_act, options, path, skipped)
    except UnknownDeadLetter as exc:
        print(f"jobdeck: {exc} in store {shown}", file=sys.stderr)
        return ExitCode.USAGE
    except StoreError as exc:
        print(f"jobdeck: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    print(_as_json(result) if options.json else _as_text(options.command, result, shown))
    if skipped:
        count = len(skipped)
        print(
            f"jobdeck: skipped {count} damaged dead letter{'s' * (count != 1)} "
            f"(left untouched in store {shown}):",
            file=sys.stderr,
        )
        for message in skipped:
            print(f"  {message}", file=sys.stderr)
    return ExitCode.OK


def _parser() -> argparse.ArgumentParser:
    parser, commands, common = offline_parser("jobdeck dlq", "Dead letters")
    listing = commands.add_parser("list", parents=[common], help="list dead letters, newest first")
    listing.add_argument("--limit", type=int, metavar="N", help="at most N entries")
    for name, text in (
        ("show", "one entry with its payload and traceback"),
        ("replay", "remove the entry and add a pending trigger that runs at the next start"),
        ("delete", "remove one entry"),
    ):
        command = commands.add_parser(name, parents=[common], help=text)
        command.add_argument("id", type=int, metavar="ID")
    purge = commands.add_parser("purge", parents=[common], help="remove every entry")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser


def _described(url: str) -> str:
    from ._pg_pool import describe_target  # psycopg loads only when asked for

    return describe_target(url)


def _confirmed(path: Path | str, stdin: IO[str]) -> bool | None:
    """True for a yes, False for any other answer, None for no answer (stdin closed)."""
    print(f"Purge every dead letter in {path}? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = stdin.readline()
    if not answer:
        print(
            "\njobdeck: no answer (stdin closed): nothing purged; pass --yes to purge "
            "without asking",
            file=sys.stderr,
        )
        return None
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("jobdeck: nothing deleted", file=sys.stderr)
    return False


async def _act(options: argparse.Namespace, path: Path | str, skipped: list[str]) -> Any:
    """Do the command on the store at `path` (a file, or a cluster's URL); the damaged
    rows it skipped go in `skipped`."""
    if options.command in ("show", "replay", "delete"):
        check_dead_letter_id(options.id)
    store = offline_store(path)
    await store.open()
    try:
        if options.command == "list":
            # More entries than any store can hold is all of them (SQLite takes no more).
            limit = options.limit
            entries = await store.dlq_list(None if limit and limit > MAX_DEAD_LETTER_ID else limit)
            skipped += getattr(store, "quarantined", [])
            return entries
        if options.command == "show":
            return await store.dlq_get(options.id)
        if options.command == "replay":
            entry = await store.dlq_get(options.id)
            trigger = Trigger(
                worker=entry.worker, source=Source.REPLAY, payload=entry.payload,
                accepted_at=datetime.now(UTC),
            )
            await store.dlq_replay(entry.id, trigger)
            return {"replayed": entry.id, "worker": entry.worker, "trigger_id": trigger.id,
                    "cluster": isinstance(path, str)}
        if options.command == "delete":
            await store.dlq_delete(options.id)
            return {"deleted": options.id}
        assert options.command == "purge"
        return {"purged": await store.dlq_purge()}
    finally:
        await store.close()


# ---------------------------------------------------------------------- output


def _as_json(result: Any) -> str:
    # Unlike the HTTP list, entries keep their tracebacks: scripts get every field here.
    if isinstance(result, DeadLetter):
        result = dead_letter_json(result, traceback=True)
    elif isinstance(result, list):
        result = [dead_letter_json(entry, traceback=True) for entry in result]
    return json.dumps(result, ensure_ascii=False, indent=2)


def _as_text(command: str, result: Any, path: Path | str) -> str:
    if command == "list":
        return _table(result, path)
    if command == "show":
        return _details(result)
    if command == "replay":
        when = (
            "a node of the cluster runs it" if result.pop("cluster")
            else "runs at the next start"
        )
        return (
            f"Replayed dead letter {result['replayed']}: trigger {result['trigger_id']} for "
            f"{result['worker']} is pending and {when}."
        )
    if command == "delete":
        return f"Deleted dead letter {result['deleted']}."
    count = result["purged"]
    return f"Purged {count} dead letter{'s' * (count != 1)}."


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(entries: list[DeadLetter], path: Path | str) -> str:
    if not entries:
        return f"No dead letters in {path}."
    header = ("ID", "WORKER", "SOURCE", "ATTEMPTS", "FAILED AT", "ERROR")
    rows = [
        (
            str(e.id), e.worker, e.source.value, str(e.attempts), _when(e.failed_at),
            one_line(e.error, ERROR_COLUMN_WIDTH),
        )
        for e in entries
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.rjust(w) if i == 0 else cell.ljust(w)
                  for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
        for row in [header, *rows]
    ]
    count = len(entries)
    lines.append(f"{count} dead letter{'s' * (count != 1)}")
    return "\n".join(lines)


def _details(entry: DeadLetter) -> str:
    payload = json.dumps(entry.payload, ensure_ascii=False, indent=2)
    fields = [
        ("worker", entry.worker),
        ("source", entry.source.value),
        ("trigger", entry.trigger_id),
        ("run", entry.run_id),
        ("attempts", str(entry.attempts)),
        ("started", _when(entry.started_at)),
        ("failed", _when(entry.failed_at)),
        ("error", entry.error),
    ]
    lines = [f"Dead letter {entry.id}"]
    lines += [f"  {name + ':':<10} {value}" for name, value in fields]
    lines.append("  payload:")
    lines += [f"    {line}" for line in payload.splitlines()]
    lines.append("  traceback:")
    lines += [f"    {line}" for line in (entry.traceback.rstrip() or "(none)").splitlines()]
    return "\n".join(lines)
