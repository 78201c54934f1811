"""Worker functions that config tests point `fn` at."""

from __future__ import annotations

from typing import Any

import trio

NOT_CALLABLE = 3


async def ok(ctx: object) -> None:
    """An async worker that does nothing."""


def sync_ok(ctx: object) -> None:
    """A plain worker that does nothing (runs in a thread)."""


async def fails_slowly(ctx: Any) -> None:
    """Logs a line, works for half a second, then fails: exercises logs, retries, grace."""
    ctx.log.info("working")
    await trio.sleep(0.5)
    raise RuntimeError("failed on purpose")


async def async_generator(ctx: Any) -> Any:
    """An `async def` with `yield`: calling it runs none of its body."""
    yield ctx


def generator(ctx: Any) -> Any:
    """A `def` with `yield`: calling it runs none of its body."""
    yield ctx


class AsyncGeneratorCall:
    """An object whose `__call__` is an async generator function."""

    async def __call__(self, ctx: Any) -> Any:
        yield ctx
