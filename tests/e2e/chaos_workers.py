"""Workers for the chaos test: a producer hands numbered triggers to consumers.

Every file line is written in one fsync'd append, so what a line says happened did
happen, even when the process is SIGKILLed right after.
"""

from __future__ import annotations

from pathlib import Path

import trio

from .durability_workers import append_line


def numbers_in(path: Path) -> list[int]:
    """The numbers of the complete lines of `path` (none if it does not exist)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [int(line) for line in text.split("\n")[:-1] if line]


async def produce(ctx):
    """Hand the next `batch` numbers to the consumers, concurrently; note each acknowledged.

    `attempted.txt` gets the batch's highest number *before* any trigger is sent, and
    the next batch starts above it: a number is never handed over twice, so every
    duplicate the test sees comes from a consumer run repeated after a crash.
    """
    folder = Path(ctx.params["dir"])
    total, batch = ctx.params["total"], ctx.params["batch"]
    first = max(numbers_in(folder / "attempted.txt"), default=0) + 1
    if first > total:
        # Every batch is handed over and its acknowledgements noted: say so, then idle.
        (folder / "produced").touch()
        await trio.sleep(0.5)
        return
    last = min(first + batch - 1, total)
    await trio.to_thread.run_sync(append_line, folder / "attempted.txt", str(last))

    async def hand(n: int) -> None:
        await ctx.trigger(f"consume-{n % ctx.params['consumers']}", {"n": n})
        await trio.to_thread.run_sync(append_line, folder / "acked.txt", str(n))

    async with trio.open_nursery() as nursery:
        for n in range(first, last + 1):
            nursery.start_soon(hand, n)
    await trio.sleep(ctx.params["pause_seconds"])


async def consume(ctx):
    """Work a little, then note the number as processed."""
    await trio.sleep(ctx.params["work_seconds"])
    folder = Path(ctx.params["dir"])
    await trio.to_thread.run_sync(append_line, folder / "processed.txt", str(ctx.payload["n"]))
