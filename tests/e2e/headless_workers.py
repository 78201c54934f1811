"""Workers for the headless end-to-end tests."""

from __future__ import annotations

import trio


async def quick(ctx):
    ctx.log.info("quick run %s", ctx.run_id)


async def slow(ctx):
    await trio.sleep(ctx.params.get("seconds", 60))


async def stubborn(ctx):
    # Ignores cancellation: the orchestrator must flag it stuck and still exit.
    with trio.CancelScope(shield=True):
        await trio.sleep(ctx.params.get("seconds", 600))


async def echo(ctx):
    ctx.log.info("payload %r", ctx.payload)
