"""Workers for the durability end-to-end tests (restart, shutdown, dead letters)."""

from __future__ import annotations

import os
from pathlib import Path

import trio


def append_line(path: str | Path, line: str) -> None:
    """Append one line in a single write and fsync it: it survives a SIGKILL right after."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


async def hand_over(ctx):
    """Trigger `params.target` once per payload in `params.payloads`."""
    for payload in ctx.params["payloads"]:
        await ctx.trigger(ctx.params["target"], payload)


async def fail(ctx):
    raise ValueError(f"cannot process {ctx.payload!r}")


async def record(ctx):
    """Note the start and end of each run; slow unless the file `fast` sits beside the log."""
    log = Path(ctx.params["log"])
    await trio.to_thread.run_sync(append_line, log, f"start {ctx.trigger_id} {ctx.payload}")
    if not (log.parent / "fast").exists():
        await trio.sleep(ctx.params["seconds"])
    await trio.to_thread.run_sync(append_line, log, f"end {ctx.trigger_id} {ctx.payload}")
